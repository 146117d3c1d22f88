//! A record failure leaves the earlier state and tells nobody: a
//! submission, result, cancel or confirmation that cannot be recorded fails.

use std::sync::Arc;

use tessera_proto::TaskState;

use super::{fixture, held_resubmission, next_assignment};
use crate::master::ledger::{LedgerError, ResultAnswer};

#[tokio::test]
async fn a_resubmission_whose_first_submission_was_not_recorded_gets_no_id() {
    let f = Arc::new(fixture().await);
    let (first, second) = held_resubmission(&f).await;
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
