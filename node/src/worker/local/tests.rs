//! `Local`: downloads, queueing, release and drop of a worker's tasks.

use super::*;

fn t(n: u64) -> TaskId {
    TaskId(n)
}

#[test]
fn a_download_becomes_a_waiting_task_then_runs() {
    let mut l = Local::default();
    l.assigned(t(1), 1, "a".into(), 0, 4, 100);
    assert!(l.chunk(t(1), Bytes::from_static(b"ab")).unwrap().is_none());
    assert!(matches!(
        l.chunk(t(1), Bytes::from_static(b"cd")).unwrap(),
        Some(Downloaded::Queued)
    ));
    assert_eq!(
        l.leases(),
        vec![LeaseRef {
            task: t(1),
            attempt: 1
        }]
    );
    let (w, _) = l.start_next().unwrap();
    assert_eq!(&w.data[..], b"abcd");
    assert_eq!(l.running(), 1);
    assert_eq!(l.finished(t(1), 1), Finished::Report { attempt: 1 });
    assert_eq!(l.running(), 0);
    assert_eq!(
        l.leases(),
        vec![LeaseRef {
            task: t(1),
            attempt: 1
        }],
        "held until the master accepts the result"
    );
    assert!(!l.is_empty());
    assert!(l.accepted(t(1)));
    assert!(l.leases().is_empty());
    assert!(l.is_empty());
}

#[test]
fn release_gives_back_only_unstarted_tasks() {
    let mut l = Local::default();
    l.assigned(t(1), 1, "a".into(), 0, 1, 100);
    l.chunk(t(1), Bytes::from_static(b"a")).unwrap();
    l.assigned(t(2), 1, "b".into(), 0, 1, 100);
    l.chunk(t(2), Bytes::from_static(b"b")).unwrap();
    let (started, _) = l.start_next().unwrap();
    assert_eq!(started.task, t(1));
    assert_eq!(l.release(t(1), 1), Release::NotHeld, "started: kept");
    assert_eq!(l.release(t(2), 2), Release::NotHeld, "wrong attempt");
    assert_eq!(l.release(t(2), 1), Release::Freed);
    assert_eq!(
        l.leases(),
        vec![LeaseRef {
            task: t(1),
            attempt: 1
        }]
    );
}

#[test]
fn a_task_released_mid_download_is_discarded_when_complete() {
    let mut l = Local::default();
    l.assigned(t(1), 3, "a".into(), 0, 4, 100);
    l.chunk(t(1), Bytes::from_static(b"ab")).unwrap();
    assert_eq!(l.release(t(1), 3), Release::Later);
    assert!(l.leases().is_empty(), "no longer claimed");
    assert!(matches!(
        l.chunk(t(1), Bytes::from_static(b"cd")).unwrap(),
        Some(Downloaded::Discarded)
    ));
    assert!(l.start_next().is_none());
}

#[test]
fn a_dropped_running_task_is_flagged() {
    let mut l = Local::default();
    l.assigned(t(1), 1, "a".into(), 0, 1, 100);
    l.chunk(t(1), Bytes::from_static(b"a")).unwrap();
    let (_, flag) = l.start_next().unwrap();
    assert_eq!(l.drop_task(t(1), 1), Release::Later);
    assert!(flag.is_cancelled());
    assert!(l.leases().is_empty());
    assert_eq!(l.finished(t(1), 1), Finished::Dropped);
    assert!(l.is_empty());
}

#[test]
fn too_large_assignments_are_discarded_and_reported() {
    let mut l = Local::default();
    l.assigned(t(1), 1, "big".into(), 0, 10, 5);
    assert_eq!(
        l.leases().len(),
        1,
        "still held until the failure is reported"
    );
    assert!(l.chunk(t(1), Bytes::from(vec![0; 6])).unwrap().is_none());
    assert!(matches!(
        l.chunk(t(1), Bytes::from(vec![0; 4])).unwrap(),
        Some(Downloaded::TooLarge { attempt: 1 })
    ));
}

#[test]
fn draining_gives_back_everything_unstarted() {
    let mut l = Local::default();
    for i in 1..=3 {
        l.assigned(t(i), 1, "x".into(), 0, 1, 100);
        l.chunk(t(i), Bytes::from_static(b"x")).unwrap();
    }
    l.assigned(t(4), 1, "y".into(), 0, 2, 100);
    l.start_next().unwrap();
    let mut back = l.release_all_unstarted();
    back.sort_by_key(|l| l.task);
    let tasks: Vec<u64> = back.iter().map(|l| l.task.0).collect();
    assert_eq!(tasks, vec![2, 3, 4]);
    assert_eq!(l.running(), 1);
}

#[test]
fn a_reported_task_can_be_dropped_but_not_released() {
    let mut l = Local::default();
    l.assigned(t(1), 2, "a".into(), 0, 1, 100);
    l.chunk(t(1), Bytes::from_static(b"a")).unwrap();
    l.start_next().unwrap();
    assert_eq!(l.finished(t(1), 2), Finished::Report { attempt: 2 });
    assert_eq!(l.release(t(1), 2), Release::NotHeld, "its result is coming");
    assert_eq!(l.drop_task(t(1), 1), Release::NotHeld, "wrong attempt");
    assert_eq!(l.drop_task(t(1), 2), Release::Reported);
    assert!(l.is_empty());
    assert!(!l.accepted(t(1)));
}

#[test]
fn stopping_every_running_task_cancels_their_jobs() {
    let mut l = Local::default();
    for i in 1..=2 {
        l.assigned(t(i), 1, "x".into(), 0, 1, 100);
        l.chunk(t(i), Bytes::from_static(b"x")).unwrap();
    }
    let (_, first) = l.start_next().unwrap();
    let (_, second) = l.start_next().unwrap();
    let mut stopped = l.stop_all_running();
    stopped.sort_by_key(|l| l.task);
    assert_eq!(stopped.iter().map(|l| l.task.0).collect::<Vec<_>>(), [1, 2]);
    assert!(first.is_cancelled() && second.is_cancelled());
    assert!(l.is_empty());
    assert_eq!(l.finished(t(1), 1), Finished::Dropped);
}

#[test]
fn a_dropped_attempt_never_reports_under_a_newer_attempt_of_the_same_task() {
    // Attempt 1 runs; the master drops it (this worker was silent) and
    // hands the task out again, to this same worker, as attempt 2.
    let mut l = Local::default();
    l.assigned(t(1), 1, "a".into(), 0, 1, 100);
    l.chunk(t(1), Bytes::from_static(b"a")).unwrap();
    let (_, first) = l.start_next().unwrap();
    assert_eq!(l.drop_task(t(1), 1), Release::Later);
    assert!(first.is_cancelled());
    l.assigned(t(1), 2, "a".into(), 0, 1, 100);
    l.chunk(t(1), Bytes::from_static(b"a")).unwrap();
    let (w, second) = l.start_next().unwrap();
    assert_eq!(w.attempt, 2);
    // The stopped first run ends: nothing to report, and the second
    // attempt keeps running (before, it was reported as attempt 2 with
    // the stopped run's empty output).
    assert_eq!(l.finished(t(1), 1), Finished::Dropped);
    assert_eq!(l.running(), 1);
    assert!(!second.is_cancelled());
    assert_eq!(l.finished(t(1), 2), Finished::Report { attempt: 2 });
}
