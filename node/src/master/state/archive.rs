//! Tasks at rest through the shared state (see `scheduler/archive.rs`):
//! reads of a task that is in the record only, bringing one back to delete
//! it, and retiring old failures.

use tessera_proto::{TaskId, TaskInfo};

use super::Shared;
use crate::master::{
    record::{StoreError, TaskRow},
    scheduler::{Scheduler, durable::ResultRef},
};

impl Shared {
    /// The durable row of a task that is not in memory (at rest, deleted,
    /// or never was). `Ok(None)` when the record has none either.
    async fn row_at_rest(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError> {
        if task.0 == 0 || task.0 >= self.lock().scheduler.next_task() {
            return Ok(None);
        }
        self.journal.row(task).await
    }

    /// The task's state, from memory or, at rest, from the record.
    pub async fn recorded_info(&self, task: TaskId) -> Result<Option<TaskInfo>, StoreError> {
        if let Some(info) = self.info(task) {
            return Ok(Some(info));
        }
        let row = self.row_at_rest(task).await?;
        Ok(row.map(|r| Scheduler::info_of_row(task, r)))
    }

    /// The task's state and, when done, its result, from memory or, at
    /// rest, from the record.
    pub async fn recorded_result(
        &self,
        task: TaskId,
    ) -> Result<Option<(TaskInfo, Option<ResultRef>)>, StoreError> {
        if let Some(found) = self.info_with_result(task) {
            return Ok(Some(found));
        }
        let row = self.row_at_rest(task).await?;
        Ok(row.map(|r| {
            let result = Scheduler::result_of_row(&r);
            (Scheduler::info_of_row(task, r), result)
        }))
    }

    /// Brings a task at rest back into memory (to change it: delete). A
    /// deletion that ran while the row was read makes it read again, so a
    /// deleted task never comes back.
    pub async fn fault_in(&self, task: TaskId) -> Result<(), StoreError> {
        loop {
            let deletions = {
                let g = self.lock();
                if g.scheduler.holds(task) {
                    return Ok(());
                }
                g.scheduler.deletions()
            };
            let row = self.row_at_rest(task).await?;
            let mut g = self.lock();
            if g.scheduler.deletions() != deletions {
                continue;
            }
            if let Some(row) = row {
                g.scheduler.fault_in(task, row);
            }
            return Ok(());
        }
    }

    /// Failures for the image's content submitted more than `retention_ms`
    /// ago leave memory and free their keys. How many.
    pub fn archive_old_failures(&self, retention_ms: u64) -> usize {
        let mut g = self.lock();
        let g = &mut *g;
        let unsettled = &g.unsettled;
        g.scheduler
            .archive_failures_older_than(retention_ms, |t| unsettled.contains_key(&t))
    }
}
