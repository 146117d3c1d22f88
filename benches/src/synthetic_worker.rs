//! The load benchmark's workers: the real worker (`tessera_node::worker`,
//! its one session code) in its synthetic task mode (`--synthetic`): it
//! speaks the whole worker protocol (handshake with the cluster key,
//! `Capacity`, `Ready` credits, `Started`, `Done` with the result streamed
//! back, heartbeats listing its leases) but returns each input as its result
//! the moment the input has arrived, on the session's own task (no pool).
//! The master cannot tell it from a real worker with infinitely fast
//! threads, so what is measured is the master alone: scheduling, leases,
//! the task record, the files and the network.
//!
//! Each worker measures its **lease latency** through the session's
//! observer: from granting a credit (a `Ready`) to receiving the `Assign`
//! that used it, credits being used in the order they were granted. With
//! work queued, that is how long a worker that asked waits for the master.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use tessera_node::worker::{self, SessionObserver, WorkerConfig};
use tessera_proto::ClusterKey;
use tokio_util::sync::CancellationToken;

/// What one synthetic worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Results the master acknowledged (`Accepted`).
    pub accepted: u64,
    /// Lease latencies, in microseconds.
    pub lease_latency_us: Vec<u32>,
}

/// Where the synthetic workers connect, and what they share.
#[derive(Debug, Clone)]
pub struct Setup {
    pub addr: String,
    pub key: ClusterKey,
    /// Tasks held at once: one thread, the rest prefetch.
    pub credits: u32,
    /// Workers that have granted their first credits (connected, asking).
    pub ready: Arc<AtomicUsize>,
    /// Results acknowledged by the master, over all workers.
    pub accepted: Arc<AtomicU64>,
    /// Cancelled when the workers are to stop.
    pub stop: CancellationToken,
}

/// One worker's measurements, taken by its session's observer.
#[derive(Debug)]
struct Timing {
    granted: Mutex<VecDeque<Instant>>,
    latencies_us: Mutex<Vec<u32>>,
    accepted: AtomicU64,
    /// Counted in `ready` (at its first credits).
    counted: AtomicBool,
    ready: Arc<AtomicUsize>,
    all_accepted: Arc<AtomicU64>,
}

impl SessionObserver for Timing {
    fn credits_granted(&self, credits: u32) {
        if !self.counted.swap(true, Ordering::Relaxed) {
            self.ready.fetch_add(1, Ordering::Relaxed);
        }
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        granted.extend(std::iter::repeat_n(Instant::now(), credits as usize));
    }

    fn assigned(&self) {
        let asked = self
            .granted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some(asked) = asked {
            let us = asked.elapsed().as_micros().min(u128::from(u32::MAX));
            self.latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(us as u32);
        }
    }

    fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.all_accepted.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs a real worker named `name` in the synthetic task mode until
/// `setup.stop` is cancelled.
pub async fn run(setup: Setup, name: String) -> anyhow::Result<WorkerReport> {
    let timing = Arc::new(Timing {
        granted: Mutex::default(),
        latencies_us: Mutex::default(),
        accepted: AtomicU64::new(0),
        counted: AtomicBool::new(false),
        ready: setup.ready.clone(),
        all_accepted: setup.accepted.clone(),
    });
    let mut config = WorkerConfig::new(setup.addr, setup.key);
    config.node_id = name;
    config.threads = 1;
    config.prefetch = setup.credits.saturating_sub(1) as usize;
    config.synthetic = true;
    config.inline_compute = true;
    config.drain_grace = std::time::Duration::ZERO;
    config.observer = Some(timing.clone());
    worker::run(config, setup.stop).await?;
    let latencies = std::mem::take(
        &mut *timing
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    Ok(WorkerReport {
        accepted: timing.accepted.load(Ordering::Relaxed),
        lease_latency_us: latencies,
    })
}
