//! How often, lately, a worker died while an innocent image ran there
//! alone, per second of running: the background a death alone is weighed
//! against before it counts towards failing an image for its content
//! ([`super::blame`]).
//!
//! A poison image kills every worker that runs it; a worker that crashes
//! for its own reasons kills whatever it runs. One death cannot tell them
//! apart, and in a storm of crashes an innocent image runs alone on dying
//! workers often enough: the simulation found it (seeds 612, 5591 and 7098
//! of 10,000 failed an innocent image after five deaths alone, on slow
//! workers crashing every few seconds). What does tell them apart is time:
//! a poison kills as it is decoded, an innocent image only if a death
//! happens to fall while it runs, and the longer it runs, the likelier.
//! So deaths are counted per second of running (from `Started` to the
//! attempt's end), and a task fails for its content only when its deaths
//! alone are also implausible for an innocent image: less than one chance
//! in a million ([`IMPLAUSIBLE`]) that the cluster's rate of deaths alone
//! struck that many times in the time its attempts ran. In a quiet
//! cluster that is `--max-attempts` deaths, as before; in a storm an image
//! that dies at once still fails at `--max-attempts`, one that dies at
//! random points of long runs takes more (and `--max-lost` still bounds
//! it). (Counted per attempt instead, seed 5591 still failed: its image
//! kept landing on slow workers, whose attempts last longer.)
//!
//! The background is read from decided tasks' counters (deaths alone and
//! running time), which are durable in their rows: a master that restarts
//! reads them back from the record ([`Background::from_rows`]), so it
//! still knows it is in a storm.

use std::collections::VecDeque;

use tessera_proto::{FailureKind, TaskId};

use crate::master::record::{RowState, TaskRow};

/// Decided tasks remembered (the most recent ones).
pub const WINDOW: usize = 256;
/// Before much is known the rate leans on a prior: as if images had run
/// this long, with one death alone in a thousand seconds.
const PRIOR_SECONDS: f64 = 100.0;
const PRIOR_RATE: f64 = 0.001;
/// The largest chance, for an innocent image, of the deaths alone seen
/// with it at which it is still failed for its content.
pub const IMPLAUSIBLE: f64 = 1e-6;

/// What the most recently decided innocent tasks went through: for each,
/// its deaths alone and how long its attempts ran (ms).
#[derive(Debug, Clone, Default)]
pub struct Background {
    recent: VecDeque<(u32, u64)>,
}

impl Background {
    /// A task was decided with these counters (`kind`: how it failed, if
    /// it did). A task failed for its content is no background for the
    /// others (it is not innocent).
    pub fn decided(&mut self, evidence: u32, exposure_ms: u64, kind: Option<FailureKind>) {
        if matches!(kind, Some(FailureKind::Crashes | FailureKind::TimedOut)) {
            return;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((evidence, exposure_ms));
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
            b.decided(r.evidence, r.exposure_ms, kind);
        }
        b
    }

    /// Deaths alone per second of running, among those tasks.
    pub fn rate(&self) -> f64 {
        let (deaths, ms) = self
            .recent
            .iter()
            .fold((0u64, 0u64), |(d, t), (e, ms)| (d + u64::from(*e), t + ms));
        (deaths as f64 + PRIOR_SECONDS * PRIOR_RATE) / (ms as f64 / 1e3 + PRIOR_SECONDS)
    }
}

/// The chance that a Poisson process of mean `mean` counts at least `k`.
pub fn at_least(k: u32, mean: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if mean <= 0.0 {
        return 0.0;
    }
    if f64::from(k) <= mean {
        // Near certain: one minus the few terms below k.
        let (mut term, mut below) = ((-mean).exp(), 0.0);
        for i in 0..k {
            below += term;
            term *= mean / f64::from(i + 1);
        }
        return (1.0 - below).clamp(0.0, 1.0);
    }
    // The terms from k up, e^-m m^i / i!, fall from the first; it is
    // computed in logarithms so that it does not underflow on the way.
    let ln_first =
        -mean + f64::from(k) * mean.ln() - (1..=k).map(|i| f64::from(i).ln()).sum::<f64>();
    let (mut term, mut sum, mut i) = (ln_first.exp(), 0.0, k);
    // Until a term no longer moves the sum (or the first underflowed to 0).
    while term > sum * 1e-17 {
        sum += term;
        i += 1;
        term *= mean / f64::from(i);
    }
    sum.min(1.0)
}

/// `k` deaths alone in `exposure_ms` of running are implausible for an
/// innocent image when deaths alone come at `rate` a second.
pub fn implausible(k: u32, exposure_ms: u64, rate: f64) -> bool {
    at_least(k, rate * exposure_ms as f64 / 1e3) < IMPLAUSIBLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poisson_tail_is_exact_on_small_cases() {
        assert_eq!(at_least(0, 2.0), 1.0);
        assert_eq!(at_least(3, 0.0), 0.0);
        let e = (-1.0f64).exp();
        assert!((at_least(1, 1.0) - (1.0 - e)).abs() < 1e-12);
        assert!((at_least(2, 1.0) - (1.0 - 2.0 * e)).abs() < 1e-12);
        // Small means: the first term dominates, m^k / k!.
        assert!((at_least(3, 1e-3) / (1e-9 / 6.0) - 1.0).abs() < 1e-2);
        // A large mean: at least a few is near certain.
        assert!(at_least(3, 50.0) > 0.999_999);
        assert_eq!(at_least(3, 1e6), 1.0);
        // Far in the tail, without underflowing to nothing on the way.
        assert!(at_least(200, 1.0) == 0.0 || at_least(200, 1.0) < 1e-300);
        assert!((at_least(5, 2.0) - 0.052_653_017_343_711_1).abs() < 1e-12);
        // Far in the tail yet above zero: every term counts, however small.
        let tiny = at_least(40, 1e-3);
        assert!(
            (tiny / 1.224_422_298_234_989_8e-168 - 1.0).abs() < 1e-9,
            "{tiny:e}"
        );
        // A mean above k: one minus the terms below k (0 to 3 here).
        assert!((at_least(4, 5.0) - 0.734_974_084_702_638_3).abs() < 1e-12);
    }

    #[test]
    fn deaths_at_once_are_implausible_even_in_a_storm_deaths_in_long_runs_are_not() {
        // A quiet cluster: three deaths alone within a few seconds of running.
        assert!(implausible(3, 3_000, PRIOR_RATE));
        // A storm: a death alone every ten seconds of running.
        let storm = 0.1;
        // A poison dies as it starts: 20 ms of running each time.
        assert!(implausible(3, 60, storm));
        // An innocent image run alone for 2 s five times (seed 5591).
        assert!(!implausible(5, 10_000, storm));
    }

    #[test]
    fn the_background_is_recent_innocent_deaths_alone_per_second_of_running() {
        let mut b = Background::default();
        assert!((b.rate() - PRIOR_RATE).abs() < 1e-12);
        // Ten tasks done, each after one death alone in 20 s of running.
        for _ in 0..10 {
            b.decided(1, 20_000, None);
        }
        b.decided(5, 1_000, Some(FailureKind::Crashes));
        b.decided(1, 600_000, Some(FailureKind::TimedOut));
        let want = (10.0 + 0.1) / (200.0 + PRIOR_SECONDS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());
        // A task lost to machine faults counts: its deaths were no fault of its own.
        b.decided(2, 40_000, Some(FailureKind::WorkerLost));
        let want = (12.0 + 0.1) / (240.0 + PRIOR_SECONDS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());

        let row = |evidence, exposure_ms, state| TaskRow {
            name: "t".into(),
            input_len: 1,
            input_checksum: 0,
            key: 0,
            submitted_ms: 0,
            attempts: 2,
            lost: 1,
            history: Vec::new(),
            state,
            strikes: evidence,
            evidence,
            submitters: Vec::new(),
            exposure_ms,
        };
        let done = RowState::Done {
            attempt: 2,
            output_len: 1,
            output_checksum: 0,
            done_ms: 0,
            worker: "w".into(),
            removed: true,
        };
        let failed = |kind| RowState::Failed {
            kind,
            reason: "r".into(),
        };
        // The same tasks as above, read back from their rows: a failure
        // for the content is left out, one for machine faults counts; a
        // task not decided yet is no evidence.
        let rows: Vec<(TaskId, TaskRow)> = (1..=10)
            .map(|i| (TaskId(i), row(1, 20_000, done.clone())))
            .chain([
                (TaskId(11), row(5, 1_000, failed(FailureKind::Crashes))),
                (TaskId(12), row(1, 600_000, failed(FailureKind::TimedOut))),
                (TaskId(13), row(2, 40_000, failed(FailureKind::WorkerLost))),
                (TaskId(14), row(4, 9_000, RowState::Queued)),
            ])
            .collect();
        let restored = Background::from_rows(rows.iter().map(|(id, r)| (*id, r)));
        let want = (12.0 + 0.1) / (240.0 + PRIOR_SECONDS);
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
            b.decided(3, 1_000, None);
        }
        for _ in 0..WINDOW {
            b.decided(0, 1_000, None);
        }
        let want = 0.1 / (WINDOW as f64 + PRIOR_SECONDS);
        assert!((b.rate() - want).abs() < 1e-12, "{}", b.rate());
    }
}
