//! Cancelling a task through the shared state: the scheduler decides, the
//! holder of a running task's lease is sent `Drop` at once (and any later
//! heartbeat naming the lease is answered with `Drop` too), parked waits
//! are answered, and the `Cancelled` event is made durable.

use tessera_proto::{LeaseRef, TaskId, TaskInfo};
use tracing::info;

use super::{Durable, Shared, ToWorker};
use crate::master::scheduler::cancel::Cancel;

impl Shared {
    /// Cancels `task`: returns its state afterwards (failed as cancelled, or
    /// as it was when already decided) and when that is on disk. `None` for
    /// an unknown task.
    pub fn cancel(&self, task: TaskId) -> Option<(TaskInfo, Durable)> {
        let mut g = self.lock();
        let outcome = g.scheduler.cancel(task)?;
        if let Cancel::Cancelled { holder } = outcome {
            match holder {
                Some((worker, attempt)) => {
                    info!(%task, %worker, attempt, "task cancelled; telling its worker to drop it");
                    if let Some(tx) = g.workers.get(&worker) {
                        let _ = tx.try_send(ToWorker::Drop(LeaseRef { task, attempt }));
                    }
                }
                None => info!(%task, "queued task cancelled"),
            }
            Self::notify(&mut g, task);
        }
        let durable = self.record_durable(&mut g);
        self.settle(&mut g);
        let info = g.scheduler.info(task)?;
        Some((info, durable))
    }
}
