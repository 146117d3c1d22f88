//! The worker's test-only switches stay out of users' way (hidden from
//! `--help`, refused unless `TESSERA_TEST_SWITCHES=1`, a synthetic worker
//! shown as such), and `tessera-node dev` applies the worker options it is
//! given instead of ignoring them. Real processes throughout.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::{Client, ClusterKey, TaskState};
use tessera_tests::{Proc, TEST_SWITCHES_ENV, photos, spawn_master, spawn_worker};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(60);
const SWITCHES: [&str; 4] = [
    "--test-delay",
    "--test-crash-on",
    "--test-panic-on",
    "--synthetic",
];

/// `tessera-node args` run to its end (killed past a deadline), without the
/// test switches enabled.
fn node(args: &[&str]) -> Output {
    let mut child = Command::new(NODE)
        .args(args)
        .env_remove(TEST_SWITCHES_ENV)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > T {
            let _ = child.kill();
            panic!("tessera-node {args:?} still runs after {T:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_test_switches_are_not_in_help() {
    for sub in ["worker", "dev"] {
        let out = node(&[sub, "--help"]);
        assert!(out.status.success(), "{out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("--drain-grace"), "{sub}: {help}");
        for switch in SWITCHES {
            assert!(
                !help.contains(switch),
                "{sub} --help lists {switch}:\n{help}"
            );
        }
    }
}

#[test]
fn a_test_switch_without_the_variable_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("cluster.key");
    ClusterKey::generate().create_file(&key).unwrap();
    let key = key.to_str().unwrap();
    let worker = ["worker", "--master", "127.0.0.1:1", "--key-file", key];
    let dev = ["dev", "--listen", "127.0.0.1:0", "--no-mdns"];
    let cases: [(&[&str], &[&str], &str); 3] = [
        (&worker, &["--test-delay", "1s"], "--test-delay is"),
        (
            &worker,
            &["--test-crash-on", "x", "--synthetic"],
            "--synthetic, --test-crash-on are",
        ),
        (&dev, &["--test-panic-on", "x"], "--test-panic-on is"),
    ];
    for (base, switches, named) in cases {
        let args: Vec<&str> = base.iter().chain(switches).copied().collect();
        let out = node(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let want = format!(
            "error: {named} for tests only and refused unless TESSERA_TEST_SWITCHES=1 is set"
        );
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
}

/// Polls the master's live view until `cond` holds.
async fn cluster_until(
    client: &Client,
    what: &str,
    mut cond: impl FnMut(&tessera_proto::ClusterInfo) -> bool,
) -> tessera_proto::ClusterInfo {
    let start = Instant::now();
    loop {
        let info = client.cluster().await.unwrap();
        if cond(&info) {
            return info;
        }
        assert!(
            start.elapsed() < T,
            "timed out waiting for {what}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_shows_which_worker_is_synthetic() {
    let tmp = tempfile::tempdir().unwrap();
    let (_master, addr, key_file) = spawn_master(NODE, &tmp.path().join("data"), &[]).await;
    let _synth = spawn_worker(NODE, &addr, &key_file, "synth", &["--synthetic"]);
    let _real = spawn_worker(NODE, &addr, &key_file, "real", &["--threads", "1"]);
    let client = Client::connect(&addr, &ClusterKey::load(&key_file).unwrap())
        .await
        .unwrap();
    let info = cluster_until(&client, "both workers", |i| i.workers.len() == 2).await;
    for w in &info.workers {
        assert_eq!(w.synthetic, w.name == "synth", "{w:?}");
    }
    let cli = |args: &[&str]| {
        let out = Command::new(CLIENT)
            .args(args)
            .env("TESSERA_MASTER", &addr)
            .env("TESSERA_KEY_FILE", &key_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = cli(&["cluster"]);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_string()
    };
    assert!(row("synth").starts_with("synth (synthetic) "), "{text}");
    assert!(!row("real").contains("synthetic"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&cli(&["cluster", "--json"])).unwrap();
    let flags: Vec<(String, bool)> = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let name = w["name"].as_str().unwrap().to_string();
            (name, w["synthetic"].as_bool().unwrap())
        })
        .collect();
    assert!(flags.contains(&("synth".into(), true)), "{flags:?}");
    assert!(flags.contains(&("real".into(), false)), "{flags:?}");
}

/// `dev` gives its in-process workers the options it is given: one thread,
/// no prefetch, a slow image (`--test-delay`), and a short drain grace, so
/// SIGTERM hands the running task back to the master before it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_applies_the_worker_options() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut dev = Proc::spawn(
        "dev",
        NODE,
        &[
            "dev",
            "--workers",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--data-dir",
            data.to_str().unwrap(),
            "--threads",
            "1",
            "--prefetch",
            "0",
            "--test-delay",
            "10m",
            "--drain-grace",
            "300ms",
        ],
    );
    let addr = dev.wait_for_line("listening on ", T).await;
    let key_file = data.join(tessera_proto::KEY_FILE_NAME);
    let client = Client::connect(&addr, &ClusterKey::load(&key_file).unwrap())
        .await
        .unwrap();
    cluster_until(&client, "the dev worker", |i| i.workers.len() == 1).await;
    let photo = Bytes::from(std::fs::read(&photos()[0]).unwrap());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            client
                .submit(&format!("{i}.png"), photo.clone())
                .await
                .unwrap(),
        );
    }
    let info = cluster_until(&client, "a task to start", |i| i.workers[0].running == 1).await;
    let w = &info.workers[0];
    assert_eq!(w.threads, 1, "{w:?}");
    assert_eq!(
        w.prefetched, 0,
        "--prefetch 0: nothing fetched ahead: {w:?}"
    );
    assert_eq!(info.tasks.queued, 2, "{info:?}");
    let running = {
        let mut found = None;
        for id in &ids {
            if client.status(*id).await.unwrap().state == TaskState::Running {
                found = Some(*id);
            }
        }
        found.expect("one task runs")
    };
    drop(client);

    // The grace is 300 ms, not the default 30 s, and the image takes 10 min.
    dev.signal("TERM");
    let status = tokio::time::timeout(T, dev.child.wait())
        .await
        .expect("dev stops once the drain grace is over")
        .unwrap();
    assert!(status.success(), "{status}");
    let (_master, addr, key_file) = spawn_master(NODE, &data, &[]).await;
    let client = Client::connect(&addr, &ClusterKey::load(&key_file).unwrap())
        .await
        .unwrap();
    let history = tessera_tests::history_lines(&client, running).await;
    assert!(
        history
            .iter()
            .any(|e| e == "attempt 1 given back by dev-worker-0"),
        "the drain handed it back before the master stopped: {history:?}"
    );
    assert!(
        !history.iter().any(|e| e.contains("master restarted")),
        "{history:?}"
    );
}
