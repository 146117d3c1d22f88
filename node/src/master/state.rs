//! The master's shared state: the scheduler plus the channels that reach
//! connections. One `std::sync::Mutex`, never held across an `.await`: every
//! method locks, decides, unlocks, then delivers.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use tessera_proto::{FailureKind, TaskId, TaskInfo};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::scheduler::{Assignment, Outcome, Scheduler, SchedulerConfig, WorkerId};

/// Most `Wait` requests parked on one task.
const MAX_WAITERS_PER_TASK: usize = 1024;

#[derive(Debug)]
struct Inner {
    scheduler: Scheduler,
    workers: HashMap<WorkerId, mpsc::Sender<Assignment>>,
    waiters: HashMap<TaskId, Vec<oneshot::Sender<TaskInfo>>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    next_worker: AtomicU64,
}

/// Refused because too many waiters are parked on the task.
#[derive(Debug, thiserror::Error)]
#[error("too many clients are waiting on task {0}")]
pub struct TooManyWaiters(pub TaskId);

impl Shared {
    pub fn new(config: SchedulerConfig) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                scheduler: Scheduler::new(config),
                workers: HashMap::new(),
                waiters: HashMap::new(),
            }),
            next_worker: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the scheduler half
        // updated in a way later calls would trip on more than a restart
        // would; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a worker connection; assignments for it arrive on the receiver.
    pub fn join_worker(&self, capacity: usize) -> (WorkerId, mpsc::Receiver<Assignment>) {
        let id = WorkerId(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(capacity);
        let mut g = self.lock();
        g.scheduler.worker_joined(id);
        g.workers.insert(id, tx);
        (id, rx)
    }

    pub fn worker_ready(&self, worker: WorkerId, credits: u32) {
        let mut g = self.lock();
        g.scheduler.worker_ready(worker, credits);
        Self::dispatch(&mut g);
    }

    pub fn worker_lost(&self, worker: WorkerId, why: &str) {
        let mut g = self.lock();
        g.workers.remove(&worker);
        let requeued = g.scheduler.running_on(worker);
        let failed = g.scheduler.worker_lost(worker, why);
        if !requeued.is_empty() {
            info!(%worker, tasks = requeued.len(), "worker lost ({why}); its tasks are queued again");
        }
        for task in failed {
            warn!(%task, "task failed: out of attempts");
            Self::notify(&mut g, task);
        }
        Self::dispatch(&mut g);
    }

    /// An assignment never reached its worker.
    pub fn undeliverable(&self, worker: WorkerId, a: &Assignment) {
        let mut g = self.lock();
        g.scheduler.undeliverable(worker, a.task, a.attempt);
        Self::dispatch(&mut g);
    }

    pub fn reserve_id(&self) -> TaskId {
        self.lock().scheduler.reserve_id()
    }

    /// Queues a stored image under a reserved id.
    pub fn submit(&self, task: TaskId, name: String, input_len: u64) {
        let mut g = self.lock();
        g.scheduler.submit_reserved(task, name, input_len);
        Self::dispatch(&mut g);
    }

    pub fn complete(&self, worker: WorkerId, task: TaskId, attempt: u32, len: u64) -> Outcome {
        let mut g = self.lock();
        let outcome = g.scheduler.complete(worker, task, attempt, len);
        if outcome == Outcome::Accepted {
            Self::notify(&mut g, task);
        }
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
        outcome
    }

    pub fn info(&self, task: TaskId) -> Option<TaskInfo> {
        self.lock().scheduler.info(task)
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

    /// The task's info and, when done, the attempt whose result is kept.
    pub fn info_with_result(&self, task: TaskId) -> Option<(TaskInfo, Option<u32>)> {
        let g = self.lock();
        let info = g.scheduler.info(task)?;
        Some((info, g.scheduler.winning_attempt(task)))
    }

    pub fn queue_len(&self) -> usize {
        self.lock().scheduler.queue_len()
    }

    fn notify(g: &mut Inner, task: TaskId) {
        let Some(info) = g.scheduler.info(task) else {
            return;
        };
        for w in g.waiters.remove(&task).unwrap_or_default() {
            let _ = w.send(info.clone());
        }
    }

    fn dispatch(g: &mut Inner) {
        for (worker, assignment) in g.scheduler.dispatch() {
            let delivered = match g.workers.get(&worker) {
                // Capacity equals the credit cap, so a full channel means a
                // dead connection that has not been reaped yet.
                Some(tx) => tx.try_send(assignment.clone()).is_ok(),
                None => false,
            };
            if !delivered {
                g.scheduler
                    .undeliverable(worker, assignment.task, assignment.attempt);
            }
        }
    }
}
