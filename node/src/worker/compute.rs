//! The bridge from the tokio side to the worker's rayon pool: images are
//! processed on the pool's threads and the result comes back on a oneshot, so
//! no CPU work runs on a tokio thread. A simulation processes them inline
//! instead ([`Compute::inline`]), so that no simulated time passes while an
//! image is processed and a seed fixes what happens when.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use bytes::Bytes;
use tessera_imaging::{Options, ProcessError};
use tessera_proto::FailureKind;
use tokio::sync::oneshot;

/// A rayon pool sized for one worker (or none: inline).
#[derive(Debug, Clone)]
pub struct Compute {
    pool: Option<Arc<rayon::ThreadPool>>,
    options: Arc<Options>,
}

/// Why a task could not be processed, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub kind: FailureKind,
    pub reason: String,
}

impl Compute {
    pub fn new(threads: usize, options: Options, name: &str) -> std::io::Result<Self> {
        let prefix = name.to_string();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{prefix}-cpu-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Compute {
            pool: Some(Arc::new(pool)),
            options: Arc::new(options),
        })
    }

    /// SIMULATION ONLY: processes each image on the calling (tokio) thread.
    pub fn inline(options: Options) -> Self {
        Compute {
            pool: None,
            options: Arc::new(options),
        }
    }

    /// Verifies the input against the checksum the master recorded, then
    /// processes it, on the pool.
    pub async fn process(&self, input: Bytes, checksum: u64) -> Result<Bytes, TaskFailure> {
        self.on_pool(move |options| {
            let got = tessera_proto::checksum(&input);
            if got != checksum {
                let reason = format!(
                    "the input is corrupt: its checksum is {got:016x}, the master recorded {checksum:016x} (damaged on the master's disk or in transit)"
                );
                return Err(TaskFailure { kind: FailureKind::Corrupt, reason });
            }
            tessera_imaging::process(&input, options)
                .map(|out| Bytes::from(out.bytes))
                .map_err(to_failure)
        })
        .await
    }

    /// TEST ONLY (`--test-panic-on`): panics on a pool thread, as a bug in
    /// decoding would.
    pub async fn panic_for_test(&self) -> Result<Bytes, TaskFailure> {
        self.on_pool(|_| panic!("--test-panic-on matched this image"))
            .await
    }

    /// Runs `work` on the pool. tessera-imaging catches its own panics; any
    /// other panic is caught here and fails the task (a panicking rayon job
    /// would otherwise abort the whole worker).
    async fn on_pool(
        &self,
        work: impl FnOnce(&Options) -> Result<Bytes, TaskFailure> + Send + 'static,
    ) -> Result<Bytes, TaskFailure> {
        let options = self.options.clone();
        let Some(pool) = &self.pool else {
            return caught(work, &options);
        };
        let (tx, rx) = oneshot::channel();
        pool.spawn(move || {
            let _ = tx.send(caught(work, &options));
        });
        rx.await.unwrap_or_else(|_| {
            Err(TaskFailure {
                kind: FailureKind::Internal,
                reason: "image processing stopped without a result".into(),
            })
        })
    }
}

/// Runs `work`, turning a panic into a failed task.
fn caught(
    work: impl FnOnce(&Options) -> Result<Bytes, TaskFailure>,
    options: &Options,
) -> Result<Bytes, TaskFailure> {
    catch_unwind(AssertUnwindSafe(|| work(options))).unwrap_or_else(|p| {
        let message = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(TaskFailure {
            kind: FailureKind::Internal,
            reason: format!("internal error: panic while processing the image: {message}"),
        })
    })
}

fn to_failure(e: ProcessError) -> TaskFailure {
    use tessera_imaging::ErrorKind as K;
    let kind = match e.kind() {
        K::Unsupported => FailureKind::Unsupported,
        K::Corrupt => FailureKind::Corrupt,
        K::TooLarge => FailureKind::TooLarge,
        K::Internal => FailureKind::Internal,
    };
    TaskFailure {
        kind,
        reason: e.to_string(),
    }
}
