//! Changing and inspecting tasks from the page: cancel one task or every
//! task of a batch (through the ledger: answered once the cancellation is
//! durable, the input removed after), and a task's recorded history.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use tessera_proto::{EventEntry, TaskId};

use super::{
    Shared,
    refusal::Refusal,
    uploads::{TaskView, valid_batch},
};

async fn cancel(web: &Shared, task: TaskId) -> Result<TaskView, Refusal> {
    let Some((info, obsolete)) = web
        .ctx
        .ledger
        .cancel(task)
        .await
        .map_err(Refusal::storage)?
    else {
        return Err(Refusal::not_found(task));
    };
    // Answered first; the input is removed after (the ledger's order).
    tokio::spawn(obsolete.remove());
    let view = TaskView::of(&info, info.state.is_terminal());
    web.uploads.update(view.clone());
    Ok(view)
}

/// `POST /api/tasks/{task}/cancel`: the task's state afterwards (a task
/// decided already stays as it was).
pub async fn cancel_task(
    State(web): State<Shared>,
    Path(task): Path<u64>,
) -> Result<Json<TaskView>, Refusal> {
    cancel(&web, TaskId(task)).await.map(Json)
}

#[derive(Debug, Serialize)]
pub struct Cancelled {
    cancelled: usize,
}

/// `POST /api/batches/{batch}/cancel`: cancels every undecided task of the batch.
pub async fn cancel_batch(
    State(web): State<Shared>,
    Path(batch): Path<String>,
) -> Result<Json<Cancelled>, Refusal> {
    if !valid_batch(&batch) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a batch id is 1 to 40 letters, digits or dashes",
        ));
    }
    let mut cancelled = 0;
    for task in web.uploads.tasks_of(&batch) {
        match cancel(&web, task).await {
            Ok(view) if view.state == "cancelled" => cancelled += 1,
            Ok(_) => {}
            Err(r) if r.status == StatusCode::NOT_FOUND => {}
            Err(r) => return Err(r),
        }
    }
    Ok(Json(Cancelled { cancelled }))
}

/// `GET /api/tasks/{task}/history`: its recorded events, oldest first.
pub async fn history(
    State(web): State<Shared>,
    Path(task): Path<u64>,
) -> Result<Json<Vec<EventEntry>>, Refusal> {
    match web.ctx.ledger.history(TaskId(task)).await {
        None => Err(Refusal::not_found(TaskId(task))),
        Some(Err(e)) => Err(Refusal::storage(e)),
        Some(Ok(events)) => Ok(Json(events)),
    }
}
