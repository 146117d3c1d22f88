//! The user's view with real processes: cancelling queued and running
//! tasks, the metrics endpoint read during and after a batch and checked
//! against what the batch did, `tessera cluster`, `run --json` and
//! `--skip-existing`. Timings are printed as JSON lines
//! (`{"bench":"ux",...}`); no test asserts on timing.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use tessera_client::{Client, ClusterKey, FailureKind, TaskId, TaskState};
use tessera_tests::{
    Proc, bad_pngs, check_swapped, copy_into, corrupt_pngsuite, eventually, photos, spawn_master,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(60);

/// A master process, its address and its cluster key.
struct Master {
    _proc: Proc,
    addr: String,
    key: PathBuf,
}

async fn master(tmp: &std::path::Path) -> Master {
    let (proc, addr, key) = spawn_master(NODE, &tmp.join("data"), &[]).await;
    Master {
        _proc: proc,
        addr,
        key,
    }
}

impl Master {
    fn worker(&self, name: &str, extra: &[&str]) -> Proc {
        tessera_tests::spawn_worker(NODE, &self.addr, &self.key, name, extra)
    }

    async fn client(&self) -> Client {
        let key = ClusterKey::load(&self.key).unwrap();
        Client::connect(&self.addr, &key).await.unwrap()
    }

    /// Runs the CLI against this master to completion.
    async fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.addr, &self.key, args).await
    }
}

/// Runs the CLI against `addr` to completion.
async fn cli(addr: &str, key: &std::path::Path, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(CLIENT)
        .args(args)
        .env("TESSERA_MASTER", addr)
        .env(tessera_proto::KEY_FILE_ENV, key)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(T, run)
        .await
        .unwrap_or_else(|_| panic!("tessera {args:?} did not finish within {T:?}"))
        .expect("tessera started")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits until the task is in a state `want` accepts; returns that state.
async fn wait_state(
    client: &Client,
    task: TaskId,
    what: &str,
    want: impl Fn(&TaskState) -> bool,
) -> TaskState {
    let start = Instant::now();
    loop {
        let state = client.status(task).await.unwrap().state;
        if want(&state) {
            return state;
        }
        assert!(
            start.elapsed() < T,
            "timed out waiting for task {task} to be {what} (it is {state})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_cancelled(s: &TaskState) -> bool {
    matches!(
        s,
        TaskState::Failed {
            kind: FailureKind::Cancelled,
            ..
        }
    )
}

async fn submit_photo(client: &Client, i: usize) -> TaskId {
    let photo = &photos()[i % photos().len()];
    let data = std::fs::read(photo).unwrap();
    client
        .submit(&format!("photo-{i}.png"), data.into())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_is_cancelled_at_once_and_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let client = m.client().await;
    let doomed = submit_photo(&client, 0).await;
    let kept = submit_photo(&client, 1).await;

    let started = Instant::now();
    let out = m.cli(&["cancel", &doomed.to_string()]).await;
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("cancelled {doomed} (photo-0.png)\n"));
    // Cancelled when the command returns: no worker exists to involve.
    let state = client.status(doomed).await.unwrap().state;
    assert!(is_cancelled(&state), "{state:?}");
    assert_eq!(
        state.to_string(),
        "failed: cancelled on request while queued"
    );
    assert_eq!(
        client.status(kept).await.unwrap().state,
        TaskState::Queued,
        "only the cancelled task left the queue"
    );
    // A wait on it ends at once, as failed.
    let waited = m.cli(&["wait", &doomed.to_string()]).await;
    assert!(!waited.status.success());
    assert!(stdout(&waited).contains("cancelled"), "{waited:?}");

    // A worker arrives: the kept task runs, the cancelled one never does.
    let _w = m.worker("late", &["--threads", "1"]);
    let info = client.wait_timeout(kept, T).await.unwrap();
    assert_eq!(info.state, TaskState::Done);
    let state = client.status(doomed).await.unwrap().state;
    assert!(is_cancelled(&state), "still cancelled: {state:?}");
    let history = tessera_tests::history_lines(&client, doomed).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].starts_with("submitted photo-0.png"),
        "{history:?}"
    );
    assert_eq!(history[1], "cancelled while queued");

    // Cancelling what is decided changes nothing, and says so.
    let again = m.cli(&["cancel", &kept.to_string()]).await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(&format!("task {kept} was already done; nothing to cancel")),
        "{again:?}"
    );
    let missing = m.cli(&["cancel", "999999"]).await;
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no task 999999"), "{missing:?}");
    println!(
        "{{\"bench\":\"ux\",\"what\":\"cancel queued (CLI round trip)\",\"ms\":{}}}",
        took.as_millis()
    );
}

/// A worker with one thread and no prefetch, slowed down to 10 minutes per
/// image: task A runs on it and B waits in the queue. Cancelling A must fail
/// A at once and make the worker stop on A: only then does it ask for work
/// again, and B starts (within this test's deadline, far shorter than A's
/// 10 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_cancelled_and_its_worker_stops_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker(
        "slow",
        &["--threads", "1", "--prefetch", "0", "--test-delay", "10m"],
    );
    let client = m.client().await;
    let a = submit_photo(&client, 0).await;
    wait_state(&client, a, "running", |s| *s == TaskState::Running).await;
    let b = submit_photo(&client, 1).await;
    let cluster = client.cluster().await.unwrap();
    assert_eq!(cluster.workers.len(), 1);
    assert_eq!(cluster.workers[0].name, "slow");
    assert_eq!(
        cluster.tasks.queued, 1,
        "B waits: the worker has no free slot"
    );
    assert_eq!(client.status(b).await.unwrap().state, TaskState::Queued);

    let cancelled_at = Instant::now();
    let out = m.cli(&["cancel", &a.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    let state = client.status(a).await.unwrap().state;
    let to_cancelled = cancelled_at.elapsed();
    assert!(is_cancelled(&state), "A is cancelled: {state:?}");
    assert_eq!(
        state.to_string(),
        "failed: cancelled on request during attempt 1 on slow"
    );

    // The worker stopped on A: its only slot is free again, so B runs there.
    let b_state = wait_state(&client, b, "running", |s| *s != TaskState::Queued).await;
    let to_next = cancelled_at.elapsed();
    assert_eq!(b_state, TaskState::Running);
    assert_eq!(
        client.status(b).await.unwrap().worker.as_deref(),
        Some("slow")
    );
    // B is leased; the worker's report that it started B may still be on
    // its way, so wait for the cluster view to count B as running.
    let start = Instant::now();
    let cluster = loop {
        let cluster = client.cluster().await.unwrap();
        if cluster.workers[0].running == 1 {
            break cluster;
        }
        assert!(
            start.elapsed() < T,
            "the worker never reported B started: {cluster:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (cluster.workers[0].running, cluster.workers[0].prefetched),
        (1, 0),
        "the worker holds B only"
    );
    let history = tessera_tests::history_lines(&client, a).await;
    assert_eq!(
        history.last().map(String::as_str),
        Some("cancelled during attempt 1 on slow"),
        "{history:?}"
    );
    // A's late result (if any) must never turn it into done.
    assert!(is_cancelled(&client.status(a).await.unwrap().state));
    let _ = client.cancel(b).await;
    println!(
        "{{\"bench\":\"ux\",\"what\":\"cancel running\",\"ms_to_cancelled\":{},\"ms_to_worker_free\":{}}}",
        to_cancelled.as_millis(),
        to_next.as_millis()
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_existing_resumes_an_interrupted_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker("w", &["--threads", "1"]);
    let out = tmp.path().join("out");
    let inputs = photos();
    let mut args = vec!["run", "-o", out.to_str().unwrap(), "--skip-existing"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));

    let first = m.cli(&args).await;
    assert!(first.status.success(), "{first:?}");
    // As if interrupted: one output missing, one stale and left in place.
    let missing = out.join(inputs[1].file_name().unwrap());
    std::fs::remove_file(&missing).unwrap();
    let kept = out.join(inputs[2].file_name().unwrap());
    std::fs::write(&kept, b"not touched").unwrap();

    let again = m.cli(&args).await;
    assert!(again.status.success(), "{again:?}");
    let n = inputs.len();
    assert!(
        stderr(&again).contains(&format!("skipping {} inputs whose output exists", n - 1)),
        "{again:?}"
    );
    assert!(
        stdout(&again).starts_with("1/1 images done, 0 failed"),
        "{again:?}"
    );
    check_swapped(
        &std::fs::read(&inputs[1]).unwrap(),
        &std::fs::read(&missing).unwrap(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&kept).unwrap(), b"not touched");

    // Nothing left to do: no work, success.
    let done = m.cli(&args).await;
    assert!(done.status.success(), "{done:?}");
    assert!(
        stdout(&done).starts_with("0/0 images done, 0 failed"),
        "{done:?}"
    );
}

/// A folder of photos with a README and a licence beside them: the two are
/// left out before anything is uploaded and named once, and the batch
/// succeeds (they used to fail as `not a PNG`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_s_readme_and_licence_are_skipped_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker("w", &["--threads", "1"]);
    let inputs = tmp.path().join("in");
    copy_into(&inputs, &photos());
    std::fs::write(inputs.join("README.md"), "# holiday photos\n").unwrap();
    std::fs::write(inputs.join("LICENSE"), "CC-BY 4.0\n").unwrap();
    let out = tmp.path().join("out");
    let run = m
        .cli(&["run", inputs.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .await;
    assert!(run.status.success(), "{run:?}");
    let n = photos().len();
    assert!(
        stdout(&run).starts_with(&format!("{n}/{n} images done, 0 failed")),
        "{run:?}"
    );
    let notice = format!(
        "skipping 2 files that are not images (no image extension or signature): {}, {}",
        inputs.join("LICENSE").display(),
        inputs.join("README.md").display()
    );
    assert!(stderr(&run).contains(&notice), "{run:?}");
    assert!(!out.join("README.md").exists());
}
