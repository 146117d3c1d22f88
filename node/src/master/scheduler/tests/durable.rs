//! The scheduler's side of the durable record (see `scheduler/durable.rs`):
//! idempotency keys, and restoring from rows after a restart.

use super::*;
// `durable` below is the scheduler's module, not this one.
use crate::master::scheduler::durable;

#[test]
fn a_key_names_its_task_until_the_result_is_removed() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.reserve_id();
    s.submit_reserved(t, "a".into(), 1, 9, 42);
    assert_eq!(s.task_for_key(42), Some(t));
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(now);
    s.complete(w, t, 1, 5, 7, now);
    assert_eq!(s.task_for_key(42), Some(t), "done, result still there");
    assert!(s.remove_result(t, durable::Removal::Fetched));
    assert_eq!(s.task_for_key(42), None, "the same image again is new work");
    assert!(!s.remove_result(t, durable::Removal::Fetched), "only once");
}

#[test]
fn restore_requeues_leased_tasks_and_keeps_decided_ones() {
    let now = Instant::now();
    let mut s = sched();
    let ids: Vec<TaskId> = (0..4).map(|i| s.submit(format!("{i}"), 1)).collect();
    let w = join(&mut s, 1, 1, 3);
    s.dispatch(now);
    s.complete(w, ids[0], 1, 10, 11, now);
    s.fail(w, ids[1], 1, FailureKind::Corrupt, "bad".into(), now);
    // ids[2] is leased, ids[3] queued.
    let rows: Vec<(TaskId, TaskRow)> = ids.iter().map(|t| (*t, s.row(*t).unwrap())).collect();
    let mut r = sched();
    r.restore(rows, s.next_task());
    assert_eq!(r.info(ids[0]).unwrap().state, TaskState::Done);
    assert_eq!(r.result_ref(ids[0]).unwrap().checksum, 11);
    assert!(matches!(
        r.info(ids[1]).unwrap().state,
        TaskState::Failed { .. }
    ));
    assert_eq!(r.info(ids[2]).unwrap().state, TaskState::Queued);
    assert_eq!(r.info(ids[3]).unwrap().state, TaskState::Queued);
    assert_eq!(r.queue_len(), 2);
    let events = r.take_events();
    assert_eq!(events, vec![(ids[2], TaskEvent::Recovered { attempt: 1 })]);
    assert_eq!(r.reserve_id(), TaskId(5), "ids are never reused");
    // The recovered task is handed out under a new attempt number.
    let w2 = join(&mut r, 2, 1, 2);
    let out = r.dispatch(now);
    assert_eq!(
        out[0],
        (
            w2,
            Assignment {
                task: ids[2],
                attempt: 2,
                name: "2".into(),
                input_len: 1,
                checksum: 0
            }
        )
    );
}
