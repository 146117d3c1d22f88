//! A worker connection that ends while the master itself had stopped
//! running (its lease sweep overdue) is lost to the master's silence: the
//! worker may have hung up on it without its word getting through. No
//! evidence against the image; the same end with the master running is.

use std::sync::Arc;

use tessera_proto::{TaskEvent, TaskId};

use super::{Fixture, fixture_with, next_assignment};
use crate::{clock::ManualClock, master::scheduler::SchedulerConfig};

/// The `why` of `task`'s last `Lost` event.
async fn last_loss(f: &Fixture, task: TaskId) -> String {
    let events = f.ledger.history(task).await.unwrap().unwrap();
    events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            TaskEvent::Lost { why, .. } => Some(why.clone()),
            _ => None,
        })
        .expect("a lost attempt")
}

#[tokio::test]
async fn a_connection_that_ends_across_the_masters_own_stall_blames_no_image() {
    let clock = Arc::new(ManualClock::new());
    let f = fixture_with(clock.clone()).await;
    let lease = SchedulerConfig::default().lease_timeout;
    let tick = lease / 20;
    let state = f.ledger.state();
    let task = f.submit(7, 1).await.unwrap();

    // Attempt 1 runs alone; the master stops for three lease timeouts (no
    // sweep), and the worker's connection is the first thing it sees end.
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    state.started(w, a.task, a.attempt);
    state.expire_due();
    clock.advance(tick);
    state.heartbeat(
        w,
        &[tessera_proto::LeaseRef {
            task,
            attempt: a.attempt,
        }],
    );
    state.expire_due();
    clock.advance(3 * lease);
    state.worker_lost(w, "connection closed", false);
    let why = last_loss(&f, task).await;
    assert!(
        why.contains("not its fault") && why.contains("master itself had stopped"),
        "{why}"
    );

    // A lease timeout of regular sweeps later, attempt 2 runs alone and its
    // worker's connection ends: that is a death, evidence against it.
    for _ in 0..21 {
        clock.advance(tick);
        state.expire_due();
    }
    let (w, mut rx) = f.worker();
    let a = next_assignment(&mut rx).await;
    assert_eq!((a.task, a.attempt), (task, 2));
    state.started(w, a.task, a.attempt);
    clock.advance(tick);
    state.heartbeat(w, &[tessera_proto::LeaseRef { task, attempt: 2 }]);
    state.expire_due();
    state.worker_lost(w, "connection closed", false);
    let why = last_loss(&f, task).await;
    assert!(why.contains("only image running there"), "{why}");
}
