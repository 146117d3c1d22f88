//! What an open page sees, pushed to it: once a second the master takes a
//! snapshot (the cluster as `tessera top` sees it, tasks decided per second
//! over the last minutes, the task stream, and the state of every task
//! uploaded through the page) and each page's event stream
//! (`GET /api/events?batch=B`, server-sent events) sends it with the
//! page's own tasks, only when something changed. A page's stream ends
//! after [`STREAM_LIFETIME`] (the browser reconnects by itself), so a
//! page left open forever holds nothing for ever.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Query, State},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::{Deserialize, Serialize};
use tessera_proto::ClusterInfo;
use tokio::sync::watch;

use super::{
    Shared,
    refusal::Refusal,
    task_stream::{self, Span, TaskStream},
    uploads::{TaskView, valid_batch},
};

/// How often the snapshot is taken.
pub const EVERY: Duration = Duration::from_secs(1);
/// How long one event stream lasts.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(600);
/// How far back the task stream and the throughput graph go.
pub const HISTORY: Duration = Duration::from_secs(600);

/// The snapshot every page shares.
#[derive(Debug, Serialize)]
struct Snapshot {
    now_ms: u64,
    cluster: ClusterInfo,
    /// (second since the epoch, tasks decided in it).
    decided: Vec<(u64, u32)>,
    spans: Vec<Span>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Live {
    /// The latest snapshot, as JSON.
    latest: watch::Sender<Arc<str>>,
    stream: Arc<Mutex<TaskStream>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            latest: watch::channel(Arc::from("null")).0,
            stream: Arc::default(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Takes a snapshot every [`EVERY`] until the server stops.
pub async fn run(web: Shared) {
    let feed = web.ctx.state.feed().subscribe();
    tokio::spawn(task_stream::follow(
        feed,
        web.live.stream.clone(),
        web.shutdown.clone(),
    ));
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = web.shutdown.cancelled() => return,
        }
        refresh_uploads(&web).await;
        let now_ms = now_ms();
        let since_ms = now_ms.saturating_sub(HISTORY.as_millis() as u64);
        let (decided, spans) = {
            let s = web.live.stream.lock().unwrap_or_else(|e| e.into_inner());
            (s.decided_since(since_ms / 1000), s.spans(since_ms))
        };
        let snapshot = Snapshot {
            now_ms,
            cluster: web.ctx.state.snapshot(&web.ctx.config.master_id),
            decided,
            spans,
        };
        match serde_json::to_string(&snapshot) {
            Ok(json) => {
                web.live.latest.send_replace(json.into());
            }
            Err(e) => tracing::warn!("cannot encode the web page's snapshot: {e}"),
        }
    }
}

/// Brings the page's tasks up to date. A decided task is shown decided
/// only once that is durable (`Ledger::status` waits until it is).
async fn refresh_uploads(web: &Shared) {
    for (task, name) in web.uploads.unsettled() {
        let view = match web.ctx.state.info(task) {
            Some(info) if !info.state.is_terminal() => TaskView::of(&info, false),
            _ => match web.ctx.ledger.status(task).await {
                Ok(Some(info)) => TaskView::of(&info, true),
                Ok(None) => TaskView::gone(task, name),
                Err(e) => {
                    tracing::debug!(%task, "web page: cannot read the task's state: {e}");
                    continue;
                }
            },
        };
        web.uploads.update(view);
    }
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    batch: String,
}

/// `GET /api/events?batch=B`: the snapshot and the batch's tasks, each
/// time they change.
pub async fn events(State(web): State<Shared>, Query(q): Query<EventsQuery>) -> Response {
    if !valid_batch(&q.batch) {
        return Refusal::new(
            axum::http::StatusCode::BAD_REQUEST,
            "a batch id is 1 to 40 letters, digits or dashes",
        )
        .into_response();
    }
    let rx = web.live.latest.subscribe();
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    let state = (rx, web, q.batch, String::new(), true);
    let stream =
        futures::stream::unfold(state, move |(mut rx, web, batch, last, first)| async move {
            loop {
                if !first {
                    tokio::select! {
                        changed = rx.changed() => changed.ok()?,
                        () = tokio::time::sleep_until(deadline) => return None,
                        () = web.shutdown.cancelled() => return None,
                    }
                }
                let snapshot = rx.borrow_and_update().clone();
                let tasks = serde_json::to_string(&web.uploads.views_of(&batch)).ok()?;
                let data = format!("{{\"snapshot\":{snapshot},\"tasks\":{tasks}}}");
                if data != last {
                    let event = Event::default().data(data.clone());
                    return Some((Ok::<_, Infallible>(event), (rx, web, batch, data, false)));
                }
                if first {
                    // Nothing to compare with yet; wait for the next change.
                    return Some((
                        Ok(Event::default().comment("waiting")),
                        (rx, web, batch, last, false),
                    ));
                }
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
