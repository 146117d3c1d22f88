//! Routing the master's replies to the calls waiting for them: a map from
//! request id to a oneshot, filled by [`crate::Client`]'s calls and emptied by
//! the connection's reader task. Downloads are reassembled here and checked
//! against the checksum the master announced.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use tessera_proto::{
    ClusterInfo, ErrorCode, EventEntry, FrameReader, Liveness, Msg, ProtoError, TaskId, TaskInfo,
    stream::Collector,
};
use tokio::{io::AsyncRead, sync::oneshot};
use tracing::debug;

use crate::error::ClientError;

/// A call waiting for its reply.
pub enum Reply {
    Submitted(oneshot::Sender<Result<TaskId, ClientError>>),
    Info(oneshot::Sender<Result<TaskInfo, ClientError>>),
    History(oneshot::Sender<Result<Vec<EventEntry>, ClientError>>),
    Deleted(oneshot::Sender<Result<(), ClientError>>),
    Confirmed(oneshot::Sender<Result<(), ClientError>>),
    Cluster(oneshot::Sender<Result<ClusterInfo, ClientError>>),
    Fetch {
        tx: oneshot::Sender<Result<Bytes, ClientError>>,
        /// Set by the `Result` header: the task, its checksum, the bytes so far.
        body: Option<(TaskId, u64, Collector)>,
    },
}

impl Reply {
    fn fail(self, e: ClientError) {
        match self {
            Reply::Submitted(tx) => drop(tx.send(Err(e))),
            Reply::Info(tx) => drop(tx.send(Err(e))),
            Reply::History(tx) => drop(tx.send(Err(e))),
            Reply::Deleted(tx) => drop(tx.send(Err(e))),
            Reply::Confirmed(tx) => drop(tx.send(Err(e))),
            Reply::Cluster(tx) => drop(tx.send(Err(e))),
            Reply::Fetch { tx, .. } => drop(tx.send(Err(e))),
        }
    }
}

/// The waiting calls of one connection; `None` once the connection is gone.
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<Option<HashMap<u64, Reply>>>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    pub fn new() -> Self {
        Pending(Arc::new(Mutex::new(Some(HashMap::new()))))
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, Reply>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// False once the connection is gone.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Registers a call under `req`; fails once the connection is gone.
    /// True when it is the only call waiting now.
    pub fn insert(&self, req: u64, reply: Reply) -> Result<bool, ClientError> {
        match self.lock().as_mut() {
            Some(map) => {
                map.insert(req, reply);
                Ok(map.len() == 1)
            }
            None => Err(ClientError::Disconnected),
        }
    }

    /// True when no call waits (or the connection is gone).
    pub fn is_empty(&self) -> bool {
        self.lock().as_ref().is_none_or(|m| m.is_empty())
    }

    /// Fails every waiting call: the connection is gone.
    fn close(&self) {
        self.close_with(|| ClientError::Disconnected);
    }

    /// Fails every waiting call with `why()`: the connection is given up.
    pub fn close_with(&self, why: impl Fn() -> ClientError) {
        if let Some(map) = self.lock().take() {
            for (_, r) in map {
                r.fail(why());
            }
        }
    }
}

/// Reads the master's messages until the connection ends, routing each reply.
pub async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    pending: Pending,
    max_result: u64,
    liveness: std::sync::Arc<Liveness>,
) {
    let why = loop {
        let incoming = match reader.recv().await {
            Ok(i) => {
                liveness.heard();
                i
            }
            Err(ProtoError::Decode(e)) => {
                debug!("undecodable message from master: {e}");
                continue;
            }
            Err(e) => break e,
        };
        let mut guard = pending.lock();
        let Some(map) = guard.as_mut() else { return };
        if let Err(why) = route(map, incoming.msg, incoming.payload, max_result) {
            break why;
        }
    };
    debug!("client connection ended: {why}");
    pending.close();
}

/// Routes one message. `Err` to close the connection.
fn route(
    map: &mut HashMap<u64, Reply>,
    msg: Msg,
    payload: Bytes,
    max_result: u64,
) -> Result<(), ProtoError> {
    match msg {
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
        Msg::History { req, events, .. } => {
            if let Some(Reply::History(tx)) = map.remove(&req) {
                let _ = tx.send(Ok(events));
            }
        }
        Msg::Deleted { req, .. } => {
            if let Some(Reply::Deleted(tx)) = map.remove(&req) {
                let _ = tx.send(Ok(()));
            }
        }
        Msg::Confirmed { req, .. } => {
            if let Some(Reply::Confirmed(tx)) = map.remove(&req) {
                let _ = tx.send(Ok(()));
            }
        }
        Msg::Cluster { req, cluster } => {
            if let Some(Reply::Cluster(tx)) = map.remove(&req) {
                let _ = tx.send(Ok(cluster));
            }
        }
        Msg::Result {
            req,
            task,
            len,
            checksum,
        } => {
            if len > max_result {
                if let Some(r) = map.remove(&req) {
                    r.fail(ClientError::TooLarge {
                        len,
                        max: max_result,
                    });
                }
                // The stream that follows cannot be skipped cheaply.
                return Err(ProtoError::Closed);
            }
            if len == 0 {
                if let Some(Reply::Fetch { tx, .. }) = map.remove(&req) {
                    let _ = tx.send(verified(task, checksum, Bytes::new()));
                }
            } else if let Some(Reply::Fetch { body, .. }) = map.get_mut(&req) {
                *body = Some((task, checksum, Collector::new(len)));
            }
        }
        Msg::Chunk { stream } => {
            let Some(Reply::Fetch {
                body: Some((task, checksum, c)),
                ..
            }) = map.get_mut(&stream)
            else {
                return Ok(());
            };
            let (task, checksum) = (*task, *checksum);
            match c.push(payload) {
                Ok(None) => {}
                Ok(Some(data)) => {
                    if let Some(Reply::Fetch { tx, .. }) = map.remove(&stream) {
                        let _ = tx.send(verified(task, checksum, data));
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
                return Err(ProtoError::Closed);
            }
        }
        Msg::Pong { .. } => {}
        other => debug!("unexpected {} from master", other.name()),
    }
    Ok(())
}

/// A downloaded result, if it matches the checksum the master announced.
fn verified(task: TaskId, expected: u64, data: Bytes) -> Result<Bytes, ClientError> {
    let got = tessera_proto::checksum(&data);
    if got == expected {
        Ok(data)
    } else {
        Err(ClientError::Checksum {
            task,
            expected,
            got,
        })
    }
}
