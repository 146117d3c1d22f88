//! [`Client`]: one multiplexed connection to a master. Every call gets a
//! request id; a reader task routes each reply to its caller, so many
//! submissions, waits and fetches run at once on one connection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tessera_proto::{
    ClusterInfo, ClusterKey, EventEntry, Liveness, Msg, Role, TaskId, TaskInfo,
    dial::{DialError, DialOptions, Dialed, dial},
    net::{Dialer, Tcp},
    outgoing::{Outgoing, Upload, outgoing},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::{AbortHandle, JoinHandle},
};
use tracing::debug;

use crate::{
    error::ClientError,
    replies::{Pending, Reply, read_loop},
};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How the connection is opened (TCP; a simulation's own).
    pub dialer: Arc<dyn Dialer>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Largest result accepted from the master.
    pub max_result_bytes: u64,
    pub node_id: String,
    /// While a call waits on the master, how long the master may give no
    /// sign of life (it answers pings at once) before the connection is
    /// given up as dead and every waiting call fails with
    /// [`ClientError::MasterSilent`]. Catches a hung master and a cut
    /// network, which leave a TCP connection open.
    pub silence_timeout: Duration,
    /// Who this client is to the master when it shares a task with others
    /// (the same image submitted by several clients): the result is kept
    /// until every submitter has confirmed it. Random by default; keep one
    /// value for one batch, so that its own resubmissions count once.
    pub submitter: u64,
    /// Counts the master's replies that answered no waiting call (a
    /// request answered twice, or one never made): a master's bug, each
    /// also logged. Shared by the connections made with this config.
    pub stray_replies: Arc<AtomicU64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            dialer: Arc::new(Tcp::default()),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_result_bytes: 1024 * 1024 * 1024,
            silence_timeout: Duration::from_secs(30),
            submitter: tessera_proto::determinism::random::<u64>() | 1,
            node_id: format!(
                "client-{}-{:08x}",
                std::process::id(),
                tessera_proto::determinism::random::<u32>()
            ),
            stray_replies: Arc::default(),
        }
    }
}

/// Requests queued at once on a connection, at most (past it, callers wait).
const CONTROL_CAPACITY: usize = 16;

/// A connection to a master. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    /// Requests go ahead of submissions' bytes, also between their chunks
    /// (`tessera_proto::outgoing`): a `Fetch` or a `Ping` never waits behind
    /// the uploads in flight.
    out: Outgoing,
    pending: Pending,
    next_req: AtomicU64,
    master_id: String,
    liveness: Arc<Liveness>,
    submitter: u64,
    tasks: [JoinHandle<()>; 3],
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("master_id", &self.master_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Client {
    /// Connects to the master at `addr` (`host:port`) with default
    /// settings, authenticating with the cluster's `key`.
    pub async fn connect(addr: &str, key: &ClusterKey) -> Result<Client, ClientError> {
        Client::connect_with(addr, key, ClientConfig::default()).await
    }

    pub async fn connect_with(
        addr: &str,
        key: &ClusterKey,
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
        let options = DialOptions {
            connect_timeout: config.connect_timeout,
            handshake_timeout: config.handshake_timeout,
            ..DialOptions::default()
        };
        let Dialed {
            reader,
            writer,
            welcome,
        } = dial(
            &*config.dialer,
            addr,
            Role::Client,
            &config.node_id,
            key,
            options,
        )
        .await
        .map_err(|e| match e {
            DialError::Connect { addr, source } => ClientError::Connect { addr, source },
            DialError::Refused(r) => ClientError::Refused(r),
            DialError::Unauthenticated { addr, fingerprint } => {
                ClientError::Unauthenticated { addr, fingerprint }
            }
            DialError::Proto(p) => ClientError::Wire(p),
        })?;
        let pending = Pending::new();
        let liveness = Arc::new(Liveness::new());
        // One submission queued beyond the one being sent; the rest wait
        // with their callers (a batch bounds how many).
        let (out, writer) = outgoing(writer, CONTROL_CAPACITY, 1, Some(liveness.clone()));
        let writer_task = tokio::spawn(async move {
            if let Err(e) = writer.await {
                debug!("client writer stopped: {e}");
            }
        });
        let reader_task = tokio::spawn(read_loop(
            reader,
            pending.clone(),
            config.max_result_bytes,
            liveness.clone(),
            config.stray_replies.clone(),
        ));
        let watch_task = tokio::spawn(keepalive(
            out.control.clone(),
            pending.clone(),
            liveness.clone(),
            config.silence_timeout,
            [writer_task.abort_handle(), reader_task.abort_handle()],
        ));
        Ok(Client {
            out,
            pending,
            next_req: AtomicU64::new(1),
            master_id: welcome.master_id,
            liveness,
            submitter: config.submitter,
            tasks: [writer_task, reader_task, watch_task],
        })
    }

    /// The id the master gave in its handshake.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    /// False once the connection is gone (every later call fails with
    /// [`ClientError::Disconnected`]).
    pub fn is_connected(&self) -> bool {
        self.pending.is_open() && !self.out.control.is_closed()
    }

    fn register(&self, reply: Reply) -> Result<u64, ClientError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        if self.pending.insert(req, reply)? {
            // The first call waiting on the master starts the silence clock.
            self.liveness.heard();
        }
        Ok(req)
    }

    async fn send(&self, msg: Msg) -> Result<(), ClientError> {
        self.out
            .control
            .send(msg)
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Uploads an image; returns its task id once the master has stored it
    /// durably. Submitting the same name and content again returns the same
    /// task (the idempotency key is derived from both).
    pub async fn submit(&self, name: &str, data: Bytes) -> Result<TaskId, ClientError> {
        let key = tessera_proto::submission_key(name, &data);
        self.submit_with_key(name, data, key).await
    }

    /// [`Self::submit`] under an idempotency key of the caller's choosing.
    pub async fn submit_with_key(
        &self,
        name: &str,
        data: Bytes,
        key: u128,
    ) -> Result<TaskId, ClientError> {
        let checksum = tessera_proto::checksum(&data);
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Submitted(tx))?;
        let header = Msg::Submit {
            req,
            name: name.to_string(),
            len: data.len() as u64,
            checksum,
            key,
            submitter: self.submitter,
        };
        self.out
            .payloads
            .send(Upload {
                header,
                stream: req,
                data,
            })
            .await
            .map_err(|_| ClientError::Disconnected)?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Reads `path` and submits it under `name`.
    pub async fn submit_file(
        &self,
        path: &std::path::Path,
        name: &str,
    ) -> Result<TaskId, ClientError> {
        let data = crate::files::read(path)
            .await
            .map_err(|source| ClientError::File {
                path: path.to_path_buf(),
                source,
            })?;
        self.submit(name, Bytes::from(data)).await
    }

    /// The task's state now.
    pub async fn status(&self, task: TaskId) -> Result<TaskInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Info(tx))?;
        self.send(Msg::Status { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Resolves when the task is done or failed (pushed by the master; no polling).
    pub async fn wait(&self, task: TaskId) -> Result<TaskInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Info(tx))?;
        self.send(Msg::Wait { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// [`Self::wait`] with a deadline.
    pub async fn wait_timeout(&self, task: TaskId, d: Duration) -> Result<TaskInfo, ClientError> {
        tokio::time::timeout(d, self.wait(task))
            .await
            .map_err(|_| ClientError::Timeout(d))?
    }

    /// Downloads a done task's result.
    pub async fn fetch(&self, task: TaskId) -> Result<Bytes, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Fetch { tx, body: None })?;
        self.send(Msg::Fetch { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Tells the master the result of `task` is safely stored (call only
    /// once it is on disk: `fetch_to` fsyncs). Resolves once the master has
    /// recorded it; it removes the result when every submitter of the task
    /// has confirmed.
    pub async fn confirm(&self, task: TaskId) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Confirmed(tx))?;
        let submitter = self.submitter;
        self.send(Msg::Confirm {
            req,
            task,
            submitter,
        })
        .await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// This client's submitter id (see [`ClientConfig::submitter`]).
    pub fn submitter(&self) -> u64 {
        self.submitter
    }

    /// The task's recorded events, oldest first.
    pub async fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::History(tx))?;
        self.send(Msg::GetHistory { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Removes a task and its files from the master.
    pub async fn delete(&self, task: TaskId) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Deleted(tx))?;
        self.send(Msg::Delete { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Cancels a task: a queued one at once, a running one too (its worker
    /// is told to drop it). Returns the task's state afterwards: failed with
    /// kind `Cancelled`, or done/failed as it was if already decided.
    pub async fn cancel(&self, task: TaskId) -> Result<TaskInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Info(tx))?;
        self.send(Msg::Cancel { req, task }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// A snapshot of the cluster: tasks by state, workers, recent throughput.
    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Cluster(tx))?;
        self.send(Msg::GetCluster { req }).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Downloads a result into `path`, atomically (temporary file, then
    /// rename) and durably (the file and its directory fsynced), so that it
    /// may be confirmed.
    pub async fn fetch_to(&self, task: TaskId, path: &std::path::Path) -> Result<u64, ClientError> {
        let data = self.fetch(task).await?;
        crate::files::write_atomically(path, data.clone())
            .await
            .map_err(|source| ClientError::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(data.len() as u64)
    }
}

/// Watches the connection while calls wait on the master: pings a quiet
/// master, and gives the connection up when the master has shown no sign of
/// life for `limit` (every waiting call fails with
/// [`ClientError::MasterSilent`], and the reader and writer stop).
async fn keepalive(
    out: mpsc::Sender<Msg>,
    pending: Pending,
    liveness: Arc<Liveness>,
    limit: Duration,
    connection: [AbortHandle; 2],
) {
    let every = (limit / 6).max(Duration::from_millis(10));
    let mut seq = 0u64;
    loop {
        let before = tokio::time::Instant::now();
        tokio::time::sleep(every).await;
        if !pending.is_open() {
            return;
        }
        if pending.is_empty() || before.elapsed() > 2 * every {
            // Nothing waits on the master; or this process was not running
            // (stopped, starved), so it could not have heard anything.
            liveness.heard();
            continue;
        }
        let silence = liveness.silence();
        if silence >= limit {
            debug!(
                "no word from the master for {:.1} s; giving the connection up",
                silence.as_secs_f64()
            );
            pending.close_with(|| ClientError::MasterSilent(silence));
            for task in &connection {
                task.abort();
            }
            return;
        }
        if liveness.since_heard() >= every {
            seq += 1;
            // A full queue already holds traffic for the master; skip.
            let _ = out.try_send(Msg::Ping { seq });
        }
    }
}
