//! The ledger: the only place that sequences an image's lifecycle. Each
//! operation (accept an input, join a shared task, accept a result or a
//! failure, cancel, confirm, delete, expire) is the same ordered list:
//!
//! 1. **publish** the file it brings (fsync, rename into place);
//! 2. **record** the decision (the scheduler decides under its lock and
//!    queues the events to the journal, in decision order);
//! 3. **wait until durable** (the journal's group commit: one directory
//!    fsync and one redb commit for everything queued);
//! 4. **answer or announce**: only now is anybody told (the client that
//!    asked, the waiting clients, the worker's `Accepted`);
//! 5. **remove what is obsolete** (an input once its task is decided, a
//!    result once every submitter confirmed it), after the answer.
//!
//! Why this order: a file is published before the record that names it,
//! so a crash between the two leaves only a file no record claims (the
//! next start sweeps it); nobody is told before the record is durable, so
//! a crash can never undo what anyone was told; files are removed only
//! after the record says they are obsolete, so a crash never leaves a
//! record naming a missing file. If the record cannot be written, the
//! operation fails with [`LedgerError::Record`] to whoever asked, nothing is
//! announced, and the task is put back as its last durable row says
//! (`Shared::rollback`).
//!
//! Every read that answers a client (`status`, `fetch`, `wait`, `history`,
//! a resubmission's dedupe) first waits until the task is *settled* (no
//! change to it is still on its way to disk). Each step is a named crash
//! point (`master/failpoint.rs`).

mod input;
mod removal;
mod result;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tessera_proto::{EventEntry, TaskId, TaskInfo};
use tokio::sync::oneshot;
use tracing::warn;

pub use input::Submission;
pub use result::ResultAnswer;

use super::{
    failpoint,
    record::StoreError,
    scheduler::durable::ResultRef,
    state::{Shared, TooManyWaiters},
    store::{DataDir, Kind},
};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Ledger {
    state: Shared,
    files: Arc<DataDir>,
}

/// Why a ledger operation did not happen. Either way nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The image file could not be stored (full disk, I/O error).
    #[error("{0}")]
    Files(#[from] std::io::Error),
    /// The record could not be written.
    #[error(transparent)]
    Record(#[from] StoreError),
}

/// Files a decided operation made obsolete: removed by [`Obsolete::remove`]
/// after the answer is out (step 5).
#[must_use = "answer, then remove the obsolete files"]
#[derive(Debug)]
pub struct Obsolete {
    files: Arc<DataDir>,
    op: &'static str,
    remove: Vec<(Kind, TaskId)>,
}

impl Obsolete {
    pub async fn remove(self) {
        failpoint::hit(self.op);
        for (kind, task) in self.remove {
            if let Err(e) = self.files.remove(kind, task).await {
                warn!(%task, "cannot remove an obsolete file: {e}");
            }
        }
    }
}

impl Ledger {
    pub fn new(state: Shared, files: Arc<DataDir>) -> Self {
        Ledger { state, files }
    }

    pub fn state(&self) -> &Shared {
        &self.state
    }

    pub fn files(&self) -> &DataDir {
        &self.files
    }

    fn obsolete(&self, op: &'static str, remove: Vec<(Kind, TaskId)>) -> Obsolete {
        Obsolete {
            files: self.files.clone(),
            op,
            remove,
        }
    }

    /// The task's durable state (from the record when it is at rest).
    pub async fn status(&self, task: TaskId) -> Result<Option<TaskInfo>, StoreError> {
        self.state.settled(task).await;
        self.state.recorded_info(task).await
    }

    /// The task's durable state and, when done, its result.
    pub async fn fetchable(
        &self,
        task: TaskId,
    ) -> Result<Option<(TaskInfo, Option<ResultRef>)>, StoreError> {
        self.state.settled(task).await;
        self.state.recorded_result(task).await
    }

    /// Resolves (with durable state) once the task is decided.
    pub async fn wait(
        &self,
        task: TaskId,
    ) -> Result<Option<oneshot::Receiver<TaskInfo>>, WaitError> {
        self.state.settled(task).await;
        if let Some(rx) = self.state.wait(task)? {
            return Ok(Some(rx));
        }
        // Not in memory: at rest (decided), or no such task.
        let Some(info) = self.state.recorded_info(task).await? else {
            return Ok(None);
        };
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(info);
        Ok(Some(rx))
    }

    /// The task's recorded events (`None`: no such task).
    pub async fn history(&self, task: TaskId) -> Option<Result<Vec<EventEntry>, StoreError>> {
        self.state.settled(task).await;
        match self.state.recorded_info(task).await {
            Ok(None) => None,
            Ok(Some(_)) => Some(self.state.history(task).await),
            Err(e) => Some(Err(e)),
        }
    }
}

/// Why a `Wait` is not parked.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    TooManyWaiters(#[from] TooManyWaiters),
    #[error(transparent)]
    Record(#[from] StoreError),
}

/// The files of a task that a result removal makes obsolete.
fn result_files(task: TaskId, r: ResultRef) -> Vec<(Kind, TaskId)> {
    vec![
        (Kind::Input, task),
        (Kind::Result { attempt: r.attempt }, task),
    ]
}
