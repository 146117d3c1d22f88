//! The worker: connects to a master, asks for work, processes images on a
//! rayon pool, returns results. Reconnects with jittered backoff when the
//! master goes away, asking its [`Discovery`] for the master's address again
//! each time.

pub mod compute;
#[cfg(test)]
pub(crate) mod fake_master;
mod job;
pub mod local;
pub mod observer;
pub mod session;
#[cfg(test)]
mod upload_tests;

use std::{sync::Arc, time::Duration};

use tessera_imaging::Options;
use tessera_proto::{
    ClusterKey,
    backoff::Backoff,
    dial::DialError,
    net::{Dialer, Tcp},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use self::compute::Compute;
pub use self::observer::SessionObserver;
use crate::discovery::{Discovery, DiscoveryError, Found, How, StaticAddr};

/// Everything a worker is configured with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The master's address, `host:port`, for [`run`]; [`run_with`] dials
    /// what its [`Discovery`] finds instead.
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
    /// How connections to the master are opened (TCP; a simulation's own).
    pub dialer: Arc<dyn Dialer>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// First and longest pause between reconnect attempts.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// On shutdown, how long running tasks may take to finish.
    pub drain_grace: Duration,
    /// Benchmark only (`--synthetic`): return each input unchanged as its
    /// result at once, without processing it, to load-test the master.
    pub synthetic: bool,
    /// Test only: sleep this long before processing each image (a slow worker).
    pub test_delay: Option<Duration>,
    /// Test only: abort the process when starting an image whose name
    /// contains this (a poison image).
    pub test_crash_on: Option<String>,
    /// Simulation only: process images inline on the session's thread
    /// instead of on a rayon pool ([`Compute::inline`]).
    pub inline_compute: bool,
    /// Test only: what a poison image does (aborts the process; a
    /// simulation crashes the simulated host instead).
    pub test_crash: Crash,
    /// Test only: panic while processing an image whose name contains this.
    pub test_panic_on: Option<String>,
    /// Told what the session does (the load bench's measurements).
    pub observer: Option<Arc<dyn SessionObserver>>,
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
            dialer: Arc::new(Tcp {
                send_buffer: Some(SEND_BUFFER),
            }),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            drain_grace: Duration::from_secs(30),
            synthetic: false,
            test_delay: None,
            test_crash_on: None,
            inline_compute: false,
            test_crash: Crash::abort(),
            test_panic_on: None,
            observer: None,
        }
    }
}

/// How a poison image (`test_crash_on`) kills its worker. The default
/// aborts the process, as a crashing decoder would; a simulation passes a
/// hook that has the simulated host crashed (the job then never ends).
#[derive(Clone)]
pub struct Crash(pub Arc<dyn Fn() + Send + Sync>);

impl Crash {
    pub fn abort() -> Crash {
        Crash(Arc::new(|| std::process::abort()))
    }
}

impl std::fmt::Debug for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crash")
    }
}

/// The connection's socket send buffer (Linux doubles it for its own
/// bookkeeping). What the kernel queues ahead of a heartbeat is bounded by
/// it; left to autotuning it grows to megabytes (seconds behind a master
/// that reads slowly). This is still several times a LAN's bandwidth-delay
/// product.
pub const SEND_BUFFER: usize = 256 * 1024;

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
    let discovery = StaticAddr::new(config.master.clone(), "the configuration");
    run_with(config, &discovery, shutdown).await
}

/// How long one search for the master may take before it is logged and retried.
const FIND_WITHIN: Duration = Duration::from_secs(10);

/// Works for the master that `discovery` finds until `shutdown`, reconnecting
/// as needed: every (re)connection asks `discovery` again (so a master
/// restarted elsewhere is found) and tries each address it gives, skipping
/// those that fail. `config.master` is ignored. Returns an error only when
/// reconnecting cannot help (e.g. a protocol version mismatch).
pub async fn run_with(
    config: WorkerConfig,
    discovery: &dyn Discovery,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let compute = if config.inline_compute {
        Compute::inline(config.options.clone())
    } else {
        Compute::new(config.threads, config.options.clone(), &config.node_id)
            .map_err(WorkerError::Pool)?
    };
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_max);
    // Failed attempts since the last session that got as far as working.
    let mut failures = 0u32;
    let mut last_found: Option<Found> = None;
    loop {
        let found = tokio::select! {
            f = discovery.find(FIND_WITHIN) => f,
            () = shutdown.cancelled() => return Ok(()),
        };
        let outcome = match found {
            Ok(found) => {
                if last_found.as_ref() != Some(&found) {
                    info!("found master {found}");
                    last_found = Some(found.clone());
                }
                // The session itself watches `shutdown`, to drain.
                work_for(&config, &compute, &found, &shutdown)
                    .await
                    .map_err(|e| (found, e))
            }
            Err(e @ DiscoveryError::NotFound { .. }) => {
                // The search itself waited: look again (almost) at once.
                info!("{e}; still looking");
                if !paused(config.backoff_base, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
            Err(e) => {
                let pause = backoff.next_pause();
                if matches!(e, DiscoveryError::Duplicate { .. }) {
                    error!("{e}; retrying in {} ms", pause.as_millis());
                } else {
                    warn!(
                        "cannot look for the master: {e}; retrying in {} ms",
                        pause.as_millis()
                    );
                }
                if !paused(pause, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        let (found, e) = match outcome {
            Ok(()) => return Ok(()),
            Err(_) if shutdown.is_cancelled() => return Ok(()),
            // A master found by mDNS that fails the key check may be spoofed
            // (or of another cluster that shares its name): skip it and keep
            // looking. Only a master we were pointed at is a dead end.
            Err((found, e)) if e.is_wrong_key() && matches!(found.how, How::Mdns { .. }) => {
                warn!("skipping master {found}: {e}");
                if !paused(config.backoff_max, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
            Err((_, e)) if e.is_permanent() => return Err(e.into()),
            Err(fe) => fe,
        };
        // A session that got as far as working resets the backoff.
        let was_connected = !matches!(e, session::SessionError::Dial(_));
        if was_connected {
            backoff.reset();
            failures = 0;
        }
        let pause = backoff.next_pause();
        failures = failures.saturating_add(1);
        let ms = pause.as_millis();
        if was_connected {
            warn!("lost master {found}: {e}; reconnecting in {ms} ms");
        } else if failures <= 1 {
            warn!("cannot reach master {found}: {e}; retrying in {ms} ms, then with backoff");
        } else {
            info!("master {found} still unreachable: {e}; retrying in {ms} ms");
        }
        if !paused(pause, &shutdown).await {
            return Ok(());
        }
    }
}

/// Sleeps `pause`; false when shutdown came first.
async fn paused(pause: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => true,
        () = shutdown.cancelled() => false,
    }
}

/// One connection to the master `found`: its addresses in order, until one
/// accepts us. Ends when that session ends.
async fn work_for(
    config: &WorkerConfig,
    compute: &Compute,
    found: &Found,
    shutdown: &CancellationToken,
) -> Result<(), session::SessionError> {
    let mut last = None;
    for addr in &found.addrs {
        let session_config = WorkerConfig {
            master: addr.clone(),
            ..config.clone()
        };
        match session::run(&session_config, compute, shutdown).await {
            Err(e @ session::SessionError::Dial(_)) if !e.is_permanent() => {
                debug!("cannot connect to {addr}: {e}; trying the next address");
                last = Some(e);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| {
        session::SessionError::Dial(DialError::Connect {
            addr: String::new(),
            source: std::io::ErrorKind::AddrNotAvailable.into(),
        })
    }))
}
