//! Dispatch: pairing queued tasks with worker credits, and isolation — a task
//! under suspicion ([`super::blame`]) is handed out only where it will execute
//! alone, so that if its worker dies again the death names one image.
//!
//! Where a task runs alone:
//! * on a worker of one thread: it executes one image at a time, so the task
//!   is alone while it runs, whatever waits behind it;
//! * on a worker of several threads that holds nothing else: the lease is
//!   marked `isolated`, and the worker is given nothing more until it ends.
//!
//! When a suspect waits and no worker of one thread exists, the worker of
//! several threads holding the fewest leases is *reserved*: it gets no new
//! work, so it empties and the suspect runs there. Silent and draining
//! workers are offered nothing.

use std::time::Instant;

use tessera_proto::TaskEvent;

use super::{Assignment, Lease, Phase, Scheduler, WorkerId};
use tessera_proto::TaskId;

impl Scheduler {
    /// Pairs queued tasks with worker credits, oldest task first, each to the
    /// worker with the most credits not already spoken for by tasks waiting
    /// there unstarted (ties: lowest id); a task under suspicion only where it
    /// runs alone (it keeps its place in the queue until such a worker is free).
    pub fn dispatch(&mut self, now: Instant) -> Vec<(WorkerId, Assignment)> {
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        while let Some(&task_id) = self.queue.front() {
            let suspect = self.suspect(task_id);
            let worker = if suspect {
                self.alone_worker(task_id)
            } else {
                self.best_worker()
            };
            self.queue.pop_front();
            let Some(worker) = worker else {
                if suspect {
                    waiting.push(task_id);
                    continue;
                }
                self.queue.push_front(task_id);
                break;
            };
            if !matches!(
                self.tasks.get(&task_id).map(|t| &t.phase),
                Some(Phase::Queued)
            ) {
                continue;
            }
            out.push(self.lease_to(task_id, worker, now, suspect));
        }
        let suspects_wait = !waiting.is_empty();
        for t in waiting.into_iter().rev() {
            self.queue.push_front(t);
        }
        self.reserve_for_suspects(suspects_wait);
        out
    }

    /// Leases `task_id` to `worker` under a new attempt number.
    pub(super) fn lease_to(
        &mut self,
        task_id: TaskId,
        worker: WorkerId,
        now: Instant,
        isolated: bool,
    ) -> (WorkerId, Assignment) {
        let deadline = now + self.config.lease_timeout;
        let slot = self.workers.get_mut(&worker).expect("chosen from workers");
        let task = self.tasks.get_mut(&task_id).expect("chosen from tasks");
        task.attempts += 1;
        task.last_worker = Some(slot.name.clone());
        let attempt = task.attempts;
        task.phase = Phase::Leased(Lease {
            worker,
            attempt,
            deadline,
            started: false,
            releasing: false,
            leased_at: now,
            started_at: None,
            isolated,
        });
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
        (worker, assignment)
    }

    /// The worker for an ordinary task: available, with credits, neither
    /// isolating a suspect nor reserved for one.
    pub(super) fn best_worker(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(id, s)| {
                s.credits > 0
                    && Self::available(s)
                    && !self.isolating(s)
                    && self.reserved != Some(**id)
            })
            .map(|(id, s)| (i64::from(s.credits) - self.unstarted(s) as i64, *id))
            .max_by(|(a, ia), (b, ib)| a.cmp(b).then(ib.cmp(ia)))
            .map(|(_, id)| id)
    }

    /// The worker where a suspect will execute alone, if one is free now: the
    /// reserved one once it is empty, else a worker of one thread (the one
    /// with the fewest tasks waiting there), else an empty worker of several;
    /// a worker the task already timed out on only when no other will do.
    fn alone_worker(&self, task: TaskId) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, s)| s.credits > 0 && Self::available(s) && !self.isolating(s))
            .filter_map(|(id, s)| {
                let empty = s.leases.is_empty() && self.shadows_of(*id, s) == 0;
                let rank = if self.reserved == Some(*id) && empty {
                    0
                } else if s.threads == 1 {
                    1
                } else if empty {
                    2
                } else {
                    return None;
                };
                let avoid = self.timed_out_on(task, *id);
                Some(((avoid, rank, s.leases.len()), *id))
            })
            .min()
            .map(|(_, id)| id)
    }

    /// Keeps (or picks, or drops) the worker reserved for waiting suspects.
    fn reserve_for_suspects(&mut self, suspects_wait: bool) {
        let usable = |s: &super::WorkerSlot| Self::available(s);
        if !suspects_wait {
            self.reserved = None;
            return;
        }
        if self.workers.values().any(|s| s.threads == 1 && usable(s)) {
            // A worker of one thread will take the suspect when it has a credit.
            self.reserved = None;
            return;
        }
        if let Some(r) = self.reserved
            && self.workers.get(&r).is_some_and(usable)
        {
            return;
        }
        self.reserved = self
            .workers
            .iter()
            .filter(|(_, s)| usable(s))
            .map(|(id, s)| (s.leases.len(), *id))
            .min()
            .map(|(_, id)| id);
    }
}
