//! The tasks submitted through the page, by batch (a batch is one open
//! page), and what the page was last told of each. Bounded: the oldest
//! entries are forgotten past [`MAX_ENTRIES`] (their tasks live on; only
//! the page stops listing them). Kept in memory: after a master restart
//! the page lists what it uploads next.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use serde::Serialize;
use tessera_proto::{FailureKind, TaskId, TaskInfo, TaskState};

/// Entries (batch, task) remembered.
pub const MAX_ENTRIES: usize = 10_000;
/// Longest batch id.
pub const MAX_BATCH: usize = 40;

/// A batch id as the page makes it: 1 to 40 letters, digits or dashes.
pub fn valid_batch(batch: &str) -> bool {
    (1..=MAX_BATCH).contains(&batch.len())
        && batch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A task as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub id: u64,
    pub name: String,
    /// `queued`, `running`, `done`, `failed`, `cancelled` or `gone`.
    pub state: &'static str,
    pub worker: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub output_len: Option<u64>,
    /// Durable and final: it will not change again.
    pub settled: bool,
}

impl TaskView {
    fn uploaded(task: TaskId, name: &str) -> Self {
        TaskView {
            id: task.0,
            name: name.to_string(),
            state: "queued",
            worker: None,
            reason: None,
            attempts: 0,
            output_len: None,
            settled: false,
        }
    }

    /// From a task's state; `settled` when that state is durable and final.
    pub fn of(info: &TaskInfo, settled: bool) -> Self {
        let (state, reason) = match &info.state {
            TaskState::Queued => ("queued", None),
            TaskState::Running => ("running", None),
            TaskState::Done => ("done", None),
            TaskState::Failed {
                kind: FailureKind::Cancelled,
                reason,
            } => ("cancelled", Some(reason.clone())),
            TaskState::Failed { reason, .. } => ("failed", Some(reason.clone())),
        };
        TaskView {
            id: info.task.0,
            name: info.name.clone(),
            state,
            worker: info.worker.clone(),
            reason,
            attempts: info.attempts,
            output_len: info.output_len,
            settled: settled && info.state.is_terminal(),
        }
    }

    /// A task the record no longer holds (deleted, or past its retention).
    pub fn gone(task: TaskId, name: String) -> Self {
        TaskView {
            state: "gone",
            reason: Some("the master no longer holds this task".into()),
            settled: true,
            ..TaskView::uploaded(task, &name)
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Uploads(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<(String, TaskId)>,
    views: HashMap<TaskId, TaskView>,
}

impl Inner {
    fn forget_oldest(&mut self) {
        if let Some((_, task)) = self.entries.pop_front()
            && !self.entries.iter().any(|(_, t)| *t == task)
        {
            self.views.remove(&task);
        }
    }
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `task` was submitted in `batch` as `name`.
    pub fn add(&self, batch: &str, task: TaskId, name: &str) {
        let mut g = self.lock();
        if g.entries.iter().any(|(b, t)| b == batch && *t == task) {
            return;
        }
        if g.entries.len() >= MAX_ENTRIES {
            g.forget_oldest();
        }
        g.entries.push_back((batch.to_string(), task));
        g.views
            .entry(task)
            .or_insert_with(|| TaskView::uploaded(task, name));
    }

    /// The batch's tasks, in upload order.
    pub fn tasks_of(&self, batch: &str) -> Vec<TaskId> {
        self.lock()
            .entries
            .iter()
            .filter(|(b, _)| b == batch)
            .map(|(_, t)| *t)
            .collect()
    }

    /// The batch's tasks as last seen, in upload order.
    pub fn views_of(&self, batch: &str) -> Vec<TaskView> {
        let g = self.lock();
        g.entries
            .iter()
            .filter(|(b, _)| b == batch)
            .filter_map(|(_, t)| g.views.get(t).cloned())
            .collect()
    }

    /// Tasks whose state may still change, with their names.
    pub fn unsettled(&self) -> Vec<(TaskId, String)> {
        self.lock()
            .views
            .values()
            .filter(|v| !v.settled)
            .map(|v| (TaskId(v.id), v.name.clone()))
            .collect()
    }

    /// Records what the page is told of `task` (if it is still listed).
    pub fn update(&self, view: TaskView) {
        if let Some(v) = self.lock().views.get_mut(&TaskId(view.id)) {
            *v = view;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_list_their_own_tasks_and_the_oldest_are_forgotten() {
        let u = Uploads::default();
        u.add("a", TaskId(1), "one.png");
        u.add("b", TaskId(2), "two.png");
        u.add("b", TaskId(1), "one.png");
        u.add("b", TaskId(1), "one.png");
        assert_eq!(u.tasks_of("a"), vec![TaskId(1)]);
        assert_eq!(u.tasks_of("b"), vec![TaskId(2), TaskId(1)]);
        assert_eq!(u.unsettled().len(), 2);
        u.update(TaskView::gone(TaskId(2), "two.png".into()));
        assert_eq!(u.views_of("b")[0].state, "gone");
        assert_eq!(u.unsettled(), vec![(TaskId(1), "one.png".into())]);
        for i in 0..(MAX_ENTRIES - 2) as u64 {
            u.add("c", TaskId(100 + i), "x.png");
        }
        assert!(u.tasks_of("a").is_empty(), "the oldest entry is forgotten");
        assert_eq!(u.tasks_of("b"), vec![TaskId(2), TaskId(1)]);
        u.add("c", TaskId(100_000), "y.png");
        u.add("c", TaskId(100_001), "y.png");
        assert!(u.tasks_of("b").is_empty());
        assert_eq!(u.tasks_of("c").len(), MAX_ENTRIES);
    }

    #[test]
    fn batch_ids_are_short_and_plain() {
        assert!(valid_batch("b-12ab"));
        assert!(!valid_batch(""));
        assert!(!valid_batch(&"a".repeat(41)));
        assert!(!valid_batch("a/b"));
        assert!(!valid_batch("a b"));
    }
}
