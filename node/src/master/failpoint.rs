//! Named crash points for the crash-point walk (`tests/tests/crash_points.rs`).
//!
//! Compiled in only with the `failpoints` feature (the integration tests
//! enable it; a release build has none). `TESSERA_FAILPOINT=NAME` makes the
//! master abort (like a power cut: no destructors, no flush) the first time
//! it reaches `NAME`, `NAME@N` the N-th time. It prints
//! `failpoint NAME reached` to stderr first, so a test knows it was hit.
//! A hand-rolled module rather than the `fail` crate: the walk needs only
//! "abort here", configured from the environment of a child process, and
//! this is that in a few lines with no dependency.

/// Every crash point, in ledger order; each is described in ARCHITECTURE.md.
pub const FAILPOINTS: &[&str] = &[
    "input:published",
    "input:recorded",
    "input:durable",
    "join:recorded",
    "join:durable",
    "result:published",
    "result:recorded",
    "result:durable",
    "result:announced",
    "result:answered",
    "failure:recorded",
    "failure:durable",
    "failure:answered",
    "cancel:recorded",
    "cancel:durable",
    "cancel:answered",
    "confirm:recorded",
    "confirm:durable",
    "confirm:answered",
    "delete:recorded",
    "delete:durable",
    "delete:answered",
    "expire:recorded",
    "expire:durable",
];

/// Aborts the process if `name` is the configured crash point.
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    };
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    debug_assert!(FAILPOINTS.contains(&name), "unlisted failpoint {name}");
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("TESSERA_FAILPOINT").ok()?;
        Some(match v.split_once('@') {
            Some((n, k)) => (n.to_string(), k.parse().unwrap_or(1)),
            None => (v, 1),
        })
    });
    if let Some((target, nth)) = target
        && target == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
    {
        eprintln!("failpoint {name} reached");
        std::process::abort();
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}
