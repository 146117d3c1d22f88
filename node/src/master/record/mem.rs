//! The record in memory: the reference implementation of [`TaskStore`]
//! (the redb store passes the same conformance suite, `conformance.rs`),
//! and a store whose writes tests can hold back or fail, to check what the
//! master does while a commit is slow or after it failed.
//!
//! It keeps what a power cut would leave, too: a write made without
//! `durable` is lost by [`MemStore::crash`] unless a durable write came
//! after it (as with redb, whose durable commit makes every commit before
//! it durable). The simulation crashes its master's record this way.

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
    record: Record,
    /// The record as of the last durable write.
    durable: Record,
    /// Writes fail while set.
    failing: bool,
    /// Writes wait while set.
    held: bool,
    /// Writes that returned (applied or failed).
    writes: u64,
}

#[derive(Debug, Default, Clone)]
struct Record {
    rows: BTreeMap<u64, TaskRow>,
    events: BTreeMap<(u64, u64), EventEntry>,
    next_task: Option<u64>,
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

    /// A power cut: every write since the last durable one is lost.
    pub fn crash(&self) {
        let mut s = self.state();
        s.record = s.durable.clone();
    }

    /// Every event of every task, in order (a fingerprint of a run).
    pub fn all_events(&self) -> Vec<(TaskId, EventEntry)> {
        self.state()
            .record
            .events
            .iter()
            .map(|((t, _), e)| (TaskId(*t), e.clone()))
            .collect()
    }
}

impl TaskStore for MemStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let s = &self.state().record;
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
        durable: bool,
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
        let r = &mut s.record;
        for e in entries {
            let t = e.task.0;
            match &e.row {
                RowChange::Put(row) => {
                    if let Some(ev) = &e.event {
                        let seq = r
                            .events
                            .range((t, 0)..=(t, u64::MAX))
                            .next_back()
                            .map_or(0, |((_, q), _)| q + 1);
                        r.events.insert((t, seq), ev.clone());
                    }
                    r.rows.insert(t, row.clone());
                }
                RowChange::Delete => {
                    r.rows.remove(&t);
                    r.events.retain(|(task, _), _| *task != t);
                }
            }
        }
        r.next_task = Some(next_task);
        if durable {
            s.durable = s.record.clone();
        }
        Ok(())
    }

    fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError> {
        let s = self.state();
        Ok(s.record
            .events
            .range((task.0, 0)..=(task.0, u64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn row(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError> {
        Ok(self.state().record.rows.get(&task.0).cloned())
    }
}
