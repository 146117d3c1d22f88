//! The master's task bookkeeping and scheduling decisions, as a plain state
//! machine: no I/O, no runtime, and time only as an injected `now`. Every
//! method is a decision over the current state, so it is unit- and
//! property-testable without sleeps.
//!
//! A task is `Queued` → `Leased` → `Done` | `Failed`. A lease names the
//! worker, the attempt (a fencing token, new for every hand-out) and a
//! deadline; heartbeats push the deadline out ([`lease`]). A worker asks for
//! work by granting credits; [`Scheduler::dispatch`] pairs queued tasks with
//! credits. Idle workers take unstarted tasks from busy ones ([`steal`]).
//!
//! Who is to blame when an attempt is lost, and what it costs the task, is
//! decided in [`blame`]; a task under suspicion runs alone (`dispatch`);
//! a worker whose lease expired gets nothing until it shows life
//! ([`lease`]); a straggler gets a backup attempt ([`straggler`]).
//!
//! Invariants (checked by the property tests): a task has at most one live
//! lease; a decided task never changes; a worker's lease set and the tasks'
//! phases agree; no task fails for a loss that did not point at it.

pub mod archive;
pub mod background;
pub mod blame;
pub mod cancel;
mod dispatch;
pub mod durable;
mod invariants;
pub mod lease;
mod query;
pub mod rate;
mod results;
pub mod snapshot;
pub mod steal;
pub mod straggler;
mod workers;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use tessera_proto::{FailureKind, TaskEvent, TaskId};

/// A worker connection's id on this master (never reused while it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub u64);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// One hand-out of a task to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub task: TaskId,
    pub attempt: u32,
    pub name: String,
    pub input_len: u64,
    /// The input's checksum, for the worker to verify.
    pub checksum: u64,
}

/// What became of a report from a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It decided the task: the task is now done or failed.
    Accepted,
    /// The task was already decided, or this attempt is not the one that may
    /// decide it: the report is discarded and changes nothing.
    Stale,
    /// No such task.
    Unknown,
}

/// A live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub worker: WorkerId,
    pub attempt: u32,
    pub deadline: Instant,
    /// The worker said it began processing (it will not give the task back).
    pub started: bool,
    /// A `Release` was sent to the worker and is unanswered.
    pub releasing: bool,
    /// When it was handed out.
    pub leased_at: Instant,
    /// When the worker said it began processing.
    pub started_at: Option<Instant>,
    /// The task is under suspicion and was handed out to run alone: on a
    /// worker of more than one thread, nothing else is handed to that worker
    /// while it holds this lease (`dispatch`).
    pub isolated: bool,
}

/// An attempt that still runs after a backup attempt took its lease (see
/// [`straggler`]): its result is as good as the backup's, whichever comes
/// first, and its heartbeats are not answered with `Drop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shadow {
    pub worker: WorkerId,
    pub attempt: u32,
}

#[derive(Debug, Clone)]
enum Phase {
    Queued,
    Leased(Lease),
    Done {
        output_len: u64,
        output_checksum: u64,
        attempt: u32,
        done_ms: u64,
        /// The result's files are gone (download confirmed, or retention over).
        removed: bool,
    },
    Failed {
        kind: FailureKind,
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Task {
    name: String,
    input_len: u64,
    input_checksum: u64,
    key: u128,
    submitted_ms: u64,
    phase: Phase,
    /// Hand-outs so far; the next lease gets `attempts + 1` as its token.
    attempts: u32,
    /// Attempts that ended because the worker died or its lease expired,
    /// whatever the cause (see [`blame`]).
    lost: u32,
    /// Lost attempts that cast suspicion on the image: it was executing
    /// when its worker died. A task with a strike runs alone from then on.
    strikes: u32,
    /// Milliseconds its attempts ran on workers (from `Started` to their
    /// end): how long a worker's death could have struck it.
    exposure_ms: u64,
    /// Lost attempts that point at this image alone: its worker died while
    /// it was the only image executing there, or it ran past the task
    /// timeout. At `max_attempts` of these the task fails.
    evidence: u32,
    /// The straggling attempt that a backup attempt replaced, while it runs.
    shadow: Option<Shadow>,
    /// Workers on which an attempt of this task ran past the task timeout
    /// (this run of the master): retried elsewhere if possible, and a second
    /// timeout on the same worker blames the worker, not the image.
    timed_out_on: Vec<WorkerId>,
    /// How earlier attempts ended, for the failure reason.
    history: Vec<String>,
    /// The name of the worker that last held the task (or produced its result).
    last_worker: Option<Arc<str>>,
    /// Who was told `Submitted` for it; see `durable.rs`.
    submitters: Vec<crate::master::record::Submitter>,
}

#[derive(Debug, Clone)]
struct WorkerSlot {
    name: Arc<str>,
    /// Images it processes at once.
    threads: u32,
    credits: u32,
    leases: BTreeSet<TaskId>,
    /// Tasks whose straggling attempt still runs here after a backup took
    /// the lease (counted as busy threads while the task is undecided).
    shadows: BTreeSet<TaskId>,
    draining: bool,
    /// A lease of this worker expired: it is paused, cut off or overloaded.
    /// It is offered nothing until it shows life again (any frame).
    silent: bool,
    /// What the live view shows about it (`snapshot.rs`).
    stats: snapshot::WorkerStats,
}

/// Scheduling settings.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Lost attempts pointing at the image alone (see [`blame`]) before the
    /// task fails as [`FailureKind::Crashes`] or [`FailureKind::TimedOut`].
    pub max_attempts: u32,
    /// Lost attempts with no evidence against the image (worker paused,
    /// cut off, killed while the image waited or ran beside others) before
    /// the task fails as [`FailureKind::WorkerLost`]: a bound for a cluster
    /// that keeps breaking, far above anything a working one produces.
    pub max_lost: u32,
    /// A started attempt that runs this long on a worker whose heartbeats
    /// keep coming is taken back and counts as evidence (start-to-close).
    pub task_timeout: Duration,
    /// Backup attempts for stragglers.
    pub backup: straggler::BackupConfig,
    /// Most credits one worker may hold (bounds its assignment queue).
    pub max_credits: u32,
    /// A lease not covered by a heartbeat for this long expires.
    pub lease_timeout: Duration,
    /// Whether idle workers take unstarted tasks from busy ones.
    pub stealing: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_attempts: 3,
            max_lost: 50,
            max_credits: 256,
            lease_timeout: Duration::from_secs(10),
            task_timeout: Duration::from_secs(600),
            backup: straggler::BackupConfig::default(),
            stealing: true,
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    tasks: BTreeMap<TaskId, Task>,
    queue: VecDeque<TaskId>,
    workers: BTreeMap<WorkerId, WorkerSlot>,
    next_task: u64,
    /// Idempotency keys of the tasks that exist.
    by_key: HashMap<u128, TaskId>,
    /// What happened since the last [`Scheduler::take_events`], in order.
    events: Vec<(TaskId, TaskEvent)>,
    /// The wall clock (ms since the Unix epoch) to stamp results with; set by
    /// the caller before each operation, like `now`.
    wall_ms: u64,
    /// Completions over the last minute, for the live view.
    recent: rate::Recent,
    /// A worker of several threads kept free of new work so that a task
    /// under suspicion can run there alone ([`dispatch`]).
    reserved: Option<WorkerId>,
    /// How long recent tasks took, by size, to tell stragglers.
    durations: straggler::Durations,
    /// Tasks at rest, in the record only ([`archive`]).
    archived: archive::Archived,
    /// Tasks deleted so far ([`Scheduler::deletions`]).
    deletions: u64,
    /// What recently decided innocent tasks went through: the background
    /// deaths alone are weighed against ([`background`]).
    background: background::Background,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            tasks: BTreeMap::new(),
            queue: VecDeque::new(),
            workers: BTreeMap::new(),
            next_task: 1,
            by_key: HashMap::new(),
            events: Vec::new(),
            wall_ms: 0,
            recent: rate::Recent::default(),
            reserved: None,
            durations: straggler::Durations::default(),
            archived: archive::Archived::default(),
            deletions: 0,
            background: background::Background::default(),
        }
    }

    /// Accepts a stored image as a new queued task (tests: no checksum, a
    /// key derived from the id).
    pub fn submit(&mut self, name: String, input_len: u64) -> TaskId {
        let id = self.reserve_id();
        self.submit_reserved(id, name, input_len, 0, u128::from(id.0));
        id
    }

    /// Takes a fresh task id, to name the image's file before the task exists.
    pub fn reserve_id(&mut self) -> TaskId {
        let id = TaskId(self.next_task);
        self.next_task += 1;
        id
    }

    /// Queues a task under an id from [`Self::reserve_id`].
    pub fn submit_reserved(
        &mut self,
        id: TaskId,
        name: String,
        input_len: u64,
        input_checksum: u64,
        key: u128,
    ) {
        self.events.push((
            id,
            TaskEvent::Submitted {
                name: name.clone(),
                len: input_len,
                checksum: input_checksum,
            },
        ));
        self.by_key.insert(key, id);
        let task = Task {
            name,
            input_len,
            input_checksum,
            key,
            submitted_ms: self.wall_ms,
            phase: Phase::Queued,
            attempts: 0,
            lost: 0,
            strikes: 0,
            exposure_ms: 0,
            evidence: 0,
            shadow: None,
            timed_out_on: Vec::new(),
            history: Vec::new(),
            last_worker: None,
            submitters: Vec::new(),
        };
        self.tasks.insert(id, task);
        self.queue.push_back(id);
    }

    /// Leases of `slot` whose task the worker has not started.
    fn unstarted(&self, slot: &WorkerSlot) -> usize {
        slot.leases
            .iter()
            .filter(|t| self.live_lease(**t).is_some_and(|l| !l.started))
            .count()
    }

    /// Images executing on `slot` as far as the master knows: its started
    /// leases and its straggling attempts that a backup replaced.
    fn executing(&self, worker: WorkerId, slot: &WorkerSlot) -> usize {
        let started = slot
            .leases
            .iter()
            .filter(|t| self.live_lease(**t).is_some_and(|l| l.started))
            .count();
        started + self.shadows_of(worker, slot)
    }

    /// `slot`'s straggling attempts whose task is still undecided.
    fn shadows_of(&self, worker: WorkerId, slot: &WorkerSlot) -> usize {
        slot.shadows
            .iter()
            .filter(|t| {
                // Queued too: the backup's worker may have died, and the
                // straggling attempt still runs here until the task is decided.
                self.tasks.get(t).is_some_and(|task| {
                    matches!(task.phase, Phase::Queued | Phase::Leased(_))
                        && task.shadow.is_some_and(|s| s.worker == worker)
                })
            })
            .count()
    }

    /// The worker may be offered work: it is connected, not draining, and not
    /// silent.
    fn available(slot: &WorkerSlot) -> bool {
        !slot.draining && !slot.silent
    }

    /// A worker of several threads that holds a lease of a task under
    /// suspicion: it gets nothing else until that lease ends.
    fn isolating(&self, slot: &WorkerSlot) -> bool {
        slot.threads > 1
            && slot
                .leases
                .iter()
                .any(|t| self.live_lease(*t).is_some_and(|l| l.isolated))
    }

    /// Threads of `worker` with nothing to do: available, not isolating or
    /// reserved, nothing waiting unstarted, fewer tasks executing than threads.
    fn idle_threads(&self, worker: WorkerId, slot: &WorkerSlot) -> u32 {
        if !Self::available(slot)
            || slot.credits == 0
            || self.unstarted(slot) > 0
            || self.isolating(slot)
            || self.reserved == Some(worker)
        {
            return 0;
        }
        let busy = (slot.leases.len() + self.shadows_of(worker, slot)) as u32;
        slot.threads.saturating_sub(busy).min(slot.credits)
    }

    fn live_lease(&self, task: TaskId) -> Option<&Lease> {
        match &self.tasks.get(&task)?.phase {
            Phase::Leased(l) => Some(l),
            _ => None,
        }
    }

    /// The live lease of `task` if it is exactly (`worker`, `attempt`).
    fn lease_mut(&mut self, worker: WorkerId, task: TaskId, attempt: u32) -> Option<&mut Lease> {
        match &mut self.tasks.get_mut(&task)?.phase {
            Phase::Leased(l) if l.worker == worker && l.attempt == attempt => Some(l),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
