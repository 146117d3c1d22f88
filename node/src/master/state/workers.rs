//! A worker's life and its leases, as its connection reports them: joining,
//! credits, draining and loss; a task started, given back, kept alive,
//! completed or failed; and leases that expired. Each locks the shared
//! state, lets the scheduler decide, tells the workers concerned (through
//! [`WorkerLinks`](super::worker_links::WorkerLinks)) and settles.

use std::sync::atomic::Ordering;

use tessera_proto::{FailureKind, LeaseRef, TaskId};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Inner, Pending, Shared, ToWorker};
use crate::master::{
    record::RowState,
    scheduler::{Assignment, Outcome, WorkerId},
    store::Kind,
};

/// How long dispatch pauses after a result could not be stored.
const STORAGE_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

impl Shared {
    /// Registers a worker connection; what the master sends it arrives on the receiver.
    pub fn join_worker(
        &self,
        name: String,
        capacity: usize,
    ) -> (WorkerId, mpsc::Receiver<ToWorker>) {
        let id = WorkerId(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let mut g = self.lock();
        g.scheduler.worker_joined(id, name);
        (id, g.workers.join(id, capacity))
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

    /// The worker's connection ended: closed or broken, or (`hung_up`)
    /// given up by the worker for the master's silence (`HangingUp`). An
    /// end during or just after the master's own stall counts as the
    /// latter, said or not (`stalls.rs`).
    pub fn worker_lost(&self, worker: WorkerId, why: &str, hung_up: bool) {
        let mut g = self.lock();
        g.workers.remove(worker);
        let held = g.scheduler.leases_of(worker);
        let now = self.clock.now();
        let failed = if hung_up {
            g.scheduler.worker_hung_up(worker, why, now)
        } else if g.stalls.recent(now) {
            let why = format!("{why}, just after the master itself had stopped running");
            g.scheduler.worker_hung_up(worker, &why, now)
        } else {
            g.scheduler.worker_lost(worker, why, now)
        };
        if !held.is_empty() {
            info!(%worker, tasks = held.len(), "worker lost ({why}); its tasks are queued again");
        }
        for task in &failed {
            warn!(%task, "task failed: out of attempts");
        }
        self.follow_up_failed(&mut g, failed);
        self.settle(&mut g);
    }

    /// A worker's result could not be stored: the task is queued again
    /// without counting against its attempts, and dispatch pauses briefly so
    /// a full disk does not turn into a busy loop.
    pub fn result_not_stored(&self, worker: WorkerId, task: TaskId, attempt: u32, why: &str) {
        let mut g = self.lock();
        g.scheduler.not_stored(worker, task, attempt, why);
        g.paused_until = Some(self.clock.now() + STORAGE_PAUSE);
        self.settle(&mut g);
    }

    /// An assignment never reached its worker.
    pub fn undeliverable(&self, worker: WorkerId, a: &Assignment) {
        let mut g = self.lock();
        g.scheduler.undeliverable(worker, a.task, a.attempt);
        self.settle(&mut g);
    }

    pub fn started(&self, worker: WorkerId, task: TaskId, attempt: u32) {
        let now = self.clock.now();
        self.lock().scheduler.started(worker, task, attempt, now);
    }

    /// The worker sent a frame: it is alive (a silent worker may get work again).
    pub fn worker_seen(&self, worker: WorkerId) {
        let mut g = self.lock();
        let was_silent = g.scheduler.is_silent(worker);
        g.scheduler.worker_seen(worker);
        if was_silent {
            info!(%worker, "silent worker showed life again; it may get work");
            self.settle(&mut g);
        }
    }

    pub fn released(&self, worker: WorkerId, task: TaskId, attempt: u32) -> bool {
        let mut g = self.lock();
        let asked = g.scheduler.lease_of(task).is_some_and(|l| l.releasing);
        let ok = g.scheduler.released(worker, task, attempt);
        if ok && asked {
            info!(%task, from = %worker, "task stolen: given back unstarted for an idle worker");
            crate::master::metrics::task_stolen();
        }
        self.settle(&mut g);
        ok
    }

    /// Extends the live leases named; the dead ones are sent `Drop`.
    pub fn heartbeat(&self, worker: WorkerId, leases: &[LeaseRef]) {
        let now = self.clock.now();
        let mut g = self.lock();
        for l in g.scheduler.heartbeat(worker, leases, now) {
            g.workers.drop_lease(worker, l.task, l.attempt);
        }
    }

    /// Result bytes for (`task`, `attempt`) are arriving: the lease is alive.
    pub fn touch(&self, worker: WorkerId, task: TaskId, attempt: u32) {
        let now = self.clock.now();
        self.lock().scheduler.touch(worker, task, attempt, now);
    }

    /// Expires overdue leases (and ends a storage pause that is over);
    /// returns how many leases expired.
    pub fn expire_due(&self) -> usize {
        let now = self.clock.now();
        let mut g = self.lock();
        g.stalls.swept(now);
        let expired = g.scheduler.expire(now);
        crate::master::metrics::leases_expired(expired.len());
        let mut failed = Vec::new();
        for e in &expired {
            if e.timed_out {
                g.workers.drop_lease(e.worker, e.task, e.attempt);
            }
            if e.failed {
                warn!(task = %e.task, worker = %e.worker, "lease expired; task failed: out of attempts");
                failed.push(e.task);
            } else {
                info!(task = %e.task, worker = %e.worker, attempt = e.attempt, "lease expired; task queued again");
            }
        }
        self.follow_up_failed(&mut g, failed);
        // A storage pause that is over ends here: no other event may come
        // to hand out what waited for it.
        let pause_over = g.paused_until.is_some_and(|until| now >= until);
        if pause_over {
            g.paused_until = None;
        }
        if !expired.is_empty() || pause_over || g.scheduler.queue_len() == 0 {
            // Also the moment to look for stragglers (a matter of time).
            self.settle(&mut g);
        }
        expired.len()
    }

    /// A worker's stored result. Tell the worker it is stored once the
    /// returned [`Pending`] is durable.
    pub fn complete(
        &self,
        worker: WorkerId,
        task: TaskId,
        attempt: u32,
        len: u64,
        checksum: u64,
    ) -> (Outcome, Option<Pending>) {
        let now = self.clock.now();
        let mut g = self.lock();
        let before = g.scheduler.row(task);
        let (outcome, to_drop) = g
            .scheduler
            .complete(worker, task, attempt, len, checksum, now);
        let pending =
            (outcome == Outcome::Accepted).then(|| self.pending(&mut g, vec![(task, before)]));
        for (holder, attempt) in to_drop {
            g.workers.drop_lease(holder, task, attempt);
        }
        self.settle(&mut g);
        (outcome, pending)
    }

    pub fn fail(
        &self,
        worker: WorkerId,
        task: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
    ) -> (Outcome, Option<Pending>) {
        let now = self.clock.now();
        let mut g = self.lock();
        let before = g.scheduler.row(task);
        let outcome = g.scheduler.fail(worker, task, attempt, kind, reason, now);
        let pending =
            (outcome == Outcome::Accepted).then(|| self.pending(&mut g, vec![(task, before)]));
        self.settle(&mut g);
        (outcome, pending)
    }

    /// Tasks a lease decision failed (out of attempts): their waiters are
    /// told, and their inputs removed, once the failure is durable; if it
    /// cannot be recorded they are queued again, as a restart would.
    fn follow_up_failed(&self, g: &mut Inner, failed: Vec<TaskId>) {
        if failed.is_empty() {
            return;
        }
        let before = failed
            .iter()
            .map(|t| {
                let row = g.scheduler.row(*t).map(|mut r| {
                    r.state = RowState::Queued;
                    r
                });
                (*t, row)
            })
            .collect();
        let pending = self.pending(g, before);
        let shared = self.clone();
        tokio::spawn(async move {
            match pending.durable().await {
                Ok(settling) => {
                    for task in failed {
                        shared.announce(task);
                        if let Err(e) = shared.files.remove(Kind::Input, task).await {
                            warn!(%task, "cannot remove the input of a failed task: {e}");
                        }
                    }
                    drop(settling);
                }
                Err(unrecorded) => {
                    let e = shared.rollback(unrecorded);
                    warn!("cannot record failed tasks; they are queued again: {e}");
                }
            }
        });
    }
}
