//! `POST /api/upload?batch=B&name=N`: one image as the request's body,
//! streamed to a temporary file as it arrives (never held whole in
//! memory, unless small), then handed to the ledger exactly like a
//! client's submission: published, recorded, durable, and only then
//! answered with its task id. The same limits as the binary protocol: the
//! master's image size limit, and at most `max_uploads_per_client`
//! uploads at once (more are answered `503 Busy`, and the page retries).
//! A browser that stops sending for [`BODY_IDLE_DEADLINE`] is cut off; an
//! upload cut off for any reason leaves nothing behind.

use axum::{
    Json,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tessera_proto::{Checksummer, SubmissionKeyer};
use tracing::{debug, warn};

use super::{BODY_IDLE_DEADLINE, Shared, refusal::Refusal, uploads::valid_batch};
use crate::master::ledger::Submission;

/// Longest image name accepted (as on the binary protocol).
const MAX_NAME: usize = 4096;

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    batch: String,
    name: String,
}

#[derive(Debug, Serialize)]
pub struct Uploaded {
    task: u64,
}

/// The submitter a batch's tasks are recorded under. Results of the page's
/// tasks are never confirmed: they stay downloadable until `--retention`.
fn submitter(batch: &str) -> u64 {
    tessera_proto::checksum(batch.as_bytes()) | 1
}

pub async fn upload(
    State(web): State<Shared>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Uploaded>, Refusal> {
    if !valid_batch(&q.batch) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a batch id is 1 to 40 letters, digits or dashes",
        ));
    }
    let name = q.name;
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("an image name is 1 to {MAX_NAME} bytes"),
        ));
    }
    let len: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::LENGTH_REQUIRED,
                "an upload must say its length (Content-Length)",
            )
        })?;
    let limit = web.ctx.config.max_image_bytes;
    if len > limit {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{name}: {len} bytes is over the master's image size limit of {limit} bytes"),
        ));
    }
    let Ok(_slot) = web.upload_slots.try_acquire() else {
        return Err(Refusal::busy(format!(
            "{} uploads already in progress (the limit); try again",
            web.ctx.config.max_uploads_per_client
        )));
    };
    let mut file = web
        .ctx
        .store
        .create_tmp(len)
        .await
        .map_err(Refusal::storage)?;
    let mut checksum = Checksummer::default();
    let mut key = SubmissionKeyer::new(&name);
    let mut received = 0u64;
    let mut data = body.into_data_stream();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(BODY_IDLE_DEADLINE, data.next()) => next,
            () = web.shutdown.cancelled() => {
                return Err(Refusal::busy("the master is stopping"));
            }
        };
        let chunk = match next {
            Err(_) => {
                debug!(%name, received, "web upload cut off: the browser stopped sending");
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "{name}: nothing received for {} s; upload cut off",
                        BODY_IDLE_DEADLINE.as_secs()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                debug!(%name, received, "web upload interrupted: {e}");
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: the upload was interrupted: {e}"),
                ));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        if received > len {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("{name}: more than the {len} bytes announced"),
            ));
        }
        checksum.update(&chunk);
        key.update(&chunk);
        file.write(chunk).await.map_err(|e| {
            warn!("cannot store a web upload: {e}");
            Refusal::storage(e)
        })?;
    }
    if received != len {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("{name}: {received} of the {len} bytes announced arrived"),
        ));
    }
    let submission = Submission {
        name: name.clone(),
        len,
        checksum: checksum.finish(),
        key: key.finish(),
        submitter: submitter(&q.batch),
    };
    let task = web
        .ctx
        .ledger
        .accept_input(file, submission)
        .await
        .map_err(Refusal::storage)?;
    web.uploads.add(&q.batch, task, &name);
    debug!(%task, %name, batch = %q.batch, "image uploaded through the web page");
    Ok(Json(Uploaded { task: task.0 }))
}
