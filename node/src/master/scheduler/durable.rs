//! The scheduler's side of the durable record: the events its decisions
//! produced, each task's durable row, rebuilding from rows after a restart,
//! idempotency keys, and removing results and tasks. `submitters.rs`: who
//! shares a task and who confirmed; `rollback.rs`: putting a task back as
//! its last durable row says, when recording a change failed.

mod rollback;
mod submitters;

use std::collections::BTreeSet;

use tessera_proto::{TaskEvent, TaskId};

use super::{Phase, Scheduler, Task, WorkerId};
use crate::master::record::{RowState, TaskRow};

pub use submitters::{Confirmation, MAX_SUBMITTERS};

/// Why a result's files are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The client confirmed it stored the result.
    Fetched,
    /// The retention period ran out.
    Expired,
}

/// A done task's result, as a download needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultRef {
    pub attempt: u32,
    pub len: u64,
    pub checksum: u64,
    /// The files were removed already.
    pub removed: bool,
}

impl Scheduler {
    /// Sets the wall clock used to stamp what happens next (ms since the epoch).
    pub fn set_wall_ms(&mut self, ms: u64) {
        self.wall_ms = ms;
    }

    /// The events since the last call, in the order they happened.
    pub fn take_events(&mut self) -> Vec<(TaskId, TaskEvent)> {
        std::mem::take(&mut self.events)
    }

    /// The next task id that [`Self::reserve_id`] will hand out.
    pub fn next_task(&self) -> u64 {
        self.next_task
    }

    /// The task submitted under `key`, if it still exists.
    pub fn task_for_key(&self, key: u128) -> Option<TaskId> {
        self.by_key.get(&key).copied()
    }

    /// The task's durable current state.
    pub fn row(&self, id: TaskId) -> Option<TaskRow> {
        let t = self.tasks.get(&id)?;
        let state = match &t.phase {
            Phase::Queued => RowState::Queued,
            Phase::Leased(l) => RowState::Leased { attempt: l.attempt },
            Phase::Done {
                output_len,
                output_checksum,
                attempt,
                done_ms,
                removed,
            } => RowState::Done {
                attempt: *attempt,
                output_len: *output_len,
                output_checksum: *output_checksum,
                done_ms: *done_ms,
                worker: t.last_worker.as_deref().unwrap_or("?").to_string(),
                removed: *removed,
            },
            Phase::Failed { kind, reason } => RowState::Failed {
                kind: *kind,
                reason: reason.clone(),
            },
        };
        Some(TaskRow {
            name: t.name.clone(),
            input_len: t.input_len,
            input_checksum: t.input_checksum,
            key: t.key,
            submitted_ms: t.submitted_ms,
            attempts: t.attempts,
            lost: t.lost,
            history: t.history.clone(),
            state,
            strikes: t.strikes,
            exposure_ms: t.exposure_ms,
            evidence: t.evidence,
            submitters: t.submitters.clone(),
        })
    }

    /// Rebuilds the tasks from their rows after a restart. Tasks that were
    /// leased when the master stopped are queued again (a `Recovered` event
    /// each); the queue is in task-id order. Tasks at rest stay in the
    /// record only (see `archive.rs`): they are counted, not loaded.
    pub fn restore(&mut self, rows: Vec<(TaskId, TaskRow)>, next_task: u64) {
        let mut max_id = 0;
        self.background =
            super::background::Background::from_rows(rows.iter().map(|(id, r)| (*id, r)));
        for (id, row) in rows {
            max_id = max_id.max(id.0);
            if super::archive::row_at_rest(&row.state) {
                self.archived.add(&row.state);
                continue;
            }
            if let RowState::Leased { attempt } = row.state {
                self.events.push((id, TaskEvent::Recovered { attempt }));
            }
            if self.insert_row(id, row) {
                self.queue.push_back(id);
            }
        }
        let mut queued: Vec<TaskId> = self.queue.drain(..).collect();
        queued.sort();
        self.queue.extend(queued);
        self.next_task = self.next_task.max(next_task).max(max_id + 1);
    }

    /// Inserts the task a row describes (leased: queued again), with its
    /// idempotency key; true when it is to be queued (the caller queues it).
    /// Only a task not at rest comes here (`restore` counts the others), so
    /// its key still names it: a removed result's key, and that of a task
    /// failed for no fault of the image, were freed (`fault_in` brings such
    /// a task back without its key).
    pub(super) fn insert_row(&mut self, id: TaskId, row: TaskRow) -> bool {
        debug_assert!(!super::archive::row_at_rest(&row.state));
        self.by_key.insert(row.key, id);
        let task = task_from_row(row);
        let queued = matches!(task.phase, Phase::Queued);
        self.tasks.insert(id, task);
        queued
    }

    /// The result of a done task.
    pub fn result_ref(&self, id: TaskId) -> Option<ResultRef> {
        result_of(self.tasks.get(&id)?)
    }

    /// Marks a done task's result as removed (its idempotency key is freed).
    /// False if it is not done or already removed.
    pub fn remove_result(&mut self, id: TaskId, why: Removal) -> bool {
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        let Phase::Done { removed, .. } = &mut task.phase else {
            return false;
        };
        if *removed {
            return false;
        }
        *removed = true;
        // The key no longer names a result anyone can fetch: the same image
        // submitted again is new work.
        if self.by_key.get(&task.key) == Some(&id) {
            self.by_key.remove(&task.key);
        }
        let event = match why {
            Removal::Fetched => TaskEvent::Fetched,
            Removal::Expired => TaskEvent::Expired,
        };
        self.events.push((id, event));
        true
    }

    /// Done tasks whose result is older than `retention_ms` and still kept.
    pub fn results_older_than(&self, retention_ms: u64) -> Vec<TaskId> {
        let cutoff = self.wall_ms.saturating_sub(retention_ms);
        self.tasks
            .iter()
            .filter(|(_, t)| {
                matches!(t.phase, Phase::Done { removed: false, done_ms, .. } if done_ms <= cutoff)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Removes a task. A live lease's holder is returned: it must be told to
    /// drop the task.
    pub fn delete(&mut self, id: TaskId) -> Option<Option<(WorkerId, u32)>> {
        let task = self.tasks.remove(&id)?;
        self.deletions += 1;
        if self.by_key.get(&task.key) == Some(&id) {
            self.by_key.remove(&task.key);
        }
        self.events.push((id, TaskEvent::Deleted));
        let holder = match task.phase {
            Phase::Queued => {
                self.queue.retain(|t| *t != id);
                None
            }
            Phase::Leased(l) => {
                if let Some(slot) = self.workers.get_mut(&l.worker) {
                    slot.leases.remove(&id);
                }
                Some((l.worker, l.attempt))
            }
            _ => None,
        };
        Some(holder)
    }

    /// Every task id that exists, for sweeping files that belong to none.
    pub fn task_ids(&self) -> BTreeSet<TaskId> {
        self.tasks.keys().copied().collect()
    }
}

/// The task a durable row describes (a leased one is queued again).
pub(super) fn task_from_row(row: TaskRow) -> Task {
    let last_worker = match &row.state {
        RowState::Done { worker, .. } => Some(worker.as_str().into()),
        _ => None,
    };
    let phase = match row.state {
        RowState::Queued | RowState::Leased { .. } => Phase::Queued,
        RowState::Done {
            attempt,
            output_len,
            output_checksum,
            done_ms,
            removed,
            ..
        } => Phase::Done {
            output_len,
            output_checksum,
            attempt,
            done_ms,
            removed,
        },
        RowState::Failed { kind, reason } => Phase::Failed { kind, reason },
    };
    Task {
        name: row.name,
        input_len: row.input_len,
        input_checksum: row.input_checksum,
        key: row.key,
        submitted_ms: row.submitted_ms,
        phase,
        attempts: row.attempts,
        lost: row.lost,
        strikes: row.strikes,
        exposure_ms: row.exposure_ms,
        evidence: row.evidence,
        shadow: None,
        timed_out_on: Vec::new(),
        history: row.history,
        last_worker,
        submitters: row.submitters,
    }
}

/// A done task's result.
pub(super) fn result_of(task: &Task) -> Option<ResultRef> {
    match task.phase {
        Phase::Done {
            attempt,
            output_len,
            output_checksum,
            removed,
            ..
        } => Some(ResultRef {
            attempt,
            len: output_len,
            checksum: output_checksum,
            removed,
        }),
        _ => None,
    }
}
