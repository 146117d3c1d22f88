//! The chaos mix (issue 13): a batch of real images and one poison image run
//! by `tessera run` through a master and several workers, while faults drawn
//! from a seeded RNG hit them for the whole batch: workers SIGKILLed (the
//! supervisor restarts them), workers SIGSTOPped past their lease and
//! resumed, the master SIGKILLed and started again on its data directory,
//! the master SIGSTOPped past its workers' patience and resumed, the
//! master's disk filled up for a while (with [`Mix::fill`]).
//! Everything injected is written to a [`FaultLog`] with its time, so a
//! failing seed can be read and replayed.

use std::{
    fmt::Display,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rand::{Rng, rngs::StdRng};

use crate::{
    photos,
    run::{Expected, Run, RunOutput},
    supervisor::{Locate, Master, WorkerSpec, Workers},
    tmpfs::Ballast,
    valid_pngsuite,
};

/// What the poison's file name contains: every chaos worker runs with
/// `--test-crash-on poison`.
pub const POISON: &str = "poison";

/// The images of a batch, copied into a directory of their own.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub dir: PathBuf,
    /// Paths relative to `dir`.
    pub innocent: Vec<PathBuf>,
    pub poison: PathBuf,
}

impl Corpus {
    /// 330 real images and the poison, under `dir/<tag>/`: the valid
    /// PngSuite twice (in `a/` and `b/`: distinct names, so distinct tasks)
    /// and the Kodak photos twice (`p/`, `q/`); the poison is a copy of a
    /// photo named `a0-poison.png`. A batch run again needs a new `tag`: a
    /// failed task keeps its idempotency key, so the same name and content
    /// would be answered with the old failure (a confirmed result frees its
    /// key, a failure does not).
    pub fn build(dir: &Path, tag: &str) -> Corpus {
        let root = Path::new(tag);
        let mut innocent = Vec::new();
        let mut add = |sub: &str, files: &[PathBuf]| {
            std::fs::create_dir_all(dir.join(root).join(sub)).unwrap();
            for f in files {
                let rel = root.join(sub).join(f.file_name().unwrap());
                std::fs::copy(f, dir.join(&rel)).unwrap();
                innocent.push(rel);
            }
        };
        let suite = valid_pngsuite();
        let photos = photos();
        add("a", &suite);
        add("b", &suite);
        add("p", &photos);
        add("q", &photos);
        let poison = root.join(format!("a0-{POISON}.png"));
        std::fs::copy(&photos[0], dir.join(&poison)).unwrap();
        assert!(innocent.len() >= 300, "{} images", innocent.len());
        Corpus {
            dir: dir.into(),
            innocent,
            poison,
        }
    }

    /// What `tessera run` over `dir` into `out` must come to.
    pub fn expected(&self, out: &Path) -> Expected {
        Expected {
            input_dir: self.dir.clone(),
            output_dir: out.into(),
            innocent: self.innocent.clone(),
            poison: Some(self.poison.clone()),
        }
    }
}

/// What was injected when, for the failure message.
#[derive(Debug)]
pub struct FaultLog {
    start: Instant,
    pub lines: Vec<String>,
}

impl Default for FaultLog {
    fn default() -> Self {
        FaultLog {
            start: Instant::now(),
            lines: Vec::new(),
        }
    }
}

impl FaultLog {
    pub fn note(&mut self, what: impl Display) {
        let line = format!("+{:8.3}s  {what}", self.start.elapsed().as_secs_f64());
        self.lines.push(line);
    }

    pub fn render(&self) -> String {
        self.lines.join("\n")
    }
}

/// Faults injected, and deaths nobody injected (the poison's).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub worker_kills: usize,
    pub worker_pauses: usize,
    pub master_kills: usize,
    /// Master SIGSTOPs (each for 1.5 to 3 lease timeouts: its workers give
    /// it up and come back).
    pub master_pauses: usize,
    /// Master restarts on a port other than the one before.
    pub master_new_port: usize,
    /// Times the master's disk was filled up (then given room again).
    pub disk_fills: usize,
    /// Workers that died of something other than our SIGKILL.
    pub other_deaths: usize,
}

/// How hard to hit.
#[derive(Debug, Clone)]
pub struct Mix {
    /// The master's `--lease-timeout`: pauses last 1.5 to 3 times it.
    pub lease_timeout: Duration,
    /// Time between two worker faults: uniform in this range.
    pub gap: (Duration, Duration),
    /// Of the worker faults, the share that are SIGKILLs (the rest SIGSTOPs).
    pub kill_share: f64,
    /// At most this many workers paused at once.
    pub max_paused: usize,
    /// Master SIGKILLs per batch, at progress points drawn from the RNG.
    pub master_kills: usize,
    /// Master SIGSTOPs per batch, at progress points drawn from the RNG,
    /// each for 1.5 to 3 lease timeouts.
    pub master_pauses: usize,
    /// Restart the master on a new port the first time and on a new or
    /// the same port at random after that (everyone finds it by mDNS);
    /// otherwise always on the port it had.
    pub new_port: bool,
    /// A directory on the master's own small file system (its data
    /// directory's), to fill up now and then for [`DISK_FULL_FOR`], every
    /// [`DISK_FULL_GAP`]: the master's disk running out of room.
    pub fill: Option<PathBuf>,
}

/// How long the master's disk stays full, when [`Mix::fill`] is given.
pub const DISK_FULL_FOR: (Duration, Duration) =
    (Duration::from_millis(300), Duration::from_millis(2000));
/// Time from the master's disk having room again to its filling up next.
pub const DISK_FULL_GAP: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(6));

/// A master and its supervised workers.
#[derive(Debug)]
pub struct Cluster {
    pub master: Master,
    pub workers: Workers,
    /// How workers and the client find the master.
    pub locate: Locate,
}

impl Cluster {
    /// Starts a master (data in `data`, `master_extra` options) and one
    /// supervised worker per spec. With `mdns`, the master advertises itself
    /// as the cluster `name` and everyone finds it by mDNS (so it may move
    /// to another port); otherwise everyone is given its address.
    pub async fn start(
        node: &str,
        data: &Path,
        name: &str,
        master_extra: &[&str],
        specs: &[WorkerSpec],
        mdns: bool,
    ) -> Cluster {
        let cluster = mdns.then_some(name);
        let master = Master::start(node, data, "127.0.0.1:0", master_extra, cluster).await;
        let locate = match cluster {
            Some(c) => Locate::Cluster(c.into()),
            None => Locate::Addr(master.addr.clone()),
        };
        let workers = Workers::start(node, &master.key_file(), locate.clone(), specs);
        Cluster {
            master,
            workers,
            locate,
        }
    }
}

fn between(rng: &mut StdRng, (lo, hi): (Duration, Duration)) -> Duration {
    lo + (hi - lo).mul_f64(rng.random::<f64>())
}

/// Runs `tessera run` over `corpus` into `out` (within `deadline`) while
/// `mix`'s faults, drawn from `rng`, hit `cluster`; logs every fault and
/// death in `log` and counts them in `counts`. `tick` is called every 10 ms
/// (the soak samples memory there).
#[allow(clippy::too_many_arguments)]
pub async fn round(
    cluster: &mut Cluster,
    client_bin: &str,
    mix: &Mix,
    rng: &mut StdRng,
    corpus: &Corpus,
    out: &Path,
    deadline: Duration,
    log: &mut FaultLog,
    counts: &mut Counts,
    tick: &mut dyn FnMut(&mut Cluster),
) -> Result<RunOutput, String> {
    assert!(
        !mix.new_port || matches!(cluster.locate, Locate::Cluster(_)),
        "a master on a new port is found only by mDNS"
    );
    let total = corpus.innocent.len() + 1;
    let mut master_kill_at: Vec<usize> = (0..mix.master_kills)
        .map(|_| rng.random_range(total / 10..total * 9 / 10))
        .collect();
    master_kill_at.sort_unstable();
    master_kill_at.reverse();
    let mut master_pause_at: Vec<usize> = (0..mix.master_pauses)
        .map(|_| rng.random_range(total / 10..total * 9 / 10))
        .collect();
    master_pause_at.sort_unstable();
    master_pause_at.reverse();
    // The master is stopped until then.
    let mut master_resume_at: Option<Instant> = None;
    let key = cluster.master.key_file();
    let mut run = Run::start(client_bin, &key, &cluster.locate, &corpus.dir, out, &[]);
    log.note(format!(
        "tessera run started: {total} images, master kills after {:?} images, master pauses after {:?}",
        master_kill_at.iter().rev().collect::<Vec<_>>(),
        master_pause_at.iter().rev().collect::<Vec<_>>()
    ));
    let started = Instant::now();
    let slots = cluster.workers.slots.len();
    let mut resume_at: Vec<Option<Instant>> = vec![None; slots];
    let mut next_fault = Instant::now() + between(rng, mix.gap);
    // The master's disk: full until the instant, or when to fill it next.
    let mut full: Option<(Instant, Ballast)> = None;
    let mut next_fill = mix
        .fill
        .as_ref()
        .map(|_| Instant::now() + between(rng, DISK_FULL_GAP));
    loop {
        if let Some(status) = run.try_exit() {
            log.note(format!("tessera run exited: {status}"));
            break;
        }
        if started.elapsed() > deadline {
            drop(full.take());
            let n = run.reported();
            log.note("deadline: tessera run still running; killed it");
            resume_master(cluster, &mut master_resume_at, log);
            cluster.workers.resume_all();
            run.proc.signal("KILL");
            return Err(format!(
                "tessera run did not end within {deadline:?} ({n} of {total} images reported)"
            ));
        }
        for d in cluster.workers.reap() {
            let injected = d.status.signal() == Some(SIGKILL);
            if !injected {
                counts.other_deaths += 1;
            }
            resume_at[d.slot] = None;
            log.note(format!(
                "{} died ({}{}); restarted as {}",
                d.name,
                d.status,
                if injected { "" } else { ", not injected" },
                cluster.workers.slots[d.slot].name()
            ));
        }
        let now = Instant::now();
        for (i, at) in resume_at.iter_mut().enumerate() {
            if at.is_some_and(|t| now >= t) {
                *at = None;
                cluster.workers.resume(i);
                log.note(format!("SIGCONT {}", cluster.workers.slots[i].name()));
            }
        }
        if full.as_ref().is_some_and(|(until, _)| now >= *until) {
            full = None;
            log.note("room again on the master's disk");
        }
        if let (Some(dir), Some(at)) = (&mix.fill, next_fill)
            && now >= at
            && full.is_none()
        {
            let lasts = between(rng, DISK_FULL_FOR);
            full = Some((now + lasts, Ballast::fill(dir, "ballast")));
            next_fill = Some(now + lasts + between(rng, DISK_FULL_GAP));
            counts.disk_fills += 1;
            log.note(format!("the master's disk full for {lasts:.2?}"));
        }
        if master_resume_at.is_some_and(|t| now >= t) {
            resume_master(cluster, &mut master_resume_at, log);
        }
        if master_pause_at.last().is_some_and(|&n| run.reported() >= n)
            && master_resume_at.is_none()
        {
            master_pause_at.pop();
            let pause = mix.lease_timeout.mul_f64(rng.random_range(1.5..3.0));
            cluster.master.proc.signal("STOP");
            master_resume_at = Some(now + pause);
            counts.master_pauses += 1;
            log.note(format!("SIGSTOP master for {pause:.2?}"));
        }
        if master_kill_at.last().is_some_and(|&n| run.reported() >= n) {
            master_kill_at.pop();
            resume_master(cluster, &mut master_resume_at, log);
            // A master may not start on a full disk (opening its record
            // writes to it): room first, as an operator would make it.
            if full.take().is_some() {
                log.note("room again on the master's disk");
            }
            kill_master(cluster, mix, rng, log, counts).await;
        }
        if now >= next_fault {
            next_fault = now + between(rng, mix.gap);
            let live: Vec<usize> = (0..slots).filter(|&i| resume_at[i].is_none()).collect();
            let paused = slots - live.len();
            if !live.is_empty() {
                let i = live[rng.random_range(0..live.len())];
                let name = cluster.workers.slots[i].name();
                if paused >= mix.max_paused || rng.random_bool(mix.kill_share) {
                    cluster.workers.kill(i);
                    counts.worker_kills += 1;
                    log.note(format!("SIGKILL {name}"));
                } else {
                    let pause = mix.lease_timeout.mul_f64(rng.random_range(1.5..3.0));
                    cluster.workers.pause(i);
                    resume_at[i] = Some(now + pause);
                    counts.worker_pauses += 1;
                    log.note(format!("SIGSTOP {name} for {pause:.2?}"));
                }
            }
        }
        tick(cluster);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    resume_master(cluster, &mut master_resume_at, log);
    cluster.workers.resume_all();
    drop(full);
    run.finish(Duration::from_secs(10)).await
}

/// SIGCONTs the master if it is stopped.
fn resume_master(cluster: &mut Cluster, stopped_until: &mut Option<Instant>, log: &mut FaultLog) {
    if stopped_until.take().is_some() {
        cluster.master.proc.signal("CONT");
        log.note("SIGCONT master");
    }
}

/// SIGKILL's number (9 on every Linux architecture).
const SIGKILL: i32 = 9;

async fn kill_master(
    cluster: &mut Cluster,
    mix: &Mix,
    rng: &mut StdRng,
    log: &mut FaultLog,
    counts: &mut Counts,
) {
    let old = cluster.master.addr.clone();
    cluster.master.kill().await;
    counts.master_kills += 1;
    log.note(format!("SIGKILL master at {old}"));
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
    let move_it = mix.new_port && (counts.master_new_port == 0 || rng.random_bool(0.5));
    let listen = if move_it {
        "127.0.0.1:0".to_string()
    } else {
        old.clone()
    };
    cluster.master.restart_on(&listen).await;
    let new = cluster.master.addr.clone();
    if new != old {
        counts.master_new_port += 1;
    }
    log.note(format!("master restarted on its data directory at {new}"));
}
