//! Lease timing: heartbeats extend leases, leases past their deadline
//! expire, and started attempts past the task timeout are taken back. Plain
//! functions of the state and an injected `now`.
//!
//! A worker whose lease expired is *silent*: paused, cut off or overloaded.
//! It is offered no new work until it shows life again (a heartbeat or any
//! other frame: [`Scheduler::worker_seen`]), so a re-leased task never goes
//! back to the worker that just went quiet while others sit idle.

use std::time::Instant;

use tessera_proto::{LeaseRef, TaskId};

use super::{Scheduler, WorkerId, blame::Loss};

/// A lease that ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub task: TaskId,
    pub worker: WorkerId,
    pub attempt: u32,
    /// The task ran out of attempts and failed for good.
    pub failed: bool,
    /// It was taken back for running past the task timeout on a live worker,
    /// which must be told to drop it.
    pub timed_out: bool,
}

impl Scheduler {
    /// A heartbeat from `worker` naming the leases it holds: each one that is
    /// still its live lease is extended to `now + lease_timeout`. Returns the
    /// named leases that are not live (expired, or decided by another attempt):
    /// the worker should drop them.
    pub fn heartbeat(
        &mut self,
        worker: WorkerId,
        leases: &[LeaseRef],
        now: Instant,
    ) -> Vec<LeaseRef> {
        let deadline = now + self.config.lease_timeout;
        self.worker_seen(worker);
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.stats.last_heartbeat = Some(now);
        }
        let mut dead = Vec::new();
        for l in leases {
            if let Some(lease) = self.lease_mut(worker, l.task, l.attempt) {
                lease.deadline = lease.deadline.max(deadline);
            } else if !self.is_shadow(worker, l.task, l.attempt) {
                dead.push(*l);
            }
        }
        dead
    }

    /// The worker showed life (any frame): a silent worker may be offered
    /// work again. Its expired attempts stay expired.
    pub fn worker_seen(&mut self, worker: WorkerId) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.silent = false;
        }
    }

    /// Whether (`task`, `attempt`) is the straggling attempt of `worker` that
    /// a backup replaced and that still runs: its task is undecided (leased
    /// to the backup, or queued again when the backup was lost).
    fn is_shadow(&self, worker: WorkerId, task: TaskId, attempt: u32) -> bool {
        self.tasks.get(&task).is_some_and(|t| {
            matches!(t.phase, super::Phase::Queued | super::Phase::Leased(_))
                && t.shadow == Some(super::Shadow { worker, attempt })
        })
    }

    /// Extends one lease (the master saw the worker make progress on it, e.g.
    /// result bytes arriving).
    pub fn touch(&mut self, worker: WorkerId, task: TaskId, attempt: u32, now: Instant) {
        let deadline = now + self.config.lease_timeout;
        if let Some(lease) = self.lease_mut(worker, task, attempt) {
            lease.deadline = lease.deadline.max(deadline);
        }
    }

    /// Ends every lease whose deadline is at or before `now` (the worker goes
    /// silent: see the module docs), and every started attempt that has run
    /// for the task timeout: the task goes back to the front of the queue, or
    /// fails when [`super::blame`] says so.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let task_timeout = self.config.task_timeout;
        let due: Vec<(TaskId, WorkerId, u32, bool)> = self
            .workers
            .values()
            .flat_map(|s| s.leases.iter())
            .filter_map(|t| {
                let l = self.live_lease(*t)?;
                let hung = l
                    .started_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= task_timeout);
                (l.deadline <= now || hung).then_some((*t, l.worker, l.attempt, l.deadline > now))
            })
            .collect();
        let mut out = Vec::new();
        for (task, worker, attempt, timed_out) in due {
            let timeout = self.config.lease_timeout;
            let name = self
                .workers
                .get(&worker)
                .map_or_else(|| worker.to_string(), |s| s.name.to_string());
            let (loss, why) = if timed_out {
                let why = format!("ran past the task timeout ({task_timeout:?})");
                (Loss::TimedOut, why)
            } else {
                let why = format!("lease expired (no heartbeat for {timeout:?})");
                (Loss::Silent, why)
            };
            let failed = self.end_lease(task, &name, loss, &why, now);
            if let Some(slot) = self.workers.get_mut(&worker) {
                slot.leases.remove(&task);
                if !timed_out {
                    slot.silent = true;
                }
            }
            out.push(Expired {
                task,
                worker,
                attempt,
                failed,
                timed_out,
            });
        }
        out
    }

    /// The earliest lease deadline, to know when to call [`Self::expire`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let task_timeout = self.config.task_timeout;
        self.workers
            .values()
            .flat_map(|s| s.leases.iter())
            .filter_map(|t| {
                let l = self.live_lease(*t)?;
                let hung = l.started_at.map(|at| at + task_timeout);
                Some(hung.map_or(l.deadline, |h| h.min(l.deadline)))
            })
            .min()
    }
}
