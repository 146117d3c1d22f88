//! How close a batch gets to the link rate on a LAN (issue 18): a LAN of
//! network namespaces (`tessera_tests::netns`) whose every host link is
//! shaped to 1 Gbit/s each way with `tc qdisc ... tbf`; a master on its
//! own host, two synthetic workers (each input returned as its result at
//! once, so the network and the master are all that is measured) on two
//! more, and `tessera run` either on the master's host or on a host of its
//! own. Every byte goes client → master → worker → master → client; the
//! figure is the batch's input bytes over the batch's wall time, as a
//! fraction of the link rate. With the client on the master's host only
//! the master↔worker legs cross its link (each direction once); with the
//! client elsewhere the master's link carries every byte twice each way,
//! so 0.5 is the ceiling of this design (ARCHITECTURE.md, "Results straight
//! to the client", is the plan that lifts it).
//!
//! Real processes, real TCP, real files with fsync on the master. Prints
//! one JSON line per round and the medians; asserts no timing. Needs root.
//!
//! `cargo bench -p tessera-tests --bench lan_rate` (rounds per placement:
//! `TESSERA_BENCH_REPEAT`, default 3; images: `TESSERA_LAN_IMAGES`, default 48,
//! of 4 MiB each; `TESSERA_LAN_IN_FLIGHT`; `TESSERA_LAN_CLIENT`: another
//! `tessera` binary to run; `TESSERA_LAN_NODE`: another `tessera-node`
//! binary, for the master and the workers).

use std::{io::Write, path::Path, time::Duration, time::Instant};

use tessera_tests::{
    Proc,
    bench_line::median,
    netns::{HostSpec, Lan, key_file, require_root},
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const RATE: &str = "1gbit";
const RATE_BITS: f64 = 1e9;
const IMAGE_BYTES: usize = 4 * 1024 * 1024;
const MASTER: &str = "198.18.0.1:7878";

/// A file that `tessera run` takes as a PNG (signature and extension) and
/// that does not compress: a synthetic worker never decodes it.
fn fake_png(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; IMAGE_BYTES];
    data[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data[8..].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    data
}

/// One batch with `tessera run` on `host`: its wall time.
async fn batch(lan: &Lan, host: &str, input: &Path, output: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(output);
    let started = Instant::now();
    let run = lan
        .command(
            host,
            &client_binary(),
            &[
                "--key-file",
                key_file(),
                "--master",
                MASTER,
                "run",
                "--in-flight",
                &in_flight(),
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
            ],
        )
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the batch finished within 10 minutes")
        .expect("tessera started");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "tessera run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The `tessera` binary to run (`TESSERA_LAN_CLIENT`, default: this
/// build's): a copy of another build's, to compare two clients on the same
/// master and workers at the same load.
fn client_binary() -> String {
    std::env::var("TESSERA_LAN_CLIENT").unwrap_or_else(|_| CLIENT.into())
}

/// The `tessera-node` binary for the master and workers
/// (`TESSERA_LAN_NODE`, default: this build's): a copy of another build's,
/// to compare two masters at the same load.
fn node_binary() -> String {
    std::env::var("TESSERA_LAN_NODE").unwrap_or_else(|_| NODE.into())
}

/// `tessera run --in-flight` (`TESSERA_LAN_IN_FLIGHT`, default: its own default, 16).
fn in_flight() -> String {
    std::env::var("TESSERA_LAN_IN_FLIGHT").unwrap_or_else(|_| "16".into())
}

#[tokio::main]
async fn main() {
    require_root();
    tessera_tests::bench_line::machine("lan_rate");
    let repeat = tessera_tests::bench_line::repeat(3);
    let images: usize = std::env::var("TESSERA_LAN_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let lan = Lan::new(&[
        HostSpec::v4("m", "198.18.0.1/24"),
        HostSpec::v4("w1", "198.18.0.2/24"),
        HostSpec::v4("w2", "198.18.0.3/24"),
        HostSpec::v4("c", "198.18.0.4/24"),
    ])
    .expect("build the LAN");
    for host in ["m", "w1", "w2", "c"] {
        lan.shape(host, RATE).expect("shape the link");
    }
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..images {
        std::fs::write(input.join(format!("img-{i:03}.png")), fake_png(i as u64)).unwrap();
    }
    let data = tmp.path().join("data");
    let mut master: Proc = lan.spawn(
        "m",
        "master",
        &node_binary(),
        &[
            "master",
            "--key-file",
            key_file(),
            "--listen",
            MASTER,
            "--data-dir",
            data.to_str().unwrap(),
            "--no-mdns",
        ],
        &logs.join("master.log"),
    );
    master
        .wait_for_line("listening on ", Duration::from_secs(30))
        .await;
    let _workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|h| {
            lan.spawn(
                h,
                h,
                &node_binary(),
                &[
                    "worker",
                    "--key-file",
                    key_file(),
                    "--master",
                    MASTER,
                    "--name",
                    h,
                    "--synthetic",
                ],
                &logs.join(format!("{h}.log")),
            )
        })
        .collect();
    // A first batch warms up (connections, page cache), not counted.
    let output = tmp.path().join("out");
    batch(&lan, "c", &input, &output).await;
    let bytes = (images * IMAGE_BYTES) as f64;
    let mut figures: Vec<(&str, Vec<f64>)> = vec![
        ("client_on_master_host", vec![]),
        ("client_on_own_host", vec![]),
    ];
    for round in 0..repeat {
        for (placement, host) in [("client_on_master_host", "m"), ("client_on_own_host", "c")] {
            let took = batch(&lan, host, &input, &output).await;
            let share = bytes * 8.0 / took.as_secs_f64() / RATE_BITS;
            let line = format!(
                "{{\"bench\":\"lan_rate\",\"placement\":\"{placement}\",\"round\":{round},\"images\":{images},\"bytes\":{bytes},\"wall_s\":{:.3},\"link_share\":{share:.3}}}\n",
                took.as_secs_f64()
            );
            let _ = std::io::stdout().write_all(line.as_bytes());
            figures
                .iter_mut()
                .find(|(p, _)| *p == placement)
                .unwrap()
                .1
                .push(share);
        }
    }
    for (placement, mut shares) in figures {
        let line = format!(
            "{{\"bench\":\"lan_rate\",\"placement\":\"{placement}\",\"median_link_share\":{:.3},\"rounds\":{repeat},\"link\":\"{RATE}\"}}\n",
            median(&mut shares)
        );
        let _ = std::io::stdout().write_all(line.as_bytes());
    }
}
