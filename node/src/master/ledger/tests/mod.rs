//! The ledger over an in-memory record that a test can slow down or fail:
//! nobody learns of a state before it is durable, and a record failure
//! leaves the earlier state and tells nobody. This file holds the shared
//! fixture and helpers; each concept's tests are in their own file.

mod at_rest;
mod durable;
mod failure;
mod record_failure;
mod retention;
mod stalled_master;

use std::sync::Arc;

use tessera_proto::TaskId;
use tokio::sync::mpsc;

use super::{Ledger, LedgerError, ResultAnswer, Submission};
use crate::{
    clock::{Clock, SystemClock},
    master::{
        record::{Journal, MemStore, TaskStore},
        scheduler::{Assignment, SchedulerConfig, WorkerId},
        state::{Shared, ToWorker},
        store::DataDir,
    },
};

struct Fixture {
    ledger: Ledger,
    record: MemStore,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A test that failed while writes were held must not hang in the
        // journal's shutdown.
        self.record.hold_writes(false);
    }
}

async fn fixture() -> Fixture {
    fixture_with(Arc::new(SystemClock)).await
}

async fn fixture_with(clock: Arc<dyn Clock>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let files = Arc::new(
        DataDir::open(
            Arc::new(crate::master::disk::StdDisk::default()),
            dir.path(),
        )
        .await
        .unwrap(),
    );
    let record = MemStore::new();
    let loaded = record.load().unwrap();
    let journal = Journal::start(
        record.clone(),
        true,
        Vec::new(),
        Arc::new(crate::master::disk::StdDisk::default()),
    );
    let state = Shared::new(
        SchedulerConfig::default(),
        clock,
        journal,
        loaded,
        files.clone(),
    );
    Fixture {
        ledger: Ledger::new(state, files),
        record,
        _dir: dir,
    }
}

fn submission(key: u128, submitter: u64) -> Submission {
    Submission {
        name: "a.png".into(),
        len: 3,
        checksum: tessera_proto::checksum(b"abc"),
        key,
        submitter,
    }
}

impl Fixture {
    async fn submit(&self, key: u128, submitter: u64) -> Result<TaskId, LedgerError> {
        let mut tmp = self.ledger.files().create_tmp(3).await.unwrap();
        tmp.write(bytes::Bytes::from_static(b"abc")).await.unwrap();
        self.ledger
            .accept_input(tmp, submission(key, submitter))
            .await
    }

    async fn result(&self, worker: WorkerId, a: &Assignment) -> ResultAnswer {
        let mut tmp = self.ledger.files().create_tmp(3).await.unwrap();
        tmp.write(bytes::Bytes::from_static(b"xyz")).await.unwrap();
        let ck = tessera_proto::checksum(b"xyz");
        self.ledger
            .accept_result(worker, a.task, a.attempt, tmp, 3, ck)
            .await
    }

    fn worker(&self) -> (WorkerId, mpsc::Receiver<ToWorker>) {
        let state = self.ledger.state();
        let (id, rx) = state.join_worker("w".into(), 16);
        state.worker_capacity(id, 1);
        state.worker_ready(id, 4);
        (id, rx)
    }

    /// A task of `submitter`'s, done (its result accepted, nothing confirmed).
    async fn done(&self, key: u128, submitter: u64) -> (TaskId, Assignment) {
        let task = self.submit(key, submitter).await.unwrap();
        let (w, mut rx) = self.worker();
        let a = next_assignment(&mut rx).await;
        let ResultAnswer::Accepted(o) = self.result(w, &a).await else {
            panic!("not accepted");
        };
        o.remove().await;
        (task, a)
    }

    /// The rows a restarted master would load.
    fn durable_tasks(&self) -> Vec<TaskId> {
        self.record
            .load()
            .unwrap()
            .rows
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }
}

async fn next_assignment(rx: &mut mpsc::Receiver<ToWorker>) -> Assignment {
    loop {
        match rx.recv().await.expect("worker channel open") {
            ToWorker::Assign(a) => return a,
            _ => continue,
        }
    }
}

/// With the record's writes held: submitter 1's submission of key 7,
/// decided (its key known) but not durable, and submitter 2's resubmission
/// of the same key joining it, both running until they block.
async fn held_resubmission(
    f: &Arc<Fixture>,
) -> (
    tokio::task::JoinHandle<Result<TaskId, LedgerError>>,
    tokio::task::JoinHandle<Option<Result<TaskId, LedgerError>>>,
) {
    f.record.hold_writes(true);
    let first = tokio::spawn({
        let f = f.clone();
        async move { f.submit(7, 1).await }
    });
    while f.ledger.state().joinable(7, 2).is_none() {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn({
        let f = f.clone();
        async move { f.ledger.join_existing(7, 2).await }
    });
    let_others_run().await;
    (first, second)
}

/// Lets every other task run until it blocks.
async fn let_others_run() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Whether the scheduler holds `task` in memory.
fn in_memory(f: &Fixture, task: TaskId) -> bool {
    f.ledger.state().inspect(|s| s.holds(task))
}
