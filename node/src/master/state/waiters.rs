//! The clients' parked `Wait`s: each resolves with the task's info once the
//! task is decided (and that decision is durable; see `Shared::announce`).
//! Bounded per task, so a client cannot park without limit.

use std::collections::BTreeMap;

use tessera_proto::{TaskId, TaskInfo};
use tokio::sync::oneshot;

/// Most `Wait` requests parked on one task.
const MAX_WAITERS_PER_TASK: usize = 1024;

/// Refused because too many waiters are parked on the task.
#[derive(Debug, thiserror::Error)]
#[error("too many clients are waiting on task {0}")]
pub struct TooManyWaiters(pub TaskId);

/// The waits parked per task.
#[derive(Debug, Default)]
pub(super) struct Waiters(BTreeMap<TaskId, Vec<oneshot::Sender<TaskInfo>>>);

impl Waiters {
    /// Parks a wait on `task`, which is not decided yet. Waits whose client
    /// went away are cleared first, so only live ones count to the bound.
    pub(super) fn park(
        &mut self,
        task: TaskId,
    ) -> Result<oneshot::Receiver<TaskInfo>, TooManyWaiters> {
        let list = self.0.entry(task).or_default();
        list.retain(|w| !w.is_closed());
        if list.len() >= MAX_WAITERS_PER_TASK {
            return Err(TooManyWaiters(task));
        }
        let (tx, rx) = oneshot::channel();
        list.push(tx);
        Ok(rx)
    }

    /// Answers every wait parked on `info`'s task.
    pub(super) fn answer(&mut self, task: TaskId, info: &TaskInfo) {
        for w in self.0.remove(&task).unwrap_or_default() {
            let _ = w.send(info.clone());
        }
    }

    /// Drops the waits parked on a task that is gone (their clients see
    /// the connection's answer for an unknown task).
    pub(super) fn forget(&mut self, task: TaskId) {
        self.0.remove(&task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_waits_are_answered_once_and_bounded_by_live_ones() {
        let mut w = Waiters::default();
        let task = TaskId(7);
        let mut live = Vec::new();
        for _ in 0..MAX_WAITERS_PER_TASK {
            live.push(w.park(task).expect("under the bound"));
        }
        assert!(w.park(task).is_err(), "the bound holds");
        // Clients that went away free their places.
        live.truncate(MAX_WAITERS_PER_TASK - 2);
        let a = w.park(task).expect("a place freed by a closed wait");
        let info = TaskInfo {
            task,
            name: "a.png".into(),
            state: tessera_proto::TaskState::Done,
            input_len: 1,
            output_len: Some(1),
            attempts: 1,
            worker: None,
        };
        w.answer(task, &info);
        assert_eq!(a.blocking_recv().unwrap(), info);
        assert!(live.pop().unwrap().blocking_recv().is_ok());
        // Answered waits are gone: a new one parks afresh.
        assert!(w.park(task).is_ok());
        w.forget(task);
        assert!(w.0.is_empty());
    }
}
