//! The master: accepts connections, keeps images on disk, schedules tasks.
//!
//! [`run`] serves a bound listener until `shutdown` fires, in the style of
//! mini-redis: tests bind `127.0.0.1:0` and pass the listener in.
//!
//! Where a message goes, layer by layer:
//!
//! * **network**: this file (the accept loop and its limits), `connection`
//!   (one connection: handshake, idle watchdog, its writer), `client_conn`
//!   and `client_upload`, `worker_conn`, `stored_file` (a stored file as
//!   a payload of the connection writer),
//!   `activity`, `failures`. Each message becomes one call below.
//! * **core**: `ledger` (every step of an image's lifecycle, in order,
//!   answered only once durable), `state` (the shared scheduler, its lock,
//!   the channels to connections), `scheduler` (pure decisions).
//! * **storage**: `record` (the durable record and its journal), `store`
//!   (the image files), `retention`.

pub mod activity;
pub mod admission;
mod beside;
pub mod client_conn;
pub mod client_upload;
mod connection;
pub mod disk;
pub mod failpoint;
pub mod failures;
pub mod ledger;
pub mod metrics;
pub mod record;
pub mod retention;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod stored_file;
pub mod web;
pub mod worker_conn;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use tessera_proto::{ClusterKey, FrameWriter, net::Listener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::{
    admission::Admission,
    failures::{FailureDelays, Failures},
    ledger::Ledger,
    record::{Journal, MemStore, RedbStore, StoreError, TaskStore},
    scheduler::SchedulerConfig,
    state::Shared,
    store::DataDir,
};
use crate::clock::{Clock, SystemClock};

/// Everything a master is configured with.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub data_dir: PathBuf,
    /// Where the task record is kept.
    pub record: RecordStore,
    /// The file system the image files are on (the machine's; a
    /// simulation's own).
    pub disk: Arc<dyn disk::Disk>,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: u64,
    /// Largest frame accepted on any connection.
    pub max_frame: usize,
    /// Most connections served at once; more are refused with `Busy`.
    pub max_connections: usize,
    /// Time a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    // ---- security (see the README's "Security" section) ----
    /// The cluster key every peer must prove it holds.
    pub key: ClusterKey,
    /// Most connections still in their handshake at once (counted within
    /// `max_connections`); more are refused with `Busy`.
    pub max_unauthenticated: usize,
    /// Most of those from one address: one address cannot take every
    /// handshake slot (more are refused with `Busy`).
    pub max_unauthenticated_per_address: usize,
    /// Largest frame other than a chunk (every control message).
    pub max_control_frame: usize,
    /// A connection that moves no byte either way for this long, with no
    /// parked `Wait`, is closed.
    pub idle_timeout: Duration,
    /// How failed handshakes slow their address down.
    pub failure_delays: FailureDelays,
    // ---- end security ----
    /// Submissions one client connection may have mid-upload at once.
    pub max_uploads_per_client: usize,
    /// `Wait` requests one client connection may have pending.
    pub max_waits_per_client: usize,
    pub scheduler: SchedulerConfig,
    /// How often workers must send heartbeats (told to each at the handshake).
    pub heartbeat_interval: Duration,
    /// This master's id, for logs and the handshake.
    pub master_id: String,
    /// The clock leases are timed by.
    pub clock: Arc<dyn Clock>,
    /// How long a result is kept when its client never confirms the download.
    pub retention: Duration,
    /// Let concurrent changes share one fsync of the record (off: one
    /// transaction each, for measuring what grouping buys).
    pub group_commit: bool,
    /// Serve Prometheus metrics (`--metrics`): the installed recorder and its listener.
    pub metrics: Option<metrics::Exporter>,
    /// Serve the web page (`--http`): its listener and token.
    pub web: Option<web::WebConfig>,
    /// Tests and simulations: check the scheduler's invariants on every
    /// operation and report each one found broken here.
    pub invariants: Option<InvariantHook>,
}

/// Where the master keeps its task record.
#[derive(Debug, Clone, Default)]
pub enum RecordStore {
    /// `record.redb` in the data directory.
    #[default]
    Redb,
    /// In memory: a simulation keeps the store across its master's crashes
    /// and crashes it with them ([`MemStore::crash`]).
    Memory(MemStore),
}

/// Told of each broken scheduler invariant (see `MasterConfig::invariants`).
#[derive(Clone)]
pub struct InvariantHook(pub Arc<dyn Fn(String) + Send + Sync>);

impl std::fmt::Debug for InvariantHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvariantHook")
    }
}

impl MasterConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        MasterConfig {
            data_dir,
            record: RecordStore::default(),
            disk: Arc::new(disk::StdDisk::default()),
            max_image_bytes: 256 * 1024 * 1024,
            max_frame: tessera_proto::DEFAULT_MAX_FRAME,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            key: ClusterKey::generate(),
            max_unauthenticated: 128,
            max_unauthenticated_per_address: 16,
            max_control_frame: tessera_proto::DEFAULT_MAX_CONTROL_FRAME,
            idle_timeout: Duration::from_secs(300),
            failure_delays: FailureDelays::default(),
            max_uploads_per_client: 64,
            max_waits_per_client: 65_536,
            scheduler: SchedulerConfig::default(),
            heartbeat_interval: Duration::from_secs(1),
            master_id: crate::node_id("master"),
            clock: Arc::new(SystemClock),
            retention: Duration::from_secs(24 * 3600),
            group_commit: true,
            metrics: None,
            web: None,
            invariants: None,
        }
    }
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Ctx {
    pub config: MasterConfig,
    pub state: Shared,
    /// The only way an image's lifecycle moves on (see `ledger/`).
    pub ledger: Ledger,
    pub store: Arc<DataDir>,
    pub failures: Failures,
    /// Who may start a handshake (`admission.rs`).
    pub admission: Admission,
}

/// The master could not start.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the task record in {path}: {source}")]
    Record { path: PathBuf, source: StoreError },
}

/// Serves `listener` until `shutdown` is cancelled.
pub async fn run(
    mut listener: impl Listener,
    config: MasterConfig,
    shutdown: CancellationToken,
) -> Result<(), MasterError> {
    let store = DataDir::open(config.disk.clone(), &config.data_dir)
        .await
        .map_err(|source| MasterError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    let started = tokio::time::Instant::now();
    let record_path = config.data_dir.join("record.redb");
    let record_err = |source| MasterError::Record {
        path: record_path.clone(),
        source,
    };
    let (journal, loaded) = match &config.record {
        RecordStore::Redb => {
            let (path, disk, dir) = (record_path.clone(), store.disk(), config.data_dir.clone());
            let (db, loaded) = tessera_proto::determinism::blocking(move || {
                let open = || {
                    let db = RedbStore::open(&path)?;
                    // The record file's entry (new on a first start),
                    // durable before any commit is acknowledged.
                    disk.sync_dir(&dir).map_err(|e| {
                        StoreError::Io(format!("cannot flush {}: {e}", dir.display()))
                    })?;
                    let loaded = db.load()?;
                    Ok::<_, StoreError>((db, loaded))
                };
                Ok(open())
            })
            .await
            .map_err(|e| record_err(StoreError::Io(e.to_string())))?
            .map_err(record_err)?;
            let journal = Journal::start(db, config.group_commit, store.image_dirs(), store.disk());
            (journal, loaded)
        }
        RecordStore::Memory(mem) => {
            let loaded = mem.load().map_err(record_err)?;
            let journal = Journal::start(
                mem.clone(),
                config.group_commit,
                store.image_dirs(),
                store.disk(),
            );
            (journal, loaded)
        }
    };
    let tasks = loaded.rows.len();
    let store = Arc::new(store);
    let state = Shared::new(
        config.scheduler,
        config.clock.clone(),
        journal,
        loaded,
        store.clone(),
    );
    if let Some(hook) = &config.invariants {
        state.watch_invariants(hook.clone());
    }
    // Files the record does not know (a crash between writing and
    // recording), and files it made obsolete (a crash before removing them):
    // an input is kept while its task is undecided, a result while it is
    // the task's kept result.
    let known = state.inspect(|s| {
        s.task_ids()
            .into_iter()
            .filter_map(|t| {
                let decided = s.info(t)?.state.is_terminal();
                Some((t, (decided, s.result_ref(t))))
            })
            .collect::<HashMap<_, _>>()
    });
    let swept = store
        .sweep(|kind, task| match (known.get(&task), kind) {
            (Some((_, Some(r))), store::Kind::Result { attempt }) => {
                !r.removed && r.attempt == attempt
            }
            (Some((decided, _)), store::Kind::Input) => !decided,
            _ => false,
        })
        .await
        .map_err(|source| MasterError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    info!(
        tasks,
        swept,
        ms = started.elapsed().as_millis() as u64,
        "task record loaded"
    );
    let ctx = Arc::new(Ctx {
        ledger: Ledger::new(state.clone(), store.clone()),
        state,
        store,
        failures: Failures::new(config.failure_delays),
        admission: Admission::new(
            config.max_unauthenticated,
            config.max_unauthenticated_per_address,
        ),
        config,
    });
    tokio::spawn(expire_leases(ctx.clone(), shutdown.clone()));
    tokio::spawn(retention::run(ctx.clone(), shutdown.clone()));
    if let Some(exporter) = ctx.config.metrics.clone() {
        tokio::spawn(metrics::http::serve(
            exporter,
            ctx.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(web) = ctx.config.web.clone() {
        tokio::spawn(web::serve(web, ctx.clone(), shutdown.clone()));
    }
    let slots = Arc::new(Semaphore::new(ctx.config.max_connections));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, data_dir = %ctx.config.data_dir.display(), "master listening");
    }
    if !tessera_proto::secure::ENCRYPTED {
        warn!(
            "built with the benchmarks-only feature unencrypted-records: connections are NOT encrypted"
        );
    }
    loop {
        let conn = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let permit = slots.clone().try_acquire_owned().ok();
        let share = permit
            .as_ref()
            .map(|_| ctx.admission.share_of(conn.peer.ip()));
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit.as_ref();
            let share = match share {
                None => Err((ctx.config.max_connections, "connections")),
                Some(Err(limit)) => Err((limit, "this address's handshakes")),
                Some(Ok(share)) => Ok(share),
            };
            match share {
                Ok(share) => connection::serve(ctx, conn, shutdown, share).await,
                Err((limit, what)) => {
                    debug!(peer = %conn.peer, limit, "refusing a connection: at the limit of {what}");
                    let mut writer = FrameWriter::new(conn.write, ctx.config.max_frame);
                    connection::refuse_busy(&mut writer, limit).await;
                }
            }
        });
    }
    ctx.state.close();
    info!("master stopped");
    Ok(())
}

/// Expires overdue leases, ticking at a twentieth of the lease timeout
/// (between 10 ms and 500 ms).
async fn expire_leases(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let tick = (ctx.config.scheduler.lease_timeout / 20)
        .clamp(Duration::from_millis(10), Duration::from_millis(500));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => { ctx.state.expire_due(); }
            () = shutdown.cancelled() => return,
        }
    }
}
