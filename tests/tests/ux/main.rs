//! The user's view with real processes: cancelling queued and running
//! tasks, the metrics endpoint read during and after a batch and checked
//! against what the batch did, `tessera cluster`, `run --json` and
//! `--skip-existing`. Timings are printed as JSON lines
//! (`{"bench":"ux",...}`); no test asserts on timing.

mod cancel;
mod master;
mod metrics;
mod skipping;

use std::time::Duration;

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(60);
