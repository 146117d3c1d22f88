//! The real master, workers and client on turmoil's simulated hosts and
//! TCP (the network seam, `tessera_proto::net`; `tessera_tests::sim_net`),
//! under faults drawn from a seed.
//!
//! `TESSERA_SIM_SEEDS=N` runs seeds 1..=N (default 200, about a minute); `TESSERA_SIM_SEED=S`
//! runs one and prints its faults. Each run ends with the line
//! `simulation: N seeds passed, 0 failed (F faults injected)`.
//!
//! Workers process images inline (`WorkerConfig::inline_compute`), so no
//! simulated time passes while an image is processed; each image takes its
//! worker's `test_delay` (20-300 ms, from the seed) of simulated time.
//!
//! What is not simulated yet (issue 15): the master's files and record are
//! real files (in /dev/shm; a crash loses nothing unsynced) written through
//! tokio's blocking pool, and the code's own randomness (backoff jitter,
//! nonces) is not seeded, so a seed fixes the faults and their times but
//! not every interleaving: a replay is close, not identical.
//!
//! The simulated cluster runs with `--max-attempts 5` (see `max_attempts`
//! below): at 3, 2 of 1,000 seeds failed an innocent image at this fault
//! rate. At 3, blaming prefetched neighbours fails 11 of 16 seeds and
//! blaming silence 2 of 10; at 5 neither showed in 30 seeds.
//!
//! Found with it: at ten times this fault rate (a fault every 20-200 ms),
//! 4 of 100 seeds failed an innocent image "for its content" after three
//! worker crashes that hit it while it ran alone. A crash alone on a worker
//! is the blame rule's evidence of a poison; in a storm of crashes it is
//! not. Evidence weighed against the cluster's background crash rate is the
//! fix to come.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tessera_client::{
    ClientConfig, Reconnecting,
    batch::{self, BatchOptions},
    files::Input,
};
use tessera_node::{
    master::{self, InvariantHook, MasterConfig},
    worker::{self, Crash, WorkerConfig},
};
use tessera_proto::ClusterKey;
use tessera_tests::{
    check_swapped,
    sim_net::{SimDialer, SimListener},
    valid_pngsuite,
};
use tokio_util::sync::CancellationToken;

const PORT: u16 = 7878;
const MASTER: &str = "master";
/// An image whose name has this kills every worker that processes it.
const POISON: &str = "poison";

/// One seed's run: what was injected, and what the oracle found.
struct Run {
    faults: Vec<String>,
    problems: Vec<String>,
}

/// The corpus: every valid PngSuite image, twice under two names (the
/// imaging runs for real).
fn inputs(dir: &Path) -> Vec<Input> {
    let suite = valid_pngsuite();
    ["a", "b"]
        .iter()
        .flat_map(|copy| {
            suite.iter().map(move |p: &PathBuf| {
                let name = PathBuf::from(format!(
                    "{copy}-{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
                let path = dir.join(&name);
                std::fs::copy(p, &path).unwrap();
                Input { path, name }
            })
        })
        .chain(std::iter::once({
            let name = PathBuf::from(format!("{POISON}.png"));
            let path = dir.join(&name);
            std::fs::copy(&suite[0], &path).unwrap();
            Input { path, name }
        }))
        .collect()
}

fn run_seed(seed: u64, trace: bool) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    // In memory where the machine has it: the master's fsyncs cost nothing
    // there, and the simulation is about timing and faults, not the disk.
    let tmp = match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm),
        _ => tempfile::tempdir(),
    }
    .unwrap();
    let (data, in_dir, out_dir) = (
        tmp.path().join("data"),
        tmp.path().join("in"),
        tmp.path().join("out"),
    );
    for d in [&data, &in_dir, &out_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let inputs = inputs(&in_dir);
    let key = ClusterKey::generate();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(900))
        // Timers here are 20 ms and up (heartbeats 200 ms, leases 1 s).
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(rng.random_range(0..2)))
        .max_message_latency(Duration::from_millis(rng.random_range(2..30)))
        .rng_seed(seed)
        .build();

    // Every broken scheduler invariant, checked on every operation.
    let broken = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let hook = {
        let broken = broken.clone();
        InvariantHook(Arc::new(move |b| broken.lock().unwrap().push(b)))
    };
    // A crash every half second or so across the cluster is a storm: at the
    // default --max-attempts 3, 2 of 1,000 seeds failed an innocent image
    // that ran alone on three crashing workers (the limit the README
    // states). The simulated cluster is run as an operator of such a
    // cluster would run it, with 5; TESSERA_SIM_MAX_ATTEMPTS=3 shows it.
    let max_attempts: u32 = std::env::var("TESSERA_SIM_MAX_ATTEMPTS")
        .map(|s| s.parse().expect("TESSERA_SIM_MAX_ATTEMPTS: a number"))
        .unwrap_or(5);
    let master_key = key.clone();
    sim.host(MASTER, move || {
        let (dir, key, hook) = (data.clone(), master_key.clone(), hook.clone());
        async move {
            let mut config = MasterConfig::new(dir);
            config.key = key;
            config.invariants = Some(hook);
            config.heartbeat_interval = Duration::from_millis(200);
            config.scheduler.lease_timeout = Duration::from_secs(1);
            config.scheduler.max_attempts = max_attempts;
            let listener = SimListener::bind(PORT).await?;
            master::run(listener, config, CancellationToken::new()).await?;
            Ok(())
        }
    });
    let workers: Vec<String> = (1..=rng.random_range(3..=6))
        .map(|i| format!("worker{i}"))
        .collect();
    // Set by a worker that starts the poison; the loop then crashes its host.
    let poisoned: Vec<Arc<AtomicBool>> = workers.iter().map(|_| Arc::default()).collect();
    for (i, name) in workers.iter().enumerate() {
        let flag = poisoned[i].clone();
        let (key, host, name) = (key.clone(), name.clone(), name.clone());
        let threads = 1 + i % 2;
        // The imaging itself takes no simulated time: each image also
        // takes this long, so faults find workers busy.
        let delay = Duration::from_millis(rng.random_range(20..300));
        sim.host(host.as_str(), move || {
            let (key, name, flag) = (key.clone(), name.clone(), flag.clone());
            async move {
                let mut config = WorkerConfig::new(format!("{MASTER}:{PORT}"), key);
                config.test_crash_on = Some(POISON.into());
                config.test_crash = Crash(Arc::new(move || flag.store(true, Ordering::SeqCst)));
                config.threads = threads;
                config.node_id = name;
                config.dialer = Arc::new(SimDialer);
                config.test_delay = Some(delay);
                config.inline_compute = true;
                worker::run(config, CancellationToken::new()).await?;
                Ok(())
            }
        });
    }

    let (batch_inputs, batch_out) = (inputs.clone(), out_dir.clone());
    let report = Arc::new(std::sync::Mutex::new(None));
    let reported = report.clone();
    sim.client("client", async move {
        let config = ClientConfig {
            dialer: Arc::new(SimDialer),
            ..ClientConfig::default()
        };
        let conn = Reconnecting::connect(
            &format!("{MASTER}:{PORT}"),
            &key,
            config,
            Duration::from_secs(600),
        )
        .await?;
        let options = BatchOptions {
            out_dir: batch_out,
            in_flight: 16,
        };
        let r = batch::run(Arc::new(conn), batch_inputs, &options, |_| {}).await;
        *reported.lock().unwrap() = Some(r);
        Ok(())
    });

    // Faults, one at a time per worker, each undone after a while.
    let mut faults = Vec::new();
    let mut undo: Vec<(Duration, String, Fault)> = Vec::new();
    let mut next = Duration::from_millis(rng.random_range(200..1500));
    let mut problems = Vec::new();
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                problems.push(format!("the simulation stopped: {e}"));
                break;
            }
        }
        let now = sim.elapsed();
        for (host, flag) in workers.iter().zip(&poisoned) {
            if flag.swap(false, Ordering::SeqCst) {
                sim.crash(host.as_str());
                // Its supervisor starts it again (a link fault on it is
                // still undone when due).
                let back = now + Duration::from_millis(rng.random_range(50..1000));
                undo.push((back, host.clone(), Fault::Crash));
                faults.push(format!(
                    "{:>8.3}s {host}: crashed by the poison",
                    now.as_secs_f64()
                ));
            }
        }
        undo.retain(|(at, host, fault)| {
            if *at > now {
                return true;
            }
            match fault {
                Fault::Crash => sim.bounce(host.as_str()),
                Fault::Partition | Fault::OneWay => sim.repair(host.as_str(), MASTER),
                Fault::Hold => sim.release(host.as_str(), MASTER),
            }
            faults.push(format!(
                "{:>8.3}s {host}: {fault:?} undone",
                now.as_secs_f64()
            ));
            false
        });
        if now < next {
            continue;
        }
        next = now + Duration::from_millis(rng.random_range(100..1000));
        let (host, fault) = match rng.random_range(0..20) {
            0 => (MASTER.to_string(), Fault::Crash),
            n => (
                workers[rng.random_range(0..workers.len())].clone(),
                match n % 4 {
                    0 => Fault::Crash,
                    1 => Fault::Partition,
                    2 => Fault::OneWay,
                    _ => Fault::Hold,
                },
            ),
        };
        if undo.iter().any(|(_, h, _)| *h == host) {
            continue;
        }
        // Long enough to outlast a lease (1 s) about half the time.
        let lasts = Duration::from_millis(rng.random_range(200..3000));
        match fault {
            Fault::Crash => sim.crash(host.as_str()),
            Fault::Partition => sim.partition(host.as_str(), MASTER),
            Fault::OneWay => sim.partition_oneway(MASTER, host.as_str()),
            Fault::Hold => sim.hold(host.as_str(), MASTER),
        }
        faults.push(format!(
            "{:>8.3}s {host}: {fault:?} for {lasts:?}",
            now.as_secs_f64()
        ));
        undo.push((now + lasts, host, fault));
    }
    if trace {
        for f in &faults {
            eprintln!("seed {seed}: {f}");
        }
        eprintln!(
            "seed {seed}: the batch ended after {:.3}s of simulated time",
            sim.elapsed().as_secs_f64()
        );
    }

    // The oracle: the scheduler's invariants held at every step (no task
    // leased twice, ...); every innocent image done once, under a task of
    // its own, pixel-exact; the poison failed for its content.
    let mut broken = broken.lock().unwrap().clone();
    broken.dedup();
    problems.extend(
        broken
            .into_iter()
            .take(5)
            .map(|b| format!("invariant broken: {b}")),
    );
    let report = report.lock().unwrap().take();
    match report {
        None if problems.is_empty() => problems.push("the client never finished".into()),
        None => {}
        Some(report) => {
            if report.outcomes.len() != inputs.len() {
                problems.push(format!(
                    "{} outcomes for {} images",
                    report.outcomes.len(),
                    inputs.len()
                ));
            }
            let mut poison_failed = false;
            for (input, failure) in report.failed() {
                if input.name.to_string_lossy().contains(POISON)
                    && failure.reason.starts_with("failed for its content")
                {
                    poison_failed = true;
                    continue;
                }
                problems.push(format!(
                    "{} failed: {}",
                    input.name.display(),
                    failure.reason
                ));
            }
            if !poison_failed {
                problems.push("the poison image did not fail for its content".into());
            }
            let mut tasks: Vec<_> = report.done().map(|d| d.task).collect();
            tasks.sort();
            tasks.dedup();
            if tasks.len() != report.done().count() {
                problems.push("two images were answered with one task".into());
            }
            for done in report.done() {
                let name = done.output.file_name().unwrap();
                let input = std::fs::read(in_dir.join(name)).unwrap();
                let output = std::fs::read(&done.output).unwrap();
                if let Err(e) = check_swapped(&input, &output) {
                    problems.push(format!("{}: {e}", name.to_string_lossy()));
                }
            }
        }
    }
    Run {
        faults: faults
            .into_iter()
            .filter(|f| !f.contains("undone"))
            .collect(),
        problems,
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The host (a worker, or the master) crashes: its software stops at
    /// once; it is started again later (the master on its data directory).
    Crash,
    /// The link between the worker and the master is cut both ways.
    Partition,
    /// The master's messages to the worker are lost; the worker's still
    /// arrive.
    OneWay,
    /// Messages between the worker and the master are held back, then
    /// delivered in a burst.
    Hold,
}

#[test]
fn seeded_faults_lose_no_image_and_fail_no_innocent_one() {
    let one: Option<u64> = std::env::var("TESSERA_SIM_SEED")
        .ok()
        .map(|s| s.parse().expect("TESSERA_SIM_SEED: a number"));
    let seeds: Vec<u64> = match one {
        Some(s) => vec![s],
        None => {
            let n: u64 = std::env::var("TESSERA_SIM_SEEDS")
                .map(|s| s.parse().expect("TESSERA_SIM_SEEDS: a number"))
                .unwrap_or(200);
            (1..=n).collect()
        }
    };
    let (mut passed, mut failed, mut injected) = (0, Vec::new(), 0);
    for &seed in &seeds {
        let run = run_seed(seed, one.is_some());
        injected += run.faults.len();
        if run.problems.is_empty() {
            passed += 1;
        } else {
            failed.push(format!(
                "seed {seed} failed (replay: TESSERA_SIM_SEED={seed} cargo test --release -p tessera-tests --test simulation -- --nocapture):\n  {}\nfaults:\n  {}",
                run.problems.join("\n  "),
                run.faults.join("\n  ")
            ));
        }
    }
    println!(
        "simulation: {passed} seeds passed, {} failed ({injected} faults injected)",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
