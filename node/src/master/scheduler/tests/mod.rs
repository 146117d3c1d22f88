//! The scheduler's unit tests: the shared helpers (`sched`, `join`, `lr`)
//! live here; each concept's tests are in the file named for it.

use std::time::{Duration, Instant};

use tessera_proto::{LeaseRef, TaskEvent, TaskState};

use crate::master::record::TaskRow;

use super::*;

mod archive;
mod blame;
mod delete;
mod dispatch;
mod drain;
mod durable;
mod fault_props;
mod idle;
mod lease;
mod props;
mod results;
mod steal;
mod straggler;
mod workers;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Deaths pointing at an image alone before it fails, in [`sched`].
const MAX_ATTEMPTS: u32 = 3;

fn sched() -> Scheduler {
    Scheduler::new(SchedulerConfig {
        max_attempts: MAX_ATTEMPTS,
        max_credits: 8,
        lease_timeout: TIMEOUT,
        stealing: true,
        ..SchedulerConfig::default()
    })
}

fn join(s: &mut Scheduler, w: u64, threads: u32, credits: u32) -> WorkerId {
    let id = WorkerId(w);
    s.worker_joined(id, format!("node-{w}"));
    s.worker_capacity(id, threads);
    s.worker_ready(id, credits);
    id
}

fn lr(task: TaskId, attempt: u32) -> LeaseRef {
    LeaseRef { task, attempt }
}
