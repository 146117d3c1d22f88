//! Discovery on a real LAN: network namespaces joined by a bridge, with a
//! master, two workers (one with IPv4, one with IPv6 link-local addresses
//! only) and a client, each a separate process in its own namespace, and none
//! given an address: they find the master by mDNS. A batch goes through
//! pixel-exact; the master is SIGKILLed and restarted on another port; the
//! same worker processes find it again and a second batch goes through.
//! Masters of another cluster are never used; two masters of one cluster are
//! named, not chosen between; a master stopped with SIGTERM withdraws its
//! record at once.
//!
//! Needs root (`ip netns add`): without it the test fails and says so.
//! Prints its timings as JSON lines: `{"bench":"lan",...}`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tessera_tests::{
    Proc, check_swapped, eventually,
    netns::{HostSpec, Lan, Logs, key_file, require_root},
    photos, valid_pngsuite,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");

/// Deadline for any one thing to happen on the LAN.
const DEADLINE: Duration = Duration::from_secs(20);

const HOSTS: &[HostSpec] = &[
    HostSpec::v4("m", "198.18.0.1/24"),
    HostSpec::v4("w1", "198.18.0.11/24"),
    // IPv6 link-local only: it must reach the master at fe80::…%eth0.
    HostSpec::link_local_only("w2"),
    HostSpec::v4("c", "198.18.0.31/24"),
];

/// Whether a master's log shows the worker process `pid` joining it.
fn joined(master_log: &str, pid: u32) -> bool {
    let node = format!("node=worker-{pid}-");
    master_log
        .lines()
        .any(|l| l.contains("worker joined") && l.contains(&node))
}

/// Waits until the log of `master` shows both worker processes joining it.
async fn both_joined(logs: &Logs, master: &str, workers: [u32; 2]) {
    let what = format!("both workers to join {master}");
    eventually(DEADLINE, &what, || {
        let log = logs.read(master);
        workers.iter().all(|pid| joined(&log, *pid))
    })
    .await;
}

/// One JSON line with a figure, on the real stdout (not captured by the harness).
fn bench(case: &str, value: Duration) {
    let line = format!(
        "{{\"bench\":\"lan\",\"case\":\"{case}\",\"value\":{},\"unit\":\"ms\",\"workers\":2}}\n",
        value.as_millis()
    );
    let _ = std::io::stdout().write_all(line.as_bytes());
}

async fn start_master(lan: &Lan, logs: &Logs, host: &str, name: &str, args: &[&str]) -> Proc {
    let mut all = vec!["master", "--key-file", key_file()];
    all.extend_from_slice(args);
    let mut p = lan.spawn(host, name, NODE, &all, &logs.path(name));
    p.wait_for_line("listening on ", DEADLINE).await;
    p
}

fn pid(p: &Proc) -> u32 {
    p.child.id().expect("process running")
}

/// Runs `tessera ARGS` in the client's namespace.
async fn client(lan: &Lan, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--key-file", key_file()];
    all.extend_from_slice(args);
    let run = lan.command("c", CLIENT, &all).output();
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("`tessera {}` did not finish in 2 minutes", args.join(" ")))
        .expect("tessera started")
}

/// Sends `inputs` through the cluster with `tessera run` (no address given)
/// and checks every result pixel by pixel.
async fn batch(lan: &Lan, dir: &Path, inputs: &[PathBuf]) {
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    for f in inputs {
        std::fs::copy(f, input.join(f.file_name().unwrap())).unwrap();
    }
    let out = client(
        lan,
        &[
            "run",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tessera run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut problems = Vec::new();
    for f in inputs {
        let result = output.join(f.file_name().unwrap());
        match std::fs::read(&result) {
            Ok(bytes) => {
                if let Err(e) = check_swapped(&std::fs::read(f).unwrap(), &bytes) {
                    problems.push(format!("{}: {e}", f.display()));
                }
            }
            Err(e) => problems.push(format!("{}: no output ({e})", f.display())),
        }
    }
    assert!(problems.is_empty(), "bad outputs:\n{}", problems.join("\n"));
}

async fn sigterm(p: &Proc) {
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid(p).to_string()])
        .status()
        .await
        .expect("run kill");
    assert!(status.success(), "kill -TERM {} failed", p.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_the_master_by_mdns_and_find_it_again_after_a_restart() {
    require_root();
    let lan = Lan::new(HOSTS).unwrap_or_else(|e| panic!("cannot build the test LAN: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let logs = Logs(tmp.path().join("logs"));
    std::fs::create_dir_all(&logs.0).unwrap();
    let data = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();

    // A master of another cluster on the same LAN: nobody here may use it.
    let other = start_master(
        &lan,
        &logs,
        "c",
        "master-other",
        &[
            "--listen",
            "[::]:17101",
            "--data-dir",
            &data("other"),
            "--cluster",
            "other",
        ],
    )
    .await;

    // Workers first, with no address: they look until a master shows up.
    let mut w1 = lan.spawn(
        "w1",
        "worker 1",
        NODE,
        &["worker", "--threads", "1", "--key-file", key_file()],
        &logs.path("w1"),
    );
    let mut w2 = lan.spawn(
        "w2",
        "worker 2",
        NODE,
        &["worker", "--threads", "1", "--key-file", key_file()],
        &logs.path("w2"),
    );
    let (w1_pid, w2_pid) = (pid(&w1), pid(&w2));

    let started = Instant::now();
    let mut master = start_master(
        &lan,
        &logs,
        "m",
        "master-1",
        &["--listen", "[::]:17001", "--data-dir", &data("master")],
    )
    .await;
    both_joined(&logs, "master-1", [w1_pid, w2_pid]).await;
    bench("first_connect_ms", started.elapsed());
    let master_id = format!("master-{}-", pid(&master));
    for w in ["w1", "w2"] {
        let log = logs.read(w);
        assert!(
            log.contains(&format!("found master {master_id}")) && log.contains("(found by mDNS"),
            "{w} must log which master it found and how:\n{log}"
        );
    }
    assert!(
        logs.read("w2")
            .contains("connected to master master=[fe80::"),
        "the IPv6-only worker must reach the master at its scoped link-local address"
    );

    // `tessera discover` lists both clusters' masters.
    let out = client(&lan, &["discover"]).await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tessera discover failed: {listing}");
    let has_row = |cluster: &str, id: &str| {
        listing
            .lines()
            .any(|l| l.starts_with(&format!("{cluster} ")) && l.contains(id) && l.contains(" up "))
    };
    assert!(
        has_row("default", &master_id) && has_row("other", &format!("master-{}-", pid(&other))),
        "tessera discover must list both masters:\n{listing}"
    );

    // The first batch: the Kodak photos and every valid PngSuite image.
    let first: Vec<PathBuf> = photos().into_iter().chain(valid_pngsuite()).collect();
    batch(&lan, &tmp.path().join("batch1"), &first).await;

    // SIGKILL: no goodbye, its record lingers in every cache. Restart it on
    // another port (its data dir is wiped on start).
    master.child.start_kill().unwrap();
    master.child.wait().await.unwrap();
    let restarted = Instant::now();
    let master = start_master(
        &lan,
        &logs,
        "m",
        "master-2",
        &["--listen", "[::]:17002", "--data-dir", &data("master")],
    )
    .await;
    both_joined(&logs, "master-2", [w1_pid, w2_pid]).await;
    bench("reconnect_ms", restarted.elapsed());
    for w in [&mut w1, &mut w2] {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "{} must be the same process, reconnected",
            w.name
        );
    }

    let second: Vec<PathBuf> = photos()
        .into_iter()
        .chain(valid_pngsuite().into_iter().step_by(8))
        .collect();
    batch(&lan, &tmp.path().join("batch2"), &second).await;
    assert!(
        !logs.read("master-other").contains("worker joined"),
        "a worker joined the master of another cluster"
    );

    // A second master for the same cluster: the client names both and stops.
    let dup = start_master(
        &lan,
        &logs,
        "c",
        "master-dup",
        &["--listen", "[::]:17102", "--data-dir", &data("dup")],
    )
    .await;
    let out = client(&lan, &["status", "1"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two masters: the client must refuse");
    for id in [
        format!("master-{}-", pid(&master)),
        format!("master-{}-", pid(&dup)),
    ] {
        assert!(
            stderr.contains("two masters advertise cluster \"default\"") && stderr.contains(&id),
            "the client must name both masters ({id}):\n{stderr}"
        );
    }

    // SIGTERM: the master withdraws its record; the workers' browsers drop
    // it within about a second instead of two minutes.
    let id = format!("master-{}-", pid(&master));
    let stopping = Instant::now();
    sigterm(&master).await;
    eventually(
        DEADLINE,
        "both workers to see the master's record withdrawn",
        || withdrawn(&logs.read("w1"), &id) && withdrawn(&logs.read("w2"), &id),
    )
    .await;
    bench("withdrawn_ms", stopping.elapsed());
}

/// Whether a worker's `log` shows master `id`'s record gone from its
/// browser after it lost that master: removed (`master gone`), or not seen
/// again since the browse started over (a worker that finds no live master
/// queries again with a fresh table, and the withdrawn record's removal
/// then reaches no one: the table it was in is gone).
fn withdrawn(log: &str, id: &str) -> bool {
    let lines: Vec<&str> = log.lines().collect();
    let Some(lost) = lines
        .iter()
        .rposition(|l| l.contains(&format!("lost master {id}")))
    else {
        return false;
    };
    let after = &lines[lost..];
    if after
        .iter()
        .any(|l| l.contains(&format!("mDNS: master gone name={id}")))
    {
        return true;
    }
    after
        .iter()
        .rposition(|l| l.contains("querying again") || l.contains("browsing again"))
        .is_some_and(|restart| {
            !after[restart..]
                .iter()
                .any(|l| l.contains(&format!("mDNS: master seen master={id}")))
        })
}
