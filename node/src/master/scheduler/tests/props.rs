//! Property tests: random sequences of scheduler operations keep its
//! invariants, and every task ends done or failed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tessera_proto::TaskState;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Submit,
    Join(u8),
    Ready(u8, u8),
    Dispatch,
    Started(u8, u8, u8),
    Complete(u8, u8, u8),
    Fail(u8, u8, u8),
    Released(u8, u8, u8),
    Heartbeat(u8, u8, u8),
    Steal,
    Tick(u8),
    Draining(u8),
    Lost(u8),
    Cancel(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let wta = || (0..4u8, 0..12u8, 0..5u8);
    prop_oneof![
        3 => Just(Op::Submit),
        1 => (0..4u8).prop_map(Op::Join),
        2 => (0..4u8, 0..4u8).prop_map(|(w, c)| Op::Ready(w, c)),
        3 => Just(Op::Dispatch),
        2 => wta().prop_map(|(w, t, a)| Op::Started(w, t, a)),
        2 => wta().prop_map(|(w, t, a)| Op::Complete(w, t, a)),
        1 => wta().prop_map(|(w, t, a)| Op::Fail(w, t, a)),
        1 => wta().prop_map(|(w, t, a)| Op::Released(w, t, a)),
        1 => wta().prop_map(|(w, t, a)| Op::Heartbeat(w, t, a)),
        2 => Just(Op::Steal),
        1 => (0..20u8).prop_map(Op::Tick),
        1 => (0..4u8).prop_map(Op::Draining),
        1 => (0..4u8).prop_map(Op::Lost),
        1 => (0..12u8).prop_map(Op::Cancel),
    ]
}

impl Scheduler {
    /// Panics at the first broken invariant (`invariants.rs`).
    pub(super) fn check_invariants(&self) {
        if let Some(broken) = self.broken_invariant() {
            panic!("{broken}");
        }
    }
}

proptest! {
    #[test]
    fn invariants_hold_and_decided_tasks_never_change(ops in proptest::collection::vec(op(), 1..250)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = sched();
        let mut decided: BTreeMap<TaskId, TaskState> = BTreeMap::new();
        let w = |w: u8| WorkerId(w.into());
        let t = |t: u8| TaskId(t.into());
        for op in ops {
            match op {
                Op::Submit => { s.submit("x".into(), 1); }
                Op::Join(x) => { s.worker_joined(w(x), format!("n{x}")); s.worker_capacity(w(x), u32::from(x % 2) + 1); }
                Op::Ready(x, c) => { s.worker_ready(w(x), c.into()); }
                Op::Dispatch => { s.dispatch(now); }
                Op::Started(x, y, a) => s.started(w(x), t(y), a.into(), now),
                Op::Complete(x, y, a) => { s.complete(w(x), t(y), a.into(), 1, 0, Instant::now()); }
                Op::Fail(x, y, a) => { s.fail(w(x), t(y), a.into(), FailureKind::Corrupt, "c".into(), Instant::now()); }
                Op::Released(x, y, a) => { s.released(w(x), t(y), a.into()); }
                Op::Heartbeat(x, y, a) => { s.heartbeat(w(x), &[lr(t(y), a.into())], now); }
                Op::Steal => { s.steal(); }
                Op::Tick(secs) => { now += Duration::from_secs(secs.into()); s.expire(now); }
                Op::Draining(x) => s.worker_draining(w(x)),
                Op::Lost(x) => { s.worker_lost(w(x), "lost", now); }
                Op::Cancel(y) => { s.cancel(t(y)); }
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

    /// With workers that keep working (some killed, some paused past their
    /// lease, stealing on), every task ends done or failed, and no task is
    /// ever accepted twice.
    #[test]
    fn every_task_ends_done_or_failed(
        n in 1..40usize,
        events in proptest::collection::vec(0..6u8, 0..12),
    ) {
        let mut now = Instant::now();
        let mut s = sched();
        let ids: Vec<TaskId> = (0..n).map(|i| s.submit(format!("{i}"), 1)).collect();
        let mut next_worker = 0u64;
        let mut live = Vec::new();
        for _ in 0..3 {
            live.push(join(&mut s, next_worker, 1, 2));
            next_worker += 1;
        }
        let mut events = events.into_iter();
        let mut accepted = BTreeSet::new();
        for _round in 0..2000 {
            for w in &live { s.worker_seen(*w); s.worker_ready(*w, 1); }
            let out = s.dispatch(now);
            for o in s.steal() { s.released(o.victim, o.task, o.attempt); }
            let out: Vec<_> = out.into_iter().chain(s.dispatch(now)).collect();
            if out.is_empty() && s.queue_len() == 0 && s.task_counts().running == 0 { break; }
            match events.next() {
                Some(0) => {
                    // Kill one worker and start a new one.
                    let victim = live.remove(0);
                    s.worker_lost(victim, "killed", now);
                    live.push(join(&mut s, next_worker, 1, 2));
                    next_worker += 1;
                }
                Some(1) => {
                    // Everyone pauses past the lease timeout.
                    now += TIMEOUT;
                    s.expire(now);
                }
                _ => {}
            }
            for (w, a) in out {
                if live.contains(&w) {
                    s.started(w, a.task, a.attempt, now);
                    if s.complete(w, a.task, a.attempt, 1, 0, Instant::now()).0 == Outcome::Accepted {
                        prop_assert!(accepted.insert(a.task), "task {} accepted twice", a.task);
                    }
                }
            }
            // Results for the leases still live arrive too (those of expired
            // leases were sent above, before event 1 expired them).
            for w in live.clone() {
                for task in s.leases_of(w) {
                    let attempt = s.lease_of(task).unwrap().attempt;
                    if s.complete(w, task, attempt, 1, 0, Instant::now()).0 == Outcome::Accepted {
                        prop_assert!(accepted.insert(task), "task {} accepted twice", task);
                    }
                }
            }
        }
        for id in ids { prop_assert!(s.info(id).unwrap().state.is_terminal(), "task {} never ended", id); }
    }
}
