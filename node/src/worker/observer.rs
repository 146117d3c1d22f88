//! What a worker's session tells an observer: the credits it grants the
//! master, the tasks the master assigns against them, the results the
//! master accepts. The load bench measures lease latency (a credit to the
//! `Assign` that used it) with it, on the real worker.

use std::fmt::Debug;

/// See the module docs. Calls are made on the session's task: keep them
/// short and never block.
pub trait SessionObserver: Send + Sync + Debug {
    /// The session sent a `Ready` granting `credits` more tasks.
    fn credits_granted(&self, credits: u32) {
        let _ = credits;
    }
    /// The master assigned a task (using the oldest credit).
    fn assigned(&self) {}
    /// The master accepted a result.
    fn accepted(&self) {}
}
