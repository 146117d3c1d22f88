//! Worker faults with real processes: a master and workers started as
//! `tessera-node` processes on loopback, killed, paused and slowed down with
//! real signals. Every test checks every output pixel-exact and the delivered
//! set for no loss and no duplicate. Measured figures are printed as JSON
//! lines (`{"bench":"faults",...}`); no test asserts on timing.

mod draining;
mod harness;
mod lost_workers;
mod one_way;
mod poison;
mod stealing;

use std::time::Duration;

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(60);
