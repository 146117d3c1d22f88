//! A drain that runs out of grace: the worker hands back the tasks it is
//! still running (`Released` for a started lease), which go back to the
//! front of the queue with no strike against them.

use super::*;

#[test]
fn a_draining_worker_hands_back_a_started_task_without_a_strike() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let later = s.submit("later".into(), 1);
    // More drains out of time than the attempt budget: none may count.
    for round in 1..=5u64 {
        let w = join(&mut s, round, 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1, "round {round}: {out:?}");
        assert_eq!(
            out[0].1.task, a,
            "round {round}: a released task goes first"
        );
        let attempt = out[0].1.attempt;
        s.started(w, a, attempt, Instant::now());
        s.worker_draining(w);
        assert!(s.released(w, a, attempt), "round {round}: accepted");
        assert!(
            !s.released(w, a, attempt),
            "round {round}: no longer its lease"
        );
        assert_eq!(s.info(a).unwrap().state, TaskState::Queued, "round {round}");
        let lost = s.worker_lost(w, "connection closed", now);
        assert!(
            lost.is_empty(),
            "round {round}: nothing left to lose: {lost:?}"
        );
        let events = s.take_events();
        assert!(
            events.iter().any(|(t, e)| *t == a
                && *e
                    == TaskEvent::Released {
                        attempt,
                        worker: format!("node-{round}"),
                    }),
            "round {round}: {events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|(t, e)| *t == a && matches!(e, TaskEvent::Lost { .. })),
            "round {round}: no lost attempt: {events:?}"
        );
    }
    assert_eq!(s.row(a).unwrap().lost, 0);
    // It is still good for a worker that stays.
    let w = join(&mut s, 9, 1, 1);
    let out = s.dispatch(now);
    assert_eq!(out[0].1.task, a);
    s.started(w, a, out[0].1.attempt, Instant::now());
    assert_eq!(
        s.complete(w, a, out[0].1.attempt, 1, 0, now).0,
        Outcome::Accepted
    );
    assert_eq!(s.info(later).unwrap().state, TaskState::Queued);
}

#[test]
fn a_worker_that_is_not_draining_cannot_hand_back_a_started_task() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.started(w, a, 1, Instant::now());
    assert!(!s.released(w, a, 1), "started: its result is coming");
    assert_eq!(s.info(a).unwrap().state, TaskState::Running);
    // Nor may a draining worker hand back another worker's lease.
    let other = join(&mut s, 2, 1, 0);
    s.worker_draining(other);
    assert!(!s.released(other, a, 1));
    assert_eq!(s.info(a).unwrap().state, TaskState::Running);
}
