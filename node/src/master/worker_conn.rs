//! A worker's connection to the master: the worker grants credits (pull), the
//! master streams it assigned images, the worker streams results back or
//! reports a failure.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_proto::{
    Checksummer, ErrorCode, FrameReader, Incoming, LeaseRef, Msg, ProtoError, TaskId,
    outgoing::Item, stream::Progress,
};
use tokio::{io::AsyncRead, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    Ctx,
    beside::Beside,
    ledger::ResultAnswer,
    scheduler::{Assignment, WorkerId},
    state::ToWorker,
    store::{Kind, TmpFile},
    stored_file::{IfUnreadable, StoredFile},
};

struct ResultUpload {
    attempt: u32,
    progress: Progress,
    /// `None` once storing failed: the rest of the bytes are dropped.
    file: Option<TmpFile>,
    hasher: Checksummer,
    checksum: u64,
}

struct WorkerConn {
    ctx: Arc<Ctx>,
    id: WorkerId,
    out: mpsc::Sender<Item<StoredFile>>,
    results: BTreeMap<TaskId, ResultUpload>,
    /// Reports (results, failures) the ledger is making durable, beside
    /// the reader: a slow commit must not stop this connection being read
    /// (its heartbeats, its next results).
    settling: Beside,
    /// The worker said it gives the connection up for the master's silence
    /// (`HangingUp`): its leases are lost to silence, not to a death.
    hung_up: bool,
}

/// Serves one worker until it disconnects or `shutdown` fires. Whatever way
/// the connection ends, the worker's tasks go back to the queue at once.
pub async fn serve<R: AsyncRead + Unpin>(
    ctx: Arc<Ctx>,
    node_id: String,
    peer: SocketAddr,
    mut reader: FrameReader<R>,
    out: mpsc::Sender<Item<StoredFile>>,
    shutdown: CancellationToken,
) {
    let capacity = super::connection::worker_queue_capacity(ctx.config.scheduler.max_credits);
    let (id, mut to_worker) = ctx.state.join_worker(node_id.clone(), capacity);
    ctx.state.worker_address(id, peer.to_string());
    info!(worker = %id, node = %node_id, %peer, "worker joined");
    // Forward what the scheduler decides for this worker to the writer.
    let forward = {
        let ctx = ctx.clone();
        let out = out.clone();
        tokio::spawn(async move {
            while let Some(item) = to_worker.recv().await {
                let (item, assignment) = match item {
                    ToWorker::Assign(a) => {
                        let Assignment {
                            task,
                            attempt,
                            ref name,
                            input_len,
                            checksum,
                        } = a;
                        let path = ctx.store.path(Kind::Input, task);
                        let header = Msg::Assign {
                            task,
                            attempt,
                            name: name.clone(),
                            len: input_len,
                            checksum,
                        };
                        // An input that cannot be read does not end the
                        // connection. Gone (the task was deleted or cancelled
                        // meanwhile, or the file was lost): the attempt fails
                        // through the ledger, which ignores it unless the lease
                        // is still live. Unreadable otherwise: the assignment
                        // was not delivered and the task is queued again.
                        let ledger = ctx.ledger.clone();
                        let undelivered = a.clone();
                        let report = move |e: &super::stored_file::SendFileError| {
                            let (task, attempt) = (undelivered.task, undelivered.attempt);
                            if !e.is_missing_file() {
                                warn!(%task, "cannot read the input: {e}; queued again");
                                ledger.state().undeliverable(id, &undelivered);
                                return;
                            }
                            let reason = format!("the master lost the stored input: {e}");
                            tokio::spawn(async move {
                                let kind = tessera_proto::FailureKind::Internal;
                                match ledger.accept_failure(id, task, attempt, kind, reason).await {
                                    Ok(Some(obsolete)) => obsolete.remove().await,
                                    Ok(None) => debug!(%task, "input gone with its task"),
                                    Err(e) => warn!(%task, "cannot record a failure: {e}"),
                                }
                            });
                        };
                        (
                            Item::Payload(StoredFile {
                                header,
                                stream: task.0,
                                path,
                                len: input_len,
                                if_unreadable: IfUnreadable::Call(Box::new(report)),
                                disk: ctx.store.disk(),
                            }),
                            Some(a),
                        )
                    }
                    ToWorker::Release(LeaseRef { task, attempt }) => {
                        debug!(%task, worker = %id, "sending Release");
                        (Item::Msg(Msg::Release { task, attempt }), None)
                    }
                    ToWorker::Drop(LeaseRef { task, attempt }) => {
                        debug!(%task, worker = %id, attempt, "telling the worker to drop the task");
                        (Item::Msg(Msg::Drop { task, attempt }), None)
                    }
                };
                if out.send(item).await.is_err() {
                    if let Some(a) = assignment {
                        ctx.state.undeliverable(id, &a);
                    }
                    break;
                }
            }
        })
    };
    let mut conn = WorkerConn {
        ctx: ctx.clone(),
        id,
        out,
        results: BTreeMap::new(),
        // One answer (`Accepted`) each, on a queue of `capacity`.
        settling: Beside::new(capacity),
        hung_up: false,
    };
    let why = loop {
        let next = tokio::select! {
            next = reader.recv() => next,
            () = shutdown.cancelled() => break "closed by the master (shutting down, or idle too long)".to_string(),
        };
        match next {
            Ok(incoming) => {
                if !matches!(incoming.msg, Msg::Chunk { .. }) {
                    // Any frame is a sign of life; chunks extend their lease.
                    conn.ctx.state.worker_seen(id);
                }
                if let Err(why) = conn.handle(incoming).await {
                    break why;
                }
            }
            Err(ProtoError::Decode(e)) => {
                let code = match e {
                    tessera_proto::DecodeError::UnknownVariant { .. } => ErrorCode::UnknownMessage,
                    _ => ErrorCode::Malformed,
                };
                let _ = conn
                    .out
                    .send(Item::Msg(Msg::Error {
                        req: None,
                        code,
                        message: e.to_string(),
                    }))
                    .await;
            }
            Err(ProtoError::Closed) => break "connection closed".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    forward.abort();
    info!(worker = %id, node = %node_id, "worker left: {why}");
    // What the worker reported before it went is decided before its leases
    // are lost: a result received whole wins over the loss of its lease
    // (which could otherwise count against its image, or use its last
    // attempt).
    conn.settling.finish().await;
    ctx.state.worker_lost(id, &why, conn.hung_up);
}

impl WorkerConn {
    async fn send(&self, msg: Msg) -> Result<(), String> {
        self.out
            .send(Item::Msg(msg))
            .await
            .map_err(|_| "connection writer closed".to_string())
    }

    async fn handle(&mut self, incoming: Incoming) -> Result<(), String> {
        match incoming.msg {
            Msg::Ready { credits } => {
                self.ctx.state.worker_ready(self.id, credits);
                Ok(())
            }
            Msg::Ping { seq } => self.send(Msg::Pong { seq }).await,
            Msg::Capacity { threads, synthetic } => {
                if synthetic {
                    warn!(
                        worker = %self.id,
                        "a synthetic worker joined (--synthetic, for load tests): its results are its inputs, NOT processed images"
                    );
                    self.ctx.state.worker_synthetic(self.id);
                }
                self.ctx.state.worker_capacity(self.id, threads);
                Ok(())
            }
            Msg::Heartbeat { leases } => {
                self.ctx.state.heartbeat(self.id, &leases);
                Ok(())
            }
            Msg::Started { task, attempt } => {
                self.ctx.state.started(self.id, task, attempt);
                Ok(())
            }
            Msg::Released { task, attempt } => {
                if self.ctx.state.released(self.id, task, attempt) {
                    debug!(%task, worker = %self.id, "worker gave back an unstarted task");
                }
                Ok(())
            }
            Msg::Draining => {
                info!(worker = %self.id, "worker is draining");
                self.ctx.state.worker_draining(self.id);
                Ok(())
            }
            Msg::HangingUp { silent_ms } => {
                self.hung_up = true;
                Err(format!(
                    "it heard nothing from the master for {:.1} s and gave the connection up",
                    Duration::from_millis(silent_ms).as_secs_f64()
                ))
            }
            Msg::Done {
                task,
                attempt,
                len,
                checksum,
            } => self.start_result(task, attempt, len, checksum).await,
            Msg::Chunk { stream } => self.chunk(TaskId(stream), incoming.payload).await,
            Msg::Failed {
                task,
                attempt,
                kind,
                reason,
            } => {
                let (ledger, out, id) = (self.ctx.ledger.clone(), self.out.clone(), self.id);
                self.settling
                    .run(async move {
                        match ledger.accept_failure(id, task, attempt, kind, reason).await {
                            Ok(obsolete) => {
                                let _ = out.send(Item::Msg(Msg::Accepted { task })).await;
                                if let Some(o) = obsolete {
                                    o.remove().await;
                                }
                            }
                            // Not recorded: the task is as it was; no `Accepted`.
                            Err(e) => warn!(%task, "cannot record a failure: {e}"),
                        }
                    })
                    .await;
                Ok(())
            }
            other => {
                let message = format!("{} is not a message a worker may send", other.name());
                self.send(Msg::Error {
                    req: None,
                    code: ErrorCode::UnexpectedMessage,
                    message,
                })
                .await
            }
        }
    }

    async fn start_result(
        &mut self,
        task: TaskId,
        attempt: u32,
        len: u64,
        checksum: u64,
    ) -> Result<(), String> {
        if len == 0 {
            // An image is never empty: a worker that says so is broken
            // (a stopped run's missing outcome sent as a result). Never
            // accept it as the task's output: drop the connection, which
            // requeues its tasks.
            return Err(format!("an empty result for task {task} attempt {attempt}"));
        }
        if len > self.ctx.config.max_image_bytes {
            // Cannot skip the stream cheaply and a worker never should send
            // this: drop the connection, which requeues its tasks.
            return Err(format!(
                "result of {len} bytes for task {task} is over the limit"
            ));
        }
        let file = match self.ctx.store.create_tmp(len).await {
            Ok(f) => Some(f),
            Err(e) => {
                self.store_failed(task, attempt, &e).await;
                None
            }
        };
        let upload = ResultUpload {
            attempt,
            progress: Progress::new(len),
            file,
            hasher: Checksummer::default(),
            checksum,
        };
        self.results.insert(task, upload);
        Ok(())
    }

    async fn chunk(&mut self, task: TaskId, payload: Bytes) -> Result<(), String> {
        let Some(upload) = self.results.get_mut(&task) else {
            // Answered and skipped, as on a client connection: closing the
            // connection would cost the worker every lease it holds.
            return self
                .send(Msg::Error {
                    req: None,
                    code: ErrorCode::UnexpectedMessage,
                    message: format!("chunk for task {task}, which has no result in progress"),
                })
                .await;
        };
        let complete = upload
            .progress
            .add(payload.len())
            .map_err(|e| e.to_string())?;
        self.ctx.state.touch(self.id, task, upload.attempt);
        super::metrics::bytes_received(super::metrics::Peer::Worker, payload.len());
        upload.hasher.update(&payload);
        if let Some(file) = &mut upload.file
            && let Err(e) = file.write(payload).await
        {
            upload.file = None;
            let attempt = upload.attempt;
            self.store_failed(task, attempt, &e).await;
        }
        if complete {
            self.finish_result(task).await
        } else {
            Ok(())
        }
    }

    /// The result cannot be stored (disk full, I/O error): the task goes
    /// back to the queue, without counting against its attempts, and the
    /// master pauses handing out work for a moment.
    async fn store_failed(&self, task: TaskId, attempt: u32, e: &(dyn std::fmt::Display + Sync)) {
        warn!(%task, "cannot store a result: {e}");
        self.ctx
            .state
            .result_not_stored(self.id, task, attempt, &e.to_string());
    }

    async fn finish_result(&mut self, task: TaskId) -> Result<(), String> {
        let Some(upload) = self.results.remove(&task) else {
            return Ok(());
        };
        let Some(file) = upload.file else {
            return self.send(Msg::Accepted { task }).await;
        };
        let got = upload.hasher.finish();
        if got != upload.checksum {
            // Corrupted in transit: drop the connection, which requeues the
            // worker's tasks; the file is deleted with `file`.
            return Err(format!(
                "result of task {task} does not match its checksum ({:016x} announced, {got:016x} received)",
                upload.checksum
            ));
        }
        let len = upload.progress.announced();
        let (attempt, checksum) = (upload.attempt, upload.checksum);
        let (ledger, out, id) = (self.ctx.ledger.clone(), self.out.clone(), self.id);
        self.settling
            .run(async move {
                match ledger
                    .accept_result(id, task, attempt, file, len, checksum)
                    .await
                {
                    ResultAnswer::Accepted(obsolete) => {
                        let _ = out.send(Item::Msg(Msg::Accepted { task })).await;
                        obsolete.remove().await;
                    }
                    ResultAnswer::NotStored => {}
                }
            })
            .await;
        Ok(())
    }
}
