//! The master's shared state: the scheduler, the journal that makes its
//! decisions durable, and the channels that reach connections. One
//! `std::sync::Mutex`, never held across an `.await`: every method locks,
//! decides, queues the resulting events to the journal (in decision order),
//! unlocks, then delivers (with `try_send` on bounded channels sized so that
//! a full one means a dead connection). Methods whose outcome must be durable
//! before anyone is told return a [`Pending`]: the tasks it names stay
//! *unsettled* until it is dropped, and every reader that must see only
//! durable state (`status`, `fetch`, `wait`, the next ledger operation on
//! the task) waits for [`Shared::settled`] first. The ledger
//! (`master/ledger/`) is what awaits them and decides who is told what.
//!
//! [`Shared`] is one façade; its methods are grouped by concept in the
//! files beside this one: `workers.rs` (what worker connections report),
//! `cancel.rs`, `archive.rs` (tasks in the record only, old failures retired),
//! `view.rs` (the live view), `pending.rs` (changes awaiting the disk).
//! Its parts with their own types: `waiters.rs` (parked `Wait`s) and
//! `worker_links.rs` (the channels to worker connections).

use std::{
    collections::BTreeMap,
    ops::Deref,
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicU64},
};

use tessera_proto::{EventEntry, LeaseRef, TaskId, TaskInfo};
use tokio::sync::oneshot;
use tracing::info;

use super::{
    record::{Entry, Journal, Loaded, RowChange, StoreError},
    scheduler::{
        Scheduler, SchedulerConfig,
        durable::{Confirmation, Removal, ResultRef},
    },
    store::DataDir,
};
use crate::clock::{Clock, SteadyWall};

mod archive;
mod cancel;
mod pending;
mod stalls;
mod view;
mod waiters;
mod worker_links;
mod workers;

pub use pending::{Join, Pending};
pub use waiters::TooManyWaiters;
use waiters::Waiters;
pub use worker_links::ToWorker;
use worker_links::WorkerLinks;

/// Resolves when a change is on disk.
pub type Durable = oneshot::Receiver<Result<(), StoreError>>;

/// Awaits a [`Durable`].
pub async fn durable(d: Durable) -> Result<(), StoreError> {
    d.await
        .map_err(|_| StoreError::Io("the journal stopped".into()))?
}

#[derive(Debug)]
struct Inner {
    scheduler: Scheduler,
    workers: WorkerLinks,
    waiters: Waiters,
    /// No dispatch before this (results cannot be stored right now).
    paused_until: Option<std::time::Instant>,
    /// The master's own stalls, seen by its lease sweeper.
    stalls: stalls::Stalls,
    /// Tasks with a change that is not durable yet (see [`Pending`]).
    unsettled: BTreeMap<TaskId, pending::Unsettled>,
}

/// See the module docs. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Shared {
    core: Arc<Core>,
}

#[derive(Debug)]
pub struct Core {
    inner: Mutex<Inner>,
    next_worker: AtomicU64,
    clock: Arc<dyn Clock>,
    /// The record's timestamps (see [`SteadyWall`]).
    wall: SteadyWall,
    journal: Journal,
    /// The image files, for removing what a lease decision made obsolete.
    files: Arc<DataDir>,
    /// When this master started (for the live view's uptime).
    started: std::time::Instant,
    /// Checks the scheduler's invariants on every operation when set.
    invariants: std::sync::OnceLock<super::InvariantHook>,
}

impl Deref for Shared {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Shared {
    /// Rebuilds the state from what the record `loaded`.
    pub fn new(
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        journal: Journal,
        loaded: Loaded,
        files: Arc<DataDir>,
    ) -> Self {
        let wall = SteadyWall::new(clock.as_ref());
        let stalls = stalls::Stalls::new(config.lease_timeout);
        let mut scheduler = Scheduler::new(config);
        scheduler.set_wall_ms(wall.at(clock.now()));
        scheduler.restore(loaded.rows, loaded.next_task);
        let shared = Shared {
            core: Arc::new(Core {
                inner: Mutex::new(Inner {
                    scheduler,
                    workers: WorkerLinks::default(),
                    waiters: Waiters::default(),
                    paused_until: None,
                    stalls,
                    unsettled: BTreeMap::new(),
                }),
                next_worker: AtomicU64::new(1),
                started: clock.now(),
                invariants: std::sync::OnceLock::new(),
                wall,
                clock,
                journal,
                files,
            }),
        };
        {
            let mut g = shared.lock();
            shared.record_behind(&mut g);
        }
        shared
    }

    /// Now on the record's clock (ms since the Unix epoch).
    fn wall_ms(&self) -> u64 {
        self.wall.at(self.clock.now())
    }

    /// From now on, checks the scheduler's invariants on every operation
    /// (the state each one left, when the next one takes the lock) and
    /// reports each one broken to `hook`.
    pub fn watch_invariants(&self, hook: super::InvariantHook) {
        let _ = self.invariants.set(hook);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Keep serving after a panic elsewhere: every scheduler method leaves
        // the state consistent before it can panic.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hook) = self.invariants.get()
            && let Some(broken) = g.scheduler.broken_invariant()
        {
            (hook.0)(broken);
        }
        g.scheduler.set_wall_ms(self.wall_ms());
        g
    }

    /// The scheduler's new events, as journal entries with their rows.
    fn entries(&self, g: &mut Inner) -> Vec<Entry> {
        let at_ms = self.wall_ms();
        g.scheduler
            .take_events()
            .into_iter()
            .map(|(task, event)| {
                let row = g.scheduler.row(task);
                super::metrics::on_event(&event, row.as_ref(), at_ms);
                Entry {
                    task,
                    event: Some(EventEntry { at_ms, event }),
                    row: row.map_or(RowChange::Delete, RowChange::Put),
                }
            })
            .collect()
    }

    /// Queues the new events without waiting for them.
    fn record_behind(&self, g: &mut Inner) {
        let entries = self.entries(g);
        self.journal.write_behind(entries, g.scheduler.next_task());
    }

    /// Queues the new events; the result resolves once they are on disk.
    fn record_durable(&self, g: &mut Inner) -> Durable {
        let entries = self.entries(g);
        self.journal.write(entries, g.scheduler.next_task(), true)
    }

    pub fn reserve_id(&self) -> TaskId {
        self.lock().scheduler.reserve_id()
    }

    /// The task that `submitter`'s submission of `key` would share.
    pub fn joinable(&self, key: u128, submitter: u64) -> Option<TaskId> {
        self.lock().scheduler.joinable(key, submitter)
    }

    /// Queues a stored image under a reserved id, shared by `submitter`.
    /// `Err(existing)` when a task with the same idempotency key exists
    /// (it won a race with this one): join that one instead.
    pub fn submit(
        &self,
        task: TaskId,
        name: String,
        input_len: u64,
        checksum: u64,
        key: u128,
        submitter: u64,
    ) -> Result<Pending, TaskId> {
        let mut g = self.lock();
        if let Some(existing) = g.scheduler.joinable(key, submitter) {
            return Err(existing);
        }
        g.scheduler
            .submit_reserved(task, name, input_len, checksum, key);
        g.scheduler.add_submitter(task, submitter, false);
        let pending = self.pending(&mut g, vec![(task, None)]);
        self.settle(&mut g);
        Ok(pending)
    }

    /// Adds `submitter` to an existing `task` (call once the task is
    /// settled, so that its submission is durable).
    pub fn join(&self, task: TaskId, key: u128, submitter: u64) -> Join {
        let mut g = self.lock();
        if g.scheduler.task_for_key(key) != Some(task) {
            return Join::Gone;
        }
        if g.scheduler.has_submitter(task, submitter) {
            return Join::Already;
        }
        let before = g.scheduler.row(task);
        g.scheduler.add_submitter(task, submitter, true);
        Join::Joined(self.pending(&mut g, vec![(task, before)]))
    }

    /// Whether a report about `task` can change nothing: it is decided
    /// already (a decided task never changes) or unknown.
    pub fn is_decided(&self, task: TaskId) -> bool {
        self.lock()
            .scheduler
            .info(task)
            .is_none_or(|i| i.state.is_terminal())
    }

    /// Tells the clients waiting on `task` how it ended: call once its
    /// outcome is durable (clients learn a task is done only when a crash can
    /// no longer undo it).
    pub fn announce(&self, task: TaskId) {
        let mut g = self.lock();
        Self::notify(&mut g, task);
    }

    pub fn info(&self, task: TaskId) -> Option<TaskInfo> {
        self.lock().scheduler.info(task)
    }

    /// The task's info and, when done, its result.
    pub fn info_with_result(&self, task: TaskId) -> Option<(TaskInfo, Option<ResultRef>)> {
        let g = self.lock();
        let info = g.scheduler.info(task)?;
        Some((info, g.scheduler.result_ref(task)))
    }

    /// `submitter` stored the result: counted (and, when it was the last
    /// one, the result marked removed; the caller removes the files once
    /// it is durable). `None` when there is nothing to record.
    pub fn confirm(&self, task: TaskId, submitter: u64) -> Option<(Confirmation, Pending)> {
        let mut g = self.lock();
        let before = g.scheduler.row(task);
        match g.scheduler.confirm(task, submitter) {
            Confirmation::Nothing => None,
            done => Some((done, self.pending(&mut g, vec![(task, before)]))),
        }
    }

    /// Results past `retention_ms`: marked removed; the caller removes
    /// their files once it is durable.
    pub fn expire_results(&self, retention_ms: u64) -> Option<(Vec<(TaskId, ResultRef)>, Pending)> {
        let mut g = self.lock();
        let mut out = Vec::new();
        let mut before = Vec::new();
        for task in g.scheduler.results_older_than(retention_ms) {
            if g.unsettled.contains_key(&task) {
                continue;
            }
            let row = g.scheduler.row(task);
            if let Some(r) = g.scheduler.result_ref(task)
                && g.scheduler.remove_result(task, Removal::Expired)
            {
                out.push((task, r));
                before.push((task, row));
            }
        }
        if out.is_empty() {
            return None;
        }
        Some((out, self.pending(&mut g, before)))
    }

    /// Removes a task (its record and, by the caller, its files); a worker
    /// running it is told to drop it. `None` for an unknown task.
    pub fn delete(&self, task: TaskId) -> Option<(Option<ResultRef>, Pending)> {
        let mut g = self.lock();
        let result = g.scheduler.result_ref(task);
        let before = g.scheduler.row(task);
        let holder = g.scheduler.delete(task)?;
        if let Some((worker, attempt)) = holder {
            g.workers.drop_lease(worker, task, attempt);
        }
        let pending = self.pending(&mut g, vec![(task, before)]);
        self.settle(&mut g);
        Some((result, pending))
    }

    /// Drops the waits parked on a task that is gone.
    pub fn forget_waiters(&self, task: TaskId) {
        self.lock().waiters.forget(task);
    }

    /// A task's recorded events.
    pub async fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError> {
        self.journal.history(task).await
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
        if info.state.is_terminal() {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(info);
            return Ok(Some(rx));
        }
        g.waiters.park(task).map(Some)
    }

    pub fn queue_len(&self) -> usize {
        self.lock().scheduler.queue_len()
    }

    /// Runs `f` on the scheduler (for tests, sweeping and the live view).
    pub fn inspect<R>(&self, f: impl FnOnce(&Scheduler) -> R) -> R {
        f(&self.lock().scheduler)
    }

    /// Writes what is queued and stops the journal.
    pub fn close(&self) {
        self.journal.close();
    }

    fn notify(g: &mut Inner, task: TaskId) {
        if let Some(info) = g.scheduler.info(task) {
            g.waiters.answer(task, &info);
        }
    }

    /// After any change: hand out queued tasks, ask busy workers to give back
    /// unstarted tasks for idle ones, and record what happened.
    fn settle(&self, g: &mut Inner) {
        let now = self.clock.now();
        if g.paused_until.is_some_and(|until| now < until) {
            self.record_behind(g);
            return;
        }
        for (worker, assignment) in g.scheduler.dispatch(now) {
            if !g.workers.send(worker, ToWorker::Assign(assignment.clone())) {
                g.scheduler
                    .undeliverable(worker, assignment.task, assignment.attempt);
            }
        }
        for b in g.scheduler.backups(now) {
            info!(task = %b.assignment.task, straggler = %b.straggler, backup = %b.worker,
                "straggler: a backup attempt on an idle worker (the first result wins)");
            super::metrics::backup_launched();
            if !g
                .workers
                .send(b.worker, ToWorker::Assign(b.assignment.clone()))
            {
                g.scheduler
                    .undeliverable(b.worker, b.assignment.task, b.assignment.attempt);
            }
        }
        for order in g.scheduler.steal() {
            let l = LeaseRef {
                task: order.task,
                attempt: order.attempt,
            };
            g.workers.send(order.victim, ToWorker::Release(l));
        }
        self.record_behind(g);
    }
}
