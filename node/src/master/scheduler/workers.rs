//! Worker membership: a worker joins, states its capacity, grants credits,
//! drains, and is lost (every lease it held ends at once).

use std::{collections::BTreeSet, time::Instant};

use tessera_proto::TaskId;

use super::{Scheduler, WorkerId, WorkerSlot, blame::Loss};

impl Scheduler {
    pub fn worker_joined(&mut self, worker: WorkerId, name: String) {
        let slot = WorkerSlot {
            name: name.into(),
            threads: 1,
            credits: 0,
            leases: BTreeSet::new(),
            shadows: BTreeSet::new(),
            draining: false,
            silent: false,
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

    /// The worker's connection is gone (closed or broken: the worker may
    /// have crashed): every lease it held ends at once, each judged by
    /// [`super::blame`] (an image executing alone there is blamed, one
    /// beside others is suspected, one not started is innocent). Its
    /// straggling attempts just end (their backups run on). Returns the
    /// tasks that failed for good.
    pub fn worker_lost(&mut self, worker: WorkerId, why: &str, now: Instant) -> Vec<TaskId> {
        self.remove_worker(worker, why, None, now)
    }

    /// The worker gave its connection up because it heard nothing from the
    /// master for the lease timeout (it said so: `HangingUp`): as
    /// [`Self::worker_lost`], but its leases are lost to that silence
    /// ([`Loss::HungUp`]), which is no evidence against any image.
    pub fn worker_hung_up(&mut self, worker: WorkerId, why: &str, now: Instant) -> Vec<TaskId> {
        self.remove_worker(worker, why, Some(Loss::HungUp), now)
    }

    /// Ends `worker` and its leases, each lost as `loss`, or, when `None`,
    /// as a death ([`Loss::Died`]).
    fn remove_worker(
        &mut self,
        worker: WorkerId,
        why: &str,
        loss: Option<Loss>,
        now: Instant,
    ) -> Vec<TaskId> {
        let Some(slot) = self.workers.get(&worker) else {
            return Vec::new();
        };
        let alone = self.executing(worker, slot) == 1;
        let loss = loss.unwrap_or(Loss::Died { alone });
        let Some(slot) = self.workers.remove(&worker) else {
            return Vec::new();
        };
        if self.reserved == Some(worker) {
            self.reserved = None;
        }
        for task_id in &slot.shadows {
            if let Some(task) = self.tasks.get_mut(task_id)
                && task.shadow.is_some_and(|s| s.worker == worker)
            {
                task.shadow = None;
            }
        }
        let mut failed = Vec::new();
        // Requeue newest first at the front, so the oldest ends up first in line.
        for task_id in slot.leases.into_iter().rev() {
            if self.end_lease(task_id, &slot.name, loss, why, now) {
                failed.push(task_id);
            }
        }
        failed
    }
}
