//! Operations that end a task's life or part of it: cancel, confirm,
//! delete, expire. Each answers (or announces) only once durable, and
//! removes files only after that.

use tessera_proto::{TaskId, TaskInfo};
use tracing::info;

use super::{Ledger, LedgerError, Obsolete, result_files};
use crate::master::{failpoint, scheduler::durable::Confirmation, store::Kind};

impl Ledger {
    /// Cancels `task`; its state afterwards (cancelled, or as it was when
    /// already decided). `Ok(None)`: no such task.
    pub async fn cancel(&self, task: TaskId) -> Result<Option<(TaskInfo, Obsolete)>, LedgerError> {
        self.state.settled(task).await;
        let Some((info, pending)) = self.state.cancel(task) else {
            // At rest (decided, so left alone), or no such task.
            let info = self.state.recorded_info(task).await?;
            return Ok(info.map(|i| (i, self.obsolete("cancel:answered", Vec::new()))));
        };
        let Some(pending) = pending else {
            return Ok(Some((info, self.obsolete("cancel:answered", Vec::new()))));
        };
        failpoint::hit("cancel:recorded");
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("cancel:durable");
                self.state.announce(task);
                let obsolete = self.obsolete("cancel:answered", vec![(Kind::Input, task)]);
                Ok(Some((info, obsolete)))
            }
            Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
        }
    }

    /// `submitter` stored the result of `task`. When every submitter has,
    /// the result's files are obsolete.
    pub async fn confirm(&self, task: TaskId, submitter: u64) -> Result<Obsolete, LedgerError> {
        self.state.settled(task).await;
        let Some((done, pending)) = self.state.confirm(task, submitter) else {
            return Ok(self.obsolete("confirm:answered", Vec::new()));
        };
        failpoint::hit("confirm:recorded");
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("confirm:durable");
                let remove = match done {
                    Confirmation::Removed(r) => result_files(task, r),
                    _ => Vec::new(),
                };
                Ok(self.obsolete("confirm:answered", remove))
            }
            Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
        }
    }

    /// Removes a task with its events and files. `Ok(None)`: no such task.
    pub async fn delete(&self, task: TaskId) -> Result<Option<Obsolete>, LedgerError> {
        self.state.settled(task).await;
        // A task at rest is in the record only: bring it back to delete it.
        self.state.fault_in(task).await?;
        let Some((result, pending)) = self.state.delete(task) else {
            return Ok(None);
        };
        failpoint::hit("delete:recorded");
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("delete:durable");
                // Its waits learn it is gone.
                self.state.forget_waiters(task);
                info!(%task, "task deleted");
                let mut remove = vec![(Kind::Input, task)];
                if let Some(r) = result {
                    remove.push((Kind::Result { attempt: r.attempt }, task));
                }
                Ok(Some(self.obsolete("delete:answered", remove)))
            }
            Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
        }
    }

    /// Removes the results kept past `retention_ms`; how many.
    pub async fn expire(&self, retention_ms: u64) -> Result<usize, LedgerError> {
        let Some((expired, pending)) = self.state.expire_results(retention_ms) else {
            return Ok(0);
        };
        failpoint::hit("expire:recorded");
        match pending.durable().await {
            Ok(_settled) => {
                let remove = expired
                    .iter()
                    .flat_map(|(task, r)| result_files(*task, *r))
                    .collect();
                // Nobody to answer: remove at once.
                self.obsolete("expire:durable", remove).remove().await;
                Ok(expired.len())
            }
            Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
        }
    }
}
