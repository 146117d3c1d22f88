//! Work stealing (see `scheduler/steal.rs`): an idle worker takes an
//! unstarted task from a busy one; a running one is never asked back.

use super::*;
// `steal` below is the scheduler's module, not this one.
use crate::master::scheduler::steal;

#[test]
fn an_idle_worker_steals_an_unstarted_task_from_a_busy_one() {
    let now = Instant::now();
    let mut s = sched();
    let tasks: Vec<TaskId> = (0..3).map(|i| s.submit(format!("{i}"), 1)).collect();
    let slow = join(&mut s, 1, 1, 3);
    assert_eq!(s.dispatch(now).len(), 3);
    s.started(slow, tasks[0], 1, Instant::now());
    assert!(s.steal().is_empty(), "nobody idle");
    let fast = join(&mut s, 2, 1, 3);
    let orders = s.steal();
    // One idle thread: one order, for the slow worker's newest unstarted task.
    assert_eq!(
        orders,
        vec![steal::StealOrder {
            victim: slow,
            task: tasks[2],
            attempt: 1
        }]
    );
    assert!(s.steal().is_empty(), "already asked");
    assert!(s.released(slow, tasks[2], 1));
    let out = s.dispatch(now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, fast, "the stolen task goes to the idle worker");
    assert_eq!(out[0].1.attempt, 2, "a new fencing token");
    // A started task cannot be given back.
    assert!(!s.released(slow, tasks[0], 1));
}

#[test]
fn a_running_task_is_never_asked_back() {
    let now = Instant::now();
    let mut s = sched();
    let tasks: Vec<TaskId> = (0..2).map(|i| s.submit(format!("{i}"), 1)).collect();
    let busy = join(&mut s, 1, 2, 2);
    assert_eq!(s.dispatch(now).len(), 2);
    s.started(busy, tasks[0], 1, now);
    s.started(busy, tasks[1], 1, now);
    join(&mut s, 2, 2, 2);
    assert!(
        s.steal().is_empty(),
        "both of the busy worker's tasks are running: nothing to steal"
    );
}

#[test]
fn a_started_task_answers_a_release_by_staying() {
    let mut s = sched();
    let t0 = s.submit("a".into(), 1);
    let t1 = s.submit("b".into(), 1);
    let busy = join(&mut s, 1, 1, 2);
    s.dispatch(Instant::now());
    s.started(busy, t0, 1, Instant::now());
    join(&mut s, 2, 1, 1);
    assert_eq!(s.steal().len(), 1);
    // The busy worker started t1 before the release reached it.
    s.started(busy, t1, 1, Instant::now());
    assert!(!s.released(busy, t1, 1));
    assert_eq!(s.lease_of(t1).unwrap().worker, busy);
    assert!(!s.lease_of(t1).unwrap().releasing);
}

#[test]
fn no_stealing_when_disabled_or_when_work_is_queued() {
    let mut s = Scheduler::new(SchedulerConfig {
        stealing: false,
        ..SchedulerConfig::default()
    });
    s.submit("a".into(), 1);
    s.submit("b".into(), 1);
    join(&mut s, 1, 1, 2);
    s.dispatch(Instant::now());
    join(&mut s, 2, 1, 1);
    assert!(s.steal().is_empty());
}
