//! The worker: connects to a master, asks for work, processes images on a
//! rayon pool, returns results. Reconnects with jittered backoff when the
//! master goes away.

pub mod compute;
pub mod local;
pub mod session;
pub mod writer;

use std::time::Duration;

use tessera_imaging::Options;
use tessera_proto::ClusterKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::compute::Compute;

/// Everything a worker is configured with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The master's address, `host:port`.
    pub master: String,
    /// The cluster key this worker proves it holds (and checks the master holds).
    pub key: ClusterKey,
    /// Images processed at once (and the rayon pool's size).
    pub threads: usize,
    /// Tasks asked for beyond `threads`, so the next image is already here
    /// when a thread frees up.
    pub prefetch: usize,
    pub node_id: String,
    pub max_image_bytes: u64,
    pub options: Options,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// First and longest pause between reconnect attempts.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// On shutdown, how long running tasks may take to finish.
    pub drain_grace: Duration,
    /// Test only: sleep this long before processing each image (a slow worker).
    pub test_delay: Option<Duration>,
    /// Test only: abort the process when starting an image whose name
    /// contains this (a poison image).
    pub test_crash_on: Option<String>,
    /// Test only: panic while processing an image whose name contains this.
    pub test_panic_on: Option<String>,
}

impl WorkerConfig {
    pub fn new(master: impl Into<String>, key: ClusterKey) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        WorkerConfig {
            master: master.into(),
            key,
            threads,
            prefetch: threads.max(2),
            node_id: crate::node_id("worker"),
            max_image_bytes: 256 * 1024 * 1024,
            options: Options::default(),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            drain_grace: Duration::from_secs(30),
            test_delay: None,
            test_crash_on: None,
            test_panic_on: None,
        }
    }
}

/// The worker cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the worker's thread pool: {0}")]
    Pool(std::io::Error),
    #[error(transparent)]
    Session(#[from] session::SessionError),
}

/// Works for the master until `shutdown`, reconnecting as needed. Returns an
/// error only when reconnecting cannot help (a protocol version mismatch, or
/// a cluster key that is not the master's).
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let compute = Compute::new(config.threads, config.options.clone(), &config.node_id)
        .map_err(WorkerError::Pool)?;
    let mut failures = 0u32;
    loop {
        // The session itself watches `shutdown`, to drain.
        let outcome = session::run(&config, &compute, &shutdown).await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(_) if shutdown.is_cancelled() => return Ok(()),
            Err(e) if e.is_permanent() => return Err(e.into()),
            Err(e) => {
                // A session that got as far as working resets the backoff.
                if !matches!(e, session::SessionError::Dial(_)) {
                    failures = 0;
                }
                let pause = session::backoff(failures, config.backoff_base, config.backoff_max);
                failures = failures.saturating_add(1);
                if failures <= 1 {
                    warn!("lost master {}: {e}; reconnecting", config.master);
                } else {
                    info!(
                        "master {} unreachable: {e}; retrying in {pause:?}",
                        config.master
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}
