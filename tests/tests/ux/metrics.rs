//! The metrics endpoint scraped during and after a batch, `run --json`,
//! and `tessera cluster`, checked against what the batch did.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use tessera_tests::{
    Proc, bad_pngs, check_swapped, copy_into, corrupt_pngsuite, eventually, photos,
};

use crate::{
    CLIENT, NODE, T,
    master::{Master, stdout},
};

/// GET /metrics on `addr` with a hand-written HTTP/1.1 request; the body.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no {key} in the metrics:\n{m:#?}"))
}

/// Failures of every kind.
fn failures(m: &BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("tessera_failures_total{"))
        .map(|(_, v)| v)
        .sum()
}

fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_cluster_view_match_what_a_batch_did() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut proc = Proc::spawn(
        "master",
        NODE,
        &[
            "master",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--no-mdns",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let lines = proc
        .wait_for_lines(&["metrics on http://", "listening on "], T)
        .await;
    let metrics_addr = lines[0].trim_end_matches("/metrics").to_string();
    let addr = lines[1].clone();
    let cluster = Master {
        _proc: proc,
        addr: addr.clone(),
        key: data.join(tessera_proto::KEY_FILE_NAME),
    };
    // Slow enough that the batch is still going when it is scraped.
    let slow = ["--threads", "1", "--test-delay", "100ms"];
    let _w1 = cluster.worker("metrics-w1", &slow);
    let _w2 = cluster.worker("metrics-w2", &slow);
    let client = cluster.client().await;
    let start = Instant::now();
    while client.cluster().await.unwrap().workers_total < 2 {
        assert!(start.elapsed() < T, "the workers did not join");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let inputs = tmp.path().join("in");
    let good = photos();
    let bad: Vec<PathBuf> = corrupt_pngsuite().into_iter().chain(bad_pngs()).collect();
    copy_into(&inputs, &good);
    copy_into(&inputs, &bad);
    let n = good.len() + bad.len();
    let out = tmp.path().join("out");
    let mut run = tokio::process::Command::new(CLIENT)
        .args(["run", inputs.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--master", &addr, "--json", "--in-flight", "4"])
        .env(tessera_proto::KEY_FILE_ENV, &cluster.key)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // During the batch: some work submitted, not all of it finished.
    let mut during = BTreeMap::new();
    eventually(T, "a scrape during the batch", || {
        during = samples(&scrape(&metrics_addr));
        let finished = get(&during, "tessera_completions_total") + failures(&during);
        get(&during, "tessera_submissions_total") > 0.0 && finished < n as f64
    })
    .await;
    assert!(get(&during, "tessera_workers") == 2.0, "{during:#?}");

    let mut stdout_text = String::new();
    tokio::io::AsyncReadExt::read_to_string(run.stdout.as_mut().unwrap(), &mut stdout_text)
        .await
        .unwrap();
    let status = tokio::time::timeout(T, run.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "corrupt inputs fail the batch");

    // `--json`: one object per image, then the summary.
    let objects: Vec<serde_json::Value> = stdout_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(objects.len(), n + 1, "{stdout_text}");
    let summary = objects.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["done"], good.len());
    assert_eq!(summary["failed"], bad.len());
    let ok = objects[..n].iter().filter(|o| o["ok"] == true).count();
    assert_eq!(ok, good.len());
    let mut bytes_out = 0;
    for f in &good {
        let result = std::fs::read(out.join(f.file_name().unwrap())).unwrap();
        check_swapped(&std::fs::read(f).unwrap(), &result).unwrap();
        bytes_out += result.len() as u64;
    }

    // After the batch: the counters are what the batch did. Gauges are set
    // at scrape time; the last confirmations may still be on their way.
    let mut m = BTreeMap::new();
    eventually(T, "the final counts", || {
        m = samples(&scrape(&metrics_addr));
        m.get("tessera_bytes_sent_total{to=\"client\"}").copied() == Some(bytes_out as f64)
    })
    .await;
    let n = n as f64;
    assert_eq!(get(&m, "tessera_submissions_total"), n);
    assert_eq!(get(&m, "tessera_completions_total"), good.len() as f64);
    assert_eq!(failures(&m), bad.len() as f64);
    assert_eq!(get(&m, "tessera_tasks{state=\"done\"}"), good.len() as f64);
    assert_eq!(get(&m, "tessera_tasks{state=\"failed\"}"), bad.len() as f64);
    assert_eq!(get(&m, "tessera_tasks{state=\"queued\"}"), 0.0);
    assert_eq!(get(&m, "tessera_queue_depth"), 0.0);
    assert_eq!(get(&m, "tessera_lease_expiries_total"), 0.0);
    assert_eq!(get(&m, "tessera_retries_total"), 0.0);
    let inputs_size = (total_size(&good) + total_size(&bad)) as f64;
    assert_eq!(
        get(&m, "tessera_bytes_received_total{from=\"client\"}"),
        inputs_size
    );
    assert!(get(&m, "tessera_bytes_sent_total{to=\"worker\"}") >= inputs_size);
    assert_eq!(
        get(&m, "tessera_bytes_received_total{from=\"worker\"}"),
        bytes_out as f64,
        "each result arrived once"
    );
    assert_eq!(get(&m, "tessera_task_latency_seconds_count"), n);
    assert_eq!(
        get(&m, "tessera_task_latency_seconds_bucket{le=\"+Inf\"}"),
        n
    );
    for w in ["metrics-w1", "metrics-w2"] {
        let age = m
            .iter()
            .find(|(k, _)| {
                k.starts_with("tessera_worker_heartbeat_age_seconds{")
                    && k.contains(&format!("worker=\"{w}\""))
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no heartbeat age for {w}"));
        assert!((0.0..5.0).contains(&age), "{w}: heartbeat {age} s ago");
    }

    // `tessera cluster`: the same figures, for people and for scripts.
    let json = cluster.cli(&["cluster", "--json"]).await;
    assert!(json.status.success(), "{json:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(v["queue_depth"], 0);
    assert_eq!(v["tasks"]["done"], good.len());
    let workers = v["workers"].as_array().unwrap();
    let mut names: Vec<&str> = workers
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["metrics-w1", "metrics-w2"]);
    let done: u64 = workers.iter().map(|w| w["done"].as_u64().unwrap()).sum();
    assert_eq!(done, good.len() as u64);
    let text = cluster.cli(&["cluster"]).await;
    let text = stdout(&text);
    assert!(text.contains(&format!("at {addr}")), "{text}");
    assert!(text.contains("(queue depth 0)"), "{text}");
    for line in [
        "WORKER  ",
        "metrics-w1  127.0.0.1:",
        "metrics-w2  127.0.0.1:",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}
