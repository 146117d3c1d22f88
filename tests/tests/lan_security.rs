//! An attacker on the LAN, with real processes in network namespaces
//! joined by a bridge (the "switch"): a rogue master advertises our
//! cluster's name under another key, and tcpdump captures everything the
//! switch carries. The worker and the client are given no address: they
//! find masters by mDNS, ignore the rogue (it cannot prove our key) and a
//! batch goes through pixel-exact, while the capture holds no 32-byte
//! window of any input or result image.
//!
//! Needs root (`ip netns add`) and tcpdump: without them the test fails and
//! says so.

use std::{path::PathBuf, time::Duration};

use tessera_proto::ClusterKey;
use tessera_tests::{
    check_swapped, eventually, image_windows,
    netns::{HostSpec, Lan, Logs, key_file, require_root},
    numbered_photos, windows_found_in,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");

const DEADLINE: Duration = Duration::from_secs(30);

const HOSTS: &[HostSpec] = &[
    HostSpec::v4("m", "198.18.1.1/24"),
    HostSpec::v4("r", "198.18.1.2/24"),
    HostSpec::v4("w1", "198.18.1.11/24"),
    HostSpec::v4("c", "198.18.1.31/24"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_master_is_ignored_and_the_switch_sees_no_image() {
    require_root();
    assert!(
        std::process::Command::new("tcpdump")
            .arg("--version")
            .output()
            .is_ok(),
        "this test needs tcpdump (apt-get install tcpdump; .ci/run installs it)"
    );
    let lan = Lan::new(HOSTS).unwrap_or_else(|e| panic!("cannot build the test LAN: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let logs = Logs(tmp.path().join("logs"));
    std::fs::create_dir_all(&logs.0).unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();

    // Everything the switch forwards, whole packets, written as they come.
    let capture = path("switch.pcap");
    let _tcpdump = lan.spawn(
        "sw",
        "tcpdump",
        "tcpdump",
        &["-i", "br0", "-U", "-s", "0", "-w", &capture, "tcp"],
        &logs.path("tcpdump"),
    );
    eventually(DEADLINE, "tcpdump to listen on the switch", || {
        logs.read("tcpdump").contains("listening on")
    })
    .await;

    // The rogue: a real master with another key, under our cluster's name.
    let rogue_key = tmp.path().join("rogue.key");
    ClusterKey::generate().create_file(&rogue_key).unwrap();
    let mut rogue = lan.spawn(
        "r",
        "rogue master",
        NODE,
        &[
            "master",
            "--key-file",
            rogue_key.to_str().unwrap(),
            "--listen",
            "0.0.0.0:17301",
            "--data-dir",
            &path("rogue"),
        ],
        &logs.path("rogue"),
    );
    rogue.wait_for_line("listening on ", DEADLINE).await;
    let mut master = lan.spawn(
        "m",
        "master",
        NODE,
        &[
            "master",
            "--key-file",
            key_file(),
            "--listen",
            "0.0.0.0:17302",
            "--data-dir",
            &path("master"),
        ],
        &logs.path("master"),
    );
    master.wait_for_line("listening on ", DEADLINE).await;
    let _worker = lan.spawn(
        "w1",
        "worker",
        NODE,
        &["worker", "--threads", "1", "--key-file", key_file()],
        &logs.path("w1"),
    );
    eventually(DEADLINE, "the worker to join our master", || {
        logs.read("master").contains("worker joined")
    })
    .await;

    // A batch from the client's host, no address given.
    let inputs = numbered_photos(&tmp.path().join("in"), 4);
    let output = tmp.path().join("out");
    let run = lan
        .command(
            "c",
            CLIENT,
            &[
                "--key-file",
                key_file(),
                "run",
                &path("in"),
                "-o",
                output.to_str().unwrap(),
            ],
        )
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the batch finished within 2 minutes")
        .expect("tessera started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tessera run failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let results: Vec<PathBuf> = inputs
        .iter()
        .map(|f| output.join(f.file_name().unwrap()))
        .collect();
    for (input, result) in inputs.iter().zip(&results) {
        check_swapped(
            &std::fs::read(input).unwrap(),
            &std::fs::read(result).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    }

    // Both found the rogue, said so, and used our master.
    let ignored = "ignoring a master advertised under this cluster's name";
    assert!(logs.read("w1").contains(ignored), "{}", logs.read("w1"));
    assert!(stderr.contains(ignored), "{stderr}");
    assert!(
        !logs.read("rogue").contains("worker joined"),
        "{}",
        logs.read("rogue")
    );

    // The switch carried the batch, and none of it in the clear.
    let images = image_windows(&[inputs.clone(), results].concat());
    let mut pcap = Vec::new();
    eventually(DEADLINE, "the capture to hold the batch", || {
        pcap = std::fs::read(&capture).unwrap_or_default();
        pcap.len() as u64
            > 2 * inputs
                .iter()
                .map(|f| f.metadata().unwrap().len())
                .sum::<u64>()
    })
    .await;
    assert_eq!(
        windows_found_in(&pcap, &images),
        0,
        "image bytes crossed the switch in the clear"
    );
    // The search finds image data where there is some.
    assert!(windows_found_in(&std::fs::read(&inputs[0]).unwrap(), &images) > 100);
}
