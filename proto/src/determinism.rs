//! Randomness and blocking work: with time and the network (both reached
//! through tokio, which a simulation controls), the two things that decide
//! how a run unfolds. Every node takes them from here, so a simulation can
//! fix them (see `tests/tests/simulation/`):
//!
//! * [`random`] draws from the operating system's generator, or from a
//!   seeded one while a [`Seeded`] guard is alive on this thread. It is for
//!   behaviour (backoff jitter, ids); keys and nonces never come from here.
//! * [`blocking`] runs file work on tokio's blocking pool, or inline while a
//!   [`Seeded`] guard is alive: a simulation runs every simulated host on
//!   one thread, and work finishing on another thread at a moment of its
//!   own would make the run depend on the machine's timing.
//!
//! A production process never creates a guard.

use std::cell::RefCell;

use rand::{
    Rng, SeedableRng,
    distr::{Distribution, StandardUniform},
    rngs::StdRng,
};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// While alive, [`random`] on this thread draws from a generator seeded
/// with the seed given, and [`blocking`] runs inline. Dropping it restores
/// the defaults.
#[derive(Debug)]
#[must_use = "the seeding ends when the guard is dropped"]
pub struct Seeded {
    /// Not `Send`: the seeding belongs to the thread that made it.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Seeded {
    pub fn new(seed: u64) -> Self {
        SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
        Seeded {
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        SEEDED.with(|s| *s.borrow_mut() = None);
    }
}

/// Whether a [`Seeded`] guard is alive on this thread.
pub fn is_seeded() -> bool {
    SEEDED.with(|s| s.borrow().is_some())
}

/// A random value (see the module docs).
pub fn random<T>() -> T
where
    StandardUniform: Distribution<T>,
{
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => rng.random(),
        None => rand::random(),
    })
}

/// Fills `dest` with random bytes (see [`random`]).
pub fn fill(dest: &mut [u8]) {
    for chunk in dest.chunks_mut(32) {
        let bytes: [u8; 32] = random();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Runs `f` on tokio's blocking pool, or inline on a seeded thread (see
/// the module docs).
pub async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    if is_seeded() {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_fixes_the_draws_and_dropping_the_guard_ends_it() {
        let draws = |seed| {
            let _g = Seeded::new(seed);
            (0..4).map(|_| random::<u64>()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert!(!is_seeded());
        // Unseeded draws come from the operating system's generator.
        assert_ne!(random::<u128>(), random::<u128>());
    }

    #[tokio::test]
    async fn blocking_work_runs_inline_only_when_seeded() {
        let here = std::thread::current().id();
        let on = || async { blocking(|| Ok(std::thread::current().id())).await.unwrap() };
        assert_ne!(on().await, here);
        let _g = Seeded::new(1);
        assert_eq!(on().await, here);
    }
}
