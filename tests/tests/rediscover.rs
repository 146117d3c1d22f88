//! `tessera run` rides through a master that comes back on another address:
//! a master, a worker and a client in separate network namespaces of a test
//! LAN, nobody given an address (all find the master by mDNS). Mid-batch the
//! master is SIGKILLed and restarted on its data directory on a new port;
//! the same `tessera run` finds it again by mDNS and finishes the batch,
//! every image once and pixel-exact.
//!
//! Needs root (`ip netns add`): without it the test fails and says so.

use std::time::Duration;

use tessera_tests::{
    check_batch_json, eventually,
    netns::{HostSpec, Lan, Logs, key_file, require_root},
    numbered_photos,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const DEADLINE: Duration = Duration::from_secs(60);

const HOSTS: &[HostSpec] = &[
    HostSpec::v4("m", "198.18.0.1/24"),
    HostSpec::v4("w", "198.18.0.11/24"),
    HostSpec::v4("c", "198.18.0.31/24"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_run_finds_a_master_restarted_on_another_port_by_mdns() {
    require_root();
    let lan = Lan::new(HOSTS).unwrap_or_else(|e| panic!("cannot build the test LAN: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let logs = Logs(tmp.path().join("logs"));
    std::fs::create_dir_all(&logs.0).unwrap();
    let data = tmp.path().join("data");
    let master = |name: &str, listen: &str| {
        let args = [
            "master",
            "--key-file",
            key_file(),
            "--listen",
            listen,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        lan.spawn("m", name, NODE, &args, &logs.path(name))
    };
    let mut first = master("master-1", "0.0.0.0:17401");
    first.wait_for_line("listening on ", DEADLINE).await;
    // Slow, so the batch is still under way when the master goes.
    let _worker = lan.spawn(
        "w",
        "worker",
        NODE,
        &[
            "worker",
            "--key-file",
            key_file(),
            "--threads",
            "1",
            "--test-delay",
            "150ms",
        ],
        &logs.path("worker"),
    );

    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    let inputs = numbered_photos(&input, 24);
    let client_log = std::fs::File::create(logs.path("client")).unwrap();
    let run = lan
        .command(
            "c",
            CLIENT,
            &[
                "--key-file",
                key_file(),
                "run",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
                "--json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(client_log)
        .spawn()
        .expect("tessera run started");

    // Once the batch is under way, the master dies and comes back elsewhere.
    let done = || std::fs::read_dir(&output).map(|d| d.count()).unwrap_or(0);
    eventually(DEADLINE, "the batch to get under way", || done() >= 3).await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let mut second = master("master-2", "0.0.0.0:17402");
    second.wait_for_line("listening on ", DEADLINE).await;

    let out = tokio::time::timeout(Duration::from_secs(90), run.wait_with_output())
        .await
        .expect("the batch finished with the master on its new port")
        .expect("tessera run ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let client_log = logs.read("client");
    assert!(
        out.status.success(),
        "tessera run failed:\n{stdout}\n{client_log}"
    );
    assert!(
        client_log.contains("reconnected to the master master=198.18.0.1:17402"),
        "the client must have reconnected to the new port:\n{client_log}"
    );

    // Every image once, pixel-exact.
    check_batch_json(&stdout, &inputs, &output);
}
