//! Retention: results whose submitters never all confirmed the download
//! are removed after `--retention`, with their inputs (through the ledger);
//! tasks failed for their content are forgotten by their key then (the same
//! image submitted again is tried again) and leave memory.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Ctx;

/// Sweeps expired results every `retention / 10` (between 1 s and 10 min).
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let every = (ctx.config.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        match ctx
            .ledger
            .expire(ctx.config.retention.as_millis() as u64)
            .await
        {
            Ok(0) => {}
            Ok(count) => info!(count, "removed results past their retention"),
            Err(e) => warn!("cannot record expired results: {e}"),
        }
        let retired = ctx
            .state
            .archive_old_failures(ctx.config.retention.as_millis() as u64);
        if retired > 0 {
            info!(
                count = retired,
                "failed tasks past their retention: their images may be submitted again"
            );
        }
    }
}
