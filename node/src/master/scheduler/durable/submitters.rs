//! Who shares a task: every submission answered `Submitted` for it is a
//! submitter (the client's own id, so its resubmissions count once). The
//! result is kept until every submitter has confirmed its download; the
//! last confirmation removes it.

use tessera_proto::{TaskEvent, TaskId};

use super::{Removal, ResultRef};
use crate::master::{
    record::Submitter,
    scheduler::{Phase, Scheduler},
};

/// Most submitters one task is shared by; a further submission of the same
/// image becomes a task of its own (which its key then names).
pub const MAX_SUBMITTERS: usize = 64;

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// It was the last one: the result is marked removed; remove its files.
    Removed(ResultRef),
    /// Counted; the result is kept for `waiting` more submitters.
    Counted { waiting: u32 },
    /// Nothing to do: not done, already removed, not a submitter of the
    /// task, or confirmed before.
    Nothing,
}

impl Scheduler {
    /// The task that `submitter`'s submission of `key` joins, if one may:
    /// the one the key names, unless it is shared by [`MAX_SUBMITTERS`]
    /// others already.
    pub fn joinable(&self, key: u128, submitter: u64) -> Option<TaskId> {
        let id = self.task_for_key(key)?;
        let task = self.tasks.get(&id)?;
        (task.submitters.len() < MAX_SUBMITTERS || self.has_submitter(id, submitter)).then_some(id)
    }

    /// Whether `submitter` shares `task` already.
    pub fn has_submitter(&self, task: TaskId, submitter: u64) -> bool {
        self.tasks
            .get(&task)
            .is_some_and(|t| t.submitters.iter().any(|s| s.id == submitter))
    }

    /// Adds `submitter` to `task`; with `joined`, records a `Joined` event
    /// (the first submitter is recorded with the submission itself). False
    /// when there is no such task or it has the submitter already.
    pub fn add_submitter(&mut self, task: TaskId, submitter: u64, joined: bool) -> bool {
        let Some(t) = self.tasks.get_mut(&task) else {
            return false;
        };
        if t.submitters.iter().any(|s| s.id == submitter) {
            return false;
        }
        t.submitters.push(Submitter {
            id: submitter,
            confirmed: false,
        });
        if joined {
            self.events.push((task, TaskEvent::Joined { submitter }));
        }
        true
    }

    /// `submitter` stored the result of `task`.
    pub fn confirm(&mut self, id: TaskId, submitter: u64) -> Confirmation {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Confirmation::Nothing;
        };
        if !matches!(task.phase, Phase::Done { removed: false, .. }) {
            return Confirmation::Nothing;
        }
        // A row of format 1 knows no submitters: the first confirmation
        // removes the result, as it did then.
        if !task.submitters.is_empty() {
            let Some(s) = task
                .submitters
                .iter_mut()
                .find(|s| s.id == submitter && !s.confirmed)
            else {
                return Confirmation::Nothing;
            };
            s.confirmed = true;
            let waiting = task.submitters.iter().filter(|s| !s.confirmed).count() as u32;
            if waiting > 0 {
                self.events
                    .push((id, TaskEvent::Confirmed { submitter, waiting }));
                return Confirmation::Counted { waiting };
            }
        }
        let Some(result) = self.result_ref(id) else {
            return Confirmation::Nothing;
        };
        if self.remove_result(id, Removal::Fetched) {
            Confirmation::Removed(result)
        } else {
            Confirmation::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::master::scheduler::{SchedulerConfig, WorkerId};

    /// A done task submitted by `a`, shared with `b`.
    fn shared_done() -> (Scheduler, TaskId) {
        let mut s = Scheduler::new(SchedulerConfig::default());
        let t = s.submit("x".into(), 1);
        assert!(s.add_submitter(t, 1, false));
        assert!(s.add_submitter(t, 2, true));
        assert!(!s.add_submitter(t, 2, true), "a submitter counts once");
        let w = WorkerId(1);
        s.worker_joined(w, "w".into());
        s.worker_capacity(w, 1);
        s.worker_ready(w, 1);
        s.dispatch(Instant::now());
        s.complete(w, t, 1, 5, 9, Instant::now());
        s.take_events();
        (s, t)
    }

    #[test]
    fn the_result_is_kept_until_every_submitter_confirmed_each_once() {
        let (mut s, t) = shared_done();
        assert_eq!(s.confirm(t, 1), Confirmation::Counted { waiting: 1 });
        assert_eq!(s.confirm(t, 1), Confirmation::Nothing, "counted once");
        assert_eq!(s.confirm(t, 7), Confirmation::Nothing, "not a submitter");
        assert!(!s.result_ref(t).unwrap().removed);
        assert_eq!(s.task_for_key(1), Some(t), "the key still dedupes");
        assert!(matches!(s.confirm(t, 2), Confirmation::Removed(_)));
        assert!(s.result_ref(t).unwrap().removed);
        assert_eq!(s.task_for_key(1), None, "the key is free again");
        assert_eq!(
            s.take_events(),
            vec![
                (
                    t,
                    TaskEvent::Confirmed {
                        submitter: 1,
                        waiting: 1
                    }
                ),
                (t, TaskEvent::Fetched)
            ]
        );
    }

    #[test]
    fn submitters_and_confirmations_survive_a_restart() {
        let (mut s, t) = shared_done();
        s.confirm(t, 2);
        let mut again = Scheduler::new(SchedulerConfig::default());
        again.restore(vec![(t, s.row(t).unwrap())], 2);
        assert_eq!(again.confirm(t, 2), Confirmation::Nothing);
        assert!(matches!(again.confirm(t, 1), Confirmation::Removed(_)));
    }

    #[test]
    fn a_task_with_no_recorded_submitters_is_removed_by_any_confirmation() {
        let (s, t) = shared_done();
        let mut row = s.row(t).unwrap();
        row.submitters.clear();
        let mut old = Scheduler::new(SchedulerConfig::default());
        old.restore(vec![(t, row)], 2);
        assert!(matches!(old.confirm(t, 99), Confirmation::Removed(_)));
    }

    #[test]
    fn a_full_task_is_not_joined() {
        let mut s = Scheduler::new(SchedulerConfig::default());
        let t = s.submit("x".into(), 1);
        for i in 0..MAX_SUBMITTERS as u64 {
            s.add_submitter(t, i + 1, true);
        }
        assert_eq!(s.task_for_key(1), Some(t));
        assert_eq!(s.joinable(1, 999), None);
        assert_eq!(s.joinable(1, 1), Some(t), "a submitter it has is welcome");
    }
}
