//! tessera-node: the master, the worker, and a one-process dev cluster.
//!
//! * [`master`]: accepts images, keeps them on disk, schedules tasks.
//! * [`worker`]: pulls tasks, processes them on a rayon pool.
//! * [`dev`]: a master and N workers in one process.
//! * [`discovery`]: finding the master on the LAN (mDNS) or at a given address.
//! * [`cli`]: the `tessera-node` command line ([`cli_security`]: its key and limit options;
//!   [`cli_error`]: how an error that ends a binary is printed).
//! * [`clock`]: the clock seam lease decisions are timed by.

#[cfg(feature = "jemalloc")]
mod allocator;
pub mod cli;
pub mod cli_error;
pub mod cli_faults;
pub mod cli_security;
pub mod clock;
pub mod dev;
pub mod discovery;
pub mod master;
pub mod worker;

/// A fresh node id: role, process id and a random suffix.
pub fn node_id(role: &str) -> String {
    format!(
        "{role}-{}-{:08x}",
        std::process::id(),
        tessera_proto::determinism::random::<u32>()
    )
}
