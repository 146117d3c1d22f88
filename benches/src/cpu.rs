//! Wall-clock and CPU time of a piece of work.
//!
//! CPU time is the process's CPU clock (`CLOCK_PROCESS_CPUTIME_ID`): user
//! plus system time of every thread of the process, the same total as
//! `getrusage(RUSAGE_SELF)` but with nanosecond resolution. rustix gives a
//! safe call for it (the workspace forbids unsafe code, which rules out
//! calling libc directly).

use std::time::Instant;

use rustix::time::{ClockId, clock_gettime};

/// CPU seconds used so far by every thread of this process.
pub fn cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// CPU seconds used so far by the calling thread
/// (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// What a piece of work took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    /// Elapsed wall-clock seconds.
    pub wall: f64,
    /// CPU seconds of the whole process meanwhile (all threads).
    pub cpu: f64,
}

impl std::ops::AddAssign for Measured {
    fn add_assign(&mut self, other: Self) {
        self.wall += other.wall;
        self.cpu += other.cpu;
    }
}

/// Runs `work` and returns its result with the wall-clock and process CPU
/// time it took.
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Measured) {
    let cpu = cpu_seconds();
    let start = Instant::now();
    let out = work();
    let wall = start.elapsed().as_secs_f64();
    (
        out,
        Measured {
            wall,
            cpu: cpu_seconds() - cpu,
        },
    )
}
