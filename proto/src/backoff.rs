//! The one jittered exponential backoff: every retry loop (a worker
//! reconnecting, a client riding out a master restart, a submission the
//! master answered `Busy`) waits with it.

use std::time::Duration;

use crate::determinism;

/// Pauses that double from `first` up to `max`, each drawn between half
/// and all of its nominal length, so that peers who failed together do not
/// retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first.min(max),
        }
    }

    /// The next pause (jittered), doubling the one after it.
    pub fn next_pause(&mut self) -> Duration {
        let nominal = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        nominal.mul_f64(0.5 + determinism::random::<f64>() * 0.5)
    }

    /// Back to the first pause (after a success).
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_the_cap_with_jitter_between_half_and_whole() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let nominal = [100, 200, 400, 700, 700];
        for n in nominal {
            let p = b.next_pause();
            let n = Duration::from_millis(n);
            assert!(p >= n / 2 && p <= n, "{p:?} for {n:?}");
        }
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_peers_that_fail_together() {
        let pauses: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_pause())
            .collect();
        assert!(pauses.len() > 10, "{pauses:?}");
    }
}
