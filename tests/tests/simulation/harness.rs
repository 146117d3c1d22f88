//! One seed's run: the master, workers and clients on turmoil's simulated
//! hosts, faults injected and undone on the seed's schedule, and what the
//! oracle found.

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
    master::{self, InvariantHook, MasterConfig, RecordStore, record::MemStore},
    worker::{self, Crash, WorkerConfig},
};
use tessera_proto::{ClusterKey, TaskEvent, determinism::Seeded};
use tessera_tests::{
    sim_clock::SimClock,
    sim_disk::SimDisk,
    sim_net::{SimDialer, SimListener},
};
use tokio_util::sync::CancellationToken;

use crate::{
    corpus::{POISON, inputs},
    determinism::{ONE_AT_A_TIME, align_task_ids},
    faults::{CALM, FAULTS_UNTIL, Fault, power_cut},
    oracle::{check_client, check_record},
};

const PORT: u16 = 7878;
pub(crate) const MASTER: &str = "master";

/// A simulated client: its batch, and what it saw.
pub(crate) struct SimClient {
    pub(crate) name: String,
    pub(crate) inputs: Vec<Input>,
    pub(crate) out_dir: PathBuf,
    pub(crate) report: Arc<std::sync::Mutex<Option<batch::Report>>>,
    /// Replies that answered no waiting request (answered twice, or never asked).
    pub(crate) strays: Arc<std::sync::atomic::AtomicU64>,
}

/// One seed's run: what was injected, and what the oracle found.
pub(crate) struct Run {
    pub(crate) faults: Vec<String>,
    pub(crate) problems: Vec<String>,
    /// What the master recorded, every event of every task with its time,
    /// and when the batch ended: equal for two runs of one seed.
    pub(crate) fingerprint: String,
}

pub(crate) fn run_seed(seed: u64, trace: bool) -> Run {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    align_task_ids();
    let mut rng = StdRng::seed_from_u64(seed);
    // Every host runs on this thread: the code's own randomness and its
    // file work follow the seed too.
    let _seeded = Seeded::new(seed);
    // The clients' images, in memory where the machine has it.
    let tmp = match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm),
        _ => tempfile::tempdir(),
    }
    .unwrap();
    // The master's data directory is on its simulated disk.
    let data = PathBuf::from("/data");
    let (in_dir, out_dir) = (tmp.path().join("in"), tmp.path().join("out"));
    for d in [&in_dir, &out_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let inputs = inputs(&in_dir);
    let key = ClusterKey::generate();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(FAULTS_UNTIL + CALM)
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
    // default --max-attempts 3 an innocent image that dies alone three times
    // in it fails (the limit the README states): 1 of 1,900 seeds (63,598;
    // 1-1,000, 62,951-63,850 run on 2026-12-06). The simulated cluster is
    // run as an operator of such a cluster would run it, with 5;
    // TESSERA_SIM_MAX_ATTEMPTS=3 shows it.
    let max_attempts: u32 = std::env::var("TESSERA_SIM_MAX_ATTEMPTS")
        .map(|s| s.parse().expect("TESSERA_SIM_MAX_ATTEMPTS: a number"))
        .unwrap_or(5);
    // The master's record outlives its crashes; a crash loses what it had
    // not made durable.
    let record = MemStore::new();
    let clock = SimClock::default();
    let master_key = key.clone();
    let master_record = record.clone();
    let master_clock = clock.clone();
    // The master's disk: the faults make it full now and then.
    let disk = SimDisk::default();
    let master_disk = disk.clone();
    sim.host(MASTER, move || {
        let (dir, key, hook) = (data.clone(), master_key.clone(), hook.clone());
        let disk = master_disk.clone();
        let record = RecordStore::Memory(master_record.clone());
        let clock = Arc::new(master_clock.clone());
        async move {
            let mut config = MasterConfig::new(dir);
            config.record = record;
            config.disk = Arc::new(disk);
            config.clock = clock;
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
        // One worker in four is slow: slower than the lease timeout, so
        // its heartbeats keep its leases while idle workers steal its work.
        let delay = Duration::from_millis(match rng.random_range(0..4) {
            0 => rng.random_range(800..2500),
            _ => rng.random_range(20..300),
        });
        if trace {
            eprintln!("seed {seed}: {name}: {threads} threads, {delay:?} an image");
        }
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

    // One to three clients; the first sends every image, the others about
    // half of them, the same files under the same names: the same tasks,
    // shared (each result kept until every client that sent it has it).
    let mut clients = Vec::new();
    for c in 0..rng.random_range(1..=3) {
        let name = format!("client{}", c + 1);
        let mine: Vec<Input> = inputs
            .iter()
            .filter(|_| c == 0 || rng.random_bool(0.5))
            .cloned()
            .collect();
        let client = SimClient {
            out_dir: out_dir.join(&name),
            inputs: mine,
            report: Arc::default(),
            strays: Arc::default(),
            name,
        };
        let (inputs, out_dir, reported) = (
            client.inputs.clone(),
            client.out_dir.clone(),
            client.report.clone(),
        );
        let config = ClientConfig {
            dialer: Arc::new(SimDialer),
            silence_timeout: Duration::from_secs(3),
            stray_replies: client.strays.clone(),
            ..ClientConfig::default()
        };
        let key = key.clone();
        sim.client(client.name.as_str(), async move {
            let conn = Reconnecting::connect(
                &format!("{MASTER}:{PORT}"),
                &key,
                config,
                Duration::from_secs(600),
            )
            .await?;
            let options = BatchOptions {
                out_dir,
                in_flight: 16,
            };
            let r = batch::run(Arc::new(conn), inputs, &options, |_| {}).await;
            *reported.lock().unwrap() = Some(r);
            Ok(())
        });
        clients.push(client);
    }

    // Faults, one at a time per worker, each undone after a while.
    let mut faults = Vec::new();
    let mut undo: Vec<(Duration, String, Fault)> = Vec::new();
    let mut next = Duration::from_millis(rng.random_range(200..1500));
    let mut problems = Vec::new();
    if trace && let Ok(filter) = std::env::var("TESSERA_SIM_LOG") {
        // The nodes' own logs (host names in their spans), e.g. `info`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut healed = false;
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
        if trace && now.as_millis() % 50_000 == 0 {
            faults.push(format!(
                "{:>8.3}s progress: {}",
                now.as_secs_f64(),
                progress(&record)
            ));
        }
        if !healed && now >= FAULTS_UNTIL {
            // The faults end: everything in effect is undone at once, and
            // from now on the batch must finish (liveness, checked below).
            healed = true;
            for (at, _, _) in &mut undo {
                *at = now;
            }
            faults.push(format!(
                "{:>8.3}s faults end: every fault in effect is undone",
                now.as_secs_f64()
            ));
        }
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
                Fault::Crash | Fault::PowerCut => sim.bounce(host.as_str()),
                Fault::Partition | Fault::OneWay => sim.repair(host.as_str(), MASTER),
                Fault::Hold => sim.release(host.as_str(), MASTER),
                Fault::Flaky(_) => sim.set_link_fail_rate(host.as_str(), MASTER, 0.0),
                Fault::DiskFull => {
                    disk.set_full(false);
                    record.fail_writes(false);
                }
            }
            faults.push(format!(
                "{:>8.3}s {host}: {fault:?} undone",
                now.as_secs_f64()
            ));
            false
        });
        if healed || now < next {
            continue;
        }
        next = now + Duration::from_millis(rng.random_range(100..1000));
        let (host, fault) = match rng.random_range(0..27) {
            0 => (MASTER.to_string(), Fault::Crash),
            25 => (MASTER.to_string(), Fault::PowerCut),
            26 => (MASTER.to_string(), Fault::DiskFull),
            1 => {
                // An administrator or NTP sets the master's wall clock, up
                // to an hour either way (it reads it when it starts).
                let by_ms = rng.random_range(-3_600_000..3_600_000);
                clock.step_wall(by_ms);
                faults.push(format!(
                    "{:>8.3}s master: wall clock stepped {by_ms:+} ms",
                    now.as_secs_f64()
                ));
                continue;
            }
            2..=4 => (
                clients[rng.random_range(0..clients.len())].name.clone(),
                match rng.random_range(0..4) {
                    0 => Fault::Partition,
                    1 => Fault::OneWay,
                    2 => Fault::Hold,
                    _ => Fault::Flaky(rng.random_range(0.002..0.02)),
                },
            ),
            n => (
                workers[rng.random_range(0..workers.len())].clone(),
                match n % 6 {
                    0 => Fault::Crash,
                    1 => Fault::Partition,
                    2 => Fault::OneWay,
                    3 => Fault::Hold,
                    4 => Fault::PowerCut,
                    _ => Fault::Flaky(rng.random_range(0.002..0.02)),
                },
            ),
        };
        if undo.iter().any(|(_, h, _)| *h == host) {
            continue;
        }
        // Long enough to outlast a lease (1 s) about half the time.
        let lasts = Duration::from_millis(rng.random_range(200..3000));
        match fault {
            Fault::Crash if host == MASTER => {
                sim.crash(MASTER);
                record.crash();
            }
            Fault::Crash => sim.crash(host.as_str()),
            Fault::PowerCut if host == MASTER => {
                let peers: Vec<String> = workers
                    .iter()
                    .cloned()
                    .chain(clients.iter().map(|c| c.name.clone()))
                    .collect();
                power_cut(&mut sim, MASTER, &peers, &undo);
                record.crash();
            }
            Fault::PowerCut => power_cut(&mut sim, &host, &[MASTER.to_string()], &undo),
            Fault::Partition => sim.partition(host.as_str(), MASTER),
            Fault::OneWay => sim.partition_oneway(MASTER, host.as_str()),
            Fault::Hold => sim.hold(host.as_str(), MASTER),
            Fault::Flaky(rate) => sim.set_link_fail_rate(host.as_str(), MASTER, rate),
            Fault::DiskFull => {
                disk.set_full(true);
                record.fail_writes(true);
            }
        }
        faults.push(format!(
            "{:>8.3}s {host}: {fault:?} for {lasts:?}",
            now.as_secs_f64()
        ));
        undo.push((now + lasts, host, fault));
    }
    let ended = format!(
        "the batch ended after {:.3}s of simulated time",
        sim.elapsed().as_secs_f64()
    );
    let mut fingerprint = String::new();
    for (task, e) in record.all_events() {
        fingerprint.push_str(&format!("{task} {} {:?}\n", e.at_ms, e.event));
    }
    fingerprint.push_str(&ended);
    if trace {
        for line in fingerprint.lines() {
            eprintln!("seed {seed}: record: {line}");
        }
        for f in &faults {
            eprintln!("seed {seed}: {f}");
        }
        eprintln!("seed {seed}: {ended}");
        eprintln!(
            "seed {seed}: the record's {} events hash to {:016x}",
            record.all_events().len(),
            {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                fingerprint.hash(&mut h);
                h.finish()
            }
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
    for client in &clients {
        problems.extend(
            check_client(client, &in_dir)
                .into_iter()
                .map(|p| format!("{}: {p}", client.name)),
        );
    }
    problems.extend(check_record(&record));
    Run {
        faults: faults
            .into_iter()
            .filter(|f| !f.contains("undone"))
            .collect(),
        problems,
        fingerprint,
    }
}

/// How far the master's record has come: tasks decided, attempts leased.
fn progress(record: &MemStore) -> String {
    let events = record.all_events();
    let count = |f: fn(&TaskEvent) -> bool| events.iter().filter(|(_, e)| f(&e.event)).count();
    format!(
        "{} tasks decided, {} attempts leased",
        count(|e| matches!(e, TaskEvent::Completed { .. } | TaskEvent::Failed { .. })),
        count(|e| matches!(e, TaskEvent::Leased { .. }))
    )
}
