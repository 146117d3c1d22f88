//! The clock seam in the simulation: monotonic time is the simulated
//! host's (through tokio, as in [`SystemClock`]), and the "system's" wall
//! clock is a fixed start plus the simulated time elapsed plus whatever
//! steps the simulation applied (an administrator or NTP setting it), so a
//! seed fixes every timestamp the master records.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Instant,
};

use tessera_node::clock::{Clock, SystemClock};

/// 2026-01-01T00:00:00Z, in milliseconds since the Unix epoch.
const START_MS: u64 = 1_767_225_600_000;

/// See the module docs. Clones share their steps.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    stepped_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// The wall clock is set `by_ms` forward (negative: back).
    pub fn step_wall(&self, by_ms: i64) {
        self.stepped_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn system_wall_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
        (START_MS + elapsed).saturating_add_signed(self.stepped_ms.load(Ordering::SeqCst))
    }
}
