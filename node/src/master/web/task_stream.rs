//! The task stream, as Dask's dashboard draws it: which worker ran which
//! task, from when to when, and how the attempt ended; and how many tasks
//! were decided in each recent second. Built from the record's feed
//! (`record/feed.rs`), so it shows only what the record holds; bounded to
//! the last [`KEEP`] of everything.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tessera_proto::{TaskEvent, TaskId};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::master::record::feed::Written;

/// Attempts (finished or running) kept, and seconds of throughput.
pub const KEEP: usize = 600;

/// One attempt on the task stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    pub task: u64,
    pub attempt: u32,
    pub worker: String,
    pub start_ms: u64,
    /// `None` while it runs.
    pub end_ms: Option<u64>,
    /// `running`, `done`, `failed`, `lost` or `released`.
    pub outcome: &'static str,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct TaskStream {
    running: BTreeMap<(TaskId, u32), Span>,
    ended: VecDeque<Span>,
    /// (second since the epoch, tasks decided in it), oldest first.
    decided: VecDeque<(u64, u32)>,
}

impl TaskStream {
    /// Takes in one written event.
    pub fn take(&mut self, task: TaskId, at_ms: u64, event: &TaskEvent) {
        let (attempt, worker, outcome, ran_ms) = match event {
            TaskEvent::Leased { attempt, worker } => {
                if self.running.len() >= KEEP {
                    self.running.pop_first();
                }
                let span = Span {
                    task: task.0,
                    attempt: *attempt,
                    worker: worker.clone(),
                    start_ms: at_ms,
                    end_ms: None,
                    outcome: "running",
                };
                self.running.insert((task, *attempt), span);
                return;
            }
            TaskEvent::Completed {
                attempt,
                worker,
                duration_ms,
                ..
            } => (*attempt, worker, "done", Some(*duration_ms)),
            TaskEvent::Failed {
                attempt,
                worker,
                duration_ms,
                ..
            } => (*attempt, worker, "failed", Some(*duration_ms)),
            TaskEvent::Lost {
                attempt, worker, ..
            } => (*attempt, worker, "lost", None),
            TaskEvent::Released { attempt, worker } => (*attempt, worker, "released", None),
            _ => return,
        };
        if matches!(outcome, "done" | "failed") {
            self.count_decided(at_ms / 1000);
        }
        let started = self.running.remove(&(task, attempt));
        if worker.is_empty() {
            return; // failed without running (cancelled in the queue)
        }
        let start_ms = started
            .map(|s| s.start_ms)
            .or(ran_ms.map(|d| at_ms.saturating_sub(d)))
            .unwrap_or(at_ms);
        if self.ended.len() >= KEEP {
            self.ended.pop_front();
        }
        self.ended.push_back(Span {
            task: task.0,
            attempt,
            worker: worker.clone(),
            start_ms,
            end_ms: Some(at_ms),
            outcome,
        });
    }

    fn count_decided(&mut self, second: u64) {
        match self.decided.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            Some((s, _)) if *s > second => {
                // Out of order (clock stepped back): counted where it belongs.
                if let Some((_, n)) = self.decided.iter_mut().find(|(s, _)| *s == second) {
                    *n += 1;
                }
            }
            _ => {
                if self.decided.len() >= KEEP {
                    self.decided.pop_front();
                }
                self.decided.push_back((second, 1));
            }
        }
    }

    /// Attempts that ended at or after `since_ms`, then those running.
    pub fn spans(&self, since_ms: u64) -> Vec<Span> {
        self.ended
            .iter()
            .filter(|s| s.end_ms.unwrap_or(u64::MAX) >= since_ms)
            .chain(self.running.values())
            .cloned()
            .collect()
    }

    /// Tasks decided in each second from `since_s`, as (second, count).
    pub fn decided_since(&self, since_s: u64) -> Vec<(u64, u32)> {
        self.decided
            .iter()
            .filter(|(s, _)| *s >= since_s)
            .copied()
            .collect()
    }
}

/// Feeds `stream` from the record until `shutdown`.
pub async fn follow(
    mut feed: Receiver<Written>,
    stream: Arc<Mutex<TaskStream>>,
    shutdown: CancellationToken,
) {
    loop {
        let written = tokio::select! {
            w = feed.recv() => w,
            () = shutdown.cancelled() => return,
        };
        match written {
            Ok((task, entry)) => stream.lock().unwrap_or_else(|e| e.into_inner()).take(
                task,
                entry.at_ms,
                &entry.event,
            ),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_proto::FailureKind;

    use super::*;

    fn leased(attempt: u32, worker: &str) -> TaskEvent {
        TaskEvent::Leased {
            attempt,
            worker: worker.into(),
        }
    }

    #[test]
    fn attempts_become_spans_with_their_outcome() {
        let mut s = TaskStream::default();
        s.take(TaskId(1), 1_000, &leased(1, "w1"));
        s.take(TaskId(2), 1_100, &leased(1, "w2"));
        s.take(
            TaskId(1),
            1_500,
            &TaskEvent::Lost {
                attempt: 1,
                worker: "w1".into(),
                why: "died".into(),
            },
        );
        s.take(TaskId(1), 1_600, &leased(2, "w2"));
        s.take(
            TaskId(1),
            2_600,
            &TaskEvent::Completed {
                attempt: 2,
                worker: "w2".into(),
                len: 1,
                checksum: 1,
                duration_ms: 900,
            },
        );
        // Cancelled in the queue: no attempt, no span, but decided.
        s.take(
            TaskId(3),
            2_700,
            &TaskEvent::Failed {
                attempt: 0,
                worker: String::new(),
                kind: FailureKind::Cancelled,
                reason: "cancelled".into(),
                duration_ms: 0,
            },
        );
        let spans = s.spans(0);
        let brief: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s.task,
                    s.attempt,
                    s.worker.as_str(),
                    s.start_ms,
                    s.end_ms,
                    s.outcome,
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                (1, 1, "w1", 1_000, Some(1_500), "lost"),
                (1, 2, "w2", 1_600, Some(2_600), "done"),
                (2, 1, "w2", 1_100, None, "running"),
            ]
        );
        assert_eq!(
            s.spans(2_000).len(),
            2,
            "only what ended since, and what runs"
        );
        assert_eq!(s.decided_since(0), vec![(2, 2)]);
    }

    #[test]
    fn a_completion_without_its_lease_starts_at_its_running_time() {
        let mut s = TaskStream::default();
        s.take(
            TaskId(9),
            10_000,
            &TaskEvent::Completed {
                attempt: 1,
                worker: "w".into(),
                len: 1,
                checksum: 1,
                duration_ms: 2_500,
            },
        );
        assert_eq!(s.spans(0)[0].start_ms, 7_500);
    }

    #[test]
    fn everything_is_bounded() {
        let mut s = TaskStream::default();
        for i in 0..(3 * KEEP) as u64 {
            s.take(TaskId(i), i * 1000, &leased(1, "w"));
            s.take(
                TaskId(i),
                i * 1000 + 10,
                &TaskEvent::Released {
                    attempt: 1,
                    worker: "w".into(),
                },
            );
            s.take(TaskId(100_000 + i), i, &leased(1, "w"));
            s.take(
                TaskId(i),
                i * 1000 + 20,
                &TaskEvent::Completed {
                    attempt: 2,
                    worker: "w".into(),
                    len: 1,
                    checksum: 1,
                    duration_ms: 5,
                },
            );
        }
        assert!(s.running.len() <= KEEP);
        assert!(s.ended.len() <= KEEP);
        assert!(s.decided.len() <= KEEP);
        assert_eq!(s.decided_since(0).last(), Some(&((3 * KEEP - 1) as u64, 1)));
    }
}
