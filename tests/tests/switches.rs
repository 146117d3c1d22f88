//! The worker's test-only switches stay out of users' way: hidden from
//! `--help`, refused unless `TESSERA_TEST_SWITCHES=1`, and a synthetic
//! worker shown as such. Real processes throughout.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use tessera_client::{Client, ClusterKey};
use tessera_tests::{TEST_SWITCHES_ENV, spawn_master, spawn_worker};

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
    let cases: [(&[&str], &[&str], &str); 2] = [
        (&worker, &["--test-delay", "1s"], "--test-delay is"),
        (
            &worker,
            &["--test-crash-on", "x", "--synthetic"],
            "--synthetic, --test-crash-on are",
        ),
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
