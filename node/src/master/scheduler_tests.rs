use proptest::prelude::*;

use super::*;

fn sched() -> Scheduler {
    Scheduler::new(SchedulerConfig {
        max_attempts: 3,
        max_credits: 8,
    })
}

#[test]
fn tasks_go_to_workers_with_credits_oldest_first() {
    let mut s = sched();
    let a = s.submit("a".into(), 1);
    let b = s.submit("b".into(), 2);
    assert!(s.dispatch().is_empty(), "no worker yet");
    s.worker_joined(WorkerId(1));
    s.worker_ready(WorkerId(1), 1);
    let out = s.dispatch();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WorkerId(1));
    assert_eq!(
        out[0].1,
        Assignment {
            task: a,
            attempt: 1,
            name: "a".into(),
            input_len: 1
        }
    );
    assert_eq!(s.info(a).unwrap().state, TaskState::Running);
    assert_eq!(s.info(b).unwrap().state, TaskState::Queued);
    assert!(s.dispatch().is_empty(), "out of credits");
}

#[test]
fn work_spreads_to_the_worker_with_most_free_credits() {
    let mut s = sched();
    for i in 0..4 {
        s.submit(format!("{i}"), 1);
    }
    s.worker_joined(WorkerId(1));
    s.worker_joined(WorkerId(2));
    s.worker_ready(WorkerId(1), 2);
    s.worker_ready(WorkerId(2), 2);
    let workers: Vec<WorkerId> = s.dispatch().into_iter().map(|(w, _)| w).collect();
    assert_eq!(
        workers,
        vec![WorkerId(1), WorkerId(2), WorkerId(1), WorkerId(2)]
    );
}

#[test]
fn a_lost_worker_s_tasks_are_requeued_then_fail_after_max_attempts() {
    let mut s = sched();
    let t = s.submit("poison".into(), 1);
    for round in 1..=3u64 {
        let w = WorkerId(round);
        s.worker_joined(w);
        s.worker_ready(w, 1);
        let out = s.dispatch();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.attempt, round as u32);
        let failed = s.worker_lost(w, "connection closed");
        if round < 3 {
            assert!(failed.is_empty());
            assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
        } else {
            assert_eq!(failed, vec![t]);
        }
    }
    match s.info(t).unwrap().state {
        TaskState::Failed {
            kind: FailureKind::WorkerLost,
            reason,
        } => {
            assert!(reason.contains("gave up after 3 attempts"), "{reason}");
            assert!(
                reason.contains("attempt 1 on w1: connection closed"),
                "{reason}"
            );
            assert!(reason.contains("attempt 3 on w3"), "{reason}");
        }
        other => panic!("expected WorkerLost, got {other:?}"),
    }
}

#[test]
fn first_result_wins_and_later_ones_are_stale() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let (w1, w2) = (WorkerId(1), WorkerId(2));
    s.worker_joined(w1);
    s.worker_ready(w1, 1);
    s.dispatch();
    s.worker_lost(w1, "reset");
    s.worker_joined(w2);
    s.worker_ready(w2, 1);
    assert_eq!(s.dispatch()[0].1.attempt, 2);
    // The old attempt's result still arrives first (e.g. over a new
    // connection): it is a valid result and wins.
    assert_eq!(s.complete(w1, t, 1, 10), Outcome::Accepted);
    assert_eq!(s.complete(w2, t, 2, 11), Outcome::Stale);
    assert_eq!(s.info(t).unwrap().output_len, Some(10));
    assert!(s.running_on(w2).is_empty());
    assert_eq!(s.complete(w2, TaskId(99), 1, 1), Outcome::Unknown);
}

#[test]
fn only_the_live_attempt_can_fail_a_task() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = WorkerId(1);
    s.worker_joined(w);
    s.worker_ready(w, 1);
    s.dispatch();
    assert_eq!(
        s.fail(w, t, 7, FailureKind::Corrupt, "x".into()),
        Outcome::Stale
    );
    assert_eq!(s.info(t).unwrap().state, TaskState::Running);
    assert_eq!(
        s.fail(w, t, 1, FailureKind::Corrupt, "bad CRC".into()),
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
        s.complete(w, t, 1, 5),
        Outcome::Stale,
        "a failed task stays failed"
    );
}

#[test]
fn undeliverable_assignments_go_back_without_using_an_attempt() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = WorkerId(1);
    s.worker_joined(w);
    s.worker_ready(w, 1);
    let a = s.dispatch().remove(0).1;
    s.undeliverable(w, t, a.attempt);
    assert_eq!(s.info(t).unwrap().state, TaskState::Queued);
    assert_eq!(s.info(t).unwrap().attempts, 0);
    assert_eq!(s.queue_len(), 1);
}

#[test]
fn credits_are_capped() {
    let mut s = sched();
    s.worker_joined(WorkerId(1));
    s.worker_ready(WorkerId(1), u32::MAX);
    for i in 0..20 {
        s.submit(format!("{i}"), 1);
    }
    assert_eq!(s.dispatch().len(), 8);
    assert!(!s.worker_ready(WorkerId(9), 1), "unknown worker");
}

#[derive(Debug, Clone)]
enum Op {
    Submit,
    Join(u8),
    Ready(u8, u8),
    Dispatch,
    Complete(u8, u8, u8),
    Fail(u8, u8, u8),
    Lost(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Submit),
        1 => (0..4u8).prop_map(Op::Join),
        2 => (0..4u8, 0..4u8).prop_map(|(w, c)| Op::Ready(w, c)),
        3 => Just(Op::Dispatch),
        2 => (0..4u8, 0..12u8, 0..5u8).prop_map(|(w, t, a)| Op::Complete(w, t, a)),
        1 => (0..4u8, 0..12u8, 0..5u8).prop_map(|(w, t, a)| Op::Fail(w, t, a)),
        1 => (0..4u8).prop_map(Op::Lost),
    ]
}

impl Scheduler {
    /// Structural invariants that every sequence of operations must keep.
    fn check_invariants(&self) {
        // Every queued task is in the queue exactly once, and nothing else is.
        for (id, t) in &self.tasks {
            let n = self.queue.iter().filter(|q| *q == id).count();
            match t.phase {
                Phase::Queued => assert_eq!(n, 1, "queued task {id} in queue {n} times"),
                _ => assert_eq!(n, 0, "non-queued task {id} in queue"),
            }
            assert!(
                t.attempts <= self.config.max_attempts,
                "task {id} over max attempts"
            );
        }
        // A running task is held by exactly the worker its phase names: never two.
        for (id, t) in &self.tasks {
            let holders: Vec<_> = self
                .workers
                .iter()
                .filter(|(_, s)| s.running.contains(id))
                .map(|(w, _)| *w)
                .collect();
            match t.phase {
                Phase::Running { worker, .. } => assert_eq!(holders, vec![worker], "task {id}"),
                _ => assert!(
                    holders.is_empty(),
                    "task {id} held by {holders:?} but not running"
                ),
            }
        }
        for s in self.workers.values() {
            assert!(s.credits <= self.config.max_credits);
        }
    }
}

proptest! {
    #[test]
    fn invariants_hold_and_decided_tasks_never_change(ops in proptest::collection::vec(op(), 1..200)) {
        let mut s = sched();
        let mut decided: BTreeMap<TaskId, TaskState> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Submit => { s.submit("x".into(), 1); }
                Op::Join(w) => s.worker_joined(WorkerId(w.into())),
                Op::Ready(w, c) => { s.worker_ready(WorkerId(w.into()), c.into()); }
                Op::Dispatch => { s.dispatch(); }
                Op::Complete(w, t, a) => { s.complete(WorkerId(w.into()), TaskId(t.into()), a.into(), 1); }
                Op::Fail(w, t, a) => {
                    s.fail(WorkerId(w.into()), TaskId(t.into()), a.into(), FailureKind::Corrupt, "c".into());
                }
                Op::Lost(w) => { s.worker_lost(WorkerId(w.into()), "lost"); }
            }
            s.check_invariants();
            for (id, state) in &decided {
                prop_assert_eq!(&s.info(*id).unwrap().state, state, "decided task changed");
            }
            for id in s.tasks.keys() {
                let st = s.info(*id).unwrap().state;
                if st.is_terminal() { decided.entry(*id).or_insert(st); }
            }
        }
    }

    /// With live workers that keep granting credits and completing, every task ends.
    #[test]
    fn every_task_ends_done_or_failed(n in 1..40usize, losses in proptest::collection::vec(0..3u8, 0..6)) {
        let mut s = sched();
        let ids: Vec<TaskId> = (0..n).map(|i| s.submit(format!("{i}"), 1)).collect();
        let mut next_worker = 0u64;
        let mut live = Vec::new();
        for _ in 0..3 { s.worker_joined(WorkerId(next_worker)); live.push(WorkerId(next_worker)); next_worker += 1; }
        let mut losses = losses.into_iter();
        for _round in 0..1000 {
            for w in &live { s.worker_ready(*w, 2); }
            let out = s.dispatch();
            if out.is_empty() && s.queue_len() == 0 { break; }
            if let Some(l) = losses.next() {
                let victim = live.remove(usize::from(l) % live.len());
                s.worker_lost(victim, "killed");
                s.worker_joined(WorkerId(next_worker)); live.push(WorkerId(next_worker)); next_worker += 1;
            }
            for (w, a) in out {
                if live.contains(&w) { s.complete(w, a.task, a.attempt, 1); }
            }
        }
        for id in ids { prop_assert!(s.info(id).unwrap().state.is_terminal(), "task {} never ended", id); }
    }
}

/// Found by the property test: a stale report from the worker that holds the
/// task under a newer attempt must not drop its hold, or losing that worker
/// would lose the task.
#[test]
fn a_stale_report_does_not_release_the_live_attempt() {
    let mut s = sched();
    let t = s.submit("a".into(), 1);
    let w = WorkerId(1);
    s.worker_joined(w);
    s.worker_ready(w, 1);
    s.dispatch();
    assert_eq!(
        s.complete(w, t, 2, 1),
        Outcome::Stale,
        "attempt 2 was never handed out"
    );
    assert_eq!(
        s.fail(w, t, 5, FailureKind::Corrupt, "x".into()),
        Outcome::Stale
    );
    assert_eq!(s.running_on(w), vec![t]);
    s.worker_lost(w, "gone");
    assert_eq!(
        s.info(t).unwrap().state,
        TaskState::Queued,
        "the task was not lost"
    );
}
