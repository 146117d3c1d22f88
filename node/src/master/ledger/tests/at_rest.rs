//! Tasks at rest leave memory (confirmed by every submitter, or cancelled
//! once durable) and are still answered from the record.

use tessera_proto::{TaskId, TaskState};

use super::{fixture, in_memory, let_others_run, next_assignment};
use crate::master::{ledger::ResultAnswer, store::Kind};

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
