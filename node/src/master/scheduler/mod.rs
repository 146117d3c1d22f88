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
//! Invariants (checked by the property tests): a task has at most one live
//! lease; a decided task never changes; a worker's lease set and the tasks'
//! phases agree.

pub mod cancel;
pub mod durable;
pub mod lease;
mod query;
pub mod rate;
mod results;
pub mod snapshot;
pub mod steal;
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
    /// Attempts that ended because the worker died or its lease expired.
    lost: u32,
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
    draining: bool,
    /// What the live view shows about it (`snapshot.rs`).
    stats: snapshot::WorkerStats,
}

/// Scheduling settings.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Attempts that may end by worker death or lease expiry before the task
    /// fails with [`FailureKind::WorkerLost`].
    pub max_attempts: u32,
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
            max_credits: 256,
            lease_timeout: Duration::from_secs(10),
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
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
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
            history: Vec::new(),
            last_worker: None,
            submitters: Vec::new(),
        };
        self.tasks.insert(id, task);
        self.queue.push_back(id);
    }

    /// Ends the live lease of `task_id` as lost (worker death or expiry): the
    /// task goes to the front of the queue, or fails when out of attempts.
    /// Returns true when it failed. The caller removes it from the worker's set.
    fn end_lease(&mut self, task_id: TaskId, worker_name: &str, why: &str) -> bool {
        let max = self.config.max_attempts;
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return false;
        };
        let Phase::Leased(lease) = &task.phase else {
            return false;
        };
        let attempt = lease.attempt;
        task.history
            .push(format!("attempt {attempt} on {worker_name}: {why}"));
        task.lost += 1;
        let worker = worker_name.to_string();
        self.events.push((
            task_id,
            TaskEvent::Lost {
                attempt,
                worker,
                why: why.to_string(),
            },
        ));
        if task.lost >= max {
            let reason = format!(
                "gave up after {} attempts ended without a result ({})",
                task.lost,
                task.history.join("; ")
            );
            let kind = FailureKind::WorkerLost;
            let worker = worker_name.to_string();
            let failed = TaskEvent::Failed {
                attempt,
                worker,
                kind,
                reason: reason.clone(),
                duration_ms: 0,
            };
            self.events.push((task_id, failed));
            task.phase = Phase::Failed { kind, reason };
            true
        } else {
            task.phase = Phase::Queued;
            self.queue.push_front(task_id);
            false
        }
    }

    /// Pairs queued tasks with worker credits, oldest task first, each to the
    /// worker with the most credits not already spoken for by tasks waiting
    /// there unstarted (ties: lowest id).
    pub fn dispatch(&mut self, now: Instant) -> Vec<(WorkerId, Assignment)> {
        let mut out = Vec::new();
        while !self.queue.is_empty() {
            let Some(worker) = self.best_worker() else {
                break;
            };
            let Some(task_id) = self.queue.pop_front() else {
                break;
            };
            let deadline = now + self.config.lease_timeout;
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if !matches!(task.phase, Phase::Queued) {
                continue;
            }
            task.attempts += 1;
            task.last_worker = self.workers.get(&worker).map(|s| s.name.clone());
            let attempt = task.attempts;
            task.phase = Phase::Leased(Lease {
                worker,
                attempt,
                deadline,
                started: false,
                releasing: false,
                leased_at: now,
            });
            let slot = self.workers.get_mut(&worker).expect("chosen from workers");
            slot.credits -= 1;
            slot.leases.insert(task_id);
            let leased = TaskEvent::Leased {
                attempt,
                worker: slot.name.to_string(),
            };
            self.events.push((task_id, leased));
            let assignment = Assignment {
                task: task_id,
                attempt,
                name: task.name.clone(),
                input_len: task.input_len,
                checksum: task.input_checksum,
            };
            out.push((worker, assignment));
        }
        out
    }

    fn best_worker(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, s)| s.credits > 0 && !s.draining)
            .map(|(id, s)| (i64::from(s.credits) - self.unstarted(s) as i64, *id))
            .max_by(|(a, ia), (b, ib)| a.cmp(b).then(ib.cmp(ia)))
            .map(|(_, id)| id)
    }

    /// Leases of `slot` whose task the worker has not started.
    fn unstarted(&self, slot: &WorkerSlot) -> usize {
        slot.leases
            .iter()
            .filter(|t| self.live_lease(**t).is_some_and(|l| !l.started))
            .count()
    }

    /// Threads of `slot` with nothing to do: not draining, nothing waiting
    /// unstarted, fewer tasks started than threads.
    fn idle_threads(&self, slot: &WorkerSlot) -> u32 {
        if slot.draining || slot.credits == 0 || self.unstarted(slot) > 0 {
            return 0;
        }
        let started = slot.leases.len() as u32;
        slot.threads.saturating_sub(started).min(slot.credits)
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
