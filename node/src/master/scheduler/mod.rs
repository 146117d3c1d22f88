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
pub mod rate;
pub mod snapshot;
pub mod steal;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use tessera_proto::{FailureKind, TaskEvent, TaskId, TaskInfo, TaskState};

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
        };
        self.tasks.insert(id, task);
        self.queue.push_back(id);
    }

    pub fn worker_joined(&mut self, worker: WorkerId, name: String) {
        let slot = WorkerSlot {
            name: name.into(),
            threads: 1,
            credits: 0,
            leases: BTreeSet::new(),
            draining: false,
            stats: Default::default(),
        };
        self.workers.entry(worker).or_insert(slot);
    }

    /// The worker processes `threads` images at once.
    pub fn worker_capacity(&mut self, worker: WorkerId, threads: u32) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.threads = threads.max(1);
        }
    }

    /// The worker can take `credits` more tasks. Returns false for an unknown
    /// worker. A draining worker gets nothing more.
    pub fn worker_ready(&mut self, worker: WorkerId, credits: u32) -> bool {
        let max = self.config.max_credits;
        match self.workers.get_mut(&worker) {
            Some(slot) => {
                if !slot.draining {
                    slot.credits = slot.credits.saturating_add(credits).min(max);
                }
                true
            }
            None => false,
        }
    }

    /// The worker is shutting down: no more assignments for it.
    pub fn worker_draining(&mut self, worker: WorkerId) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.draining = true;
            slot.credits = 0;
        }
    }

    /// The worker's connection is gone: every lease it held ends at once.
    /// Returns the tasks that failed for good (out of attempts).
    pub fn worker_lost(&mut self, worker: WorkerId, why: &str) -> Vec<TaskId> {
        let Some(slot) = self.workers.remove(&worker) else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        // Requeue newest first at the front, so the oldest ends up first in line.
        for task_id in slot.leases.into_iter().rev() {
            if self.end_lease(task_id, &slot.name, why) {
                failed.push(task_id);
            }
        }
        failed
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

    /// The master could not store the result of (`task`, `attempt`): the
    /// task is queued again without counting the attempt as lost, whoever
    /// holds it now. False when the task is already decided.
    pub fn not_stored(
        &mut self,
        worker: WorkerId,
        task_id: TaskId,
        attempt: u32,
        why: &str,
    ) -> bool {
        let Some(task) = self.tasks.get(&task_id) else {
            return false;
        };
        match &task.phase {
            Phase::Leased(l) => {
                let holder = l.worker;
                let name = self
                    .workers
                    .get(&worker)
                    .map_or_else(|| worker.to_string(), |s| s.name.to_string());
                let event = TaskEvent::Lost {
                    attempt,
                    worker: name,
                    why: format!("result not stored: {why}"),
                };
                self.events.push((task_id, event));
                self.requeue_front(holder, task_id);
                true
            }
            Phase::Queued => true,
            _ => false,
        }
    }

    /// An assignment never reached its worker (its connection closed first):
    /// the task goes back to the front of the queue without losing an attempt.
    pub fn undeliverable(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) {
        if self.lease_mut(worker, task_id, attempt).is_some() {
            self.requeue_front(worker, task_id);
        }
    }

    fn requeue_front(&mut self, worker: WorkerId, task_id: TaskId) {
        let name = self.workers.get_mut(&worker).map(|slot| {
            slot.leases.remove(&task_id);
            slot.name.to_string()
        });
        if let Some(task) = self.tasks.get_mut(&task_id) {
            if let Phase::Leased(l) = &task.phase {
                let worker = name.unwrap_or_else(|| worker.to_string());
                self.events.push((
                    task_id,
                    TaskEvent::Released {
                        attempt: l.attempt,
                        worker,
                    },
                ));
            }
            task.phase = Phase::Queued;
            self.queue.push_front(task_id);
        }
    }

    /// A worker returned a result. The first result of a task wins, whichever
    /// attempt produced it (an attempt whose lease expired included: its result
    /// is as good as any); any later one is stale and changes nothing.
    /// When the winner is not the live lease, that lease's holder is returned:
    /// it must be told to drop the task.
    pub fn complete(
        &mut self,
        reporter: WorkerId,
        task_id: TaskId,
        attempt: u32,
        output_len: u64,
        output_checksum: u64,
        now: Instant,
    ) -> (Outcome, Option<(WorkerId, u32)>) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return (Outcome::Unknown, None);
        };
        if attempt == 0 || attempt > task.attempts {
            return (Outcome::Stale, None);
        }
        let (to_drop, duration) = match &task.phase {
            Phase::Done { .. } | Phase::Failed { .. } => return (Outcome::Stale, None),
            Phase::Queued => (None, Duration::ZERO),
            Phase::Leased(l) => {
                let took = if l.attempt == attempt {
                    now - l.leased_at
                } else {
                    Duration::ZERO
                };
                (Some((l.worker, l.attempt)), took)
            }
        };
        if matches!(task.phase, Phase::Queued) {
            self.queue.retain(|t| *t != task_id);
        }
        task.phase = Phase::Done {
            output_len,
            output_checksum,
            attempt,
            done_ms: self.wall_ms,
            removed: false,
        };
        if let Some(slot) = self.workers.get(&reporter) {
            task.last_worker = Some(slot.name.clone());
        }
        let worker = task.last_worker.as_deref().unwrap_or("?").to_string();
        self.events.push((
            task_id,
            TaskEvent::Completed {
                attempt,
                worker,
                len: output_len,
                checksum: output_checksum,
                duration_ms: duration.as_millis() as u64,
            },
        ));
        self.recent.record(now, task.input_len);
        if let Some(slot) = self.workers.get_mut(&reporter) {
            slot.stats.done += 1;
        }
        let to_drop = to_drop.and_then(|(holder, held)| {
            if let Some(slot) = self.workers.get_mut(&holder) {
                slot.leases.remove(&task_id);
            }
            (holder != reporter || held != attempt).then_some((holder, held))
        });
        (Outcome::Accepted, to_drop)
    }

    /// A worker reports that the input cannot be processed (a deterministic
    /// failure: no retry). Only the live lease may fail a task.
    pub fn fail(
        &mut self,
        worker: WorkerId,
        task_id: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
        now: Instant,
    ) -> Outcome {
        if !self.tasks.contains_key(&task_id) {
            return Outcome::Unknown;
        }
        let Some(lease) = self.lease_mut(worker, task_id, attempt) else {
            return Outcome::Stale;
        };
        let leased_at = lease.leased_at;
        if let Some(task) = self.tasks.get_mut(&task_id) {
            let name = task.last_worker.as_deref().unwrap_or("?").to_string();
            let duration_ms = now.saturating_duration_since(leased_at).as_millis() as u64;
            let event = TaskEvent::Failed {
                attempt,
                worker: name,
                kind,
                reason: reason.clone(),
                duration_ms,
            };
            self.events.push((task_id, event));
            task.phase = Phase::Failed { kind, reason };
        }
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.leases.remove(&task_id);
            slot.stats.failed += 1;
        }
        Outcome::Accepted
    }

    /// The worker began processing the task.
    pub fn started(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) {
        if let Some(lease) = self.lease_mut(worker, task_id, attempt) {
            lease.started = true;
            lease.releasing = false;
        }
    }

    /// The worker gave the task back unstarted (to be stolen, or because it is
    /// draining): it goes to the front of the queue without losing an attempt.
    /// Returns false when this is not the live, unstarted lease.
    pub fn released(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) -> bool {
        match self.lease_mut(worker, task_id, attempt) {
            Some(lease) if !lease.started => {
                self.requeue_front(worker, task_id);
                true
            }
            _ => false,
        }
    }

    pub fn info(&self, task_id: TaskId) -> Option<TaskInfo> {
        let task = self.tasks.get(&task_id)?;
        let (state, output_len) = match &task.phase {
            Phase::Queued => (TaskState::Queued, None),
            Phase::Leased(_) => (TaskState::Running, None),
            Phase::Done { output_len, .. } => (TaskState::Done, Some(*output_len)),
            Phase::Failed { kind, reason } => (
                TaskState::Failed {
                    kind: *kind,
                    reason: reason.clone(),
                },
                None,
            ),
        };
        let worker = task.last_worker.as_deref().map(str::to_string);
        Some(TaskInfo {
            task: task_id,
            name: task.name.clone(),
            state,
            input_len: task.input_len,
            output_len,
            attempts: task.attempts,
            worker,
        })
    }

    /// The attempt whose result was accepted, for a done task.
    pub fn winning_attempt(&self, task_id: TaskId) -> Option<u32> {
        match self.tasks.get(&task_id)?.phase {
            Phase::Done { attempt, .. } => Some(attempt),
            _ => None,
        }
    }

    /// Number of queued tasks.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Counts of tasks per state name.
    pub fn counts(&self) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        for t in self.tasks.values() {
            let k = match t.phase {
                Phase::Queued => "queued",
                Phase::Leased(_) => "running",
                Phase::Done { .. } => "done",
                Phase::Failed { .. } => "failed",
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    /// Tasks the worker holds a live lease on.
    pub fn leases_of(&self, worker: WorkerId) -> Vec<TaskId> {
        self.workers
            .get(&worker)
            .map(|s| s.leases.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The live lease of a task, if any.
    pub fn lease_of(&self, task: TaskId) -> Option<Lease> {
        self.live_lease(task).cloned()
    }
}

#[cfg(test)]
mod tests;
