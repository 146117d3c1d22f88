//! Nobody learns of a state before it is durable: a resubmission, a status
//! and a wait are answered only once the record holds what they answer.

use std::sync::Arc;

use tessera_proto::TaskState;

use super::{fixture, held_resubmission, let_others_run, next_assignment};
use crate::master::ledger::ResultAnswer;

#[tokio::test]
async fn a_resubmission_is_answered_only_once_the_first_submission_is_durable() {
    let f = Arc::new(fixture().await);
    let (first, second) = held_resubmission(&f).await;
    assert!(!second.is_finished(), "answered before the commit");
    assert!(!first.is_finished());
    f.record.hold_writes(false);
    let task = first.await.unwrap().unwrap();
    assert_eq!(second.await.unwrap().unwrap().unwrap(), task);
    assert_eq!(f.durable_tasks(), vec![task]);
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
