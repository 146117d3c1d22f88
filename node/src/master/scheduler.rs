//! The master's task bookkeeping and scheduling decisions, as a plain state
//! machine: no I/O, no runtime, no clock. Every method is a decision over the
//! current state, so it is unit- and property-testable.
//!
//! A task is `Queued` → `Running { worker, attempt }` → `Done` | `Failed`.
//! A worker asks for work by granting credits; [`Scheduler::dispatch`] pairs
//! queued tasks with credits. When a worker is lost, its running tasks go back
//! to the queue, up to `max_attempts` hand-outs per task.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tessera_proto::{FailureKind, TaskId, TaskInfo, TaskState};

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
}

/// What became of a result or failure report from a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It decided the task: the task is now done or failed.
    Accepted,
    /// The task was already decided, or this attempt is no longer the live
    /// one: the report is discarded and changes nothing.
    Stale,
    /// No such task.
    Unknown,
}

#[derive(Debug, Clone)]
enum Phase {
    Queued,
    Running { worker: WorkerId, attempt: u32 },
    Done { output_len: u64, attempt: u32 },
    Failed { kind: FailureKind, reason: String },
}

#[derive(Debug, Clone)]
struct Task {
    name: String,
    input_len: u64,
    phase: Phase,
    attempts: u32,
    /// Why earlier attempts ended, for the failure reason.
    history: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct WorkerSlot {
    credits: u32,
    running: Vec<TaskId>,
}

/// Scheduling limits.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Hand-outs per task before it fails with [`FailureKind::WorkerLost`].
    pub max_attempts: u32,
    /// Most credits one worker may hold (bounds its assignment queue).
    pub max_credits: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_attempts: 3,
            max_credits: 256,
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
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            tasks: BTreeMap::new(),
            queue: VecDeque::new(),
            workers: BTreeMap::new(),
            next_task: 1,
        }
    }

    /// Accepts a stored image as a new queued task.
    pub fn submit(&mut self, name: String, input_len: u64) -> TaskId {
        let id = self.reserve_id();
        self.submit_reserved(id, name, input_len);
        id
    }

    /// Takes a fresh task id, to name the image's file before the task exists.
    pub fn reserve_id(&mut self) -> TaskId {
        let id = TaskId(self.next_task);
        self.next_task += 1;
        id
    }

    /// Queues a task under an id from [`Self::reserve_id`].
    pub fn submit_reserved(&mut self, id: TaskId, name: String, input_len: u64) {
        let task = Task {
            name,
            input_len,
            phase: Phase::Queued,
            attempts: 0,
            history: Vec::new(),
        };
        self.tasks.insert(id, task);
        self.queue.push_back(id);
    }

    pub fn worker_joined(&mut self, worker: WorkerId) {
        self.workers.entry(worker).or_default();
    }

    /// The worker can take `credits` more tasks. Returns false for an unknown worker.
    pub fn worker_ready(&mut self, worker: WorkerId, credits: u32) -> bool {
        let max = self.config.max_credits;
        match self.workers.get_mut(&worker) {
            Some(slot) => {
                slot.credits = slot.credits.saturating_add(credits).min(max);
                true
            }
            None => false,
        }
    }

    /// The worker's connection is gone: every task it was running goes back to
    /// the front of the queue (or fails, when out of attempts). Returns the
    /// tasks that failed for good.
    pub fn worker_lost(&mut self, worker: WorkerId, why: &str) -> Vec<TaskId> {
        let Some(slot) = self.workers.remove(&worker) else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        // Requeue in reverse so the oldest ends up first in line.
        for task_id in slot.running.into_iter().rev() {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            let Phase::Running { worker: w, attempt } = task.phase else {
                continue;
            };
            if w != worker {
                continue;
            }
            task.history
                .push(format!("attempt {attempt} on {worker}: {why}"));
            if task.attempts >= self.config.max_attempts {
                let reason = format!(
                    "gave up after {} attempts ({})",
                    task.attempts,
                    task.history.join("; ")
                );
                task.phase = Phase::Failed {
                    kind: FailureKind::WorkerLost,
                    reason,
                };
                failed.push(task_id);
            } else {
                task.phase = Phase::Queued;
                self.queue.push_front(task_id);
            }
        }
        failed
    }

    /// Pairs queued tasks with worker credits, oldest task first, each to the
    /// worker with the most free credits (ties: lowest id).
    pub fn dispatch(&mut self) -> Vec<(WorkerId, Assignment)> {
        let mut out = Vec::new();
        while !self.queue.is_empty() {
            let Some((&worker, _)) = self
                .workers
                .iter()
                .filter(|(_, s)| s.credits > 0)
                .max_by(|(a, sa), (b, sb)| sa.credits.cmp(&sb.credits).then(b.cmp(a)))
            else {
                break;
            };
            let Some(task_id) = self.queue.pop_front() else {
                break;
            };
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if !matches!(task.phase, Phase::Queued) {
                continue;
            }
            task.attempts += 1;
            task.phase = Phase::Running {
                worker,
                attempt: task.attempts,
            };
            let slot = self.workers.get_mut(&worker).expect("chosen from workers");
            slot.credits -= 1;
            slot.running.push(task_id);
            out.push((
                worker,
                Assignment {
                    task: task_id,
                    attempt: task.attempts,
                    name: task.name.clone(),
                    input_len: task.input_len,
                },
            ));
        }
        out
    }

    /// An assignment could not be delivered (the worker's connection closed
    /// before it got it): the task goes back to the front of the queue without
    /// counting the attempt.
    pub fn undeliverable(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if let Phase::Running {
            worker: w,
            attempt: a,
        } = task.phase
            && w == worker
            && a == attempt
        {
            task.attempts -= 1;
            task.phase = Phase::Queued;
            self.queue.push_front(task_id);
            if let Some(slot) = self.workers.get_mut(&worker) {
                slot.running.retain(|t| *t != task_id);
            }
        }
    }

    /// A worker returned a result. The first result of a task wins, whichever
    /// attempt produced it; any later one is stale and changes nothing (in
    /// particular not which worker holds the task: a worker may report a stale
    /// attempt of a task it is running again under a newer attempt).
    pub fn complete(
        &mut self,
        _reporter: WorkerId,
        task_id: TaskId,
        attempt: u32,
        output_len: u64,
    ) -> Outcome {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Outcome::Unknown;
        };
        match task.phase {
            Phase::Done { .. } | Phase::Failed { .. } => Outcome::Stale,
            Phase::Queued | Phase::Running { .. } if attempt == 0 || attempt > task.attempts => {
                Outcome::Stale
            }
            Phase::Queued => {
                self.queue.retain(|t| *t != task_id);
                task.phase = Phase::Done {
                    output_len,
                    attempt,
                };
                Outcome::Accepted
            }
            Phase::Running { worker: holder, .. } => {
                if let Some(slot) = self.workers.get_mut(&holder) {
                    slot.running.retain(|t| *t != task_id);
                }
                task.phase = Phase::Done {
                    output_len,
                    attempt,
                };
                Outcome::Accepted
            }
        }
    }

    /// A worker reports that the input cannot be processed (a deterministic
    /// failure: no retry). Only the live attempt may fail a task.
    pub fn fail(
        &mut self,
        worker: WorkerId,
        task_id: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
    ) -> Outcome {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Outcome::Unknown;
        };
        match task.phase {
            Phase::Running {
                worker: w,
                attempt: a,
            } if w == worker && a == attempt => {
                task.phase = Phase::Failed { kind, reason };
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.running.retain(|t| *t != task_id);
                }
                Outcome::Accepted
            }
            _ => Outcome::Stale,
        }
    }

    pub fn info(&self, task_id: TaskId) -> Option<TaskInfo> {
        let task = self.tasks.get(&task_id)?;
        let (state, output_len) = match &task.phase {
            Phase::Queued => (TaskState::Queued, None),
            Phase::Running { .. } => (TaskState::Running, None),
            Phase::Done { output_len, .. } => (TaskState::Done, Some(*output_len)),
            Phase::Failed { kind, reason } => (
                TaskState::Failed {
                    kind: *kind,
                    reason: reason.clone(),
                },
                None,
            ),
        };
        Some(TaskInfo {
            task: task_id,
            name: task.name.clone(),
            state,
            input_len: task.input_len,
            output_len,
            attempts: task.attempts,
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

    /// Counts of tasks per state name, for logs.
    pub fn counts(&self) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        for t in self.tasks.values() {
            let k = match t.phase {
                Phase::Queued => "queued",
                Phase::Running { .. } => "running",
                Phase::Done { .. } => "done",
                Phase::Failed { .. } => "failed",
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    /// Tasks the worker is currently running (for tests and the live view).
    pub fn running_on(&self, worker: WorkerId) -> Vec<TaskId> {
        self.workers
            .get(&worker)
            .map(|s| s.running.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
