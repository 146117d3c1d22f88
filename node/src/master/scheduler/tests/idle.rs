//! Who has idle threads, for stealing and backups (`Scheduler::idle_threads`):
//! only an available worker with credits, nothing unstarted of its own, and
//! fewer images executing (leases and straggling attempts) than threads.

use super::{straggler::history, *};

/// A one-thread worker holding `n` tasks, the first started.
fn busy_worker(s: &mut Scheduler, w: u64, n: u32) -> (WorkerId, Vec<TaskId>) {
    let tasks: Vec<TaskId> = (0..n).map(|i| s.submit(format!("v{w}-{i}"), 1)).collect();
    let id = join(s, w, 1, n);
    assert_eq!(s.dispatch(Instant::now()).len(), n as usize);
    s.started(id, tasks[0], 1, Instant::now());
    (id, tasks)
}

#[test]
fn a_silent_worker_with_credits_is_not_idle() {
    let t0 = Instant::now();
    let mut s = sched();
    let lost = s.submit("lost".into(), 1);
    let quiet = join(&mut s, 1, 1, 1);
    assert_eq!(s.dispatch(t0).len(), 1);
    let (victim, held) = busy_worker(&mut s, 2, 3);
    // The victim heartbeats; the quiet worker does not: its lease expires
    // and it goes silent, its task going to a third worker.
    let refs: Vec<LeaseRef> = held.iter().map(|t| lr(*t, 1)).collect();
    s.heartbeat(victim, &refs, t0 + TIMEOUT / 2);
    s.expire(t0 + TIMEOUT + Duration::from_millis(1));
    assert!(s.is_silent(quiet));
    join(&mut s, 3, 1, 1);
    s.dispatch(t0 + TIMEOUT);
    assert_eq!(s.queue_len(), 0);
    assert_eq!(s.lease_of(lost).unwrap().worker, WorkerId(3));
    // Credits a silent worker is granted stay frozen: it is not idle.
    s.worker_ready(quiet, 2);
    assert!(
        s.steal().is_empty(),
        "nothing is stolen for a silent worker"
    );
}

#[test]
fn a_worker_has_as_many_idle_threads_as_it_has_threads_not_executing() {
    let now = Instant::now();
    let mut s = sched();
    let first = s.submit("first".into(), 1);
    let wide = join(&mut s, 1, 2, 1);
    assert_eq!(s.dispatch(now).len(), 1);
    s.started(wide, first, 1, now);
    let (victim, _) = busy_worker(&mut s, 2, 4);
    s.worker_ready(wide, 2);
    let orders = s.steal();
    assert_eq!(
        orders.len(),
        1,
        "one of its two threads executes: {orders:?}"
    );
    assert!(orders.iter().all(|o| o.victim == victim));
}

#[test]
fn a_thread_still_running_a_straggling_attempt_is_not_idle() {
    let t0 = Instant::now();
    let mut s = sched();
    let slow = join(&mut s, 1, 1, 1);
    history(&mut s, slow, t0);
    let big = s.submit("big".into(), 1000);
    s.dispatch(t0);
    s.started(slow, big, 1, t0);
    let fast = join(&mut s, 2, 1, 1);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(s.backups(at).len(), 1, "the backup goes to the fast worker");
    assert_eq!(s.lease_of(big).unwrap().worker, fast);
    // The slow worker holds no lease now, but its one thread still runs the
    // straggling attempt: with credits, it is still not idle.
    let (_, _) = busy_worker(&mut s, 3, 3);
    s.worker_ready(slow, 2);
    assert!(s.steal().is_empty(), "nothing is stolen for a busy thread");
    // The straggler's own death is no evidence, and it is no longer busy
    // once the task is decided.
    s.started(fast, big, 2, at);
    s.complete(fast, big, 2, 1, 0, at);
    assert_eq!(s.steal().len(), 1, "its thread is free again");
}

#[test]
fn a_straggling_attempt_still_executes_while_its_task_waits_for_another_backup() {
    // A two-thread worker runs a straggler (its backup's worker died before
    // starting it, so the task waits in the queue) and an innocent image.
    // When it dies, the innocent image was not alone: a strike, no evidence.
    let t0 = Instant::now();
    let mut s = sched();
    let wide = join(&mut s, 1, 2, 1);
    history(&mut s, wide, t0);
    let big = s.submit("big".into(), 1000);
    s.dispatch(t0);
    s.started(wide, big, 1, t0);
    let backup = join(&mut s, 2, 1, 1);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(s.backups(at).len(), 1);
    assert_eq!(s.lease_of(big).unwrap().worker, backup);
    let innocent = s.submit("innocent".into(), 1);
    s.worker_ready(wide, 1);
    let out = s.dispatch(at);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1.task), (wide, innocent));
    s.started(wide, innocent, out[0].1.attempt, at);
    s.worker_lost(backup, "connection closed", at);
    assert_eq!(s.info(big).unwrap().state, TaskState::Queued);
    s.worker_lost(wide, "connection closed", at);
    let r = s.row(innocent).unwrap();
    assert_eq!(
        (r.strikes, r.evidence),
        (1, 0),
        "it ran beside the straggler: {:?}",
        r.history
    );
}
