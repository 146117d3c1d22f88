//! The master's shared state: the scheduler plus the channels that reach
//! connections. One `std::sync::Mutex`, never held across an `.await`: every
//! method locks, decides, unlocks, then delivers (with `try_send` on bounded
//! channels sized so that a full one means a dead connection).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use tessera_proto::{FailureKind, LeaseRef, TaskId, TaskInfo};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::scheduler::{Assignment, Outcome, Scheduler, SchedulerConfig, WorkerId};
use crate::clock::Clock;

/// Most `Wait` requests parked on one task.
const MAX_WAITERS_PER_TASK: usize = 1024;

/// What the master sends a worker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker {
    Assign(Assignment),
    /// Give the task back if not started (stealing).
    Release(LeaseRef),
    /// Stop working on the task.
    Drop(LeaseRef),
}

#[derive(Debug)]
struct Inner {
    scheduler: Scheduler,
    workers: HashMap<WorkerId, mpsc::Sender<ToWorker>>,
    waiters: HashMap<TaskId, Vec<oneshot::Sender<TaskInfo>>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    next_worker: AtomicU64,
    clock: Arc<dyn Clock>,
}

/// Refused because too many waiters are parked on the task.
#[derive(Debug, thiserror::Error)]
#[error("too many clients are waiting on task {0}")]
pub struct TooManyWaiters(pub TaskId);

impl Shared {
    pub fn new(config: SchedulerConfig, clock: Arc<dyn Clock>) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                scheduler: Scheduler::new(config),
                workers: HashMap::new(),
                waiters: HashMap::new(),
            }),
            next_worker: AtomicU64::new(1),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Keep serving after a panic elsewhere: every scheduler method leaves
        // the state consistent before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a worker connection; what the master sends it arrives on the receiver.
    pub fn join_worker(
        &self,
        name: String,
        capacity: usize,
    ) -> (WorkerId, mpsc::Receiver<ToWorker>) {
        let id = WorkerId(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(capacity);
        let mut g = self.lock();
        g.scheduler.worker_joined(id, name);
        g.workers.insert(id, tx);
        (id, rx)
    }

    pub fn worker_capacity(&self, worker: WorkerId, threads: u32) {
        let mut g = self.lock();
        g.scheduler.worker_capacity(worker, threads);
        self.settle(&mut g);
    }

    pub fn worker_ready(&self, worker: WorkerId, credits: u32) {
        let mut g = self.lock();
        g.scheduler.worker_ready(worker, credits);
        self.settle(&mut g);
    }

    pub fn worker_draining(&self, worker: WorkerId) {
        let mut g = self.lock();
        g.scheduler.worker_draining(worker);
        self.settle(&mut g);
    }

    pub fn worker_lost(&self, worker: WorkerId, why: &str) {
        let mut g = self.lock();
        g.workers.remove(&worker);
        let held = g.scheduler.leases_of(worker);
        let failed = g.scheduler.worker_lost(worker, why);
        if !held.is_empty() {
            info!(%worker, tasks = held.len(), "worker lost ({why}); its tasks are queued again");
        }
        for task in failed {
            warn!(%task, "task failed: out of attempts");
            Self::notify(&mut g, task);
        }
        self.settle(&mut g);
    }

    /// An assignment never reached its worker.
    pub fn undeliverable(&self, worker: WorkerId, a: &Assignment) {
        let mut g = self.lock();
        g.scheduler.undeliverable(worker, a.task, a.attempt);
        self.settle(&mut g);
    }

    pub fn reserve_id(&self) -> TaskId {
        self.lock().scheduler.reserve_id()
    }

    /// Queues a stored image under a reserved id.
    pub fn submit(&self, task: TaskId, name: String, input_len: u64) {
        let mut g = self.lock();
        g.scheduler.submit_reserved(task, name, input_len);
        self.settle(&mut g);
    }

    pub fn started(&self, worker: WorkerId, task: TaskId, attempt: u32) {
        self.lock().scheduler.started(worker, task, attempt);
    }

    pub fn released(&self, worker: WorkerId, task: TaskId, attempt: u32) -> bool {
        let mut g = self.lock();
        let ok = g.scheduler.released(worker, task, attempt);
        self.settle(&mut g);
        ok
    }

    /// Extends the live leases named; the dead ones are sent `Drop`.
    pub fn heartbeat(&self, worker: WorkerId, leases: &[LeaseRef]) {
        let now = self.clock.now();
        let mut g = self.lock();
        let dead = g.scheduler.heartbeat(worker, leases, now);
        if let Some(tx) = g.workers.get(&worker) {
            for l in dead {
                let _ = tx.try_send(ToWorker::Drop(l));
            }
        }
    }

    /// Result bytes for (`task`, `attempt`) are arriving: the lease is alive.
    pub fn touch(&self, worker: WorkerId, task: TaskId, attempt: u32) {
        let now = self.clock.now();
        self.lock().scheduler.touch(worker, task, attempt, now);
    }

    /// Expires overdue leases; returns how many.
    pub fn expire_due(&self) -> usize {
        let now = self.clock.now();
        let mut g = self.lock();
        let expired = g.scheduler.expire(now);
        for e in &expired {
            if e.failed {
                warn!(task = %e.task, worker = %e.worker, "lease expired; task failed: out of attempts");
                Self::notify(&mut g, e.task);
            } else {
                info!(task = %e.task, worker = %e.worker, attempt = e.attempt, "lease expired; task queued again");
            }
        }
        if !expired.is_empty() {
            self.settle(&mut g);
        }
        expired.len()
    }

    pub fn complete(&self, worker: WorkerId, task: TaskId, attempt: u32, len: u64) -> Outcome {
        let mut g = self.lock();
        let (outcome, to_drop) = g.scheduler.complete(worker, task, attempt, len);
        if outcome == Outcome::Accepted {
            Self::notify(&mut g, task);
        }
        if let Some((holder, attempt)) = to_drop
            && let Some(tx) = g.workers.get(&holder)
        {
            let _ = tx.try_send(ToWorker::Drop(LeaseRef { task, attempt }));
        }
        self.settle(&mut g);
        outcome
    }

    pub fn fail(
        &self,
        worker: WorkerId,
        task: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
    ) -> Outcome {
        let mut g = self.lock();
        let outcome = g.scheduler.fail(worker, task, attempt, kind, reason);
        if outcome == Outcome::Accepted {
            Self::notify(&mut g, task);
        }
        self.settle(&mut g);
        outcome
    }

    pub fn info(&self, task: TaskId) -> Option<TaskInfo> {
        self.lock().scheduler.info(task)
    }

    /// The task's info and, when done, the attempt whose result is kept.
    pub fn info_with_result(&self, task: TaskId) -> Option<(TaskInfo, Option<u32>)> {
        let g = self.lock();
        let info = g.scheduler.info(task)?;
        Some((info, g.scheduler.winning_attempt(task)))
    }

    /// Resolves at once when the task is decided, otherwise when it becomes so.
    /// `Ok(None)`: no such task.
    pub fn wait(
        &self,
        task: TaskId,
    ) -> Result<Option<oneshot::Receiver<TaskInfo>>, TooManyWaiters> {
        let mut g = self.lock();
        let Some(info) = g.scheduler.info(task) else {
            return Ok(None);
        };
        let (tx, rx) = oneshot::channel();
        if info.state.is_terminal() {
            let _ = tx.send(info);
            return Ok(Some(rx));
        }
        let list = g.waiters.entry(task).or_default();
        list.retain(|w| !w.is_closed());
        if list.len() >= MAX_WAITERS_PER_TASK {
            return Err(TooManyWaiters(task));
        }
        list.push(tx);
        Ok(Some(rx))
    }

    pub fn queue_len(&self) -> usize {
        self.lock().scheduler.queue_len()
    }

    /// Runs `f` on the scheduler (for tests and the live view).
    pub fn inspect<R>(&self, f: impl FnOnce(&Scheduler) -> R) -> R {
        f(&self.lock().scheduler)
    }

    fn notify(g: &mut Inner, task: TaskId) {
        let Some(info) = g.scheduler.info(task) else {
            return;
        };
        for w in g.waiters.remove(&task).unwrap_or_default() {
            let _ = w.send(info.clone());
        }
    }

    /// After any change: hand out queued tasks, then ask busy workers to give
    /// back unstarted tasks for idle ones.
    fn settle(&self, g: &mut Inner) {
        let now = self.clock.now();
        for (worker, assignment) in g.scheduler.dispatch(now) {
            let delivered = match g.workers.get(&worker) {
                Some(tx) => tx.try_send(ToWorker::Assign(assignment.clone())).is_ok(),
                None => false,
            };
            if !delivered {
                g.scheduler
                    .undeliverable(worker, assignment.task, assignment.attempt);
            }
        }
        for order in g.scheduler.steal() {
            if let Some(tx) = g.workers.get(&order.victim) {
                let l = LeaseRef {
                    task: order.task,
                    attempt: order.attempt,
                };
                let _ = tx.try_send(ToWorker::Release(l));
            }
        }
    }
}
