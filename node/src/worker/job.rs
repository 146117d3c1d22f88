//! One task's run on a worker, and what becomes of it: the job (process
//! the image on the pool, or a test or bench mode), stopped at once when
//! the master drops the attempt; its outcome; and a finished result as the
//! connection writer sends it.

use std::time::Duration;

use bytes::Bytes;
use tessera_proto::{Msg, TaskId, outgoing::Upload};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{
    compute::{Compute, TaskFailure},
    local::Waiting,
};

/// A finished run of one task.
pub(super) struct JobDone {
    pub(super) task: TaskId,
    pub(super) attempt: u32,
    /// `None`: stopped because the master dropped the attempt (there is no
    /// outcome, and nothing to report).
    pub(super) result: Option<Result<Bytes, TaskFailure>>,
}

/// A result waiting for the writer.
#[derive(Debug)]
pub(super) struct FinishedResult {
    pub(super) task: TaskId,
    pub(super) attempt: u32,
    pub(super) data: Bytes,
}

impl FinishedResult {
    /// As the writer sends it: `Done` with its length and checksum, then
    /// its bytes as chunks of the task's stream.
    pub(super) fn upload(self) -> Upload {
        Upload {
            header: Msg::Done {
                checksum: tessera_proto::checksum(&self.data),
                task: self.task,
                attempt: self.attempt,
                len: self.data.len() as u64,
            },
            stream: self.task.0,
            data: self.data,
        }
    }
}

/// What a job does with its image.
#[derive(Debug, Clone)]
pub(super) enum Work {
    /// Process it on the pool.
    Process,
    /// `--synthetic`: return the input unchanged, at once.
    Synthetic,
    /// `--test-panic-on` matched: panic on the pool.
    TestPanic,
    /// `--test-crash-on` matched: a poison image that kills the process a
    /// moment into processing, as a crashing decoder would.
    TestCrash(super::Crash),
}

/// Runs one task; ends at once when `dropped` is cancelled (the master said
/// `Drop`: cancelled, or decided by another attempt), so the slot frees up
/// without waiting. An image already on the pool finishes there and its
/// result is thrown away.
pub(super) async fn run_job(
    compute: Compute,
    w: Waiting,
    delay: Option<Duration>,
    dropped: CancellationToken,
    how: Work,
) -> JobDone {
    let (task, attempt) = (w.task, w.attempt);
    let work = async {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let started = tokio::time::Instant::now();
        let r = match how {
            Work::Process => compute.process(w.data, w.checksum).await,
            Work::Synthetic => Ok(w.data),
            Work::TestPanic => compute.panic_for_test().await,
            Work::TestCrash(crash) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tracing::error!(%task, "--test-crash-on matched; aborting");
                (crash.0)();
                std::future::pending().await
            }
        };
        debug!(%task, ms = started.elapsed().as_millis() as u64, "processed");
        r
    };
    let result = tokio::select! {
        r = work => Some(r),
        () = dropped.cancelled() => {
            info!(%task, attempt, "stopped working on a dropped task");
            None
        }
    };
    JobDone {
        task,
        attempt,
        result,
    }
}
