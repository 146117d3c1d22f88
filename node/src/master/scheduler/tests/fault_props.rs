//! Property test of the promise under faults: a model of workers (one and two
//! threads, prefetching) that run tasks, some of which are poison (they kill
//! the worker that starts them), while workers are killed and everyone pauses
//! past the lease timeout at random. Workers keep running attempts the master
//! has already taken back and deliver their results late, so stale and expired
//! attempts are reached too. Checked at every step: the structural invariants
//! (no task has two live leases); at the end: every task ended, every poison
//! failed as `Crashes` after at least `max_attempts` deaths pointing at it
//! alone (more when random kills make such deaths plausible for an innocent
//! image: `background.rs`), no task accepted twice, and no innocent task
//! failed — unless random
//! kills struck it `max_attempts` times while it was the only image running on
//! the killed worker, which is exactly what a poison looks like from outside
//! and which the model counts (real faults make that vanishingly rare; the
//! chaos test with real processes checks that none happens).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug)]
struct ModelWorker {
    id: WorkerId,
    threads: usize,
    /// Attempts handed to it, in arrival order, that it has not finished or dropped.
    held: Vec<(TaskId, u32)>,
    /// The ones it is executing.
    running: BTreeSet<(TaskId, u32)>,
}

struct Model {
    s: Scheduler,
    workers: Vec<ModelWorker>,
    next_worker: u64,
    poison: BTreeSet<TaskId>,
    accepted: BTreeSet<TaskId>,
    /// Random kills that struck a task while it ran alone on the worker.
    kills_alone: BTreeMap<TaskId, u32>,
    now: Instant,
}

impl Model {
    fn join(&mut self, threads: usize) {
        let id = WorkerId(self.next_worker);
        self.next_worker += 1;
        self.s.worker_joined(id, format!("n{}", id.0));
        self.s.worker_capacity(id, threads as u32);
        self.s.worker_ready(id, threads as u32 + 1);
        self.workers.push(ModelWorker {
            id,
            threads,
            held: Vec::new(),
            running: BTreeSet::new(),
        });
    }

    /// The worker at `i` dies; a supervisor starts another of the same size.
    fn kill(&mut self, i: usize) {
        if self.workers[i].running.len() == 1 {
            let (t, _) = *self.workers[i].running.iter().next().unwrap();
            *self.kills_alone.entry(t).or_default() += 1;
        }
        self.crash(i);
    }

    /// The worker at `i` crashes (a poison, or a kill).
    fn crash(&mut self, i: usize) {
        let w = self.workers.remove(i);
        self.s.worker_lost(w.id, "killed", self.now);
        self.s.check_invariants();
        self.join(w.threads);
    }

    fn hand_out(&mut self, out: Vec<(WorkerId, Assignment)>) {
        for (w, a) in out {
            if let Some(mw) = self.workers.iter_mut().find(|m| m.id == w) {
                mw.held.push((a.task, a.attempt));
            }
        }
    }

    fn deliver(&mut self, i: usize, task: TaskId, attempt: u32) -> Result<(), TestCaseError> {
        let w = self.workers[i].id;
        let (outcome, _) = self.s.complete(w, task, attempt, 1, 0, self.now);
        if outcome == Outcome::Accepted {
            prop_assert!(self.accepted.insert(task), "task {} accepted twice", task);
        }
        let mw = &mut self.workers[i];
        mw.held.retain(|h| *h != (task, attempt));
        mw.running.remove(&(task, attempt));
        self.s.worker_ready(w, 1);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn no_innocent_task_fails_and_poison_is_found(
        n in 1..30usize,
        poison_at in proptest::collection::btree_set(0..30usize, 0..3),
        sizes in proptest::collection::vec(1..3usize, 2..5),
        events in proptest::collection::vec(0..8u8, 0..40),
    ) {
        let mut m = Model {
            s: sched(),
            workers: Vec::new(),
            next_worker: 0,
            poison: BTreeSet::new(),
            accepted: BTreeSet::new(),
            kills_alone: BTreeMap::new(),
            now: Instant::now(),
        };
        let ids: Vec<TaskId> = (0..n).map(|i| m.s.submit(format!("{i}"), 1)).collect();
        m.poison = poison_at.iter().filter(|i| **i < n).map(|i| ids[*i]).collect();
        for t in &sizes { m.join(*t); }
        let mut deaths_alone: BTreeMap<TaskId, u32> = BTreeMap::new();
        let mut events = events.into_iter();
        for round in 0..3000usize {
            if ids.iter().all(|t| m.s.info(*t).unwrap().state.is_terminal()) { break; }
            let out = m.s.dispatch(m.now);
            m.hand_out(out);
            let backups = m.s.backups(m.now);
            m.hand_out(backups.into_iter().map(|b| (b.worker, b.assignment)).collect());
            for o in m.s.steal() {
                let i = m.workers.iter().position(|w| w.id == o.victim).unwrap();
                let started = m.workers[i].running.contains(&(o.task, o.attempt));
                if !started && m.s.released(o.victim, o.task, o.attempt) {
                    m.workers[i].held.retain(|h| *h != (o.task, o.attempt));
                }
            }
            let out = m.s.dispatch(m.now);
            m.hand_out(out);
            m.s.check_invariants();
            match events.next() {
                Some(0) => { let i = round % m.workers.len(); m.kill(i); }
                Some(1) => {
                    // Everyone pauses past the lease timeout, then resumes.
                    m.now += TIMEOUT;
                    m.s.expire(m.now);
                }
                Some(2) => {
                    // A worker delivers everything it runs before its next
                    // heartbeat, expired attempts included.
                    let i = round % m.workers.len();
                    let running: Vec<_> = m.workers[i].running.iter().copied().collect();
                    for (t, a) in running {
                        if !m.poison.contains(&t) { m.deliver(i, t, a)?; }
                    }
                }
                Some(3) => { m.now += Duration::from_secs(2); m.s.expire(m.now); }
                _ => {}
            }
            m.s.check_invariants();
            // Heartbeats: the worker drops what the master says is dead.
            for i in 0..m.workers.len() {
                let w = m.workers[i].id;
                m.s.worker_seen(w);
                let refs: Vec<LeaseRef> = m.workers[i].held.iter().map(|(t, a)| lr(*t, *a)).collect();
                for d in m.s.heartbeat(w, &refs, m.now) {
                    let mw = &mut m.workers[i];
                    mw.held.retain(|h| *h != (d.task, d.attempt));
                    mw.running.remove(&(d.task, d.attempt));
                    m.s.worker_ready(w, 1);
                }
            }
            // Each worker starts what fits its threads, in arrival order; a
            // poison kills it at once.
            let mut i = 0;
            while i < m.workers.len() {
                let mut died = false;
                loop {
                    let mw = &m.workers[i];
                    if mw.running.len() >= mw.threads { break; }
                    let Some(&(t, a)) = mw.held.iter().find(|h| !mw.running.contains(h)) else { break };
                    let w = mw.id;
                    m.workers[i].running.insert((t, a));
                    m.s.started(w, t, a, m.now);
                    if m.poison.contains(&t) {
                        if m.workers[i].running.len() == 1
                            && m.s.lease_of(t).is_some_and(|l| l.worker == w && l.attempt == a)
                        {
                            *deaths_alone.entry(t).or_default() += 1;
                        }
                        m.crash(i);
                        died = true;
                        break;
                    }
                }
                if !died { i += 1; }
            }
            m.s.check_invariants();
            // Each worker finishes one image it runs (the oldest), every other round.
            if round % 2 == 0 {
                for i in 0..m.workers.len() {
                    let first = m.workers[i].running.iter().next().copied();
                    if let Some((t, a)) = first { m.deliver(i, t, a)?; }
                }
            }
            m.s.check_invariants();
        }
        for t in &ids {
            let state = m.s.info(*t).unwrap().state;
            if m.poison.contains(t) {
                let crashed = matches!(state, TaskState::Failed { kind: FailureKind::Crashes, .. });
                prop_assert!(crashed, "poison {} ended {:?}", t, state);
                prop_assert!(deaths_alone.get(t).copied().unwrap_or(0) >= MAX_ATTEMPTS,
                    "poison {} failed after fewer than max_attempts deaths alone", t);
            } else if m.kills_alone.get(t).copied().unwrap_or(0) < MAX_ATTEMPTS {
                prop_assert_eq!(&state, &TaskState::Done, "innocent task {} ended {:?}", t, state);
            } else {
                prop_assert!(state.is_terminal());
            }
        }
    }
}
