//! Accepting what a worker reports: a result (the first one wins) or a
//! failure. Waiting clients are told, and the worker is sent `Accepted`,
//! only once the outcome is durable; the input is removed after that.

use tessera_proto::{FailureKind, TaskId};
use tracing::{debug, info, warn};

use super::{Ledger, LedgerError, Obsolete};
use crate::master::{
    failpoint,
    scheduler::{Outcome, WorkerId},
    store::{Kind, TmpFile},
};

/// What to tell the worker about its result.
#[derive(Debug)]
#[must_use]
pub enum ResultAnswer {
    /// Send `Accepted`; then remove what is obsolete.
    Accepted(Obsolete),
    /// The result could not be stored, or its record could not be
    /// written: the task is queued again; send nothing.
    NotStored,
}

impl Ledger {
    /// A verified result of (`task`, `attempt`), `len` bytes in `file`.
    pub async fn accept_result(
        &self,
        worker: WorkerId,
        task: TaskId,
        attempt: u32,
        file: TmpFile,
        len: u64,
        checksum: u64,
    ) -> ResultAnswer {
        // The next change to a task waits for the last one to be durable.
        self.state.settled(task).await;
        if self.state.is_decided(task) {
            // Stale, or a repeat of the winning attempt's own report: never
            // publish it, which would rename over the stored result.
            debug!(%task, worker = %worker, attempt, "result for a decided task discarded");
            return ResultAnswer::Accepted(self.obsolete("result:answered", Vec::new()));
        }
        let kind = Kind::Result { attempt };
        // 1. publish
        if let Err(e) = self.files.publish(file, kind, task).await {
            warn!(%task, "cannot store a result: {e}");
            self.state
                .result_not_stored(worker, task, attempt, &e.to_string());
            return ResultAnswer::NotStored;
        }
        failpoint::hit("result:published");
        // 2. record
        let (outcome, pending) = self.state.complete(worker, task, attempt, len, checksum);
        let Some(pending) = pending else {
            debug!(%task, worker = %worker, "discarded result ({outcome:?})");
            // Its own attempt's file: never the winner's (the task was not
            // decided above, so the winner is not this attempt).
            let _ = self.files.remove(kind, task).await;
            return ResultAnswer::Accepted(self.obsolete("result:answered", Vec::new()));
        };
        failpoint::hit("result:recorded");
        // 3. durable
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("result:durable");
                // 4. announce
                self.state.announce(task);
                failpoint::hit("result:announced");
                debug!(%task, worker = %worker, "task done");
                // 5. the input is obsolete once the caller answered.
                ResultAnswer::Accepted(self.obsolete("result:answered", vec![(Kind::Input, task)]))
            }
            Err(unrecorded) => {
                let e = self.state.rollback(unrecorded);
                warn!(%task, "cannot record a result; the task is queued again: {e}");
                let _ = self.files.remove(kind, task).await;
                ResultAnswer::NotStored
            }
        }
    }

    /// A worker's failure report. `Ok(Some(obsolete))`: accepted and
    /// durable (send `Accepted`, then remove); `Ok(None)`: stale (send
    /// `Accepted`, nothing changed); `Err`: not recorded (send nothing).
    pub async fn accept_failure(
        &self,
        worker: WorkerId,
        task: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
    ) -> Result<Option<Obsolete>, LedgerError> {
        self.state.settled(task).await;
        let (outcome, pending) = self.state.fail(worker, task, attempt, kind, reason.clone());
        let Some(pending) = pending else {
            debug!(%task, "discarded failure report ({outcome:?})");
            return Ok(None);
        };
        debug_assert_eq!(outcome, Outcome::Accepted);
        failpoint::hit("failure:recorded");
        match pending.durable().await {
            Ok(_settled) => {
                failpoint::hit("failure:durable");
                info!(%task, worker = %worker, "task failed: {reason}");
                self.state.announce(task);
                Ok(Some(
                    self.obsolete("failure:answered", vec![(Kind::Input, task)]),
                ))
            }
            Err(unrecorded) => Err(self.state.rollback(unrecorded).into()),
        }
    }
}
