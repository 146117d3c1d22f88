//! A real network partition: a worker's host is cut off the LAN (its switch
//! port goes down, so its packets vanish and nobody is told) in the middle
//! of a batch. Its TCP connection stays open and silent. The master must
//! take the worker's tasks back when their leases expire and finish the
//! batch on the other worker, every image once and pixel-exact; the cut-off
//! worker must give up its silent master and rejoin once the link is back.
//!
//! Needs root (`ip netns add`): without it the test fails and says so.
//! Prints its figure as a JSON line: `{"bench":"partition",...}`.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use tessera_tests::{
    check_batch_json, eventually,
    netns::{HostSpec, Lan, Logs, key_file, require_root},
    numbered_photos,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const DEADLINE: Duration = Duration::from_secs(60);
const MASTER: &str = "198.18.0.1:17301";

const HOSTS: &[HostSpec] = &[
    HostSpec::v4("m", "198.18.0.1/24"),
    HostSpec::v4("w1", "198.18.0.11/24"),
    HostSpec::v4("w2", "198.18.0.12/24"),
    HostSpec::v4("c", "198.18.0.31/24"),
];

fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_worker_loses_no_image_and_rejoins_when_the_link_is_back() {
    require_root();
    let lan = Lan::new(HOSTS).unwrap_or_else(|e| panic!("cannot build the test LAN: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let logs = Logs(tmp.path().join("logs"));
    std::fs::create_dir_all(&logs.0).unwrap();
    let data = tmp.path().join("data");

    let mut master = lan.spawn(
        "m",
        "master",
        NODE,
        &[
            "master",
            "--key-file",
            key_file(),
            "--listen",
            "0.0.0.0:17301",
            "--data-dir",
            data.to_str().unwrap(),
            "--no-mdns",
            "--heartbeat-interval",
            "200ms",
            "--lease-timeout",
            "1s",
        ],
        &logs.path("master"),
    );
    master.wait_for_line("listening on ", DEADLINE).await;
    // w1 is slow, so it always holds a running task and prefetched ones.
    let worker = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "worker",
            "--master",
            MASTER,
            "--key-file",
            key_file(),
            "--name",
            name,
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        lan.spawn(name, name, NODE, &args, &logs.path(name))
    };
    let mut w1 = worker("w1", &["--test-delay", "400ms"]);
    let _w2 = worker("w2", &[]);
    eventually(DEADLINE, "both workers to join", || {
        count(&logs.read("master"), "worker joined") == 2
    })
    .await;

    // 24 images (the Kodak photos under distinct names).
    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    let inputs = numbered_photos(&input, 24);
    let run = lan
        .command(
            "c",
            CLIENT,
            &[
                "--key-file",
                key_file(),
                "--master",
                MASTER,
                "run",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
                "--json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tessera run started");

    // Once the batch is under way, cut w1 off while it holds tasks.
    let done = || std::fs::read_dir(&output).map(|d| d.count()).unwrap_or(0);
    eventually(DEADLINE, "the batch to get under way", || done() >= 2).await;
    lan.set_connected("w1", false).unwrap();
    let cut = Instant::now();

    let out = tokio::time::timeout(Duration::from_secs(120), run.wait_with_output())
        .await
        .expect("the batch finished without the cut-off worker")
        .expect("tessera run ran");
    let finished = cut.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tessera run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::io::stdout().write_all(
        format!(
            "{{\"bench\":\"partition\",\"case\":\"cut_to_batch_done_ms\",\"value\":{},\"unit\":\"ms\",\"lease_timeout_ms\":1000}}\n",
            finished.as_millis()
        )
        .as_bytes(),
    );

    // Every image once, pixel-exact.
    check_batch_json(&stdout, &inputs, &output);
    // The master took w1's tasks back by lease expiry (its connection stayed
    // open: nothing told the master it was gone).
    let master_log = logs.read("master");
    let w1_id = master_log
        .lines()
        .find(|l| l.contains("worker joined") && l.contains(" node=w1 "))
        .and_then(|l| l.split_whitespace().find(|f| f.starts_with("worker=")))
        .expect("the master logged w1 joining")
        .to_string();
    let expired = master_log
        .lines()
        .filter(|l| l.contains("lease expired; task queued again") && l.contains(&w1_id))
        .count();
    assert!(
        expired >= 1,
        "w1's leases ({w1_id}) must have expired:\n{master_log}"
    );

    // w1 gives up its silent master, and rejoins once the link is back.
    eventually(DEADLINE, "w1 to give up its silent master", || {
        logs.read("w1").contains("no word from the master")
    })
    .await;
    lan.set_connected("w1", true).unwrap();
    let w1_joins = |log: &str| {
        log.lines()
            .filter(|l| l.contains("worker joined") && l.contains(" node=w1 "))
            .count()
    };
    eventually(DEADLINE, "w1 to rejoin the master", || {
        w1_joins(&logs.read("master")) >= 2
    })
    .await;
    assert!(
        w1.child.try_wait().unwrap().is_none(),
        "w1 must be the same process, reconnected (it exited)"
    );
}
