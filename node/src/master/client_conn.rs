//! A client's connection to the master: submissions streamed in (see
//! `client_upload.rs`), status, waits, result downloads, download
//! confirmations, history and deletion, many at once on one connection.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tessera_proto::{
    ErrorCode, FrameReader, Incoming, Msg, ProtoError, TaskId, TaskState, outgoing::Outgoing,
};
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Ctx,
    activity::Activity,
    beside::Beside,
    client_upload::Uploads,
    ledger::{LedgerError, WaitError},
    store::Kind,
    stored_file::{IfUnreadable, StoredFile},
};

/// The answer to request `req` when a ledger operation did not happen:
/// nothing changed.
fn ledger_error(req: u64, e: &LedgerError) -> Msg {
    warn!("request {req} not carried out: {e}");
    Msg::Error {
        req: Some(req),
        code: ErrorCode::Storage,
        message: format!("the master cannot record this: {e}"),
    }
}

/// Per-connection state.
#[derive(Debug)]
pub struct ClientConn {
    pub(super) ctx: Arc<Ctx>,
    pub(super) out: Outgoing<StoredFile>,
    pub(super) uploads: Uploads,
    /// Finished submissions and confirmations being made durable, then
    /// answered (see `client_upload.rs`, `confirm`).
    pub(super) settling: Beside,
    waits: Arc<AtomicUsize>,
    closed: CancellationToken,
    /// A parked wait holds the connection open (see `activity`).
    activity: Arc<Activity>,
}

/// Serves one client until it disconnects or `shutdown` fires.
pub async fn serve<R: AsyncRead + Unpin>(
    ctx: Arc<Ctx>,
    mut reader: FrameReader<R>,
    out: Outgoing<StoredFile>,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
) {
    let closed = shutdown.child_token();
    let mut conn = ClientConn {
        settling: Beside::new(ctx.config.max_uploads_per_client),
        ctx,
        out,
        uploads: Uploads::default(),
        waits: Arc::new(AtomicUsize::new(0)),
        closed: closed.clone(),
        activity,
    };
    loop {
        let next = tokio::select! {
            next = reader.recv() => next,
            () = closed.cancelled() => break,
        };
        match next {
            Ok(incoming) => {
                if !conn.handle(incoming).await {
                    break;
                }
            }
            Err(ProtoError::Decode(e)) => {
                let code = match e {
                    tessera_proto::DecodeError::UnknownVariant { .. } => ErrorCode::UnknownMessage,
                    _ => ErrorCode::Malformed,
                };
                if !conn
                    .reply(Msg::Error {
                        req: None,
                        code,
                        message: e.to_string(),
                    })
                    .await
                {
                    break;
                }
            }
            Err(ProtoError::Closed) => break,
            Err(e) => {
                debug!("client connection ended: {e}");
                break;
            }
        }
    }
    // Incomplete uploads are dropped here, which deletes their files: a
    // client that vanishes mid-upload leaves no partial task behind.
    closed.cancel();
}

impl ClientConn {
    /// Queues a reply; false when the connection's writer is gone.
    pub(super) async fn reply(&self, msg: Msg) -> bool {
        self.out.control.send(msg).await.is_ok()
    }

    pub(super) async fn error(&self, req: Option<u64>, code: ErrorCode, message: String) -> bool {
        self.reply(Msg::Error { req, code, message }).await
    }

    /// Handles one message; false to close the connection.
    async fn handle(&mut self, incoming: Incoming) -> bool {
        match incoming.msg {
            Msg::Submit {
                req,
                name,
                len,
                checksum,
                key,
                submitter,
            } => self.submit(req, name, len, checksum, key, submitter).await,
            Msg::Chunk { stream } => self.chunk(stream, incoming.payload).await,
            Msg::Status { req, task } => match self.ctx.ledger.status(task).await {
                Ok(Some(info)) => self.reply(Msg::Info { req, info }).await,
                Ok(None) => self.not_found(req, task).await,
                Err(e) => self.storage_error(req, &e).await,
            },
            Msg::Wait { req, task } => self.wait(req, task).await,
            Msg::Fetch { req, task } => self.fetch(req, task).await,
            Msg::Confirm {
                req,
                task,
                submitter,
            } => self.confirm(req, task, submitter).await,
            Msg::GetHistory { req, task } => self.history(req, task).await,
            Msg::Delete { req, task } => self.delete(req, task).await,
            Msg::Cancel { req, task } => self.cancel(req, task).await,
            Msg::Ping { seq } => self.reply(Msg::Pong { seq }).await,
            Msg::GetCluster { req } => {
                let cluster = self.ctx.state.snapshot(&self.ctx.config.master_id);
                self.reply(Msg::Cluster { req, cluster }).await
            }
            other => {
                let message = format!("{} is not a message a client may send", other.name());
                self.error(None, ErrorCode::UnexpectedMessage, message)
                    .await
            }
        }
    }

    async fn not_found(&self, req: u64, task: TaskId) -> bool {
        self.error(
            Some(req),
            ErrorCode::NotFound,
            format!(
                "no task {task} on this master; check the id (as `tessera submit` printed it) and that this is the master it was submitted to"
            ),
        )
        .await
    }

    async fn wait(&mut self, req: u64, task: TaskId) -> bool {
        if self.waits.load(Ordering::Relaxed) >= self.ctx.config.max_waits_per_client {
            let message = format!(
                "{} waits already pending on this connection",
                self.ctx.config.max_waits_per_client
            );
            return self.error(Some(req), ErrorCode::Busy, message).await;
        }
        let rx = match self.ctx.ledger.wait(task).await {
            Ok(Some(rx)) => rx,
            Ok(None) => return self.not_found(req, task).await,
            Err(WaitError::TooManyWaiters(e)) => {
                return self.error(Some(req), ErrorCode::Busy, e.to_string()).await;
            }
            Err(WaitError::Record(e)) => return self.storage_error(req, &e).await,
        };
        let out = self.out.clone();
        let waits = self.waits.clone();
        let closed = self.closed.clone();
        let hold = self.activity.hold();
        waits.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _hold = hold;
            tokio::select! {
                info = rx => {
                    let msg = match info {
                        Ok(info) => Msg::Info { req, info },
                        Err(_) => Msg::Error {
                            req: Some(req),
                            code: ErrorCode::NotFound,
                            message: format!("task {task} was deleted"),
                        },
                    };
                    let _ = out.control.send(msg).await;
                }
                () = closed.cancelled() => {}
            }
            waits.fetch_sub(1, Ordering::Relaxed);
        });
        true
    }

    async fn fetch(&mut self, req: u64, task: TaskId) -> bool {
        let (info, result) = match self.ctx.ledger.fetchable(task).await {
            Ok(Some(found)) => found,
            Ok(None) => return self.not_found(req, task).await,
            Err(e) => return self.storage_error(req, &e).await,
        };
        match (&info.state, result) {
            (TaskState::Done, Some(r)) if r.removed => {
                let message = format!(
                    "the result of task {task} was removed (its download was confirmed, or it was kept past the retention period)"
                );
                self.error(Some(req), ErrorCode::NotReady, message).await
            }
            (TaskState::Done, Some(r)) => {
                let path = self
                    .ctx
                    .store
                    .path(Kind::Result { attempt: r.attempt }, task);
                let header = Msg::Result {
                    req,
                    task,
                    len: r.len,
                    checksum: r.checksum,
                };
                // A result removed meanwhile (the last submitter confirmed,
                // retention) is answered with an error, not a closed connection.
                let unreadable = Msg::Error {
                    req: Some(req),
                    code: ErrorCode::NotReady,
                    message: format!("the result of task {task} was removed"),
                };
                self.out
                    .payloads
                    .send(StoredFile {
                        header,
                        stream: req,
                        path,
                        len: r.len,
                        if_unreadable: IfUnreadable::Send(unreadable),
                        disk: self.ctx.store.disk(),
                    })
                    .await
                    .is_ok()
            }
            (TaskState::Failed { reason, .. }, _) => {
                let message = format!("task {task} failed: {reason}");
                self.error(Some(req), ErrorCode::NotReady, message).await
            }
            (state, _) => {
                let message = format!(
                    "task {task} is {state}; it has no result yet (`tessera wait {task}` waits for it)"
                );
                self.error(Some(req), ErrorCode::NotReady, message).await
            }
        }
    }

    /// `submitter` stored the result: answered once recorded; the files
    /// go when every submitter has confirmed. Recorded and answered beside
    /// the reader (`beside.rs`): a batch confirms every image while it
    /// uploads the next ones.
    async fn confirm(&mut self, req: u64, task: TaskId, submitter: u64) -> bool {
        let (ledger, control) = (self.ctx.ledger.clone(), self.out.control.clone());
        self.settling
            .run(async move {
                match ledger.confirm(task, submitter).await {
                    Ok(obsolete) => {
                        let _ = control.send(Msg::Confirmed { req, task }).await;
                        obsolete.remove().await;
                    }
                    Err(e) => {
                        let _ = control.send(ledger_error(req, &e)).await;
                    }
                }
            })
            .await;
        true
    }

    async fn history(&mut self, req: u64, task: TaskId) -> bool {
        match self.ctx.ledger.history(task).await {
            None => self.not_found(req, task).await,
            Some(Ok(events)) => self.reply(Msg::History { req, task, events }).await,
            Some(Err(e)) => self.storage_error(req, &e).await,
        }
    }

    /// Answered once the cancellation is on disk, with the task's state.
    async fn cancel(&mut self, req: u64, task: TaskId) -> bool {
        match self.ctx.ledger.cancel(task).await {
            Ok(Some((info, obsolete))) => {
                let sent = self.reply(Msg::Info { req, info }).await;
                obsolete.remove().await;
                sent
            }
            Ok(None) => self.not_found(req, task).await,
            Err(e) => self.ledger_error(req, &e).await,
        }
    }

    async fn delete(&mut self, req: u64, task: TaskId) -> bool {
        match self.ctx.ledger.delete(task).await {
            Ok(Some(obsolete)) => {
                let sent = self.reply(Msg::Deleted { req, task }).await;
                obsolete.remove().await;
                sent
            }
            Ok(None) => self.not_found(req, task).await,
            Err(e) => self.ledger_error(req, &e).await,
        }
    }

    /// A ledger operation did not happen: nothing changed.
    pub(super) async fn ledger_error(&self, req: u64, e: &LedgerError) -> bool {
        self.reply(ledger_error(req, e)).await
    }
}
