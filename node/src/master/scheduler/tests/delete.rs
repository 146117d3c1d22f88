//! `delete`: a task leaves the queue, its worker's leases and the key
//! index, and nothing else does.

use super::*;

#[test]
fn deleting_a_queued_task_takes_it_out_of_the_queue_only() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 1);
    assert_eq!(s.task_ids(), [a, b].into_iter().collect());
    assert_eq!(s.delete(a), Some(None), "queued: nobody to tell");
    assert_eq!(s.task_ids(), [b].into_iter().collect());
    assert_eq!(
        Vec::from(s.queue.clone()),
        vec![b],
        "out of the queue at once"
    );
    assert_eq!(s.task_for_key(u128::from(a.0)), None, "its key is free");
    assert_eq!(s.task_for_key(u128::from(b.0)), Some(b));
    join(&mut s, 1, 1, 2);
    let out: Vec<TaskId> = s.dispatch(now).iter().map(|(_, x)| x.task).collect();
    assert_eq!(
        out,
        vec![b],
        "the other one is still queued, the deleted one is not"
    );
}

#[test]
fn deleting_a_leased_task_names_its_holder_and_frees_the_slot() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("t".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    assert_eq!(s.dispatch(now).len(), 1);
    assert_eq!(s.delete(t), Some(Some((w, 1))), "the holder must be told");
    assert!(s.leases_of(w).is_empty());
    assert_eq!(s.delete(t), None, "once");
}

#[test]
fn deleting_an_older_task_leaves_a_newer_one_its_key() {
    let mut s = sched();
    let old = s.submit("a".into(), 1);
    s.cancel(old);
    let key = u128::from(old.0);
    let newer = s.reserve_id();
    s.submit_reserved(newer, "a".into(), 1, 0, key);
    assert_eq!(s.task_for_key(key), Some(newer));
    assert!(s.delete(old).is_some());
    assert_eq!(s.task_for_key(key), Some(newer));
}
