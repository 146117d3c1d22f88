//! Results out: `GET /api/tasks/{task}/result` streams one result file;
//! `GET /api/batches/{batch}/zip` streams every done result of the page's
//! batch as one zip (`zip_stream.rs`). Neither holds a file in memory.
//! Downloading confirms nothing: a result stays until `--retention`, so a
//! page can download it again.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tessera_proto::{TaskId, TaskState};
use tokio_util::io::ReaderStream;

use super::{Shared, refusal::Refusal, uploads::valid_batch, zip_stream};
use crate::master::store::Kind;

/// A name safe in a `Content-Disposition` header: the last path component,
/// with anything but letters, digits, `.`, `-` and `_` made `_`.
pub fn download_name(name: &str, task: TaskId) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.trim_matches('.').is_empty() {
        format!("task-{}.png", task.0)
    } else {
        safe
    }
}

/// The path of a task's result file, or why there is none.
pub async fn result_path(
    web: &Shared,
    task: TaskId,
) -> Result<(std::path::PathBuf, u64, String), Refusal> {
    let Some((info, result)) = web
        .ctx
        .ledger
        .fetchable(task)
        .await
        .map_err(Refusal::storage)?
    else {
        return Err(Refusal::not_found(task));
    };
    match (&info.state, result) {
        (TaskState::Done, Some(r)) if !r.removed => Ok((
            web.ctx
                .store
                .path(Kind::Result { attempt: r.attempt }, task),
            r.len,
            info.name,
        )),
        (TaskState::Done, _) => Err(Refusal::new(
            StatusCode::GONE,
            format!(
                "{task}: its result was removed (downloaded by every client, or past the master's retention)"
            ),
        )),
        (state, _) => Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("{task} has no result: it is {state}"),
        )),
    }
}

pub async fn result(State(web): State<Shared>, Path(task): Path<u64>) -> Response {
    let task = TaskId(task);
    let (path, len, name) = match result_path(&web, task).await {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Refusal::new(
                StatusCode::GONE,
                format!("{task}: its result was just removed"),
            )
            .into_response();
        }
        Err(e) => return Refusal::storage(e).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "image/png".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", download_name(&name, task)),
            ),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response()
}

pub async fn zip(State(web): State<Shared>, Path(batch): Path<String>) -> Response {
    if !valid_batch(&batch) {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "a batch id is 1 to 40 letters, digits or dashes",
        )
        .into_response();
    }
    let mut entries = Vec::new();
    for task in web.uploads.tasks_of(&batch) {
        if let Ok((path, _, name)) = result_path(&web, task).await {
            entries.push(zip_stream::ZipEntry { task, name, path });
        }
    }
    if entries.is_empty() {
        return Refusal::new(StatusCode::NOT_FOUND, "no result of this batch is done yet")
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tessera-results.zip\"".to_string(),
            ),
        ],
        Body::from_stream(zip_stream::stream(entries)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_the_plain_last_component() {
        assert_eq!(download_name("a/b/c.png", TaskId(1)), "c.png");
        assert_eq!(
            download_name("we\"ird name;.png", TaskId(1)),
            "we_ird_name_.png"
        );
        assert_eq!(download_name("..", TaskId(7)), "task-7.png");
        assert_eq!(download_name("dir/", TaskId(7)), "task-7.png");
    }
}
