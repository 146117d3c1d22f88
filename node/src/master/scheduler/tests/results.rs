//! What workers report about their leases (see `scheduler/results.rs`):
//! the first result wins, only the live attempt decides, stale reports
//! change nothing, and what goes back to the queue without losing an attempt.

use super::*;

#[test]
fn an_expired_attempt_s_late_result_wins_if_first_and_the_new_holder_drops() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let paused = join(&mut s, 1, 1, 1);
    s.dispatch(t0);
    s.expire(t0 + TIMEOUT);
    let other = join(&mut s, 2, 1, 1);
    let out = s.dispatch(t0 + TIMEOUT);
    assert_eq!(out[0].1.attempt, 2);
    // The paused worker wakes up and delivers attempt 1 first: it wins, and
    // the live holder of attempt 2 must drop the task.
    assert_eq!(
        s.complete(paused, t, 1, 10, 0, Instant::now()),
        (Outcome::Accepted, vec![(other, 2)])
    );
    assert!(s.leases_of(other).is_empty());
    assert_eq!(
        s.complete(other, t, 2, 11, 0, Instant::now()),
        (Outcome::Stale, vec![]),
        "never delivered twice"
    );
    assert_eq!(s.result_ref(t).map(|r| r.attempt), Some(1));
    assert_eq!(s.info(t).unwrap().output_len, Some(10));
}

#[test]
fn only_the_live_attempt_can_fail_a_task() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(Instant::now());
    assert_eq!(
        s.fail(w, t, 7, FailureKind::Corrupt, "x".into(), Instant::now()),
        Outcome::Stale
    );
    assert_eq!(s.info(t).unwrap().state, TaskState::Running);
    assert_eq!(
        s.fail(
            w,
            t,
            1,
            FailureKind::Corrupt,
            "bad CRC".into(),
            Instant::now()
        ),
        Outcome::Accepted
    );
    assert_eq!(
        s.info(t).unwrap().state,
        TaskState::Failed {
            kind: FailureKind::Corrupt,
            reason: "bad CRC".into()
        }
    );
    assert_eq!(
        s.complete(w, t, 1, 5, 0, Instant::now()).0,
        Outcome::Stale,
        "a failed task stays failed"
    );
}

/// Found by the property test: a stale report from the worker that holds the
/// task under a newer attempt must not drop its hold, or losing that worker
/// would lose the task.
#[test]
fn a_stale_report_does_not_release_the_live_attempt() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(Instant::now());
    assert_eq!(
        s.complete(w, t, 2, 1, 0, Instant::now()).0,
        Outcome::Stale,
        "attempt 2 was never handed out"
    );
    assert_eq!(
        s.fail(w, t, 5, FailureKind::Corrupt, "x".into(), Instant::now()),
        Outcome::Stale
    );
    assert_eq!(s.leases_of(w), vec![t]);
    s.worker_lost(w, "gone", Instant::now());
    assert_eq!(
        s.info(t).unwrap().state,
        TaskState::Queued,
        "the task was not lost"
    );
}

#[test]
fn undeliverable_assignments_go_back_without_losing_an_attempt() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    let a = s.dispatch(Instant::now()).remove(0).1;
    s.undeliverable(w, t, a.attempt);
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert_eq!(s.queue_len(), 1);
}

#[test]
fn a_result_the_master_could_not_store_is_run_again_first_without_losing_an_attempt() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let later = s.submit("b".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    let a = s.dispatch(now).remove(0).1;
    assert_eq!(a.task, t);
    s.started(w, t, a.attempt, now);
    s.take_events();
    s.not_stored(w, t, a.attempt, "disk full");
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert_eq!(
        s.tasks[&t].lost, 0,
        "not the worker's fault, nor the image's"
    );
    let events = s.take_events();
    assert_eq!(
        events[0],
        (
            t,
            TaskEvent::Lost {
                attempt: a.attempt,
                worker: "node-1".into(),
                why: "result not stored: disk full".into(),
            }
        )
    );
    // The worker's lease is gone; with its credit back, the task goes to
    // it before the one queued after it.
    assert!(s.leases_of(w).is_empty());
    s.worker_ready(w, 1);
    let again = s.dispatch(now);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].0, again[0].1.task), (w, t));
    assert_eq!(again[0].1.attempt, a.attempt + 1);
    assert_eq!(s.info(later).unwrap().state, TaskState::Queued);
    // A task that is queued or decided is left as it is.
    s.not_stored(w, later, 1, "disk full");
    assert_eq!(s.info(later).unwrap().state, TaskState::Queued);
    assert!(s.take_events().iter().all(|(id, _)| *id != later));
}

#[test]
fn a_late_result_from_the_worker_that_holds_a_newer_attempt_stops_that_attempt() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 2);
    let first = s.dispatch(now).remove(0).1;
    // Its lease expires (the worker paused); the worker shows life again
    // and the task comes back to it as a new attempt.
    let later = now + TIMEOUT + Duration::from_secs(1);
    s.expire(later);
    s.worker_seen(w);
    s.worker_ready(w, 1);
    let second = s.dispatch(later);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!((second[0].0, second[0].1.task), (w, t));
    let newer = second[0].1.attempt;
    assert_ne!(newer, first.attempt);
    // The first attempt's result wins; the newer attempt on the same
    // worker is no longer wanted.
    let (outcome, drops) = s.complete(w, t, first.attempt, 1, 0, later);
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(drops, vec![(w, newer)]);
}
