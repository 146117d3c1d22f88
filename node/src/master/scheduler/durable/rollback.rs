//! Undoing a change whose record could not be written: the task is put back
//! as its last durable row says (or removed, when even its submission never
//! became durable), so what the master holds is again what a restart would
//! find. Nobody was told of the change: the ledger answers only after the
//! record is durable.

use tessera_proto::TaskId;

use crate::master::{
    record::TaskRow,
    scheduler::{Phase, Scheduler, WorkerId},
};

impl Scheduler {
    /// Puts `id` back as `before` says, or removes it when `before` is
    /// `None`. A queued or leased task goes to the front of the queue; a
    /// live lease ends and its holder is returned, to be told `Drop`. No
    /// event: the record holds `before` already. Attempt numbers never go
    /// back (they are fencing tokens).
    pub fn reinstate(&mut self, id: TaskId, before: Option<TaskRow>) -> Option<(WorkerId, u32)> {
        let mut attempts = 0;
        let holder = self.tasks.remove(&id).and_then(|task| {
            attempts = task.attempts;
            if self.by_key.get(&task.key) == Some(&id) {
                self.by_key.remove(&task.key);
            }
            self.queue.retain(|t| *t != id);
            match task.phase {
                Phase::Leased(l) => {
                    if let Some(slot) = self.workers.get_mut(&l.worker) {
                        slot.leases.remove(&id);
                    }
                    Some((l.worker, l.attempt))
                }
                _ => None,
            }
        });
        if let Some(mut row) = before {
            row.attempts = row.attempts.max(attempts);
            if self.insert_row(id, row) {
                self.queue.push_front(id);
            }
        }
        holder
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tessera_proto::TaskState;

    use super::*;
    use crate::master::scheduler::{Outcome, SchedulerConfig};

    #[test]
    fn an_unrecorded_result_is_undone_and_the_task_runs_again_under_a_new_attempt() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        let t = s.submit("x".into(), 1);
        let w = WorkerId(1);
        s.worker_joined(w, "w".into());
        s.worker_capacity(w, 1);
        s.worker_ready(w, 2);
        s.dispatch(now);
        let before = s.row(t);
        assert_eq!(s.complete(w, t, 1, 5, 9, now).0, Outcome::Accepted);
        assert_eq!(s.reinstate(t, before), None, "the lease ended already");
        assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
        let again = s.dispatch(now);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1.attempt, 2, "a fresh fencing token");
    }

    #[test]
    fn an_unrecorded_submission_is_forgotten_and_its_holder_named() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        let t = s.submit("x".into(), 1);
        let w = WorkerId(1);
        s.worker_joined(w, "w".into());
        s.worker_capacity(w, 1);
        s.worker_ready(w, 1);
        s.dispatch(now);
        assert_eq!(s.reinstate(t, None), Some((w, 1)));
        assert!(s.info(t).is_none());
        assert_eq!(s.task_for_key(1), None);
        assert!(s.leases_of(w).is_empty());
    }

    #[test]
    fn undoing_one_submission_leaves_the_others_queued() {
        let mut s = Scheduler::new(SchedulerConfig::default());
        let kept = s.submit("kept".into(), 1);
        let undone = s.submit("undone".into(), 1);
        assert_eq!(s.reinstate(undone, None), None);
        assert!(s.info(undone).is_none());
        assert_eq!(s.queue_len(), 1);
        assert_eq!(s.broken_invariant(), None);
        let w = WorkerId(1);
        s.worker_joined(w, "w".into());
        s.worker_capacity(w, 1);
        s.worker_ready(w, 2);
        let out = s.dispatch(Instant::now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.task, kept, "still in line");
    }
}
