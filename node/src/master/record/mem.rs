//! The record in memory: the reference implementation of [`TaskStore`]
//! (the redb store passes the same conformance suite, `conformance.rs`),
//! and a store whose writes tests can hold back or fail, to check what the
//! master does while a commit is slow or after it failed.

use std::{
    collections::BTreeMap,
    sync::{Arc, Condvar, Mutex},
};

use tessera_proto::{EventEntry, TaskId};

use super::{
    row::TaskRow,
    store::{Entry, Loaded, RowChange, StoreError, TaskStore},
};

/// See the module docs. Clones share one record (a clone is how a test
/// keeps control of a store it handed to the journal, or "reopens" it).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    shared: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<u64, TaskRow>,
    events: BTreeMap<(u64, u64), EventEntry>,
    next_task: Option<u64>,
    /// Writes fail while set.
    failing: bool,
    /// Writes wait while set.
    held: bool,
    /// Writes that returned (applied or failed).
    writes: u64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every write fails (as with a full disk) while `on`.
    pub fn fail_writes(&self, on: bool) {
        self.state().failing = on;
    }

    /// Every write waits (a slow commit) while `on`.
    pub fn hold_writes(&self, on: bool) {
        self.state().held = on;
        self.shared.1.notify_all();
    }

    /// How many writes have returned.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }
}

impl TaskStore for MemStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let s = self.state();
        Ok(Loaded {
            rows: s
                .rows
                .iter()
                .map(|(k, r)| (TaskId(*k), r.clone()))
                .collect(),
            next_task: s.next_task.unwrap_or(1),
        })
    }

    fn apply(
        &mut self,
        entries: &[Entry],
        next_task: u64,
        _durable: bool,
    ) -> Result<(), StoreError> {
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.held {
            s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.writes += 1;
        if s.failing {
            return Err(StoreError::Io("injected write failure".into()));
        }
        for e in entries {
            let t = e.task.0;
            match &e.row {
                RowChange::Put(row) => {
                    if let Some(ev) = &e.event {
                        let seq = s
                            .events
                            .range((t, 0)..=(t, u64::MAX))
                            .next_back()
                            .map_or(0, |((_, q), _)| q + 1);
                        s.events.insert((t, seq), ev.clone());
                    }
                    s.rows.insert(t, row.clone());
                }
                RowChange::Delete => {
                    s.rows.remove(&t);
                    s.events.retain(|(task, _), _| *task != t);
                }
            }
        }
        s.next_task = Some(next_task);
        Ok(())
    }

    fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError> {
        let s = self.state();
        Ok(s.events
            .range((task.0, 0)..=(task.0, u64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn row(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError> {
        Ok(self.state().rows.get(&task.0).cloned())
    }
}
