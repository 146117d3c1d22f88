//! The clock seam: lease decisions take `now` from a [`Clock`], so tests and
//! simulations can drive time by hand; the record's timestamps come from a
//! [`SteadyWall`] over the same clock.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// A monotonic clock, and what the system says the wall-clock time is.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;

    /// Milliseconds since the Unix epoch, as the system says now. It may
    /// step either way (an administrator, NTP): nothing decides by it
    /// directly; see [`SteadyWall`].
    fn system_wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// Wall-clock time that moves exactly as fast as the monotonic clock: the
/// system's wall clock is read once, when it is made (the master's start),
/// and from then on time is that reading plus the monotonic time elapsed.
///
/// The record's timestamps and retention read this, never the system's wall
/// clock: a step of the system clock while the master runs (a day forward,
/// an hour back) neither expires every kept result at once nor keeps them
/// forever, and stamps never go backward. A step while the master is down
/// cannot be told from the time it was down, and is taken as such at the
/// next start.
#[derive(Debug, Clone, Copy)]
pub struct SteadyWall {
    at: Instant,
    wall_ms: u64,
}

impl SteadyWall {
    pub fn new(clock: &dyn Clock) -> Self {
        SteadyWall {
            at: clock.now(),
            wall_ms: clock.system_wall_ms(),
        }
    }

    /// Milliseconds since the Unix epoch at monotonic time `now`.
    pub fn at(&self, now: Instant) -> u64 {
        self.wall_ms + now.saturating_duration_since(self.at).as_millis() as u64
    }
}

/// The process's monotonic clock, read through tokio's: the same as the
/// system's in a real runtime, and the simulated time in a runtime whose
/// time is paused or simulated (tokio's test utilities, turmoil), so timers
/// (`tokio::time::sleep`) and decisions (`now`) always agree.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock that moves only when told to; its wall clock can be stepped
/// apart from its monotonic time.
#[derive(Debug)]
pub struct ManualClock(Mutex<ManualTime>);

#[derive(Debug)]
struct ManualTime {
    now: Instant,
    wall_ms: u64,
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Mutex::new(ManualTime {
            now: Instant::now(),
            wall_ms: SystemClock.system_wall_ms(),
        }))
    }

    fn time(&self) -> std::sync::MutexGuard<'_, ManualTime> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time passes: both clocks move.
    pub fn advance(&self, by: Duration) {
        let mut t = self.time();
        t.now += by;
        t.wall_ms += by.as_millis() as u64;
    }

    /// The system's wall clock is set `by_ms` forward (negative: back); the
    /// monotonic clock does not move.
    pub fn step_wall(&self, by_ms: i64) {
        let mut t = self.time();
        t.wall_ms = t.wall_ms.saturating_add_signed(by_ms);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.time().now
    }

    fn system_wall_ms(&self) -> u64 {
        self.time().wall_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_wall_follows_monotonic_time_not_steps_of_the_system_clock() {
        let clock = ManualClock::new();
        let start = clock.system_wall_ms();
        let wall = SteadyWall::new(&clock);
        assert_eq!(wall.at(clock.now()), start);
        clock.advance(Duration::from_secs(5));
        assert_eq!(wall.at(clock.now()), start + 5_000);
        clock.step_wall(86_400_000);
        assert_eq!(wall.at(clock.now()), start + 5_000, "a step forward");
        clock.step_wall(-2 * 86_400_000);
        assert_eq!(wall.at(clock.now()), start + 5_000, "a step back");
        clock.advance(Duration::from_millis(1));
        assert_eq!(wall.at(clock.now()), start + 5_001);
        // A new master (a restart) takes the system's time as it is then.
        assert_eq!(
            SteadyWall::new(&clock).at(clock.now()),
            start + 5_001 - 86_400_000
        );
    }
}
