//! Retention: results past it are expired (once, and counted), measured by
//! the time that passed rather than the system clock.

use std::sync::Arc;

use super::{fixture, fixture_with, in_memory};
use crate::{clock::ManualClock, master::store::Kind};

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
