//! Cancelling a task through the shared state: the scheduler decides and
//! the holder of a running task's lease is sent `Drop` at once (and any
//! later heartbeat naming the lease is answered with `Drop` too). Parked
//! waits are answered by the ledger once the `Cancelled` event is durable.

use tessera_proto::{TaskId, TaskInfo};
use tracing::info;

use super::{Pending, Shared};
use crate::master::scheduler::cancel::Cancel;

impl Shared {
    /// Cancels `task`: returns its state afterwards (failed as cancelled, or
    /// as it was when already decided) and, when it changed, the change to
    /// await. `None` for an unknown task.
    pub fn cancel(&self, task: TaskId) -> Option<(TaskInfo, Option<Pending>)> {
        let mut g = self.lock();
        let before = g.scheduler.row(task);
        let outcome = g.scheduler.cancel(task)?;
        let mut pending = None;
        if let Cancel::Cancelled { holder } = outcome {
            match holder {
                Some((worker, attempt)) => {
                    info!(%task, %worker, attempt, "task cancelled; telling its worker to drop it");
                    g.workers.drop_lease(worker, task, attempt);
                }
                None => info!(%task, "queued task cancelled"),
            }
            pending = Some(self.pending(&mut g, vec![(task, before)]));
        }
        self.settle(&mut g);
        let info = g.scheduler.info(task);
        // A `Pending` is never dropped under the lock (its guard takes it).
        drop(g);
        Some((info?, pending))
    }
}
