//! Tasks at rest leave memory (`archive.rs`): which do, what stays
//! countable and answerable, and what a restart loads.

use tessera_proto::FailureKind;

use super::*;
use crate::master::scheduler::{archive::Archived, durable::Removal};

/// A done task (result kept) and the scheduler it is in.
fn done_task() -> (Scheduler, TaskId) {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.complete(w, t, 1, 5, 9, now);
    (s, t)
}

#[test]
fn only_a_task_at_rest_is_archived() {
    let now = Instant::now();
    let (mut s, done) = done_task();
    let queued = s.submit("q".into(), 1);
    let leased = s.submit("l".into(), 1);
    let w = join(&mut s, 2, 1, 1);
    assert_eq!(s.dispatch(now).len(), 1);
    assert!(s.lease_of(queued).is_some() || s.lease_of(leased).is_some());
    let content = s.submit("c".into(), 1);
    s.worker_ready(w, 1);
    for (_, a) in s.dispatch(now) {
        if a.task == content {
            s.fail(
                w,
                content,
                a.attempt,
                FailureKind::Corrupt,
                "bad".into(),
                now,
            );
        }
    }
    for t in [done, queued, leased, content] {
        assert!(!s.archive(t), "task {t} is not at rest");
        assert!(s.holds(t));
    }
    assert!(s.remove_result(done, Removal::Fetched));
    assert!(s.archive(done), "done with its result removed: at rest");
    assert!(!s.holds(done));
    assert!(!s.archive(done), "once");
    assert_eq!(s.info(done), None);
    assert_eq!(
        s.archived(),
        Archived {
            done: 1,
            failed: 0,
            cancelled: 0
        }
    );
    assert_eq!(s.task_counts().done, 1, "still counted");
}

#[test]
fn a_cancelled_task_is_at_rest_and_a_content_failure_after_retention() {
    let now = Instant::now();
    let mut s = sched();
    s.set_wall_ms(1_000);
    let cancelled = s.submit("x".into(), 1);
    s.cancel(cancelled);
    let cancelled_row = s.row(cancelled).unwrap();
    assert!(s.archive(cancelled));
    let bad = s.submit("bad".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    let a = s.dispatch(now).pop().unwrap().1;
    s.fail(w, bad, a.attempt, FailureKind::Corrupt, "bad".into(), now);
    assert!(!s.archive(bad), "its key answers a resubmission for now");
    assert_eq!(s.task_for_key(u128::from(bad.0)), Some(bad));
    s.set_wall_ms(1_000 + 499);
    assert_eq!(
        s.archive_failures_older_than(500, |_| false),
        0,
        "too young"
    );
    s.set_wall_ms(1_000 + 500);
    assert_eq!(s.archive_failures_older_than(500, |t| t == bad), 0, "busy");
    assert_eq!(s.archive_failures_older_than(500, |_| false), 1);
    assert!(!s.holds(bad));
    assert_eq!(s.task_for_key(u128::from(bad.0)), None, "its key is free");
    // Counted apart: the cancelled one is not a failure.
    assert_eq!(
        s.archived(),
        Archived {
            done: 0,
            failed: 1,
            cancelled: 1
        }
    );
    let counts = |s: &Scheduler| (s.task_counts().failed, s.task_counts().cancelled);
    assert_eq!(counts(&s), (1, 1));
    // Brought back to be deleted: counted once, then not at all.
    assert!(s.fault_in(cancelled, cancelled_row));
    assert_eq!(counts(&s), (1, 1));
    assert!(s.delete(cancelled).is_some());
    assert_eq!(counts(&s), (1, 0));
}

#[test]
fn a_restart_loads_no_task_at_rest_but_counts_it() {
    let (mut s, done) = done_task();
    let kept = s.submit("kept".into(), 1);
    s.remove_result(done, Removal::Expired);
    let rows = vec![(done, s.row(done).unwrap()), (kept, s.row(kept).unwrap())];
    let mut again = sched();
    again.restore(rows, 3);
    assert!(!again.holds(done));
    assert!(again.holds(kept));
    assert_eq!(again.task_counts().done, 1);
    assert_eq!(again.task_counts().queued, 1);
    assert_eq!(again.next_task(), 3);
}

#[test]
fn a_task_is_faulted_in_from_its_row_only_when_archived_and_decided() {
    let (mut s, done) = done_task();
    s.remove_result(done, Removal::Fetched);
    let row = s.row(done).unwrap();
    assert!(!s.fault_in(done, row.clone()), "still in memory");
    assert!(s.archive(done));
    let info = Scheduler::info_of_row(done, row.clone());
    assert_eq!(info.state, TaskState::Done);
    assert_eq!(info.output_len, Some(5));
    assert_eq!(info.worker.as_deref(), Some("node-1"));
    let r = Scheduler::result_of_row(&row).unwrap();
    assert!(r.removed);
    assert_eq!((r.attempt, r.len, r.checksum), (1, 5, 9));
    let mut queued_row = row.clone();
    queued_row.state = crate::master::record::RowState::Queued;
    assert!(
        !s.fault_in(done, queued_row),
        "an undecided task is never archived"
    );
    assert!(
        !s.fault_in(TaskId(99), row.clone()),
        "an id never handed out"
    );
    let deletions = s.deletions();
    assert!(s.fault_in(done, row));
    assert_eq!(s.info(done).unwrap().state, TaskState::Done);
    assert_eq!(s.task_counts().done, 1, "counted once");
    assert!(s.delete(done).is_some());
    assert_eq!(s.deletions(), deletions + 1);
    assert_eq!(s.task_counts().done, 0);
}

/// A task at rest brought back (to be deleted) does not take back the key
/// it freed (its result removed, or failed for no fault of the image): the
/// key may name a newer task of the same image by then.
#[test]
fn a_task_brought_back_does_not_take_back_its_freed_key() {
    let (mut s, done) = done_task();
    assert!(s.remove_result(done, Removal::Fetched));
    let done_row = s.row(done).unwrap();
    assert!(s.archive(done));
    let cancelled = s.submit("x".into(), 1);
    s.cancel(cancelled);
    let cancelled_row = s.row(cancelled).unwrap();
    assert!(s.archive(cancelled));
    for (old, row) in [(done, done_row), (cancelled, cancelled_row)] {
        let key = u128::from(old.0);
        let newer = s.reserve_id();
        s.submit_reserved(newer, "again".into(), 1, 0, key);
        assert!(s.fault_in(old, row));
        assert_eq!(s.task_for_key(key), Some(newer), "task {old}'s key");
    }
}

/// A restart hands out ids after the highest in the record, whatever the
/// record's own counter says.
#[test]
fn a_restart_never_hands_out_an_id_in_the_record() {
    let mut s = sched();
    let ids: Vec<TaskId> = (0..5).map(|i| s.submit(format!("{i}"), 1)).collect();
    let last = *ids.last().unwrap();
    let mut again = sched();
    again.restore(vec![(last, s.row(last).unwrap())], 1);
    assert_eq!(again.submit("new".into(), 1), TaskId(last.0 + 1));
}
