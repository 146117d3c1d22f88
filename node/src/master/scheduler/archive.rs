//! Tasks at rest leave memory. A task is *at rest* when nothing can happen
//! to it any more but a read or a deletion: done with its result removed
//! (every submitter confirmed, or retention ran out), or failed with its
//! idempotency key freed (a machine's fault or a cancellation at once, a
//! failure for the image's content once `--retention` has passed since its
//! submission). Its durable row says all there is to say, so the scheduler
//! drops it ([`Scheduler::archive`]) and the master answers reads about it
//! from the record ([`Scheduler::info_of_row`], [`Scheduler::result_of_row`]).
//! Without this a master's memory grew by about 1 KiB for every image it
//! ever saw (the soak). A deletion brings the task back first
//! ([`Scheduler::fault_in`]).
//!
//! The caller archives a task only once it is settled (its row durable):
//! `Shared` does it when the last change to the task becomes durable.

use tessera_proto::{FailureKind, TaskId, TaskInfo};

use super::{Phase, Scheduler, blame::frees_key, durable::ResultRef};
use crate::master::record::{RowState, TaskRow};

/// Tasks at rest that are in the record only, by how they ended (the live
/// view still counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archived {
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl Archived {
    pub(super) fn add(&mut self, state: &RowState) {
        if let Some(count) = self.count_of(state) {
            *count += 1;
        }
    }

    fn take(&mut self, state: &RowState) {
        if let Some(count) = self.count_of(state) {
            *count = count.saturating_sub(1);
        }
    }

    /// The count a task that ended in `state` is in.
    fn count_of(&mut self, state: &RowState) -> Option<&mut u64> {
        match state {
            RowState::Done { .. } => Some(&mut self.done),
            RowState::Failed { kind, .. } => Some(self.failed_count(*kind)),
            RowState::Queued | RowState::Leased { .. } => None,
        }
    }

    /// The count a task that failed with `kind` is in.
    pub(super) fn failed_count(&mut self, kind: FailureKind) -> &mut u64 {
        if kind == FailureKind::Cancelled {
            &mut self.cancelled
        } else {
            &mut self.failed
        }
    }
}

/// Whether a task in this durable state is at rest without any time
/// passing (a failure for the image's content rests only after retention).
pub fn row_at_rest(state: &RowState) -> bool {
    match state {
        RowState::Done { removed, .. } => *removed,
        RowState::Failed { kind, .. } => frees_key(*kind),
        RowState::Queued | RowState::Leased { .. } => false,
    }
}

impl Scheduler {
    /// Drops `id` from memory if it is at rest; true if it was. Call only
    /// when its row is durable.
    pub fn archive(&mut self, id: TaskId) -> bool {
        let at_rest = self.tasks.get(&id).is_some_and(|t| match &t.phase {
            Phase::Done { removed, .. } => *removed,
            Phase::Failed { kind, .. } => frees_key(*kind),
            Phase::Queued | Phase::Leased(_) => false,
        });
        at_rest && self.drop_task(id)
    }

    /// Failures for the image's content submitted at least `retention_ms`
    /// ago, except those `busy` names: their keys are freed (the same image
    /// submitted again is tried again) and they leave memory. How many.
    pub fn archive_failures_older_than(
        &mut self,
        retention_ms: u64,
        busy: impl Fn(TaskId) -> bool,
    ) -> usize {
        let cutoff = self.wall_ms.saturating_sub(retention_ms);
        let old: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| {
                matches!(t.phase, Phase::Failed { .. }) && t.submitted_ms <= cutoff && !busy(**id)
            })
            .map(|(id, _)| *id)
            .collect();
        old.into_iter().filter(|id| self.drop_task(*id)).count()
    }

    fn drop_task(&mut self, id: TaskId) -> bool {
        let Some(task) = self.tasks.remove(&id) else {
            return false;
        };
        if self.by_key.get(&task.key) == Some(&id) {
            self.by_key.remove(&task.key);
        }
        match task.phase {
            Phase::Done { .. } => self.archived.done += 1,
            Phase::Failed { kind, .. } => *self.archived.failed_count(kind) += 1,
            // Never dropped: both callers drop decided tasks only.
            Phase::Queued | Phase::Leased(_) => {}
        }
        true
    }

    /// Tasks in the record only.
    pub fn archived(&self) -> Archived {
        self.archived
    }

    /// Whether the task is in memory.
    pub fn holds(&self, id: TaskId) -> bool {
        self.tasks.contains_key(&id)
    }

    /// Deletions so far: a reader that fetched a row outside the lock
    /// checks this did not change before it acts on the row.
    pub fn deletions(&self) -> u64 {
        self.deletions
    }

    /// Brings an archived task back from its durable `row` (to delete it).
    /// Only a decided task can have been archived; anything else, or a task
    /// already in memory, is left alone. True if it was brought back.
    pub fn fault_in(&mut self, id: TaskId, row: TaskRow) -> bool {
        if self.tasks.contains_key(&id)
            || id.0 >= self.next_task
            || !matches!(row.state, RowState::Done { .. } | RowState::Failed { .. })
        {
            return false;
        }
        self.archived.take(&row.state);
        // At rest, its key names nothing any more.
        self.tasks.insert(id, super::durable::task_from_row(row));
        true
    }

    /// What a client is told about a task that is in the record only.
    pub fn info_of_row(id: TaskId, row: TaskRow) -> TaskInfo {
        super::query::info_of(id, &super::durable::task_from_row(row))
    }

    /// A done task's result, from its durable row.
    pub fn result_of_row(row: &TaskRow) -> Option<ResultRef> {
        super::durable::result_of(&super::durable::task_from_row(row.clone()))
    }
}
