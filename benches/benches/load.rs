//! The scheduler under load: a master (a process of its own, so its CPU and
//! memory are its alone) and W synthetic workers over real TCP connections
//! (see `tessera_benches::synthetic_worker`: the real worker in its
//! synthetic task mode, each input returned as its result at once, so only
//! the master is measured).
//!
//! For each case, Q small images are first submitted by a client (4
//! connections, 64 submissions in flight), then the W workers connect and
//! drain the queue; the drain is timed from when every worker has connected
//! and asked for work (the tasks done before that are not counted). Figures
//! per case: submissions per second and master CPU per submission; tasks
//! per second through the master while the workers drain the queue, master
//! CPU per task, lease
//! latency p50/p99 (a worker's credit to the `Assign` that used it); the
//! master's resident memory with the queue full and its peak.
//!
//! Cases: W = 1, 16, 64, 256 with 20,000 queued tasks; W = 64 with 1,000,
//! 10,000 and 100,000 queued; one task at a time (the client waits for
//! each task before submitting the next: a queue of at most 1); and the
//! memory with 1,000 tasks of 160 B against 1,000 of 1 MiB queued.
//!
//! The master's data directory is on tmpfs (`/dev/shm`), so the disk's
//! fsync latency (3-8 ms on this machine) does not hide the master's own
//! cost; every fsync and every record commit is still made.
//!
//! `cargo bench -p tessera-benches --bench load`
//! (`TESSERA_BENCH_ONLY=workers|queue|trickle|memory` runs one series.)

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_benches::{
    child_master::{ChildMaster, Stats, bench_key, serve_if_child},
    figure, machine, selected,
    synthetic_worker::{self, Setup},
};
use tessera_client::Client;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Credits per synthetic worker: one "thread" and a prefetch of two, as a
/// one-thread real worker asks for.
const CREDITS: u32 = 3;

/// A small real PNG (PngSuite basn0g01, 32×32 1-bit gray, 164 bytes).
fn small_png() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/pngsuite/basn0g01.png"
    );
    Bytes::from(std::fs::read(path).expect("the test corpus"))
}

/// A data directory on tmpfs when there is one.
fn data_dir() -> anyhow::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?
    })
}

/// Submits `n` images (`image` each, distinct names) over 4 connections
/// with 64 in flight.
async fn submit(addr: &str, n: usize, image: Bytes) -> anyhow::Result<()> {
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Arc::new(Client::connect(addr, &bench_key()).await?));
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut jobs = JoinSet::new();
    for lane in 0..64 {
        let client = conns[lane % conns.len()].clone();
        let image = image.clone();
        let next = next.clone();
        jobs.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n as u64 {
                    return anyhow::Ok(());
                }
                client.submit(&format!("{i}.png"), image.clone()).await?;
            }
        });
    }
    while let Some(r) = jobs.join_next().await {
        r??;
    }
    Ok(())
}

/// W synthetic workers.
struct Workers {
    w: usize,
    ready: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
    jobs: JoinSet<anyhow::Result<synthetic_worker::WorkerReport>>,
}

impl Workers {
    fn spawn(addr: &str, w: usize) -> Self {
        let ready = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let setup = Setup {
            addr: addr.to_string(),
            key: bench_key(),
            credits: CREDITS,
            ready: ready.clone(),
            accepted: accepted.clone(),
            stop: stop.clone(),
        };
        let mut jobs = JoinSet::new();
        for i in 0..w {
            jobs.spawn(synthetic_worker::run(
                setup.clone(),
                format!("synthetic-{i}"),
            ));
        }
        Workers {
            w,
            ready,
            accepted,
            stop,
            jobs,
        }
    }

    /// Waits until every worker has connected and asked for work; returns
    /// the results accepted by then.
    async fn until_ready(&self) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.ready.load(Ordering::Relaxed) < self.w {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {} workers connected after 2 minutes",
                self.ready.load(Ordering::Relaxed),
                self.w
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(self.accepted.load(Ordering::Relaxed))
    }

    /// Waits until the master has acknowledged `n` results in all.
    async fn until_accepted(&self, n: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.accepted.load(Ordering::Relaxed) < n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {n} results accepted after 10 minutes",
                self.accepted.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Stops the workers; their lease latencies, in microseconds, sorted.
    async fn finish(mut self) -> anyhow::Result<Vec<u32>> {
        self.stop.cancel();
        let mut all = Vec::new();
        while let Some(r) = self.jobs.join_next().await {
            all.extend(r??.lease_latency_us);
        }
        all.sort_unstable();
        Ok(all)
    }
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted_us[i]) / 1000.0
}

/// Queue `q` tasks, then let `w` workers drain them.
async fn drain_case(
    master: &mut ChildMaster,
    series: &str,
    w: usize,
    q: usize,
) -> anyhow::Result<()> {
    let before = master.stats()?;
    let began = Instant::now();
    submit(&master.addr, q, small_png()).await?;
    let submit_s = began.elapsed().as_secs_f64();
    let queued = master.stats()?;

    let workers = Workers::spawn(&master.addr, w);
    let done_early = workers.until_ready().await?;
    let at_start = master.stats()?;
    let began = Instant::now();
    workers.until_accepted(q as u64).await?;
    let drain_s = began.elapsed().as_secs_f64();
    let drained = (q as u64).saturating_sub(done_early) as f64;
    let after = master.stats()?;
    let latencies = workers.finish().await?;

    let per_task_us = |a: Stats, b: Stats| (b.cpu - a.cpu) / q as f64 * 1e6;
    figure(
        "load",
        &format!("{series}_w{w}_q{q}"),
        &[
            ("workers", w as f64),
            ("queued", q as f64),
            ("submissions_per_s", q as f64 / submit_s),
            ("master_cpu_us_per_submission", per_task_us(before, queued)),
            ("done_before_all_connected", done_early as f64),
            ("tasks_per_s", drained / drain_s),
            (
                "master_cpu_us_per_task",
                (after.cpu - at_start.cpu) / drained.max(1.0) * 1e6,
            ),
            (
                "master_cores_busy",
                (after.cpu - at_start.cpu) / drain_s.max(1e-9),
            ),
            ("lease_latency_p50_ms", percentile_ms(&latencies, 0.50)),
            ("lease_latency_p99_ms", percentile_ms(&latencies, 0.99)),
            ("master_rss_mib_queued", queued.rss_mib),
            ("master_peak_rss_mib", after.peak_rss_mib),
        ],
    );
    Ok(())
}

/// One task at a time through `w` workers: the queue never holds more than one.
async fn trickle_case(master: &mut ChildMaster, w: usize, n: usize) -> anyhow::Result<()> {
    let workers = Workers::spawn(&master.addr, w);
    workers.until_ready().await?;
    let client = Client::connect(&master.addr, &bench_key()).await?;
    let image = small_png();
    let before = master.stats()?;
    let began = Instant::now();
    let mut round_trips = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let task = client.submit(&format!("{i}.png"), image.clone()).await?;
        let info = client.wait(task).await?;
        anyhow::ensure!(info.state == tessera_proto::TaskState::Done, "{info:?}");
        round_trips.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    let took = began.elapsed().as_secs_f64();
    let after = master.stats()?;
    let latencies = workers.finish().await?;
    round_trips.sort_unstable();
    figure(
        "load",
        &format!("trickle_w{w}_n{n}"),
        &[
            ("workers", w as f64),
            ("tasks", n as f64),
            ("tasks_per_s", n as f64 / took),
            (
                "master_cpu_us_per_task_incl_submission",
                (after.cpu - before.cpu) / n as f64 * 1e6,
            ),
            ("submit_to_done_p50_ms", percentile_ms(&round_trips, 0.50)),
            ("submit_to_done_p99_ms", percentile_ms(&round_trips, 0.99)),
            ("lease_latency_p50_ms", percentile_ms(&latencies, 0.50)),
            ("lease_latency_p99_ms", percentile_ms(&latencies, 0.99)),
        ],
    );
    Ok(())
}

/// The master's memory with `q` tasks of `image` queued (no workers).
async fn memory_case(master: &mut ChildMaster, q: usize, image: Bytes) -> anyhow::Result<()> {
    let before = master.stats()?;
    let size = image.len();
    submit(&master.addr, q, image).await?;
    let after = master.stats()?;
    figure(
        "load",
        &format!("memory_q{q}_{size}b"),
        &[
            ("queued", q as f64),
            ("image_bytes", size as f64),
            ("queued_mib", (q * size) as f64 / (1 << 20) as f64),
            ("master_rss_mib_empty", before.rss_mib),
            ("master_rss_mib_queued", after.rss_mib),
            ("master_peak_rss_mib", after.peak_rss_mib),
        ],
    );
    Ok(())
}

/// Runs `case` against a fresh master on a fresh data directory.
fn with_master<F>(rt: &tokio::runtime::Runtime, case: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&mut ChildMaster) -> anyhow::Result<()>,
{
    let dir = data_dir()?;
    let mut master = ChildMaster::spawn(dir.path())?;
    rt.block_on(case(&mut master))?;
    master.stop()
}

fn main() -> anyhow::Result<()> {
    if serve_if_child()? {
        return Ok(());
    }
    machine("load");
    let rt = tokio::runtime::Runtime::new()?;
    if selected("workers") {
        let ws: Vec<usize> = std::env::var("TESSERA_BENCH_WORKERS")
            .ok()
            .map(|v| v.split(',').filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 16, 64, 256]);
        for w in ws {
            with_master(&rt, async |m| drain_case(m, "workers", w, 20_000).await)?;
        }
    }
    if selected("queue") {
        for q in [1_000, 10_000, 100_000] {
            with_master(&rt, async |m| drain_case(m, "queue", 64, q).await)?;
        }
    }
    if selected("trickle") {
        with_master(&rt, async |m| trickle_case(m, 64, 2_000).await)?;
    }
    if selected("memory") {
        with_master(&rt, async |m| memory_case(m, 1_000, small_png()).await)?;
        let big = Bytes::from(vec![0x5a; 1 << 20]);
        with_master(&rt, async |m| memory_case(m, 1_000, big).await)?;
    }
    Ok(())
}
