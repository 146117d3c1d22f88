//! Work stealing: when nothing is queued and a worker sits idle while another
//! holds tasks it has not started, the master asks the busy worker to give
//! one back (`Release`); once the worker confirms (`Released`), the task is
//! queued again and dispatch hands it to the idle worker.

use tessera_proto::TaskId;

use super::{Scheduler, WorkerId};

/// Ask `victim` to give back (`task`, `attempt`) if it has not started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StealOrder {
    pub victim: WorkerId,
    pub task: TaskId,
    pub attempt: u32,
}

impl Scheduler {
    /// Decides which unstarted tasks to take back: one per idle thread (a
    /// thread is idle when its worker has credits, is not draining, has no
    /// unstarted task of its own and has started fewer tasks than it has
    /// threads). Each task is asked for once: its lease is marked `releasing`
    /// until the worker answers.
    pub fn steal(&mut self) -> Vec<StealOrder> {
        if !self.config.stealing || !self.queue.is_empty() {
            return Vec::new();
        }
        let idle: u32 = self
            .workers
            .iter()
            .map(|(id, s)| self.idle_threads(*id, s))
            .sum();
        if idle == 0 {
            return Vec::new();
        }
        // Already-requested releases will serve idle credits too.
        let in_flight = self
            .workers
            .values()
            .flat_map(|s| s.leases.iter())
            .filter(|t| self.live_lease(**t).is_some_and(|l| l.releasing))
            .count() as u32;
        let mut wanted = idle.saturating_sub(in_flight);
        let mut orders = Vec::new();
        while wanted > 0 {
            // The worker with the most unstarted, not-yet-requested tasks; its newest one.
            let candidate = self
                .workers
                .iter()
                .filter_map(|(id, s)| {
                    let free: Vec<TaskId> = s
                        .leases
                        .iter()
                        .copied()
                        .filter(|t| {
                            self.live_lease(*t)
                                .is_some_and(|l| !l.started && !l.releasing)
                        })
                        .collect();
                    let last = *free.last()?;
                    Some((free.len(), *id, last))
                })
                .max_by(|(a, ia, _), (b, ib, _)| a.cmp(b).then(ib.cmp(ia)));
            let Some((_, victim, task)) = candidate else {
                break;
            };
            let Some(lease) = self.live_lease_mut(task) else {
                break;
            };
            lease.releasing = true;
            orders.push(StealOrder {
                victim,
                task,
                attempt: lease.attempt,
            });
            wanted -= 1;
        }
        orders
    }

    fn live_lease_mut(&mut self, task: TaskId) -> Option<&mut super::Lease> {
        match &mut self.tasks.get_mut(&task)?.phase {
            super::Phase::Leased(l) => Some(l),
            _ => None,
        }
    }
}
