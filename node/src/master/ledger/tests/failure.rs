//! A task decided failed (out of attempts, or on its live lease's failure
//! report): announced only once durable, and its input removed.

use tessera_proto::{FailureKind, TaskState};

use super::{fixture, let_others_run, next_assignment};
use crate::master::{scheduler::SchedulerConfig, store::Kind};

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
        f.ledger.state().worker_lost(w, "killed", false);
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
