//! Cancelling a task on request: a queued task leaves the queue, a leased
//! one loses its lease (its holder must be told to drop it); either way the
//! task fails with [`FailureKind::Cancelled`] and a `Cancelled` event is
//! recorded. A decided task is left as it is.

use tessera_proto::{FailureKind, TaskEvent, TaskId};

use super::{Phase, Scheduler, WorkerId};

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The task is cancelled now. `holder`: the worker and attempt that held
    /// its lease, to be sent `Drop`.
    Cancelled { holder: Option<(WorkerId, u32)> },
    /// The task was done or failed already: nothing changed.
    AlreadyDecided,
}

impl Scheduler {
    /// Cancels `task_id`; `None` when there is no such task.
    pub fn cancel(&mut self, task_id: TaskId) -> Option<Cancel> {
        let task = self.tasks.get_mut(&task_id)?;
        let (holder, event, reason) = match &task.phase {
            Phase::Done { .. } | Phase::Failed { .. } => return Some(Cancel::AlreadyDecided),
            Phase::Queued => (
                None,
                TaskEvent::Cancelled {
                    attempt: None,
                    worker: None,
                },
                "cancelled on request while queued".to_string(),
            ),
            Phase::Leased(l) => {
                let name = self
                    .workers
                    .get(&l.worker)
                    .map_or_else(|| l.worker.to_string(), |s| s.name.to_string());
                let reason = format!(
                    "cancelled on request during attempt {} on {name}",
                    l.attempt
                );
                let event = TaskEvent::Cancelled {
                    attempt: Some(l.attempt),
                    worker: Some(name),
                };
                (Some((l.worker, l.attempt)), event, reason)
            }
        };
        self.background.decided(
            task.evidence,
            task.exposure_ms,
            Some(FailureKind::Cancelled),
        );
        task.phase = Phase::Failed {
            kind: FailureKind::Cancelled,
            reason,
        };
        // A decided task has no straggling attempt (its worker's thread is
        // free for the scheduler, and its late result is stale).
        task.shadow = None;
        // Cancelled for no fault of the image: submitted again, it is new work.
        if self.by_key.get(&task.key) == Some(&task_id) {
            self.by_key.remove(&task.key);
        }
        match holder {
            None => self.queue.retain(|t| *t != task_id),
            Some((worker, _)) => {
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.leases.remove(&task_id);
                }
            }
        }
        self.events.push((task_id, event));
        Some(Cancel::Cancelled { holder })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tessera_proto::{LeaseRef, TaskState};

    use super::*;
    use crate::master::scheduler::{Outcome, SchedulerConfig};

    fn sched() -> Scheduler {
        Scheduler::new(SchedulerConfig {
            max_attempts: 3,
            max_credits: 8,
            lease_timeout: Duration::from_secs(10),
            stealing: true,
            ..SchedulerConfig::default()
        })
    }

    fn join(s: &mut Scheduler, w: u64, credits: u32) -> WorkerId {
        let id = WorkerId(w);
        s.worker_joined(id, format!("node-{w}"));
        s.worker_capacity(id, 1);
        s.worker_ready(id, credits);
        id
    }

    fn cancelled(s: &Scheduler, t: TaskId) -> bool {
        matches!(
            s.info(t).unwrap().state,
            TaskState::Failed {
                kind: FailureKind::Cancelled,
                ..
            }
        )
    }

    #[test]
    fn a_queued_task_is_cancelled_at_once_and_never_handed_out() {
        let mut s = sched();
        let a = s.submit("a".into(), 1);
        let b = s.submit("b".into(), 1);
        s.take_events();
        assert_eq!(s.cancel(a), Some(Cancel::Cancelled { holder: None }));
        assert!(cancelled(&s, a));
        assert_eq!(s.queue_len(), 1);
        let counts = s.task_counts();
        assert_eq!(
            (counts.queued, counts.failed, counts.cancelled),
            (1, 0, 1),
            "counted as cancelled, not failed"
        );
        assert_eq!(
            s.take_events(),
            vec![(
                a,
                TaskEvent::Cancelled {
                    attempt: None,
                    worker: None
                }
            )]
        );
        let w = join(&mut s, 1, 4);
        let handed: Vec<TaskId> = s
            .dispatch(Instant::now())
            .into_iter()
            .map(|(_, a)| a.task)
            .collect();
        assert_eq!(handed, vec![b], "the cancelled task is not dispatched");
        assert_eq!(s.leases_of(w), vec![b]);
    }

    #[test]
    fn a_leased_task_is_cancelled_and_its_holder_named() {
        let now = Instant::now();
        let mut s = sched();
        let a = s.submit("a".into(), 1);
        let w = join(&mut s, 1, 1);
        s.dispatch(now);
        s.started(w, a, 1, Instant::now());
        s.take_events();
        assert_eq!(
            s.cancel(a),
            Some(Cancel::Cancelled {
                holder: Some((w, 1))
            })
        );
        assert!(cancelled(&s, a));
        assert!(s.leases_of(w).is_empty(), "the lease is gone");
        assert!(s.lease_of(a).is_none());
        assert_eq!(
            s.take_events(),
            vec![(
                a,
                TaskEvent::Cancelled {
                    attempt: Some(1),
                    worker: Some("node-1".into())
                }
            )]
        );
        // Its heartbeat naming the lease is told to drop it; a late result
        // or failure is stale and changes nothing.
        assert_eq!(
            s.heartbeat(
                w,
                &[LeaseRef {
                    task: a,
                    attempt: 1
                }],
                now
            ),
            vec![LeaseRef {
                task: a,
                attempt: 1
            }]
        );
        assert_eq!(s.complete(w, a, 1, 5, 0, now).0, Outcome::Stale);
        assert_eq!(
            s.fail(w, a, 1, FailureKind::Corrupt, "x".into(), now),
            Outcome::Stale
        );
        assert!(cancelled(&s, a));
        assert!(s.expire(now + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_decided_task_is_left_alone_and_an_unknown_one_is_none() {
        let now = Instant::now();
        let mut s = sched();
        let a = s.submit("a".into(), 1);
        let w = join(&mut s, 1, 1);
        s.dispatch(now);
        s.complete(w, a, 1, 5, 0, now);
        s.take_events();
        assert_eq!(s.cancel(a), Some(Cancel::AlreadyDecided));
        assert_eq!(s.info(a).unwrap().state, TaskState::Done);
        assert!(s.take_events().is_empty());
        assert_eq!(s.cancel(TaskId(999)), None);
    }

    #[test]
    fn a_cancelled_task_survives_a_restart_as_cancelled() {
        let mut s = sched();
        let a = s.submit("a".into(), 1);
        s.cancel(a);
        let row = s.row(a).unwrap();
        let mut again = sched();
        again.restore(vec![(a, row.clone())], 2);
        // At rest: in the record only (see `archive.rs`), never queued again.
        assert!(!again.holds(a));
        assert_eq!(again.queue_len(), 0);
        assert_eq!(
            (again.task_counts().failed, again.task_counts().cancelled),
            (0, 1),
            "counted as cancelled, not failed"
        );
        assert!(matches!(
            Scheduler::info_of_row(a, row).state,
            TaskState::Failed {
                kind: FailureKind::Cancelled,
                ..
            }
        ));
    }
}
