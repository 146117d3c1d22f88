//! How often, lately, a started attempt of an innocent image ended with
//! its worker's death while it ran alone: the background a death alone is
//! weighed against before it counts towards failing an image for its
//! content ([`super::blame`]).
//!
//! A poison image kills every worker that runs it; a worker that crashes
//! for its own reasons kills whatever it runs. One death cannot tell them
//! apart, and in a storm of crashes an innocent image runs alone on dying
//! workers often enough: the simulation found it (seeds 612, 5591 and 7098
//! of 10,000 failed an innocent image after five deaths alone, on slow
//! workers crashing every few seconds). So a task fails for its content
//! only when its deaths alone are also implausible for an innocent image:
//! less than one chance in a million ([`IMPLAUSIBLE`]) of that many among
//! its started attempts that died, were each to end so as often as the
//! started attempts of recently decided innocent tasks did. In a quiet
//! cluster that is `--max-attempts` deaths, as before; in a storm it takes
//! more (and `--max-lost` still bounds the task).
//!
//! The background is read from decided tasks' counters (evidence and
//! strikes), which are durable in their rows: a master that restarts
//! reads them back from the record ([`Background::from_rows`]), so it
//! still knows it is in a storm.

use std::collections::VecDeque;

use tessera_proto::{FailureKind, TaskId};

use crate::master::record::{RowState, TaskRow};

/// Decided tasks remembered (the most recent ones).
pub const WINDOW: usize = 256;
/// Before much is known the rate leans on a prior: as if this many
/// attempts had run, one in a thousand ending with a death alone.
const PRIOR_ATTEMPTS: f64 = 100.0;
const PRIOR_RATE: f64 = 0.001;
/// The largest chance, for an innocent image, of the deaths alone seen
/// with it at which it is still failed for its content.
pub const IMPLAUSIBLE: f64 = 1e-6;

/// What the most recently decided innocent tasks went through: for each,
/// its deaths alone and its started attempts.
#[derive(Debug, Clone, Default)]
pub struct Background {
    recent: VecDeque<(u32, u32)>,
}

impl Background {
    /// A task was decided with these counters. A task failed for its
    /// content is no background for the others (it is not innocent).
    pub fn decided(&mut self, evidence: u32, strikes: u32, done: bool, kind: Option<FailureKind>) {
        if matches!(kind, Some(FailureKind::Crashes | FailureKind::TimedOut)) {
            return;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        // Started attempts: every death while it executed, and the run
        // that produced its result.
        self.recent.push_back((evidence, strikes + u32::from(done)));
    }

    /// The background a restarted master starts from: the decided tasks
    /// among `rows`, the most recent (highest ids) last.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = (TaskId, &'a TaskRow)>) -> Background {
        let mut decided: Vec<(TaskId, &TaskRow)> = rows
            .into_iter()
            .filter(|(_, r)| matches!(r.state, RowState::Done { .. } | RowState::Failed { .. }))
            .collect();
        decided.sort_by_key(|(id, _)| *id);
        let mut b = Background::default();
        for (_, r) in decided.iter().rev().take(WINDOW).rev() {
            let kind = match &r.state {
                RowState::Failed { kind, .. } => Some(*kind),
                _ => None,
            };
            b.decided(r.evidence, r.strikes, kind.is_none(), kind);
        }
        b
    }

    /// How often a started attempt of those tasks ended with a death alone.
    pub fn rate(&self) -> f64 {
        let (deaths, started) = self.recent.iter().fold((0u64, 0u64), |(d, s), (e, n)| {
            (d + u64::from(*e), s + u64::from(*n))
        });
        (deaths as f64 + PRIOR_ATTEMPTS * PRIOR_RATE) / (started as f64 + PRIOR_ATTEMPTS)
    }
}

/// The chance of at least `k` successes in `n` trials of chance `p`.
pub fn at_least(k: u32, n: u32, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // The terms from k up: C(n, i) p^i (1-p)^(n-i).
    let mut term = (0..k).fold(1.0, |c, i| c * f64::from(n - i) / f64::from(i + 1))
        * p.powi(k as i32)
        * (1.0 - p).powi((n - k) as i32);
    let mut sum = 0.0;
    for i in k..=n {
        sum += term;
        if i < n {
            term *= f64::from(n - i) / f64::from(i + 1) * p / (1.0 - p);
        }
    }
    sum.min(1.0)
}

/// `k` deaths alone among `n` hand-outs are implausible for an innocent
/// image when each ends so with chance `p`.
pub fn implausible(k: u32, n: u32, p: f64) -> bool {
    at_least(k, n.max(k), p) < IMPLAUSIBLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_tail_is_exact_on_small_cases() {
        assert_eq!(at_least(0, 3, 0.5), 1.0);
        assert_eq!(at_least(4, 3, 0.5), 0.0);
        assert_eq!(at_least(2, 3, 1.0), 1.0);
        assert!((at_least(3, 3, 0.5) - 0.125).abs() < 1e-12);
        assert!((at_least(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((at_least(1, 2, 0.1) - 0.19).abs() < 1e-12);
        assert!((at_least(3, 3, 0.001) - 1e-9).abs() < 1e-18);
    }

    #[test]
    fn three_deaths_alone_are_implausible_in_a_quiet_cluster_but_not_in_a_storm() {
        assert!(implausible(3, 3, PRIOR_RATE));
        assert!(implausible(3, 5, 0.002));
        assert!(!implausible(3, 3, 0.1), "storm");
        assert!(!implausible(5, 10, 0.3), "seed 612's image, in its storm");
        assert!(implausible(8, 8, 0.1), "eight in a row, even in a storm");
    }

    /// The rate comes from decided tasks' durable counters, so a restarted
    /// master reads the same from its rows; failures for content and tasks
    /// not yet decided are no background.
    #[test]
    fn the_background_is_recent_innocent_deaths_alone_per_started_attempt() {
        let mut b = Background::default();
        assert!((b.rate() - PRIOR_RATE).abs() < 1e-12);
        // Ten tasks done, each after one death alone: 10 of 20 started.
        for _ in 0..10 {
            b.decided(1, 1, true, None);
        }
        b.decided(5, 5, false, Some(FailureKind::Crashes));
        b.decided(1, 1, false, Some(FailureKind::TimedOut));
        let want = (10.0 + 0.1) / (20.0 + PRIOR_ATTEMPTS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());
        // A task lost to machine faults counts: its deaths were no fault of its own.
        b.decided(2, 3, false, Some(FailureKind::WorkerLost));
        let want = (12.0 + 0.1) / (23.0 + PRIOR_ATTEMPTS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());

        let row = |evidence, strikes, state| TaskRow {
            name: "t".into(),
            input_len: 1,
            input_checksum: 0,
            key: 0,
            submitted_ms: 0,
            attempts: strikes + 1,
            lost: strikes,
            history: Vec::new(),
            state,
            strikes,
            evidence,
            submitters: Vec::new(),
        };
        let done = RowState::Done {
            attempt: 2,
            output_len: 1,
            output_checksum: 0,
            done_ms: 0,
            worker: "w".into(),
            removed: true,
        };
        let rows: Vec<(TaskId, TaskRow)> = (1..=10)
            .map(|i| (TaskId(i), row(1, 1, done.clone())))
            .chain([(TaskId(11), row(4, 4, RowState::Queued))])
            .collect();
        let restored = Background::from_rows(rows.iter().map(|(id, r)| (*id, r)));
        let want = (10.0 + 0.1) / (20.0 + PRIOR_ATTEMPTS);
        assert!(
            (restored.rate() - want).abs() < 1e-12,
            "{}",
            restored.rate()
        );
    }

    #[test]
    fn only_the_most_recent_tasks_count() {
        let mut b = Background::default();
        for _ in 0..WINDOW {
            b.decided(3, 3, true, None);
        }
        for _ in 0..WINDOW {
            b.decided(0, 0, true, None);
        }
        let want = 0.1 / (WINDOW as f64 + PRIOR_ATTEMPTS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());
    }
}
