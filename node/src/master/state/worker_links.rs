//! The master's links to its worker connections: what the shared state
//! sends a worker, on a bounded channel per connection, never waiting (a
//! full channel means a dead connection, which the lease timeouts handle).

use std::collections::BTreeMap;

use tessera_proto::{LeaseRef, TaskId};
use tokio::sync::mpsc;

use crate::master::scheduler::{Assignment, WorkerId};

/// What the master sends a worker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker {
    Assign(Assignment),
    /// Give the task back if not started (stealing).
    Release(LeaseRef),
    /// Stop working on the task.
    Drop(LeaseRef),
}

/// One sender per connected worker.
#[derive(Debug, Default)]
pub(super) struct WorkerLinks(BTreeMap<WorkerId, mpsc::Sender<ToWorker>>);

impl WorkerLinks {
    /// A new worker connection; what it is sent arrives on the receiver.
    pub(super) fn join(&mut self, worker: WorkerId, capacity: usize) -> mpsc::Receiver<ToWorker> {
        let (tx, rx) = mpsc::channel(capacity);
        self.0.insert(worker, tx);
        rx
    }

    pub(super) fn remove(&mut self, worker: WorkerId) {
        self.0.remove(&worker);
    }

    /// Sends without waiting; false when the worker is gone or its channel
    /// is full.
    pub(super) fn send(&self, worker: WorkerId, msg: ToWorker) -> bool {
        self.0
            .get(&worker)
            .is_some_and(|tx| tx.try_send(msg).is_ok())
    }

    /// Tells `worker` to stop working on (`task`, `attempt`). Best effort:
    /// a worker that does not hear it is answered `Drop` again at its next
    /// heartbeat naming the lease.
    pub(super) fn drop_lease(&self, worker: WorkerId, task: TaskId, attempt: u32) {
        self.send(worker, ToWorker::Drop(LeaseRef { task, attempt }));
    }
}
