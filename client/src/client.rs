//! [`Client`]: one multiplexed connection to a master. Every call gets a
//! request id; a reader task routes each reply to its caller, so many
//! submissions, waits and fetches run at once on one connection.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tessera_proto::{
    ClusterKey, ErrorCode, FrameReader, FrameWriter, Msg, ProtoError, Role, TaskId, TaskInfo,
    dial::{DialError, DialOptions, Dialed, dial},
    stream::Collector,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::debug;

use crate::error::ClientError;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Largest result accepted from the master.
    pub max_result_bytes: u64,
    pub node_id: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_result_bytes: 1024 * 1024 * 1024,
            node_id: format!(
                "client-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }
}

enum Reply {
    Submitted(oneshot::Sender<Result<TaskId, ClientError>>),
    Info(oneshot::Sender<Result<TaskInfo, ClientError>>),
    Fetch {
        tx: oneshot::Sender<Result<Bytes, ClientError>>,
        body: Option<Collector>,
    },
}

impl Reply {
    fn fail(self, e: ClientError) {
        match self {
            Reply::Submitted(tx) => drop(tx.send(Err(e))),
            Reply::Info(tx) => drop(tx.send(Err(e))),
            Reply::Fetch { tx, .. } => drop(tx.send(Err(e))),
        }
    }
}

type Pending = Arc<Mutex<Option<HashMap<u64, Reply>>>>;

enum Out {
    Msg(Msg),
    Upload {
        header: Msg,
        stream: u64,
        data: Bytes,
    },
}

/// A connection to a master. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    out: mpsc::Sender<Out>,
    pending: Pending,
    next_req: AtomicU64,
    master_id: String,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Msg(m) => write!(f, "{m:?}"),
            Out::Upload { header, .. } => write!(f, "{header:?} + data"),
        }
    }
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
        } = dial(addr, Role::Client, &config.node_id, key, options)
            .await
            .map_err(|e| match e {
                DialError::Connect { addr, source } => ClientError::Connect { addr, source },
                DialError::Refused(r) => ClientError::Refused(r),
                DialError::Unauthenticated { addr, fingerprint } => {
                    ClientError::Unauthenticated { addr, fingerprint }
                }
                e @ DialError::UnexpectedReply { .. } => ClientError::Protocol(e.to_string()),
                DialError::Proto(p) => ClientError::Wire(p),
            })?;
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (out, rx) = mpsc::channel(16);
        let writer_task = tokio::spawn(write_loop(writer, rx));
        let reader_task = tokio::spawn(read_loop(reader, pending.clone(), config.max_result_bytes));
        Ok(Client {
            out,
            pending,
            next_req: AtomicU64::new(1),
            master_id: welcome.master_id,
            tasks: [writer_task, reader_task],
        })
    }

    /// The id the master gave in its handshake.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    fn register(&self, reply: Reply) -> Result<u64, ClientError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        match lock(&self.pending).as_mut() {
            Some(map) => {
                map.insert(req, reply);
                Ok(req)
            }
            None => Err(ClientError::Disconnected),
        }
    }

    async fn send(&self, out: Out) -> Result<(), ClientError> {
        self.out
            .send(out)
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Uploads an image; returns its task id once the master has stored it.
    pub async fn submit(&self, name: &str, data: Bytes) -> Result<TaskId, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Submitted(tx))?;
        let header = Msg::Submit {
            req,
            name: name.to_string(),
            len: data.len() as u64,
        };
        self.send(Out::Upload {
            header,
            stream: req,
            data,
        })
        .await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Reads `path` and submits it under `name`.
    pub async fn submit_file(
        &self,
        path: &std::path::Path,
        name: &str,
    ) -> Result<TaskId, ClientError> {
        let data = tokio::fs::read(path)
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
        self.send(Out::Msg(Msg::Status { req, task })).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Resolves when the task is done or failed (pushed by the master; no polling).
    pub async fn wait(&self, task: TaskId) -> Result<TaskInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        let req = self.register(Reply::Info(tx))?;
        self.send(Out::Msg(Msg::Wait { req, task })).await?;
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
        self.send(Out::Msg(Msg::Fetch { req, task })).await?;
        rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Downloads a result into `path`, atomically (temporary file, then rename).
    pub async fn fetch_to(&self, task: TaskId, path: &std::path::Path) -> Result<u64, ClientError> {
        let data = self.fetch(task).await?;
        crate::files::write_atomically(path, &data)
            .await
            .map_err(|source| ClientError::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(data.len() as u64)
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Reply>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

async fn write_loop(
    mut writer: FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
    mut rx: mpsc::Receiver<Out>,
) {
    while let Some(item) = rx.recv().await {
        let sent = match item {
            Out::Msg(m) => writer.send(&m).await,
            Out::Upload {
                header,
                stream,
                data,
            } => match writer.feed(&header).await {
                Ok(()) => writer.send_stream(stream, &data).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = sent {
            debug!("client writer stopped: {e}");
            return;
        }
    }
}

async fn read_loop(
    mut reader: FrameReader<tokio::net::tcp::OwnedReadHalf>,
    pending: Pending,
    max_result: u64,
) {
    let why = loop {
        let incoming = match reader.recv().await {
            Ok(i) => i,
            Err(ProtoError::Decode(e)) => {
                debug!("undecodable message from master: {e}");
                continue;
            }
            Err(e) => break e,
        };
        let mut guard = lock(&pending);
        let Some(map) = guard.as_mut() else { return };
        match incoming.msg {
            Msg::Submitted { req, task } => {
                if let Some(Reply::Submitted(tx)) = map.remove(&req) {
                    let _ = tx.send(Ok(task));
                }
            }
            Msg::Info { req, info } => {
                if let Some(Reply::Info(tx)) = map.remove(&req) {
                    let _ = tx.send(Ok(info));
                }
            }
            Msg::Result { req, len, .. } => {
                if len > max_result {
                    if let Some(r) = map.remove(&req) {
                        r.fail(ClientError::TooLarge {
                            len,
                            max: max_result,
                        });
                    }
                    // The stream that follows cannot be skipped cheaply.
                    break ProtoError::Closed;
                }
                match map.get_mut(&req) {
                    Some(Reply::Fetch { body, .. }) if len > 0 => *body = Some(Collector::new(len)),
                    Some(Reply::Fetch { .. }) => {
                        if let Some(Reply::Fetch { tx, .. }) = map.remove(&req) {
                            let _ = tx.send(Ok(Bytes::new()));
                        }
                    }
                    _ => {}
                }
            }
            Msg::Chunk { stream } => {
                let done = match map.get_mut(&stream) {
                    Some(Reply::Fetch { body: Some(c), .. }) => c.push(incoming.payload),
                    _ => continue,
                };
                match done {
                    Ok(None) => {}
                    Ok(Some(data)) => {
                        if let Some(Reply::Fetch { tx, .. }) = map.remove(&stream) {
                            let _ = tx.send(Ok(data));
                        }
                    }
                    Err(e) => {
                        if let Some(r) = map.remove(&stream) {
                            r.fail(ClientError::Protocol(e.to_string()));
                        }
                    }
                }
            }
            Msg::Error {
                req: Some(req),
                code,
                message,
            } => {
                if let Some(r) = map.remove(&req) {
                    r.fail(ClientError::Master { code, message });
                }
            }
            Msg::Error {
                req: None,
                code,
                message,
            } => {
                debug!(?code, "master reported: {message}");
                if code == ErrorCode::UnknownMessage {
                    // We and the master disagree about the protocol: nothing
                    // pending can be trusted to complete.
                    break ProtoError::Closed;
                }
            }
            other => debug!("unexpected {} from master", other.name()),
        }
    };
    debug!("client connection ended: {why}");
    if let Some(map) = lock(&pending).take() {
        for (_, r) in map {
            r.fail(ClientError::Disconnected);
        }
    }
}
