//! Chaos with real processes (issue 13): a master and four workers (one- and
//! two-thread) run 330 real images and one poison image while faults drawn
//! from a seeded RNG hit them for the whole batch (see
//! `tessera_tests::chaos`). The oracle: every innocent image done exactly
//! once (its own task in `tessera run --json`, and the master holds exactly
//! one task per image) and pixel-exact, none failed; the poison failed with
//! a reason; `tessera run` exits 1.
//!
//! Seeds: CI runs [`CI_SEEDS`] with the master restarted on the same port and
//! [`CI_NEW_PORT_SEEDS`] on a new one; `TESSERA_CHAOS_SEEDS=1,2,3` runs others and
//! `TESSERA_CHAOS_SEED=7` replays one:
//!
//! ```text
//! TESSERA_CHAOS_SEED=7 cargo test -p tessera-tests --test chaos -- --nocapture
//! ```
//!
//! A failing seed prints its problems, the fault log (what was injected
//! when) and the history of each innocent image that failed. Each seed
//! prints one JSON line of figures (`{"bench":"chaos",...}`).
//!
//! The soak runs the same mix in rounds for a given time, sampling every
//! process's memory and open descriptors:
//!
//! ```text
//! TESSERA_SOAK_SECS=1800 cargo test --release -p tessera-tests --test chaos soak -- --ignored --nocapture
//! ```

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng};
use tessera_client::{Client, ClusterKey, TaskId};
use tessera_tests::{
    chaos::{Cluster, Corpus, Counts, FaultLog, Mix, round},
    procstat::{self, Sample},
    run::{Verdict, history, judge},
    supervisor::WorkerSpec,
    tmpfs::Tmpfs,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");

/// The seeds CI runs (about 10 s each on 2 cores: 2 minutes in all).
const CI_SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

/// The seeds CI also runs with the master restarted on a NEW port (the
/// first time, then on a new or the same port at random), everyone finding
/// it by mDNS on loopback (`--cluster`): workers and `tessera run` follow it
/// (about 20-35 s a seed, discovery included). `TESSERA_CHAOS_NEW_PORT=1`
/// runs [`CI_SEEDS`] (or the seeds given) that way too.
///
/// Seeds 13 and 20 failed an innocent image before discovery took a stale
/// record answering at the live master's address for a second master (the
/// master restarted on its own port): kept as regressions.
const CI_NEW_PORT_SEEDS: &[u64] = &[13, 20, 21, 22];

fn new_port() -> bool {
    std::env::var("TESSERA_CHAOS_NEW_PORT").is_ok_and(|v| v == "1")
}

/// The master's lease timeout; pauses last 1.5 to 3 times it.
const LEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a batch may take, faults included.
const BATCH_DEADLINE: Duration = Duration::from_secs(150);

fn master_args() -> Vec<&'static str> {
    vec!["--lease-timeout", "1s", "--heartbeat-interval", "200ms"]
}

/// Four workers, one- and two-thread, with the default prefetch; each image
/// takes at least 100 ms, so the batch lasts long enough for the faults.
fn worker_specs() -> Vec<WorkerSpec> {
    let args = |threads: &'static str| {
        [
            "--threads",
            threads,
            "--test-delay",
            "100ms",
            "--test-crash-on",
            tessera_tests::chaos::POISON,
        ]
    };
    vec![
        WorkerSpec::new("w1", &args("1")),
        WorkerSpec::new("w2", &args("1")),
        WorkerSpec::new("w3", &args("2")),
        WorkerSpec::new("w4", &args("2")),
    ]
}

/// The master's data directory's own file system: big enough for what a
/// batch keeps (and a soak's record), small enough to fill up in a moment.
const DATA_FS: &str = "256m";

fn mix(master_kills: usize, new_port: bool, data_fs: &Tmpfs) -> Mix {
    Mix {
        lease_timeout: LEASE_TIMEOUT,
        gap: (Duration::from_millis(300), Duration::from_millis(1200)),
        kill_share: 0.5,
        max_paused: 2,
        master_kills,
        master_pauses: 1,
        new_port,
        fill: Some(data_fs.path().to_path_buf()),
    }
}

/// The seeds to run: `TESSERA_CHAOS_SEED`, else `TESSERA_CHAOS_SEEDS`
/// (comma-separated), else [`CI_SEEDS`].
fn seeds() -> Vec<u64> {
    let parse = |s: &str| -> u64 {
        s.trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad seed {s:?}: {e}"))
    };
    if let Ok(one) = std::env::var("TESSERA_CHAOS_SEED") {
        return vec![parse(&one)];
    }
    if let Ok(list) = std::env::var("TESSERA_CHAOS_SEEDS") {
        return list.split(',').map(parse).collect();
    }
    CI_SEEDS.to_vec()
}

/// The ids of the tasks the master at `addr` knows among `ids`.
async fn tasks_on_master(
    addr: &str,
    key: &Path,
    ids: std::ops::RangeInclusive<u64>,
) -> Result<Vec<u64>, String> {
    let key = ClusterKey::load(key).map_err(|e| e.to_string())?;
    let client = Client::connect(addr, &key)
        .await
        .map_err(|e| format!("cannot reach the master to count its tasks: {e}"))?;
    let mut known = Vec::new();
    for id in ids {
        if client.status(TaskId(id)).await.is_ok() {
            known.push(id);
        }
    }
    Ok(known)
}

/// Adds to `verdict` a task the master holds beyond one per image (a
/// resubmission that created a second task) or one missing, among the
/// tasks from id `first` on (a round's: ids are not dense, as a submission
/// the master could not store used one up, so 100 ids past the last are
/// looked at too). Returns the id after the last task it found.
async fn check_master_tasks(
    cluster: &Cluster,
    first: u64,
    images: u64,
    verdict: &mut Verdict,
) -> u64 {
    let key = cluster.master.key_file();
    let mut upto = first + images + 100;
    let known = loop {
        match tasks_on_master(&cluster.master.addr, &key, first..=upto).await {
            // A task near the end of the window: there may be more past it.
            Ok(known) if known.last().is_some_and(|&id| id + 100 > upto) => {
                upto = known.last().unwrap() + 100;
            }
            Ok(known) => break known,
            Err(e) => {
                verdict.problems.push(e);
                return first + images;
            }
        }
    };
    let n = known.len() as u64;
    if n > images {
        verdict.duplicates += (n - images) as usize;
    }
    if n != images {
        verdict
            .problems
            .push(format!("the master holds {n} tasks for {images} images"));
    }
    known.last().map_or(first, |&id| id + 1)
}

/// The histories of up to five tasks that failed although innocent.
async fn failed_histories(
    cluster: &Cluster,
    out: &tessera_tests::run::RunOutput,
    poison: &str,
) -> String {
    let mut text = String::new();
    let key = cluster.master.key_file();
    let failed = out
        .images
        .iter()
        .filter(|l| !l.ok && !l.input.contains(poison))
        .take(5);
    for line in failed {
        if let Some(t) = line.task {
            text.push_str(&format!("-- {} (task {t}):\n", line.input));
            text.push_str(&history(CLIENT, &key, &cluster.locate, t).await);
        }
    }
    text
}

fn figures(seed: u64, c: &Counts, images: usize, v: &Verdict, seconds: f64) -> String {
    format!(
        "{{\"bench\":\"chaos\",\"seed\":{seed},\"images\":{images},\"worker_kills\":{},\"worker_pauses\":{},\"master_kills\":{},\"master_pauses\":{},\"master_new_port\":{},\"disk_fills\":{},\"poison_deaths\":{},\"innocent_failures\":{},\"duplicates\":{},\"poison_failed_after_s\":{},\"seconds\":{seconds:.1}}}",
        c.worker_kills,
        c.worker_pauses,
        c.master_kills,
        c.master_pauses,
        c.master_new_port,
        c.disk_fills,
        c.other_deaths,
        v.innocent_failures.len(),
        v.duplicates,
        v.poison_failed_at
            .map_or("null".to_string(), |t| format!("{:.1}", t.as_secs_f64())),
    )
}

/// One batch under the faults of `seed`: its figures, or the whole failure report.
async fn one_seed(seed: u64, new_port: bool) -> Result<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Corpus::build(&tmp.path().join("in"), "");
    let images = corpus.innocent.len() + 1;
    let name = format!("chaos-{}-{seed}", std::process::id());
    let data_fs = Tmpfs::mount(DATA_FS);
    let mut cluster = Cluster::start(
        NODE,
        &data_fs.path().join("data"),
        &name,
        &master_args(),
        &worker_specs(),
        new_port,
    )
    .await;
    let out_dir = tmp.path().join("out");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = FaultLog::default();
    let mut counts = Counts::default();
    let start = Instant::now();
    let result = round(
        &mut cluster,
        CLIENT,
        &mix(2, new_port, &data_fs),
        &mut rng,
        &corpus,
        &out_dir,
        BATCH_DEADLINE,
        &mut log,
        &mut counts,
        &mut |_| {},
    )
    .await;
    let seconds = start.elapsed().as_secs_f64();
    let (verdict, histories) = match &result {
        Ok(out) => {
            let mut v = judge(out, &corpus.expected(&out_dir));
            check_master_tasks(&cluster, 1, images as u64, &mut v).await;
            let h = failed_histories(&cluster, out, "poison").await;
            (v, h)
        }
        Err(e) => (
            Verdict {
                problems: vec![e.clone()],
                ..Verdict::default()
            },
            String::new(),
        ),
    };
    let fig = figures(seed, &counts, images, &verdict, seconds);
    if verdict.ok() {
        Ok(fig)
    } else {
        Err(format!(
            "seed {seed} FAILED (replay: TESSERA_CHAOS_SEED={seed} cargo test -p tessera-tests --test chaos -- --nocapture)\n{fig}\nproblems:\n  {}\npoison's reason: {:?}\nfault log:\n{}\n{histories}",
            verdict.problems.join("\n  "),
            verdict.poison_reason,
            log.render()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_seeded_faults_no_innocent_image_fails_or_is_delivered_twice() {
    run_seeds(seeds(), new_port()).await;
}

/// The same, with the master moving to a new port when it restarts: the
/// workers and `tessera run` find it again by mDNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_seeded_faults_with_a_master_that_moves_nothing_is_lost() {
    let explicit =
        std::env::var("TESSERA_CHAOS_SEED").is_ok() || std::env::var("TESSERA_CHAOS_SEEDS").is_ok();
    let seeds = if explicit {
        seeds()
    } else {
        CI_NEW_PORT_SEEDS.to_vec()
    };
    run_seeds(seeds, true).await;
}

async fn run_seeds(seeds: Vec<u64>, new_port: bool) {
    let mut failures = Vec::new();
    for seed in seeds {
        match one_seed(seed, new_port).await {
            Ok(fig) => println!("{fig}"),
            Err(report) => {
                println!("{report}");
                failures.push(report);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// How often the soak reads every process's memory and descriptors.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Reads every process of `cluster` into `samples` (and prints each reading).
fn sample_all(cluster: &mut Cluster, since: Instant, samples: &mut Vec<Sample>) {
    let mut procs = vec![(
        format!("master-{}", cluster.master.restarts),
        cluster.master.pid(),
    )];
    procs.extend(cluster.workers.pids());
    for (name, pid) in procs {
        if let Some((rss_kib, fds)) = procstat::read(pid) {
            let s = Sample {
                at: since.elapsed(),
                name,
                pid,
                rss_kib,
                fds,
            };
            println!("{}", s.json());
            samples.push(s);
        }
    }
}

/// The chaos mix in rounds for `TESSERA_SOAK_SECS` (default 120 s): one
/// batch per round (fresh output, a poison of its own), the master never
/// killed here (the chaos test kills it; here it is the long-lived process
/// whose memory and descriptors must stay flat), workers killed and paused.
/// Asserts 0 innocent failures, 0 duplicates, and the master (and every
/// worker process that lived through the second half) within 10% from
/// just after warm-up (the first fifth) to the end: the mean of the last
/// tenth of its readings against that of the first tenth after warm-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: TESSERA_SOAK_SECS=1800 cargo test --release -p tessera-tests --test chaos soak -- --ignored --nocapture"]
async fn soak() {
    let secs: u64 = std::env::var("TESSERA_SOAK_SECS")
        .map(|s| s.parse().expect("TESSERA_SOAK_SECS: seconds"))
        .unwrap_or(120);
    let total = Duration::from_secs(secs);
    let seed: u64 = std::env::var("TESSERA_CHAOS_SEED")
        .map(|s| s.parse().expect("TESSERA_CHAOS_SEED: a number"))
        .unwrap_or(1);
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("soak-{}", std::process::id());
    let data_fs = Tmpfs::mount(DATA_FS);
    let mut cluster = Cluster::start(
        NODE,
        &data_fs.path().join("data"),
        &name,
        &master_args(),
        &worker_specs(),
        false,
    )
    .await;
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    sample_all(&mut cluster, start, &mut samples);
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    let (mut images, mut innocent_failures, mut duplicates) = (0usize, 0usize, 0usize);
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    let mut first_task = 1u64;
    let mut rounds = 0;
    while start.elapsed() < total {
        rounds += 1;
        let dir = tmp.path().join(format!("round-{rounds}"));
        let corpus = Corpus::build(&dir.join("in"), &format!("r{rounds}"));
        let out_dir = dir.join("out");
        let mut log = FaultLog::default();
        let result = round(
            &mut cluster,
            CLIENT,
            &mix(0, false, &data_fs),
            &mut rng,
            &corpus,
            &out_dir,
            BATCH_DEADLINE,
            &mut log,
            &mut counts,
            &mut |c| {
                if Instant::now() >= next_sample {
                    next_sample += SAMPLE_EVERY;
                    sample_all(c, start, &mut samples);
                }
            },
        )
        .await;
        let n = corpus.innocent.len() as u64 + 1;
        let mut v = match &result {
            Ok(out) => judge(out, &corpus.expected(&out_dir)),
            Err(e) => Verdict {
                problems: vec![e.clone()],
                ..Verdict::default()
            },
        };
        first_task = check_master_tasks(&cluster, first_task, n, &mut v).await;
        images += n as usize;
        innocent_failures += v.innocent_failures.len();
        duplicates += v.duplicates;
        println!(
            "{{\"bench\":\"soak\",\"case\":\"round\",\"round\":{rounds},\"t_s\":{:.0},\"images\":{n},\"innocent_failures\":{},\"duplicates\":{},\"problems\":{}}}",
            start.elapsed().as_secs_f64(),
            v.innocent_failures.len(),
            v.duplicates,
            v.problems.len()
        );
        if !v.ok() {
            problems.push(format!(
                "round {rounds}:\n  {}\nfault log:\n{}",
                v.problems.join("\n  "),
                log.render()
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    sample_all(&mut cluster, start, &mut samples);

    // Flat after warm-up: each process with readings over the second half.
    let warm_up = total / 5;
    let mut by_proc: BTreeMap<(String, u32), Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_proc.entry((s.name.clone(), s.pid)).or_default().push(s);
    }
    let end = samples.last().unwrap().at;
    let mut growth_problems = Vec::new();
    for ((name, pid), ss) in &by_proc {
        let lived_long = ss[0].at <= warm_up && ss.last().unwrap().at >= end.mul_f64(0.9);
        // A reading swings by 10-20% with the images in flight: compare the
        // means of the first and the last tenth of the readings after
        // warm-up (at least two each), not single readings.
        let window = (ss.iter().filter(|s| s.at >= warm_up).count() / 10).max(2);
        let Some((rss, fds)) = procstat::growth(ss, warm_up, window) else {
            continue;
        };
        let (first, last) = (
            ss.iter().find(|s| s.at >= warm_up).unwrap(),
            ss.last().unwrap(),
        );
        println!(
            "{{\"bench\":\"soak\",\"case\":\"process\",\"process\":\"{name}\",\"pid\":{pid},\"lived_through\":{lived_long},\"rss_kib_start\":{},\"rss_kib_end\":{},\"rss_growth\":{rss:.3},\"fds_start\":{},\"fds_end\":{},\"fds_growth\":{fds:.3}}}",
            first.rss_kib, last.rss_kib, first.fds, last.fds
        );
        if lived_long && (rss > 1.10 || fds > 1.10) {
            growth_problems.push(format!(
                "{name} (pid {pid}) grew after warm-up: RSS x{rss:.3} ({} -> {} KiB), fds x{fds:.3} ({} -> {})",
                first.rss_kib, last.rss_kib, first.fds, last.fds
            ));
        }
    }
    println!(
        "{{\"bench\":\"soak\",\"case\":\"summary\",\"seconds\":{:.0},\"rounds\":{rounds},\"images\":{images},\"worker_kills\":{},\"worker_pauses\":{},\"master_pauses\":{},\"disk_fills\":{},\"poison_deaths\":{},\"innocent_failures\":{innocent_failures},\"duplicates\":{duplicates}}}",
        start.elapsed().as_secs_f64(),
        counts.worker_kills,
        counts.worker_pauses,
        counts.master_pauses,
        counts.disk_fills,
        counts.other_deaths
    );
    assert!(
        by_proc.keys().any(|(n, _)| n == "master-0"),
        "the master was never sampled"
    );
    assert!(
        problems.is_empty() && growth_problems.is_empty(),
        "{}\n{}",
        growth_problems.join("\n"),
        problems.join("\n\n")
    );
    assert_eq!(innocent_failures, 0);
    assert_eq!(duplicates, 0);
}
