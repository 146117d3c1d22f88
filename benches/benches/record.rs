//! The durable record: accepted submissions per second (small images, every
//! one fsynced before it is answered) with group commit and without, and the
//! master's restart time with 10,000 tasks in its record.
//!
//! `cargo bench -p tessera-benches --bench record`
//! (`TESSERA_BENCH_REPEAT=N` sets the number of submissions; default 2000.)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_benches::{figure, machine, repeat};
use tessera_client::Client;
use tessera_node::master::{self, MasterConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The cluster key of the benchmark's masters.
fn key() -> tessera_proto::ClusterKey {
    tessera_proto::ClusterKey::from_bytes([1; 32])
}

/// A small real PNG (PngSuite basn0g01, 32×32 1-bit gray).
fn small_png() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/pngsuite/basn0g01.png"
    );
    Bytes::from(std::fs::read(path).expect("the test corpus"))
}

/// Starts a master on `data` (no workers: only submission is measured).
async fn start(
    data: &std::path::Path,
    group_commit: bool,
) -> anyhow::Result<(String, CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let shutdown = CancellationToken::new();
    let mut config = MasterConfig::new(data.to_path_buf());
    config.group_commit = group_commit;
    config.key = key();
    tokio::spawn(master::run(listener, config, shutdown.clone()));
    Ok((addr, shutdown))
}

/// Submits `n` distinct small images over `clients` connections, 8 in flight each.
async fn submit_many(addr: &str, n: usize, clients: usize) -> anyhow::Result<Duration> {
    let png = small_png();
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Arc::new(Client::connect(addr, &key()).await?));
    }
    let start = Instant::now();
    let mut jobs = JoinSet::new();
    let per = n / (clients * 8);
    for c in 0..clients * 8 {
        let client = conns[c % clients].clone();
        let png = png.clone();
        jobs.spawn(async move {
            for i in 0..per {
                client.submit(&format!("{c}-{i}.png"), png.clone()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = jobs.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}

fn main() -> anyhow::Result<()> {
    machine("record");
    let n = repeat(2000);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        for group_commit in [true, false] {
            let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
            let (addr, stop) = start(tmp.path(), group_commit).await?;
            let took = submit_many(&addr, n, 4).await?;
            let done = (n / 32 * 32) as f64;
            figure(
                "record",
                if group_commit {
                    "submissions_group_commit"
                } else {
                    "submissions_commit_each"
                },
                &[
                    ("submissions", done),
                    ("seconds", took.as_secs_f64()),
                    ("per_s", done / took.as_secs_f64()),
                ],
            );
            stop.cancel();
        }

        // Restart with 10,000 tasks in the record.
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let (addr, stop) = start(tmp.path(), true).await?;
        submit_many(&addr, 10_240, 4).await?;
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let begin = Instant::now();
        let (addr, stop) = start(tmp.path(), true).await?;
        // Restarted = answering for its last task.
        let client = loop {
            match Client::connect(&addr, &key()).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        let last = client.status(tessera_proto::TaskId(10_240)).await?;
        anyhow::ensure!(last.state == tessera_proto::TaskState::Queued, "{last:?}");
        let took = begin.elapsed();
        figure(
            "record",
            "restart_10k_tasks",
            &[("tasks", 10_240.0), ("ms", took.as_secs_f64() * 1000.0)],
        );
        stop.cancel();
        Ok(())
    })
}
