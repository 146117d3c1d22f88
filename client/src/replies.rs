//! Routing the master's replies to the calls waiting for them: a map from
//! request id to a oneshot, filled by [`crate::Client`]'s calls and emptied by
//! the connection's reader task. Downloads are reassembled here and checked
//! against the checksum the master announced.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use tessera_proto::{
    ClusterInfo, ErrorCode, EventEntry, FrameReader, Liveness, Msg, ProtoError, TaskId, TaskInfo,
    stream::Collector,
};
use tokio::{io::AsyncRead, sync::oneshot};
use tracing::{debug, warn};

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
pub struct Pending(Arc<Mutex<Option<BTreeMap<u64, Reply>>>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    pub fn new() -> Self {
        Pending(Arc::new(Mutex::new(Some(BTreeMap::new()))))
    }

    fn lock(&self) -> MutexGuard<'_, Option<BTreeMap<u64, Reply>>> {
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
    strays: std::sync::Arc<AtomicU64>,
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
        let name = incoming.msg.name();
        match route(map, incoming.msg, incoming.payload, max_result) {
            Ok(true) => {}
            Ok(false) => {
                strays.fetch_add(1, Ordering::Relaxed);
                warn!("the master sent a {name} that answers no waiting request");
            }
            Err(why) => break why,
        }
    };
    debug!("client connection ended: {why}");
    pending.close();
}

/// Routes one message. `Err` to close the connection; `Ok(false)` for a
/// stray reply: one that answers no waiting call of its kind (a request
/// answered twice, or never made).
fn route(
    map: &mut BTreeMap<u64, Reply>,
    msg: Msg,
    payload: Bytes,
    max_result: u64,
) -> Result<bool, ProtoError> {
    let mut matched = true;
    match msg {
        Msg::Submitted { req, task } => match map.remove(&req) {
            Some(Reply::Submitted(tx)) => drop(tx.send(Ok(task))),
            _ => matched = false,
        },
        Msg::Info { req, info } => match map.remove(&req) {
            Some(Reply::Info(tx)) => drop(tx.send(Ok(info))),
            _ => matched = false,
        },
        Msg::History { req, events, .. } => match map.remove(&req) {
            Some(Reply::History(tx)) => drop(tx.send(Ok(events))),
            _ => matched = false,
        },
        Msg::Deleted { req, .. } => match map.remove(&req) {
            Some(Reply::Deleted(tx)) => drop(tx.send(Ok(()))),
            _ => matched = false,
        },
        Msg::Confirmed { req, .. } => match map.remove(&req) {
            Some(Reply::Confirmed(tx)) => drop(tx.send(Ok(()))),
            _ => matched = false,
        },
        Msg::Cluster { req, cluster } => match map.remove(&req) {
            Some(Reply::Cluster(tx)) => drop(tx.send(Ok(cluster))),
            _ => matched = false,
        },
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
                match map.remove(&req) {
                    Some(Reply::Fetch { tx, .. }) => {
                        drop(tx.send(verified(task, checksum, Bytes::new())))
                    }
                    _ => matched = false,
                }
            } else {
                match map.get_mut(&req) {
                    Some(Reply::Fetch {
                        body: body @ None, ..
                    }) => {
                        *body = Some((task, checksum, Collector::new(len)));
                    }
                    _ => matched = false,
                }
            }
        }
        Msg::Chunk { stream } => {
            let Some(Reply::Fetch {
                body: Some((task, checksum, c)),
                ..
            }) = map.get_mut(&stream)
            else {
                return Ok(true);
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
        } => match map.remove(&req) {
            Some(r) => r.fail(ClientError::Master { code, message }),
            None => matched = false,
        },
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
    Ok(matched)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_answers_no_waiting_call_is_a_stray() {
        let mut map = BTreeMap::new();
        let (tx, mut rx) = oneshot::channel();
        map.insert(5, Reply::Submitted(tx));
        let submitted = || Msg::Submitted {
            req: 5,
            task: TaskId(9),
        };
        assert!(route(&mut map, submitted(), Bytes::new(), 10).unwrap());
        assert_eq!(rx.try_recv().unwrap().unwrap(), TaskId(9));
        // The same request answered twice.
        assert!(!route(&mut map, submitted(), Bytes::new(), 10).unwrap());
        // An answer of the wrong kind for a waiting call.
        let (tx, _rx) = oneshot::channel();
        map.insert(6, Reply::Deleted(tx));
        let info = Msg::Submitted {
            req: 6,
            task: TaskId(1),
        };
        assert!(!route(&mut map, info, Bytes::new(), 10).unwrap());
        // An error for a request never made.
        let error = Msg::Error {
            req: Some(77),
            code: ErrorCode::Internal,
            message: "x".into(),
        };
        assert!(!route(&mut map, error, Bytes::new(), 10).unwrap());
    }
}
