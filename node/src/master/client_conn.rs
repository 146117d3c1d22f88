//! A client's connection to the master: submissions streamed in, status,
//! waits and result downloads, many at once on one connection.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use tessera_proto::{
    ErrorCode, FrameReader, Incoming, Msg, ProtoError, StreamId, TaskId, TaskState,
    stream::Progress,
};
use tokio::{io::AsyncRead, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Ctx,
    activity::Activity,
    outbox::Out,
    store::{Kind, TmpFile},
};

/// Longest image name accepted.
const MAX_NAME: usize = 4096;

struct Upload {
    name: String,
    progress: Progress,
    file: TmpFile,
}

/// Per-connection state.
struct ClientConn {
    ctx: Arc<Ctx>,
    out: mpsc::Sender<Out>,
    uploads: HashMap<StreamId, Upload>,
    /// Streams whose submission was refused: their chunks are counted and dropped.
    discarding: HashMap<StreamId, Progress>,
    waits: Arc<AtomicUsize>,
    closed: CancellationToken,
    /// A parked wait holds the connection open (see `activity`).
    activity: Arc<Activity>,
}

/// Serves one client until it disconnects or `shutdown` fires.
pub async fn serve<R: AsyncRead + Unpin>(
    ctx: Arc<Ctx>,
    mut reader: FrameReader<R>,
    out: mpsc::Sender<Out>,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
) {
    let closed = shutdown.child_token();
    let mut conn = ClientConn {
        ctx,
        out,
        uploads: HashMap::new(),
        discarding: HashMap::new(),
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
    async fn reply(&self, msg: Msg) -> bool {
        self.out.send(Out::Msg(msg)).await.is_ok()
    }

    async fn error(&self, req: Option<u64>, code: ErrorCode, message: String) -> bool {
        self.reply(Msg::Error { req, code, message }).await
    }

    /// Handles one message; false to close the connection.
    async fn handle(&mut self, incoming: Incoming) -> bool {
        match incoming.msg {
            Msg::Submit { req, name, len } => self.submit(req, name, len).await,
            Msg::Chunk { stream } => self.chunk(stream, incoming.payload).await,
            Msg::Status { req, task } => match self.ctx.state.info(task) {
                Some(info) => self.reply(Msg::Info { req, info }).await,
                None => self.not_found(req, task).await,
            },
            Msg::Wait { req, task } => self.wait(req, task).await,
            Msg::Fetch { req, task } => self.fetch(req, task).await,
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
            format!("no task {task} on this master"),
        )
        .await
    }

    async fn submit(&mut self, req: u64, name: String, len: u64) -> bool {
        let limits = &self.ctx.config;
        let refusal = if self.uploads.contains_key(&req) || self.discarding.contains_key(&req) {
            Some((
                ErrorCode::Malformed,
                format!("submission {req} is already in progress"),
            ))
        } else if len > limits.max_image_bytes {
            Some((
                ErrorCode::TooLarge,
                format!(
                    "{name}: {len} bytes is over the master's image size limit of {} bytes",
                    limits.max_image_bytes
                ),
            ))
        } else if name.len() > MAX_NAME {
            Some((
                ErrorCode::Malformed,
                format!("image name over {MAX_NAME} bytes"),
            ))
        } else if self.uploads.len() >= limits.max_uploads_per_client {
            Some((
                ErrorCode::Busy,
                format!(
                    "{} submissions already in flight on this connection (limit {})",
                    self.uploads.len(),
                    limits.max_uploads_per_client
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            if !self.discarding.contains_key(&req) && !self.uploads.contains_key(&req) && len > 0 {
                self.discarding.insert(req, Progress::new(len));
            }
            return self.error(Some(req), code, message).await;
        }
        let file = match self.ctx.store.create_tmp().await {
            Ok(f) => f,
            Err(e) => {
                if len > 0 {
                    self.discarding.insert(req, Progress::new(len));
                }
                return self.storage_error(req, &e).await;
            }
        };
        self.uploads.insert(
            req,
            Upload {
                name,
                progress: Progress::new(len),
                file,
            },
        );
        if len == 0 {
            self.finish_upload(req).await
        } else {
            true
        }
    }

    async fn storage_error(&self, req: u64, e: &std::io::Error) -> bool {
        warn!("cannot store a submission: {e}");
        let message = format!("the master cannot store the image: {e}");
        self.error(Some(req), ErrorCode::Storage, message).await
    }

    async fn chunk(&mut self, stream: StreamId, payload: Bytes) -> bool {
        if let Some(p) = self.discarding.get_mut(&stream) {
            match p.add(payload.len()) {
                Ok(true) => {
                    self.discarding.remove(&stream);
                }
                Ok(false) => {}
                Err(e) => {
                    self.discarding.remove(&stream);
                    return self
                        .error(Some(stream), ErrorCode::Malformed, e.to_string())
                        .await;
                }
            }
            return true;
        }
        let Some(upload) = self.uploads.get_mut(&stream) else {
            let message = format!("chunk for stream {stream}, which has no submission in progress");
            return self
                .error(Some(stream), ErrorCode::UnexpectedMessage, message)
                .await;
        };
        let complete = match upload.progress.add(payload.len()) {
            Ok(c) => c,
            Err(e) => {
                self.uploads.remove(&stream);
                return self
                    .error(Some(stream), ErrorCode::Malformed, e.to_string())
                    .await;
            }
        };
        if let Err(e) = upload.file.write(&payload).await {
            let remaining = upload.progress.announced() - upload.progress.received();
            self.uploads.remove(&stream);
            if remaining > 0 {
                self.discarding.insert(stream, Progress::new(remaining));
            }
            return self.storage_error(stream, &e).await;
        }
        if complete {
            self.finish_upload(stream).await
        } else {
            true
        }
    }

    async fn finish_upload(&mut self, req: u64) -> bool {
        let Some(upload) = self.uploads.remove(&req) else {
            return true;
        };
        let len = upload.progress.announced();
        // The task id is known only once the image is stored; the id is
        // reserved by the scheduler first so the file can be named after it.
        let task = self.ctx.state.reserve_id();
        match self.ctx.store.commit(upload.file, Kind::Input, task).await {
            Ok(_) => {
                self.ctx.state.submit(task, upload.name, len);
                self.reply(Msg::Submitted { req, task }).await
            }
            Err(e) => self.storage_error(req, &e).await,
        }
    }

    async fn wait(&mut self, req: u64, task: TaskId) -> bool {
        if self.waits.load(Ordering::Relaxed) >= self.ctx.config.max_waits_per_client {
            let message = format!(
                "{} waits already pending on this connection",
                self.ctx.config.max_waits_per_client
            );
            return self.error(Some(req), ErrorCode::Busy, message).await;
        }
        let rx = match self.ctx.state.wait(task) {
            Ok(Some(rx)) => rx,
            Ok(None) => return self.not_found(req, task).await,
            Err(e) => return self.error(Some(req), ErrorCode::Busy, e.to_string()).await,
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
                    if let Ok(info) = info {
                        let _ = out.send(Out::Msg(Msg::Info { req, info })).await;
                    }
                }
                () = closed.cancelled() => {}
            }
            waits.fetch_sub(1, Ordering::Relaxed);
        });
        true
    }

    async fn fetch(&mut self, req: u64, task: TaskId) -> bool {
        let Some((info, attempt)) = self.ctx.state.info_with_result(task) else {
            return self.not_found(req, task).await;
        };
        match (&info.state, attempt, info.output_len) {
            (TaskState::Done, Some(attempt), Some(len)) => {
                let path = self.ctx.store.path(Kind::Result { attempt }, task);
                let header = Msg::Result { req, task, len };
                self.out
                    .send(Out::File {
                        header,
                        stream: req,
                        path,
                        len,
                    })
                    .await
                    .is_ok()
            }
            (TaskState::Failed { reason, .. }, _, _) => {
                let message = format!("task {task} failed: {reason}");
                self.error(Some(req), ErrorCode::NotReady, message).await
            }
            (state, _, _) => {
                let message = format!("task {task} is {state}; it has no result yet");
                self.error(Some(req), ErrorCode::NotReady, message).await
            }
        }
    }
}
