//! The storage seam of the durable record: a small trait, and its redb
//! implementation. Two tables, written in the same transaction: the
//! append-only `events` (task, sequence) → event, and the derived `tasks`
//! task → current state; plus `meta` for the next task id.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tessera_proto::{EventEntry, TaskId, wire};
use tracing::{info, warn};

use super::row::{self, ROW_FORMAT, TaskRow};

/// What a change does to a task's current-state row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    Put(TaskRow),
    /// The task is gone: its row and its events are removed.
    Delete,
}

/// One recorded change: an event and the row it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub task: TaskId,
    pub event: Option<EventEntry>,
    pub row: RowChange,
}

/// Everything needed to rebuild the master's state.
#[derive(Debug, Default)]
pub struct Loaded {
    pub rows: Vec<(TaskId, TaskRow)>,
    pub next_task: u64,
}

/// Why the record could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("task record: {0}")]
    Io(String),
    #[error("task record is corrupt: {0}")]
    Corrupt(String),
}

/// The storage seam: the journal drives any implementation of this.
pub trait TaskStore: Send + 'static {
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Applies `entries` in one transaction; with `durable`, they are on disk
    /// when this returns. `next_task` is stored with them.
    fn apply(&mut self, entries: &[Entry], next_task: u64, durable: bool)
    -> Result<(), StoreError>;
    fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError>;
    /// A task's current-state row (`None`: no such task, or deleted).
    fn row(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError>;
}

const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Memory redb may use to cache the record's pages (redb gives 90% to
/// reading and 10% to writing). The master writes at the right edge of its
/// tables (task ids and event sequences only grow) and reads a row or a
/// history now and then, so the interior pages and the edge are all it
/// needs hot. redb's default of 1 GiB let the master's memory grow with its
/// record, and so did 32 MiB, filling at about 1.3 MiB a minute in the
/// soak; 4 MiB fills within its first minutes and stays.
pub const RECORD_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The record in a redb file.
#[derive(Debug)]
pub struct RedbStore {
    path: PathBuf,
    /// `None` while closed after a failed write that it could not be
    /// reopened from (see [`TaskStore::apply`] below).
    db: Option<Database>,
}

/// What reads answer while the record is closed after a failed write.
const CLOSED: &str = "the record is closed after a failed write; it is reopened at the next write";

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(RedbStore {
            path: path.to_path_buf(),
            db: Some(Self::open_db(path)?),
        })
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Io(CLOSED.into()))
    }

    fn open_db(path: &Path) -> Result<Database, StoreError> {
        // redb caches up to 1 GiB of pages by default, so the master's memory
        // grew with its record; a bounded cache keeps it flat (the soak).
        let db = redb::Builder::new()
            .set_cache_size(RECORD_CACHE_BYTES)
            .create(path)
            .map_err(io)?;
        let tx = db.begin_write().map_err(io)?;
        tx.open_table(EVENTS).map_err(io)?;
        {
            let mut tasks = tx.open_table(TASKS).map_err(io)?;
            let mut meta = tx.open_table(META).map_err(io)?;
            let format = meta.get("row_format").map_err(io)?.map(|v| v.value());
            match format {
                Some(f) if f == u64::from(ROW_FORMAT) => {}
                // Format 1 (no format byte) or 2: rewrite every row once in
                // the current format.
                None | Some(2) => {
                    let old = format.map_or(1, |_| 2);
                    let decode = match format {
                        None => row::decode_legacy_row,
                        _ => row::decode_row,
                    };
                    let mut rows = Vec::new();
                    for item in tasks.iter().map_err(io)? {
                        let (k, v) = item.map_err(io)?;
                        let row = decode(v.value()).map_err(|e| {
                            StoreError::Corrupt(format!("task {} (format {old}): {e}", k.value()))
                        })?;
                        rows.push((k.value(), row));
                    }
                    for (k, r) in rows {
                        let bytes = row::encode_row(&r).map_err(io)?;
                        tasks.insert(k, bytes.as_slice()).map_err(io)?;
                    }
                    meta.insert("row_format", u64::from(ROW_FORMAT))
                        .map_err(io)?;
                }
                Some(f) => {
                    return Err(StoreError::Corrupt(format!(
                        "rows are in format {f}; this master reads formats 1, 2 and {ROW_FORMAT}"
                    )));
                }
            }
        }
        tx.open_table(META).map_err(io)?;
        tx.commit().map_err(io)?;
        Ok(db)
    }

    /// One transaction of `entries`.
    fn write(&self, entries: &[Entry], next_task: u64, durable: bool) -> Result<(), StoreError> {
        let mut tx = self.db()?.begin_write().map_err(io)?;
        let level = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(level).map_err(io)?;
        {
            let mut events = tx.open_table(EVENTS).map_err(io)?;
            let mut tasks = tx.open_table(TASKS).map_err(io)?;
            let mut meta = tx.open_table(META).map_err(io)?;
            for e in entries {
                let t = e.task.0;
                match &e.row {
                    RowChange::Put(row) => {
                        if let Some(ev) = &e.event {
                            let seq = events
                                .range((t, 0)..=(t, u64::MAX))
                                .map_err(io)?
                                .next_back()
                                .transpose()
                                .map_err(io)?
                                .map_or(0, |(k, _)| k.value().1 + 1);
                            let bytes = wire::encode(ev).map_err(io)?;
                            events.insert((t, seq), bytes.as_slice()).map_err(io)?;
                        }
                        let bytes = row::encode_row(row).map_err(io)?;
                        tasks.insert(t, bytes.as_slice()).map_err(io)?;
                    }
                    RowChange::Delete => {
                        tasks.remove(t).map_err(io)?;
                        events
                            .retain_in((t, 0)..=(t, u64::MAX), |_, _| false)
                            .map_err(io)?;
                    }
                }
            }
            meta.insert("next_task", next_task).map_err(io)?;
        }
        tx.commit().map_err(io)
    }
}

impl TaskStore for RedbStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let tx = self.db()?.begin_read().map_err(io)?;
        let tasks = tx.open_table(TASKS).map_err(io)?;
        let mut rows = Vec::new();
        for item in tasks.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            let row: TaskRow = row::decode_row(v.value())
                .map_err(|e| StoreError::Corrupt(format!("task {}: {e}", k.value())))?;
            rows.push((TaskId(k.value()), row));
        }
        let meta = tx.open_table(META).map_err(io)?;
        let next_task = meta.get("next_task").map_err(io)?.map_or(1, |v| v.value());
        Ok(Loaded { rows, next_task })
    }

    /// redb refuses every transaction after a write failed (an I/O error,
    /// or a full disk) until the database is opened again, so a disk that
    /// filled up and then had room would refuse the record until the
    /// master restarted. A failed write therefore closes and reopens it.
    /// What the file then holds is what a crash would leave: the failed
    /// transaction is not in it (a commit is atomic), nor are the
    /// non-durable ones since the last durable one, which nobody was told
    /// of (durable before announced).
    fn apply(
        &mut self,
        entries: &[Entry],
        next_task: u64,
        durable: bool,
    ) -> Result<(), StoreError> {
        if self.db.is_none() {
            self.db = Some(Self::open_db(&self.path)?);
            info!("the record is open again");
        }
        let result = self.write(entries, next_task, durable);
        if let Err(e) = &result {
            // The old handle first: it holds the file's lock.
            self.db = None;
            match Self::open_db(&self.path) {
                Ok(db) => self.db = Some(db),
                Err(again) => warn!(
                    "cannot reopen the record after a failed write ({e}): {again}; trying again at the next write"
                ),
            }
        }
        result
    }

    fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError> {
        let tx = self.db()?.begin_read().map_err(io)?;
        let events = tx.open_table(EVENTS).map_err(io)?;
        let mut out = Vec::new();
        for item in events.range((task.0, 0)..=(task.0, u64::MAX)).map_err(io)? {
            let (_, v) = item.map_err(io)?;
            out.push(
                wire::decode_exact(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn row(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError> {
        let tx = self.db()?.begin_read().map_err(io)?;
        let tasks = tx.open_table(TASKS).map_err(io)?;
        let Some(v) = tasks.get(task.0).map_err(io)? else {
            return Ok(None);
        };
        row::decode_row(v.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("task {task}: {e}")))
    }
}
