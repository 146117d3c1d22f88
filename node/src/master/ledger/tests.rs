//! The ledger over an in-memory record that a test can slow down or fail:
//! nobody learns of a state before it is durable, and a record failure
//! leaves the earlier state and tells nobody.

use std::sync::Arc;

use tessera_proto::{FailureKind, TaskId, TaskState};
use tokio::sync::mpsc;

use super::{Ledger, LedgerError, ResultAnswer, Submission};
use crate::{
    clock::{Clock, ManualClock, SystemClock},
    master::{
        record::{Journal, MemStore, TaskStore},
        scheduler::{Assignment, SchedulerConfig, WorkerId},
        state::{Shared, ToWorker},
        store::{DataDir, Kind},
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

/// Lets every other task run until it blocks.
async fn let_others_run() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_resubmission_is_answered_only_once_the_first_submission_is_durable() {
    let f = Arc::new(fixture().await);
    f.record.hold_writes(true);
    let first = tokio::spawn({
        let f = f.clone();
        async move { f.submit(7, 1).await }
    });
    // The first submission is decided (its key is known) but not durable.
    while f.ledger.state().joinable(7, 2).is_none() {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn({
        let f = f.clone();
        async move { f.ledger.join_existing(7, 2).await }
    });
    let_others_run().await;
    assert!(!second.is_finished(), "answered before the commit");
    assert!(!first.is_finished());
    f.record.hold_writes(false);
    let task = first.await.unwrap().unwrap();
    assert_eq!(second.await.unwrap().unwrap().unwrap(), task);
    assert_eq!(f.durable_tasks(), vec![task]);
}

#[tokio::test]
async fn a_resubmission_whose_first_submission_was_not_recorded_gets_no_id() {
    let f = Arc::new(fixture().await);
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
    f.record.fail_writes(true);
    f.record.hold_writes(false);
    assert!(matches!(first.await.unwrap(), Err(LedgerError::Record(_))));
    // Nothing to share: the resubmission uploads its image as a new one.
    assert!(second.await.unwrap().is_none());
    assert!(f.ledger.state().joinable(7, 2).is_none());
    assert!(f.durable_tasks().is_empty());
    // The rolled-back task is not handed out either.
    let (_w, mut rx) = f.worker();
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn status_and_wait_answer_a_result_only_once_it_is_durable() {
    let f = Arc::new(fixture().await);
    let task = f.submit(7, 1).await.unwrap();
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    let waiting = f.ledger.wait(task).await.unwrap().unwrap();
    f.record.hold_writes(true);
    let result = tokio::spawn({
        let f = f.clone();
        let a = a.clone();
        async move { f.result(w, &a).await }
    });
    while !f.ledger.state().is_decided(task) {
        tokio::task::yield_now().await;
    }
    let status = tokio::spawn({
        let f = f.clone();
        async move { f.ledger.status(task).await }
    });
    let_others_run().await;
    assert!(
        !status.is_finished(),
        "status answered a state not yet durable"
    );
    assert!(
        !result.is_finished(),
        "the worker was answered before the commit"
    );
    f.record.hold_writes(false);
    assert!(matches!(result.await.unwrap(), ResultAnswer::Accepted(_)));
    assert_eq!(
        status.await.unwrap().unwrap().unwrap().state,
        TaskState::Done
    );
    assert_eq!(waiting.await.unwrap().state, TaskState::Done);
}

#[tokio::test]
async fn a_result_that_cannot_be_recorded_is_not_accepted_and_the_task_runs_again() {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    let mut waiting = f.ledger.wait(task).await.unwrap().unwrap();
    f.record.fail_writes(true);
    assert!(matches!(f.result(w, &a).await, ResultAnswer::NotStored));
    assert!(waiting.try_recv().is_err(), "a waiting client was told");
    // The earlier state: undecided (and at once handed out again).
    let state = f.ledger.status(task).await.unwrap().unwrap().state;
    assert!(!state.is_terminal(), "{state:?}");
    // No result file is left behind for the failed attempt.
    let results = f.ledger.files().root().join("results");
    assert_eq!(std::fs::read_dir(results).unwrap().count(), 0);
    // Handed out again under a new attempt; once the record works, done.
    f.record.fail_writes(false);
    let again = next_assignment(&mut rx).await;
    assert_eq!(again.task, task);
    assert!(again.attempt > a.attempt);
    assert!(matches!(
        f.result(w, &again).await,
        ResultAnswer::Accepted(_)
    ));
    assert_eq!(waiting.await.unwrap().state, TaskState::Done);
}

#[tokio::test]
async fn a_cancel_that_cannot_be_recorded_fails_and_announces_nothing() {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    let mut waiting = f.ledger.wait(task).await.unwrap().unwrap();
    f.record.fail_writes(true);
    assert!(matches!(
        f.ledger.cancel(task).await,
        Err(LedgerError::Record(_))
    ));
    assert!(waiting.try_recv().is_err(), "a waiting client was told");
    f.record.fail_writes(false);
    assert_eq!(
        f.ledger.status(task).await.unwrap().unwrap().state,
        TaskState::Queued
    );
    // And the input is still there to process.
    let input = f
        .ledger
        .files()
        .root()
        .join("inputs")
        .join(task.0.to_string());
    assert!(input.exists());
}

#[tokio::test]
async fn a_confirmation_that_cannot_be_recorded_keeps_the_result() {
    let f = fixture().await;
    let (task, _) = f.done(7, 1).await;
    f.record.fail_writes(true);
    assert!(f.ledger.confirm(task, 1).await.is_err());
    f.record.fail_writes(false);
    let (_, result) = f.ledger.fetchable(task).await.unwrap().unwrap();
    assert!(!result.unwrap().removed);
    // Confirmed for real this time: removed.
    f.ledger.confirm(task, 1).await.unwrap().remove().await;
    let (_, result) = f.ledger.fetchable(task).await.unwrap().unwrap();
    assert!(result.unwrap().removed);
}

#[tokio::test]
async fn a_task_out_of_attempts_is_announced_failed_only_once_durable_and_its_input_removed() {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    let mut waiting = f.ledger.wait(task).await.unwrap().unwrap();
    let max = SchedulerConfig::default().max_attempts;
    for i in 0..max {
        let (w, mut rx) = f.worker();
        let a = next_assignment(&mut rx).await;
        // It was running alone when its worker died: evidence against it.
        f.ledger.state().started(w, a.task, a.attempt);
        if i + 1 == max {
            f.record.hold_writes(true);
        }
        f.ledger.state().worker_lost(w, "killed");
    }
    assert!(f.ledger.state().is_decided(task), "failed in memory");
    let_others_run().await;
    assert!(
        waiting.try_recv().is_err(),
        "told before the failure is durable"
    );
    f.record.hold_writes(false);
    let info = waiting.await.unwrap();
    assert!(matches!(
        info.state,
        TaskState::Failed {
            kind: tessera_proto::FailureKind::Crashes,
            ..
        }
    ));
    let input = f
        .ledger
        .files()
        .root()
        .join("inputs")
        .join(task.0.to_string());
    while input.exists() {
        tokio::task::yield_now().await;
    }
}

/// Whether the scheduler holds `task` in memory.
fn in_memory(f: &Fixture, task: TaskId) -> bool {
    f.ledger.state().inspect(|s| s.holds(task))
}

#[tokio::test]
async fn a_task_at_rest_leaves_memory_and_is_still_answered_from_the_record() {
    let f = fixture().await;
    let (task, a) = f.done(7, 1).await;
    assert!(in_memory(&f, task), "a result nobody confirmed stays");
    let result_file = f
        .ledger
        .files()
        .path(Kind::Result { attempt: a.attempt }, task);
    assert!(result_file.exists(), "kept until confirmed");
    f.ledger.confirm(task, 1).await.unwrap().remove().await;
    assert!(!result_file.exists(), "obsolete once confirmed: removed");
    assert!(!f.ledger.files().path(Kind::Input, task).exists());
    assert!(
        !in_memory(&f, task),
        "confirmed by all: at rest, in the record only"
    );
    let counts = f.ledger.state().inspect(|s| s.task_counts());
    assert_eq!(counts.done, 1, "the live view still counts it");

    // Every read still answers, from the record.
    let info = f.ledger.status(task).await.unwrap().expect("status");
    assert_eq!(info.state, TaskState::Done);
    assert_eq!(info.output_len, Some(3));
    let (_, result) = f.ledger.fetchable(task).await.unwrap().unwrap();
    let result = result.unwrap();
    assert!(result.removed);
    assert_eq!(result.attempt, a.attempt);
    let waited = f.ledger.wait(task).await.unwrap().expect("a wait");
    assert_eq!(waited.await.unwrap().state, TaskState::Done);
    let events = f.ledger.history(task).await.unwrap().unwrap();
    assert!(events.len() >= 3, "{events:?}");
    let (cancelled, o) = f.ledger.cancel(task).await.unwrap().expect("cancel");
    o.remove().await;
    assert_eq!(
        cancelled.state,
        TaskState::Done,
        "a decided task is left alone"
    );
    f.ledger.confirm(task, 1).await.unwrap().remove().await;
    assert!(!in_memory(&f, task));

    // A deletion brings it back, then removes it for good.
    f.ledger
        .delete(task)
        .await
        .unwrap()
        .expect("deleted")
        .remove()
        .await;
    assert!(!in_memory(&f, task));
    assert_eq!(f.ledger.status(task).await.unwrap(), None);
    assert!(f.ledger.wait(task).await.unwrap().is_none());
    assert!(f.ledger.history(task).await.is_none());
    assert!(f.ledger.delete(task).await.unwrap().is_none());
    assert!(!f.durable_tasks().contains(&task));
    let counts = f.ledger.state().inspect(|s| s.task_counts());
    assert_eq!(counts.done, 0, "a deleted task is not counted");
    // An id never handed out is no task, without a read.
    assert_eq!(f.ledger.status(TaskId(999)).await.unwrap(), None);
}

#[tokio::test]
async fn a_shared_result_stays_in_memory_until_the_last_submitter_confirms() {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    assert_eq!(f.submit(7, 2).await.unwrap(), task, "shared");
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    let ResultAnswer::Accepted(o) = f.result(w, &a).await else {
        panic!("not accepted");
    };
    o.remove().await;
    f.ledger.confirm(task, 1).await.unwrap().remove().await;
    assert!(in_memory(&f, task), "submitter 2 has not confirmed");
    assert_eq!(f.submit(7, 3).await.unwrap(), task, "the key still dedupes");
    f.ledger.confirm(task, 2).await.unwrap().remove().await;
    f.ledger.confirm(task, 3).await.unwrap().remove().await;
    assert!(!in_memory(&f, task));
    // Its key is free: the same image again is new work.
    let again = f.submit(7, 1).await.unwrap();
    assert_ne!(again, task);
    assert!(in_memory(&f, again));
}

#[tokio::test]
async fn a_cancelled_task_leaves_memory_once_its_cancellation_is_durable() {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    f.record.hold_writes(true);
    let cancel = tokio::spawn({
        let ledger = f.ledger.clone();
        async move { ledger.cancel(task).await }
    });
    while !f.ledger.state().is_decided(task) {
        tokio::task::yield_now().await;
    }
    let_others_run().await;
    assert!(in_memory(&f, task), "not durable yet: still in memory");
    f.record.hold_writes(false);
    let (info, o) = cancel.await.unwrap().unwrap().unwrap();
    o.remove().await;
    assert!(matches!(info.state, TaskState::Failed { .. }));
    assert!(!in_memory(&f, task));
    let info = f.ledger.status(task).await.unwrap().unwrap();
    assert!(matches!(
        info.state,
        TaskState::Failed {
            kind: tessera_proto::FailureKind::Cancelled,
            ..
        }
    ));
}

#[tokio::test]
async fn a_failure_report_is_recorded_announced_and_its_input_removed_and_a_stale_one_changes_nothing()
 {
    let f = fixture().await;
    let task = f.submit(7, 1).await.unwrap();
    let mut waiting = f.ledger.wait(task).await.unwrap().unwrap();
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    let stale = f
        .ledger
        .accept_failure(w, task, a.attempt + 1, FailureKind::Corrupt, "no".into())
        .await
        .unwrap();
    assert!(stale.is_none(), "not the live lease: changes nothing");
    assert!(!f.ledger.state().is_decided(task));
    let obsolete = f
        .ledger
        .accept_failure(w, task, a.attempt, FailureKind::Corrupt, "bad CRC".into())
        .await
        .unwrap()
        .expect("the live lease's failure decides the task");
    let told = waiting.try_recv().expect("announced once durable");
    assert!(matches!(
        told.state,
        TaskState::Failed {
            kind: FailureKind::Corrupt,
            ref reason,
        } if reason.contains("bad CRC")
    ));
    let input = f.ledger.files().path(Kind::Input, task);
    assert!(input.exists());
    obsolete.remove().await;
    assert!(!input.exists(), "a failed task's input is removed");
}

/// Retention counts the time that passed, not what the system clock says:
/// a step of a day forward removes nothing, a step back keeps nothing longer.
#[tokio::test]
async fn retention_is_not_fooled_by_steps_of_the_system_clock() {
    let clock = Arc::new(ManualClock::new());
    let f = fixture_with(clock.clone()).await;
    let (task, a) = f.done(7, 1).await;
    let result_file = f
        .ledger
        .files()
        .path(Kind::Result { attempt: a.attempt }, task);
    let hour = 3_600_000;
    clock.step_wall(24 * hour as i64);
    assert_eq!(f.ledger.expire(hour).await.unwrap(), 0, "a step forward");
    assert!(result_file.exists());
    clock.step_wall(-48 * hour as i64);
    clock.advance(std::time::Duration::from_millis(hour - 1));
    assert_eq!(f.ledger.expire(hour).await.unwrap(), 0, "not yet an hour");
    clock.advance(std::time::Duration::from_millis(2));
    assert_eq!(
        f.ledger.expire(hour).await.unwrap(),
        1,
        "an hour passed, whatever the system clock says"
    );
    assert!(!result_file.exists());
}

#[tokio::test]
async fn results_past_retention_are_expired_and_counted() {
    let f = fixture().await;
    let (task, a) = f.done(7, 1).await;
    let (kept, _) = f.done(8, 1).await;
    let result_file = f
        .ledger
        .files()
        .path(Kind::Result { attempt: a.attempt }, task);
    assert_eq!(
        f.ledger.expire(u64::MAX).await.unwrap(),
        0,
        "none is that old"
    );
    assert!(result_file.exists());
    f.ledger.confirm(kept, 1).await.unwrap().remove().await;
    assert_eq!(f.ledger.expire(0).await.unwrap(), 1, "the one still kept");
    assert!(!result_file.exists());
    let (_, result) = f.ledger.fetchable(task).await.unwrap().unwrap();
    assert!(result.unwrap().removed);
    assert!(!in_memory(&f, task), "at rest");
    assert_eq!(f.ledger.expire(0).await.unwrap(), 0, "once");
}
