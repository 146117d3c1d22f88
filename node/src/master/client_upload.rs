//! Submissions streamed in on a client connection: refused ones are skipped,
//! a known idempotency key joins its existing task (answered once that task's
//! submission and the new submitter are durable), the rest are written to a
//! temporary file while their checksum is computed, verified, and handed to
//! the ledger (file fsync + rename, record, directory fsync + commit), and
//! only then answered `Submitted`. That last step runs beside the reader
//! (`beside.rs`), which goes on reading the next submissions meanwhile.

use std::collections::BTreeMap;

use bytes::Bytes;
use tessera_proto::{Checksummer, ErrorCode, Msg, StreamId, stream::Progress};
use tracing::{debug, warn};

use super::{client_conn::ClientConn, ledger::Submission, store::TmpFile};

/// The answer to request `req` when the master could not store what it
/// needed to: `Storage`, with why.
fn storage_error(req: u64, e: &(dyn std::fmt::Display + Sync)) -> Msg {
    warn!("cannot store a submission: {e}");
    Msg::Error {
        req: Some(req),
        code: ErrorCode::Storage,
        message: format!("the master cannot store the image: {e}"),
    }
}

/// Longest image name accepted.
const MAX_NAME: usize = 4096;

/// A submission in progress.
#[derive(Debug)]
pub struct Upload {
    name: String,
    progress: Progress,
    file: TmpFile,
    hasher: Checksummer,
    checksum: u64,
    key: u128,
    submitter: u64,
}

/// The uploads of one connection.
#[derive(Debug, Default)]
pub struct Uploads {
    active: BTreeMap<StreamId, Upload>,
    /// Streams whose submission was refused or answered already: their
    /// chunks are counted and dropped.
    discarding: BTreeMap<StreamId, Progress>,
}

impl Uploads {
    fn busy(&self, stream: StreamId) -> bool {
        self.active.contains_key(&stream) || self.discarding.contains_key(&stream)
    }

    fn discard(&mut self, stream: StreamId, remaining: u64) {
        if remaining > 0 {
            self.discarding.insert(stream, Progress::new(remaining));
        }
    }
}

impl ClientConn {
    pub(super) async fn submit(
        &mut self,
        req: u64,
        name: String,
        len: u64,
        checksum: u64,
        key: u128,
        submitter: u64,
    ) -> bool {
        let limits = &self.ctx.config;
        let refusal = if self.uploads.busy(req) {
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
        } else if self.uploads.active.len() >= limits.max_uploads_per_client {
            Some((
                ErrorCode::Busy,
                format!(
                    "{} submissions already in flight on this connection (limit {})",
                    self.uploads.active.len(),
                    limits.max_uploads_per_client
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            if !self.uploads.busy(req) {
                self.uploads.discard(req, len);
            }
            return self.error(Some(req), code, message).await;
        }
        // A resubmission (after a lost answer, or another client's): the
        // existing task, once durable.
        if let Some(joined) = self.ctx.ledger.join_existing(key, submitter).await {
            self.uploads.discard(req, len);
            return match joined {
                Ok(task) => {
                    debug!(%task, "resubmission of a known image");
                    self.reply(Msg::Submitted { req, task }).await
                }
                Err(e) => self.ledger_error(req, &e).await,
            };
        }
        let file = match self.ctx.store.create_tmp(len).await {
            Ok(f) => f,
            Err(e) => {
                self.uploads.discard(req, len);
                return self.storage_error(req, &e).await;
            }
        };
        let upload = Upload {
            name,
            progress: Progress::new(len),
            file,
            hasher: Checksummer::default(),
            checksum,
            key,
            submitter,
        };
        self.uploads.active.insert(req, upload);
        if len == 0 {
            self.finish_upload(req).await
        } else {
            true
        }
    }

    pub(super) async fn storage_error(&self, req: u64, e: &(dyn std::fmt::Display + Sync)) -> bool {
        self.reply(storage_error(req, e)).await
    }

    pub(super) async fn chunk(&mut self, stream: StreamId, payload: Bytes) -> bool {
        super::metrics::bytes_received(super::metrics::Peer::Client, payload.len());
        if let Some(p) = self.uploads.discarding.get_mut(&stream) {
            match p.add(payload.len()) {
                Ok(true) => {
                    self.uploads.discarding.remove(&stream);
                }
                Ok(false) => {}
                Err(e) => {
                    self.uploads.discarding.remove(&stream);
                    return self
                        .error(Some(stream), ErrorCode::Malformed, e.to_string())
                        .await;
                }
            }
            return true;
        }
        let Some(upload) = self.uploads.active.get_mut(&stream) else {
            let message = format!("chunk for stream {stream}, which has no submission in progress");
            return self
                .error(Some(stream), ErrorCode::UnexpectedMessage, message)
                .await;
        };
        let complete = match upload.progress.add(payload.len()) {
            Ok(c) => c,
            Err(e) => {
                self.uploads.active.remove(&stream);
                return self
                    .error(Some(stream), ErrorCode::Malformed, e.to_string())
                    .await;
            }
        };
        upload.hasher.update(&payload);
        if let Err(e) = upload.file.write(payload).await {
            let remaining = upload.progress.announced() - upload.progress.received();
            self.uploads.active.remove(&stream);
            self.uploads.discard(stream, remaining);
            return self.storage_error(stream, &e).await;
        }
        if complete {
            self.finish_upload(stream).await
        } else {
            true
        }
    }

    async fn finish_upload(&mut self, req: u64) -> bool {
        let Some(upload) = self.uploads.active.remove(&req) else {
            return true;
        };
        let got = upload.hasher.finish();
        if got != upload.checksum {
            let message = format!(
                "{}: checksum mismatch: the client announced {:016x}, the master received {got:016x}; the image was corrupted in transit",
                upload.name, upload.checksum
            );
            return self.error(Some(req), ErrorCode::Checksum, message).await;
        }
        let submission = Submission {
            name: upload.name,
            len: upload.progress.announced(),
            checksum: upload.checksum,
            key: upload.key,
            submitter: upload.submitter,
        };
        // Made durable and answered beside the reader, which goes on
        // reading the next submissions meanwhile.
        let (ledger, control) = (self.ctx.ledger.clone(), self.out.control.clone());
        self.settling
            .run(async move {
                let answer = match ledger.accept_input(upload.file, submission).await {
                    Ok(task) => Msg::Submitted { req, task },
                    Err(e) => storage_error(req, &e),
                };
                let _ = control.send(answer).await;
            })
            .await;
        true
    }
}
