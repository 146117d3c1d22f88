//! The scheduler's structural invariants, which every sequence of
//! operations must keep. The property tests check them after every step;
//! a master asked to (`MasterConfig::invariants`, the simulation) checks
//! them on every operation of a live cluster.

use tessera_proto::FailureKind;

use super::{Phase, Scheduler};

impl Scheduler {
    /// The first invariant the state breaks, if any.
    pub fn broken_invariant(&self) -> Option<String> {
        // Every queued task is in the queue exactly once, and nothing else is.
        for (id, t) in &self.tasks {
            let n = self.queue.iter().filter(|q| *q == id).count();
            match (&t.phase, n) {
                (Phase::Queued, 1) => {}
                (Phase::Queued, n) => return Some(format!("queued task {id} in queue {n} times")),
                (_, 0) => {}
                (_, _) => return Some(format!("non-queued task {id} in queue")),
            }
            // Failed for its content only on at least `max_attempts` pieces
            // of evidence (more in a storm: `background.rs`).
            if let Phase::Failed {
                kind: FailureKind::Crashes | FailureKind::TimedOut,
                ..
            } = t.phase
                && t.evidence < self.config.max_attempts
            {
                return Some(format!(
                    "task {id} failed for its content on too little evidence"
                ));
            }
            if t.lost - t.evidence > self.config.max_lost {
                return Some(format!("task {id} over max lost"));
            }
            if !(t.evidence <= t.strikes && t.strikes <= t.lost) {
                return Some(format!("task {id}: evidence, strikes and losses disagree"));
            }
        }
        // A leased task is held by exactly the worker its lease names: never two.
        for (id, t) in &self.tasks {
            let holders: Vec<_> = self
                .workers
                .iter()
                .filter(|(_, s)| s.leases.contains(id))
                .map(|(w, _)| *w)
                .collect();
            match &t.phase {
                Phase::Leased(l) if holders != vec![l.worker] => {
                    return Some(format!(
                        "task {id} leased to {} but held by {holders:?}",
                        l.worker
                    ));
                }
                Phase::Leased(l) if l.attempt > t.attempts => {
                    return Some(format!("task {id}: a lease of an attempt never handed out"));
                }
                // A suspect runs isolated, and only a suspect does: strikes
                // change only when a lease ends, and a backup (not isolated)
                // is never launched for a suspect.
                Phase::Leased(l) if l.isolated != (t.strikes > 0) => {
                    return Some(format!(
                        "task {id}: isolated {} with {} strikes",
                        l.isolated, t.strikes
                    ));
                }
                Phase::Leased(_) => {}
                _ if !holders.is_empty() => {
                    return Some(format!("task {id} held by {holders:?} but not leased"));
                }
                _ => {}
            }
        }
        for (w, s) in &self.workers {
            if s.credits > self.config.max_credits {
                return Some(format!("worker {w} over max credits"));
            }
            if s.draining && s.credits != 0 {
                return Some(format!("draining worker {w} has credits"));
            }
        }
        None
    }
}
