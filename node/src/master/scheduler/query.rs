//! Read-only views of the scheduler's state.

use tessera_proto::{TaskId, TaskInfo, TaskState};

use super::{Lease, Phase, Scheduler, Task, WorkerId};

impl Scheduler {
    pub fn info(&self, task_id: TaskId) -> Option<TaskInfo> {
        Some(info_of(task_id, self.tasks.get(&task_id)?))
    }

    /// Number of queued tasks.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Tasks the worker holds a live lease on.
    pub fn leases_of(&self, worker: WorkerId) -> Vec<TaskId> {
        self.workers
            .get(&worker)
            .map(|s| s.leases.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether the worker's lease expired and it has not shown life since.
    pub fn is_silent(&self, worker: WorkerId) -> bool {
        self.workers.get(&worker).is_some_and(|s| s.silent)
    }

    /// The live lease of a task, if any.
    pub fn lease_of(&self, task: TaskId) -> Option<Lease> {
        self.live_lease(task).cloned()
    }
}

/// What a client is told about a task.
pub(super) fn info_of(task_id: TaskId, task: &Task) -> TaskInfo {
    let (state, output_len) = match &task.phase {
        Phase::Queued => (TaskState::Queued, None),
        Phase::Leased(_) => (TaskState::Running, None),
        Phase::Done { output_len, .. } => (TaskState::Done, Some(*output_len)),
        Phase::Failed { kind, reason } => (
            TaskState::Failed {
                kind: *kind,
                reason: reason.clone(),
            },
            None,
        ),
    };
    TaskInfo {
        task: task_id,
        name: task.name.clone(),
        state,
        input_len: task.input_len,
        output_len,
        attempts: task.attempts,
        worker: task.last_worker.as_deref().map(str::to_string),
    }
}
