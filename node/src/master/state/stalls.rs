//! The master's own stalls. A master that did not run for part of a lease
//! timeout (stopped with SIGSTOP, its VM paused, its machine thrashing)
//! neither heard its workers nor answered them, and a worker that heard
//! nothing for the lease timeout gives its connection up. It says so first
//! (`HangingUp`), but a master that stopped reading in the middle of a
//! result may never get that word, only the connection's end. So a
//! connection that ends during such a stall, or within a lease timeout
//! after it, is lost to the master's silence, not to a death: no evidence
//! against the image it ran (`scheduler/blame.rs`).
//!
//! The lease sweeper sweeps every twentieth of the lease timeout; a sweep
//! half a lease timeout or more after the one before it means the master
//! was not running in between. A plain record over an injected `now`.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct Stalls {
    /// A gap between two sweeps this long is a stall.
    limit: Duration,
    /// The last sweep.
    swept: Option<Instant>,
    /// When the last stall ended (the sweep after the gap).
    ended: Option<Instant>,
}

impl Stalls {
    /// Stalls of the master whose lease timeout is `lease_timeout`.
    pub(super) fn new(lease_timeout: Duration) -> Self {
        Stalls {
            limit: lease_timeout / 2,
            swept: None,
            ended: None,
        }
    }

    /// The lease sweeper ran at `now`.
    pub(super) fn swept(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|prev| now.saturating_duration_since(prev) >= self.limit)
        {
            self.ended = Some(now);
        }
        self.swept = Some(now);
    }

    /// Whether, at `now`, the master is stalled (its sweep is overdue by
    /// half a lease timeout: it has only just run again) or was within the
    /// last lease timeout.
    pub(super) fn recent(&self, now: Instant) -> bool {
        let overdue = self
            .swept
            .is_some_and(|s| now.saturating_duration_since(s) >= self.limit);
        let lately = self
            .ended
            .is_some_and(|t| now.saturating_duration_since(t) < 2 * self.limit);
        overdue || lately
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(600);
    const TICK: Duration = Duration::from_millis(30);

    #[test]
    fn sweeps_on_time_are_no_stall() {
        let t0 = Instant::now();
        let mut s = Stalls::new(LEASE);
        assert!(!s.recent(t0), "before any sweep");
        let mut now = t0;
        for _ in 0..100 {
            s.swept(now);
            assert!(!s.recent(now + TICK), "{:?}", now - t0);
            // Late, but by less than half a lease timeout.
            now += LEASE / 2 - Duration::from_millis(1);
        }
    }

    #[test]
    fn an_overdue_sweep_is_a_stall_until_a_lease_timeout_after_it_ends() {
        let t0 = Instant::now();
        let mut s = Stalls::new(LEASE);
        s.swept(t0);
        // Stopped: the next sweep has not come, and a connection ends now.
        let resumed = t0 + 3 * LEASE;
        assert!(s.recent(resumed), "while the sweep is overdue");
        // The sweep comes; the stall is over but recent.
        s.swept(resumed);
        assert!(s.recent(resumed + TICK));
        let mut now = resumed;
        while now < resumed + LEASE - TICK {
            now += TICK;
            s.swept(now);
            assert!(s.recent(now), "{:?} after", now - resumed);
        }
        // A lease timeout after it, no longer.
        now = resumed + LEASE;
        s.swept(now);
        assert!(!s.recent(now));
    }
}
