//! Accepting an input: a new task, or a submitter joining the task its
//! idempotency key names. Either is answered only once durable, and a
//! resubmission waits for the first submission's commit (or its failure)
//! before it is told the id, so an id is never answered for an image whose
//! submission a crash could still undo.

use tessera_proto::TaskId;

use super::{Ledger, LedgerError};
use crate::master::{
    failpoint,
    state::Join,
    store::{Kind, TmpFile},
};

/// A submission's image, as the client described it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub name: String,
    pub len: u64,
    pub checksum: u64,
    pub key: u128,
    pub submitter: u64,
}

impl Ledger {
    /// A resubmission of a known key: the task it shares, once durable.
    /// `None`: no task to share (upload the image).
    pub async fn join_existing(
        &self,
        key: u128,
        submitter: u64,
    ) -> Option<Result<TaskId, LedgerError>> {
        loop {
            let task = self.state.joinable(key, submitter)?;
            // The first submission is durable, or was rolled back.
            self.state.settled(task).await;
            match self.state.join(task, key, submitter) {
                Join::Already => return Some(Ok(task)),
                Join::Gone => continue,
                Join::Joined(pending) => {
                    failpoint::hit("join:recorded");
                    return Some(match pending.durable().await {
                        Ok(_settled) => {
                            failpoint::hit("join:durable");
                            Ok(task)
                        }
                        Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
                    });
                }
            }
        }
    }

    /// A fully received image: a new task (or, when the same image won a
    /// race with it, the task it shares).
    pub async fn accept_input(&self, file: TmpFile, s: Submission) -> Result<TaskId, LedgerError> {
        if let Some(joined) = self.join_existing(s.key, s.submitter).await {
            return joined;
        }
        let task = self.state.reserve_id();
        // 1. publish
        self.files.publish(file, Kind::Input, task).await?;
        failpoint::hit("input:published");
        // 2. record
        let pending = match self
            .state
            .submit(task, s.name, s.len, s.checksum, s.key, s.submitter)
        {
            Ok(p) => p,
            Err(_) => {
                // The same image arrived at once on another connection.
                let _ = self.files.remove(Kind::Input, task).await;
                return match self.join_existing(s.key, s.submitter).await {
                    Some(joined) => joined,
                    None => Err(LedgerError::Record(crate::master::record::StoreError::Io(
                        "the submission it raced with was not recorded".into(),
                    ))),
                };
            }
        };
        failpoint::hit("input:recorded");
        // 3. durable
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("input:durable");
                // 4. the caller answers `Submitted`.
                Ok(task)
            }
            Err(unrecorded) => {
                let e = self.state.rollback(unrecorded);
                let _ = self.files.remove(Kind::Input, task).await;
                Err(e.into())
            }
        }
    }
}
