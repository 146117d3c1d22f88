//! Lease timing: heartbeats extend leases, and leases past their deadline
//! expire. Plain functions of the state and an injected `now`.

use std::time::Instant;

use tessera_proto::{LeaseRef, TaskId};

use super::{Scheduler, WorkerId};

/// A lease that ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub task: TaskId,
    pub worker: WorkerId,
    pub attempt: u32,
    /// The task ran out of attempts and failed for good.
    pub failed: bool,
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
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.stats.last_heartbeat = Some(now);
        }
        let mut dead = Vec::new();
        for l in leases {
            match self.lease_mut(worker, l.task, l.attempt) {
                Some(lease) => lease.deadline = lease.deadline.max(deadline),
                None => dead.push(*l),
            }
        }
        dead
    }

    /// Extends one lease (the master saw the worker make progress on it, e.g.
    /// result bytes arriving).
    pub fn touch(&mut self, worker: WorkerId, task: TaskId, attempt: u32, now: Instant) {
        let deadline = now + self.config.lease_timeout;
        if let Some(lease) = self.lease_mut(worker, task, attempt) {
            lease.deadline = lease.deadline.max(deadline);
        }
    }

    /// Ends every lease whose deadline is at or before `now`: the task goes
    /// back to the front of the queue, or fails when out of attempts.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let due: Vec<(TaskId, WorkerId, u32)> = self
            .workers
            .values()
            .flat_map(|s| s.leases.iter())
            .filter_map(|t| {
                let l = self.live_lease(*t)?;
                (l.deadline <= now).then_some((*t, l.worker, l.attempt))
            })
            .collect();
        let mut out = Vec::new();
        for (task, worker, attempt) in due {
            let timeout = self.config.lease_timeout;
            let name = self
                .workers
                .get(&worker)
                .map_or_else(|| worker.to_string(), |s| s.name.to_string());
            let why = format!("lease expired (no heartbeat for {timeout:?})");
            let failed = self.end_lease(task, &name, &why);
            if let Some(slot) = self.workers.get_mut(&worker) {
                slot.leases.remove(&task);
            }
            out.push(Expired {
                task,
                worker,
                attempt,
                failed,
            });
        }
        out
    }

    /// The earliest lease deadline, to know when to call [`Self::expire`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.workers
            .values()
            .flat_map(|s| s.leases.iter())
            .filter_map(|t| self.live_lease(*t).map(|l| l.deadline))
            .min()
    }
}
