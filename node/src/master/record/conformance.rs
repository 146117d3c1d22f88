//! The conformance suite of [`TaskStore`]: what the journal relies on from
//! any record, run against every implementation (the openraft style: one
//! suite, each store a line at the bottom).

use tessera_proto::{EventEntry, TaskEvent, TaskId};

use super::{
    MemStore, RedbStore,
    row::{RowState, Submitter, TaskRow},
    store::{Entry, RowChange, TaskStore},
};

fn row(name: &str, state: RowState) -> TaskRow {
    TaskRow {
        name: name.into(),
        input_len: 3,
        input_checksum: 9,
        key: 42,
        submitted_ms: 1,
        attempts: 1,
        lost: 0,
        history: Vec::new(),
        state,
        strikes: 0,
        evidence: 0,
        submitters: vec![Submitter {
            id: 7,
            confirmed: false,
        }],
        exposure_ms: 0,
    }
}

fn put(task: u64, event: Option<TaskEvent>, row: TaskRow) -> Entry {
    Entry {
        task: TaskId(task),
        event: event.map(|event| EventEntry { at_ms: 5, event }),
        row: RowChange::Put(row),
    }
}

fn submitted() -> TaskEvent {
    TaskEvent::Submitted {
        name: "a".into(),
        len: 3,
        checksum: 9,
    }
}

fn done() -> RowState {
    RowState::Done {
        attempt: 1,
        output_len: 4,
        output_checksum: 8,
        done_ms: 2,
        worker: "w".into(),
        removed: false,
    }
}

fn events(store: &impl TaskStore, task: u64) -> Vec<TaskEvent> {
    store
        .history(TaskId(task))
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

/// A fresh store is empty and starts ids at 1.
fn starts_empty(store: &impl TaskStore) {
    let loaded = store.load().unwrap();
    assert!(loaded.rows.is_empty());
    assert_eq!(loaded.next_task, 1);
    assert!(store.history(TaskId(1)).unwrap().is_empty());
    assert_eq!(store.row(TaskId(1)).unwrap(), None);
}

/// Rows, events (in order, per task) and the next id are what was applied,
/// also after reopening; an entry without an event changes only the row. A
/// write that was not durable is read back at once (it may be lost in a
/// crash, so reopening is checked after a durable one).
fn keeps_what_was_applied(store: &mut impl TaskStore, reopen: impl Fn() -> Box<dyn TaskStoreDyn>) {
    let leased = TaskEvent::Leased {
        attempt: 1,
        worker: "w".into(),
    };
    store
        .apply(
            &[
                put(1, Some(submitted()), row("a", RowState::Queued)),
                put(2, Some(submitted()), row("b", RowState::Queued)),
                put(
                    1,
                    Some(leased.clone()),
                    row("a", RowState::Leased { attempt: 1 }),
                ),
            ],
            3,
            true,
        )
        .unwrap();
    store
        .apply(
            &[put(2, None, row("b", RowState::Leased { attempt: 1 }))],
            3,
            false,
        )
        .unwrap();
    let rows = store.load().unwrap().rows;
    assert_eq!(rows[1].1.state, RowState::Leased { attempt: 1 });
    store
        .apply(
            &[
                put(1, None, row("a", done())),
                put(2, None, row("b", RowState::Queued)),
            ],
            3,
            true,
        )
        .unwrap();
    // One row is read as the last write left it.
    assert_eq!(store.row(TaskId(1)).unwrap(), Some(row("a", done())));
    assert_eq!(
        store.row(TaskId(2)).unwrap(),
        Some(row("b", RowState::Queued))
    );
    assert_eq!(store.row(TaskId(3)).unwrap(), None);
    for s in [store as &dyn TaskStoreDyn, &*reopen()] {
        let loaded = s.load_dyn();
        assert_eq!(loaded.next_task, 3);
        let rows: Vec<(u64, TaskRow)> = loaded.rows.into_iter().map(|(t, r)| (t.0, r)).collect();
        assert_eq!(
            rows,
            vec![(1, row("a", done())), (2, row("b", RowState::Queued))]
        );
        assert_eq!(s.events_dyn(1), vec![submitted(), leased.clone()]);
        assert_eq!(s.events_dyn(2), vec![submitted()]);
    }
    // Sequence numbers go on after a reopen.
    let mut again = reopen();
    again.apply_dyn(&[put(1, Some(TaskEvent::Fetched), row("a", done()))], 3);
    assert_eq!(
        again.events_dyn(1),
        vec![submitted(), leased, TaskEvent::Fetched]
    );
}

/// Deleting removes the row and every event of that task only.
fn deletes_a_task_whole(store: &mut impl TaskStore) {
    store
        .apply(
            &[
                put(1, Some(submitted()), row("a", RowState::Queued)),
                put(2, Some(submitted()), row("b", RowState::Queued)),
            ],
            3,
            true,
        )
        .unwrap();
    store
        .apply(
            &[Entry {
                task: TaskId(1),
                event: Some(EventEntry {
                    at_ms: 6,
                    event: TaskEvent::Deleted,
                }),
                row: RowChange::Delete,
            }],
            3,
            true,
        )
        .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.rows.len(), 1);
    assert_eq!(loaded.rows[0].0, TaskId(2));
    assert!(events(store, 1).is_empty());
    assert_eq!(events(store, 2), vec![submitted()]);
    assert_eq!(
        store.row(TaskId(1)).unwrap(),
        None,
        "a deleted task has no row"
    );
    assert!(store.row(TaskId(2)).unwrap().is_some());
}

/// Object-safe access for the reopened stores.
trait TaskStoreDyn {
    fn load_dyn(&self) -> super::Loaded;
    fn events_dyn(&self, task: u64) -> Vec<TaskEvent>;
    fn apply_dyn(&mut self, entries: &[Entry], next_task: u64);
}

impl<S: TaskStore> TaskStoreDyn for S {
    fn load_dyn(&self) -> super::Loaded {
        self.load().unwrap()
    }
    fn events_dyn(&self, task: u64) -> Vec<TaskEvent> {
        events(self, task)
    }
    fn apply_dyn(&mut self, entries: &[Entry], next_task: u64) {
        self.apply(entries, next_task, true).unwrap();
    }
}

mod mem {
    use super::*;

    #[test]
    fn starts_empty() {
        super::starts_empty(&MemStore::new());
    }

    #[test]
    fn keeps_what_was_applied() {
        let mut store = MemStore::new();
        let same = store.clone();
        super::keeps_what_was_applied(&mut store, || Box::new(same.clone()));
    }

    #[test]
    fn deletes_a_task_whole() {
        super::deletes_a_task_whole(&mut MemStore::new());
    }

    /// The power-cut model: what was written without `durable` is lost,
    /// unless a durable write followed it.
    #[test]
    fn a_crash_loses_what_no_durable_write_covered() {
        let mut store = MemStore::new();
        let queued = || row("a", RowState::Queued);
        store
            .apply(&[put(1, Some(submitted()), queued())], 2, true)
            .unwrap();
        store
            .apply(&[put(2, Some(submitted()), queued())], 3, false)
            .unwrap();
        store
            .apply(&[put(1, None, row("a", done()))], 3, false)
            .unwrap();
        store.crash();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.next_task, 2);
        assert_eq!(loaded.rows.len(), 1);
        assert_eq!(loaded.rows[0].1.state, RowState::Queued);
        assert_eq!(events(&store, 1).len(), 1);

        store
            .apply(&[put(2, Some(submitted()), queued())], 3, false)
            .unwrap();
        store
            .apply(&[put(1, None, row("a", done()))], 3, true)
            .unwrap();
        store.crash();
        let loaded = store.load().unwrap();
        assert_eq!((loaded.next_task, loaded.rows.len()), (3, 2));
        assert_eq!(loaded.rows[0].1.state, done());
    }
}

mod redb {
    use super::*;

    fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.redb");
        (dir, path)
    }

    #[test]
    fn starts_empty() {
        let (_dir, path) = fresh();
        super::starts_empty(&RedbStore::open(&path).unwrap());
    }

    #[test]
    fn keeps_what_was_applied() {
        let (_dir, path) = fresh();
        let mut store = RedbStore::open(&path).unwrap();
        let copy = path.with_extension("copy");
        // redb holds a file lock: "reopen" a byte copy of the file.
        let reopen = || {
            std::fs::copy(&path, &copy).unwrap();
            Box::new(RedbStore::open(&copy).unwrap()) as Box<dyn TaskStoreDyn>
        };
        super::keeps_what_was_applied(&mut store, reopen);
    }

    #[test]
    fn deletes_a_task_whole() {
        let (_dir, path) = fresh();
        super::deletes_a_task_whole(&mut RedbStore::open(&path).unwrap());
    }

    /// A record written by a master of row format 1 opens, its rows
    /// rewritten in the current format with no submitters.
    #[test]
    fn a_record_of_row_format_1_is_migrated_on_open() {
        let (_dir, path) = fresh();
        let mut legacy = row("a", done());
        legacy.submitters.clear();
        {
            let db = ::redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let tasks: ::redb::TableDefinition<u64, &[u8]> =
                    ::redb::TableDefinition::new("tasks");
                let mut t = tx.open_table(tasks).unwrap();
                let v1 = super::super::row::tests_support::encode_v1(&legacy);
                t.insert(1, v1.as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.rows, vec![(TaskId(1), legacy.clone())]);
        drop(store);
        // And again, now in the current format.
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap().rows, vec![(TaskId(1), legacy)]);
    }

    /// A record of row format 2 opens, its rows rewritten in the current
    /// format with no running time (`exposure_ms`) yet.
    #[test]
    fn a_record_of_row_format_2_is_migrated_on_open() {
        let (_dir, path) = fresh();
        let mut old = row("a", done());
        (old.strikes, old.evidence) = (2, 1);
        {
            let db = ::redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let tasks: ::redb::TableDefinition<u64, &[u8]> =
                    ::redb::TableDefinition::new("tasks");
                let meta: ::redb::TableDefinition<&str, u64> = ::redb::TableDefinition::new("meta");
                let mut t = tx.open_table(tasks).unwrap();
                let v2 = super::super::row::tests_support::encode_v2(&old);
                t.insert(1, v2.as_slice()).unwrap();
                tx.open_table(meta)
                    .unwrap()
                    .insert("row_format", 2)
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap().rows, vec![(TaskId(1), old.clone())]);
        drop(store);
        use ::redb::ReadableDatabase;
        let db = ::redb::Database::open(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let meta: ::redb::TableDefinition<&str, u64> = ::redb::TableDefinition::new("meta");
        let format = tx
            .open_table(meta)
            .unwrap()
            .get("row_format")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(format, u64::from(super::super::row::ROW_FORMAT));
    }
}
