//! Stragglers (issue 13): the makespan of one batch on three fast workers and
//! one slowed worker (`--test-delay`), with the master's backup attempts on
//! and off, in alternating rounds. Real processes (the binaries under test),
//! real TCP on loopback, `tessera run` as the client. It prints figures (one
//! JSON line per round, then the medians) and asserts no timing; it checks
//! every output pixel-exact, so a fast wrong answer is not a figure.
//!
//! `cargo bench -p tessera-tests --bench straggler` (rounds per mode:
//! `TESSERA_BENCH_REPEAT`, default 3).
//!
//! Stealing already moves the slow worker's unstarted tasks; what is left is
//! the task it has *started*, which without a backup attempt holds the batch
//! for the whole slow delay.

use std::{path::PathBuf, time::Duration};

use tessera_client::{Client, ClusterKey};
use tessera_tests::{
    bench_line::median,
    data_dir,
    run::{Expected, Run, judge},
    supervisor::{Locate, Master, WorkerSpec, Workers},
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");

/// The master's switch that turns backup attempts off (`None` makes both
/// modes run the same master; the JSON then says `backup_off_flag: false`).
const NO_BACKUP_FLAG: Option<&str> = Some("--no-backup");

/// Images per batch: all one size, so the slow worker's task is far slower
/// than "recent tasks of similar size".
const IMAGES: usize = 60;
const FAST_DELAY: &str = "50ms";
const SLOW_DELAY: &str = "5s";

async fn batch(backup: bool) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let extra: Vec<&str> = match (backup, NO_BACKUP_FLAG) {
        (false, Some(flag)) => vec![flag],
        _ => vec![],
    };
    let master = Master::start(NODE, &tmp.path().join("data"), "127.0.0.1:0", &extra, None).await;
    let key = master.key_file();
    let locate = Locate::Addr(master.addr.clone());
    let fast = ["--threads", "1", "--test-delay", FAST_DELAY];
    let specs = [
        WorkerSpec::new("slow", &["--threads", "1", "--test-delay", SLOW_DELAY]),
        WorkerSpec::new("fast1", &fast),
        WorkerSpec::new("fast2", &fast),
        WorkerSpec::new("fast3", &fast),
    ];
    let _workers = Workers::start(NODE, &key, locate.clone(), &specs);
    let client = Client::connect(&master.addr, &ClusterKey::load(&key).unwrap())
        .await
        .unwrap();
    while client.cluster().await.unwrap().workers.len() < specs.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let image = data_dir().join("pngsuite").join("basn2c08.png");
    let mut names = Vec::new();
    for i in 0..IMAGES {
        let name = PathBuf::from(format!("img-{i:03}.png"));
        std::fs::copy(&image, input.join(&name)).unwrap();
        names.push(name);
    }
    let output = tmp.path().join("out");
    let run = Run::start(CLIENT, &key, &locate, &input, &output, &[]);
    let out = run.finish(Duration::from_secs(300)).await.unwrap();
    let verdict = judge(
        &out,
        &Expected {
            input_dir: input,
            output_dir: output,
            innocent: names,
            poison: None,
        },
    );
    assert!(verdict.ok(), "{}", verdict.problems.join("\n"));
    out.elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tessera_tests::bench_line::machine("straggler");
    let rounds = tessera_tests::bench_line::repeat(3);
    let really_off = NO_BACKUP_FLAG.is_some();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for backup in [true, false] {
            let s = batch(backup).await;
            println!(
                "{{\"bench\":\"straggler\",\"case\":\"makespan\",\"round\":{round},\"backup\":{backup},\"backup_off_flag\":{really_off},\"images\":{IMAGES},\"slow_delay\":\"{SLOW_DELAY}\",\"fast_delay\":\"{FAST_DELAY}\",\"seconds\":{s:.2}}}"
            );
            if backup { &mut on } else { &mut off }.push(s);
        }
    }
    println!(
        "{{\"bench\":\"straggler\",\"case\":\"median\",\"rounds\":{rounds},\"backup_off_flag\":{really_off},\"with_backup_s\":{:.2},\"without_backup_s\":{:.2}}}",
        median(&mut on),
        median(&mut off)
    );
}
