use std::time::{Duration, Instant};

use tessera_proto::{LeaseRef, TaskEvent, TaskState};

use crate::master::record::TaskRow;

use super::*;

mod archive;
mod blame;
mod delete;
mod drain;
mod fault_props;
mod idle;
mod props;
mod straggler;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Deaths pointing at an image alone before it fails, in [`sched`].
const MAX_ATTEMPTS: u32 = 3;

fn sched() -> Scheduler {
    Scheduler::new(SchedulerConfig {
        max_attempts: MAX_ATTEMPTS,
        max_credits: 8,
        lease_timeout: TIMEOUT,
        stealing: true,
        ..SchedulerConfig::default()
    })
}

fn join(s: &mut Scheduler, w: u64, threads: u32, credits: u32) -> WorkerId {
    let id = WorkerId(w);
    s.worker_joined(id, format!("node-{w}"));
    s.worker_capacity(id, threads);
    s.worker_ready(id, credits);
    id
}

fn lr(task: TaskId, attempt: u32) -> LeaseRef {
    LeaseRef { task, attempt }
}

#[test]
fn a_worker_id_reads_as_in_the_logs() {
    assert_eq!(WorkerId(3).to_string(), "w3");
}

#[test]
fn tasks_go_to_workers_with_credits_oldest_first() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 2);
    assert!(s.dispatch(now).is_empty(), "no worker yet");
    let w = join(&mut s, 1, 1, 1);
    let out = s.dispatch(now);
    assert_eq!(
        out,
        vec![(
            w,
            Assignment {
                task: a,
                attempt: 1,
                name: "a".into(),
                input_len: 1,
                checksum: 0,
            }
        )]
    );
    assert_eq!(s.info(a).unwrap().state, TaskState::Running);
    assert_eq!(s.info(a).unwrap().worker.as_deref(), Some("node-1"));
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert!(s.dispatch(now).is_empty(), "out of credits");
    assert_eq!(s.lease_of(a).unwrap().deadline, now + TIMEOUT);
}

#[test]
fn work_spreads_to_the_worker_with_most_free_credits() {
    let mut s = sched();
    for i in 0..4 {
        s.submit(format!("{i}"), 1);
    }
    join(&mut s, 1, 2, 2);
    join(&mut s, 2, 2, 2);
    let workers: Vec<u64> = s
        .dispatch(Instant::now())
        .into_iter()
        .map(|(w, _)| w.0)
        .collect();
    assert_eq!(workers, vec![1, 2, 1, 2]);
}

#[test]
fn an_image_that_kills_its_worker_alone_fails_after_max_attempts() {
    let now = Instant::now();
    let mut s = sched();
    let t = s.submit("poison".into(), 1);
    for round in 1..=3u64 {
        let w = join(&mut s, round, 1, 1);
        let out = s.dispatch(now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.attempt, round as u32);
        s.started(w, t, round as u32, now);
        let failed = s.worker_lost(w, "connection closed", now);
        if round < 3 {
            assert!(failed.is_empty());
            assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
        } else {
            assert_eq!(failed, vec![t]);
        }
    }
    match s.info(t).unwrap().state {
        TaskState::Failed {
            kind: FailureKind::Crashes,
            reason,
        } => {
            assert!(
                reason.starts_with("failed for its content: 3 attempts ended with evidence against this image alone"),
                "{reason}"
            );
            assert!(
                reason.contains("attempt 1 on node-1: connection closed, while it was the only image running there"),
                "{reason}"
            );
            assert!(reason.contains("attempt 3 on node-3"), "{reason}");
        }
        other => panic!("expected Crashes, got {other:?}"),
    }
}

#[test]
fn heartbeats_extend_leases_and_silence_expires_them() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(t0);
    // A heartbeat at 8 s pushes the deadline to 18 s.
    assert!(
        s.heartbeat(w, &[lr(t, 1)], t0 + Duration::from_secs(8))
            .is_empty()
    );
    assert!(s.expire(t0 + Duration::from_secs(17)).is_empty());
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(18)));
    let expired = s.expire(t0 + Duration::from_secs(18));
    assert_eq!(
        expired,
        vec![lease::Expired {
            task: t,
            worker: w,
            attempt: 1,
            failed: false,
            timed_out: false,
        }]
    );
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert!(s.leases_of(w).is_empty());
    // The worker comes back and names the dead lease: it is told to drop it.
    assert_eq!(
        s.heartbeat(w, &[lr(t, 1)], t0 + Duration::from_secs(19)),
        vec![lr(t, 1)]
    );
    // The expired attempt still counts toward the limit.
    match s.info(t).unwrap().attempts {
        1 => {}
        n => panic!("attempts {n}"),
    }
}

/// Result bytes arriving extend the lease they belong to, like a heartbeat;
/// another attempt's are no sign of life for it.
#[test]
fn progress_on_a_lease_extends_it() {
    let t0 = Instant::now();
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = join(&mut s, 1, 1, 1);
    s.dispatch(t0);
    s.started(w, t, 1, t0);
    s.touch(w, t, 2, t0 + TIMEOUT / 2);
    s.touch(w, t, 1, t0 + TIMEOUT / 2);
    assert!(s.expire(t0 + TIMEOUT).is_empty(), "extended");
    assert_eq!(s.expire(t0 + TIMEOUT / 2 + TIMEOUT).len(), 1, "until then");
}

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

#[test]
fn a_draining_worker_gets_nothing_and_its_unstarted_tasks_go_back() {
    let now = Instant::now();
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 1);
    let w = join(&mut s, 1, 1, 2);
    s.dispatch(now);
    s.started(w, a, 1, Instant::now());
    s.worker_draining(w);
    assert!(s.released(w, b, 1));
    assert!(!s.worker_ready(WorkerId(9), 1));
    s.worker_ready(w, 5);
    assert!(s.dispatch(now).is_empty(), "draining: nothing more");
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert_eq!(s.info(b).unwrap().attempts, 1);
    let other = join(&mut s, 2, 1, 1);
    assert_eq!(
        s.dispatch(now)[0],
        (
            other,
            Assignment {
                task: b,
                attempt: 2,
                name: "b".into(),
                input_len: 1,
                checksum: 0,
            }
        )
    );
}

#[test]
fn credits_are_capped() {
    let mut s = sched();
    join(&mut s, 1, 1, u32::MAX);
    for i in 0..20 {
        s.submit(format!("{i}"), 1);
    }
    assert_eq!(s.dispatch(Instant::now()).len(), 8);
}

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
