//! Retention: results whose client never confirmed the download are removed
//! after `--retention`, along with their inputs.

use std::{sync::Arc, time::Duration};

use tessera_proto::TaskId;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Ctx,
    scheduler::durable::ResultRef,
    state::durable,
    store::{DataDir, Kind},
};

/// Sweeps expired results every `retention / 10` (between 1 s and 10 min).
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let every = (ctx.config.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let (expired, done) = ctx
            .state
            .expire_results(ctx.config.retention.as_millis() as u64);
        if expired.is_empty() {
            continue;
        }
        if let Err(e) = durable(done).await {
            warn!("cannot record expired results: {e}");
            continue;
        }
        for (task, result) in &expired {
            remove_files(&ctx.store, *task, Some(*result)).await;
        }
        info!(
            count = expired.len(),
            "removed results past their retention"
        );
    }
}

/// Removes a task's input and (if any) result files; a missing file is fine.
pub async fn remove_files(store: &DataDir, task: TaskId, result: Option<ResultRef>) {
    if let Err(e) = store.remove(Kind::Input, task).await {
        warn!(%task, "cannot remove input: {e}");
    }
    if let Some(r) = result
        && let Err(e) = store
            .remove(Kind::Result { attempt: r.attempt }, task)
            .await
    {
        warn!(%task, "cannot remove result: {e}");
    }
}
