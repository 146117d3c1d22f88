//! The master's Prometheus metrics (`tessera-node master --metrics ADDR`).
//!
//! Counters are bumped where things happen, through the `metrics` facade:
//! task events as the scheduler records them ([`on_event`]), lease
//! expiries, steal requests and bytes where the master sees them. Without
//! `--metrics` no recorder is installed and every bump is a no-op. Gauges
//! (tasks by state, queue depth, workers, heartbeat ages) are set from the
//! scheduler's live view just before each scrape ([`set_gauges`], called by
//! [`http`]), so they are never stale and nothing samples them on a timer.
//! Rendering the text format is `metrics-exporter-prometheus`'s; [`http`]
//! only answers `GET /metrics`.

pub mod http;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tessera_proto::{ClusterInfo, FailureKind, Msg, TaskEvent};

use super::record::{RowState, TaskRow};

pub const SUBMISSIONS: &str = "tessera_submissions_total";
pub const COMPLETIONS: &str = "tessera_completions_total";
pub const FAILURES: &str = "tessera_failures_total";
pub const CANCELLATIONS: &str = "tessera_cancellations_total";
pub const LEASE_EXPIRIES: &str = "tessera_lease_expiries_total";
pub const RETRIES: &str = "tessera_retries_total";
pub const STEALS: &str = "tessera_steals_total";
pub const BACKUPS: &str = "tessera_backup_attempts_total";
pub const BYTES_RECEIVED: &str = "tessera_bytes_received_total";
pub const BYTES_SENT: &str = "tessera_bytes_sent_total";
pub const TASK_LATENCY: &str = "tessera_task_latency_seconds";
pub const TASKS: &str = "tessera_tasks";
pub const QUEUE_DEPTH: &str = "tessera_queue_depth";
pub const WORKERS: &str = "tessera_workers";
pub const HEARTBEAT_AGE: &str = "tessera_worker_heartbeat_age_seconds";
pub const WORKER_RUNNING: &str = "tessera_worker_running_tasks";

/// Upper bounds of the task latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A gauge not set for this long is dropped from the output: the
/// heartbeat age of a worker that left disappears after a scrape or two.
const GAUGE_IDLE: Duration = Duration::from_secs(30);

/// Which peer image bytes come from or go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Client,
    Worker,
}

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Worker => "worker",
        }
    }
}

/// Why metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
}

/// The installed recorder and the bound metrics listener.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    listener: Arc<std::net::TcpListener>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Binds `addr` and installs the process-wide recorder (once per process).
    pub fn install(addr: SocketAddr) -> Result<Exporter, MetricsError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(TASK_LATENCY.into()), LATENCY_BUCKETS)?
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
            .install_recorder()?;
        describe();
        register();
        Ok(Exporter {
            handle,
            listener: Arc::new(listener),
            addr: bound,
        })
    }

    /// The address scrapes are answered on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SUBMISSIONS, "Images stored and queued as tasks.");
    describe_counter!(COMPLETIONS, "Tasks done (their result stored).");
    describe_counter!(FAILURES, "Tasks failed, by kind.");
    describe_counter!(CANCELLATIONS, "Tasks cancelled on request.");
    describe_counter!(
        LEASE_EXPIRIES,
        "Leases that ran out without a heartbeat (the task was queued again or failed)."
    );
    describe_counter!(
        RETRIES,
        "Attempts that ended without a result (worker lost, lease expired) and were queued again."
    );
    describe_counter!(
        STEALS,
        "Unstarted tasks a busy worker gave back, when asked, for an idle one."
    );
    describe_counter!(
        BACKUPS,
        "Backup attempts launched for stragglers (the first result wins)."
    );
    describe_counter!(BYTES_RECEIVED, "Image bytes received, by peer.");
    describe_counter!(BYTES_SENT, "Image bytes sent, by peer.");
    describe_histogram!(
        TASK_LATENCY,
        metrics::Unit::Seconds,
        "Time from submission to done or failed."
    );
    describe_gauge!(TASKS, "Tasks the master knows, by state.");
    describe_gauge!(QUEUE_DEPTH, "Tasks waiting for a worker.");
    describe_gauge!(WORKERS, "Connected workers.");
    describe_gauge!(
        HEARTBEAT_AGE,
        metrics::Unit::Seconds,
        "Time since each worker's last heartbeat."
    );
    describe_gauge!(WORKER_RUNNING, "Tasks each worker has started.");
}

/// Every counter, at zero, so that a scrape shows them before they first count.
fn register() {
    for name in [
        SUBMISSIONS,
        COMPLETIONS,
        CANCELLATIONS,
        LEASE_EXPIRIES,
        RETRIES,
        STEALS,
        BACKUPS,
    ] {
        counter!(name).absolute(0);
    }
    for kind in [
        FailureKind::Unsupported,
        FailureKind::Corrupt,
        FailureKind::TooLarge,
        FailureKind::WorkerLost,
        FailureKind::Internal,
        FailureKind::Crashes,
        FailureKind::TimedOut,
    ] {
        // Cancellations are counted apart (CANCELLATIONS).
        counter!(FAILURES, "kind" => kind_label(kind)).absolute(0);
    }
    for peer in [Peer::Client, Peer::Worker] {
        counter!(BYTES_RECEIVED, "from" => peer.label()).absolute(0);
        counter!(BYTES_SENT, "to" => peer.label()).absolute(0);
    }
}

/// Counts one task event as the scheduler recorded it; `row` is the task's
/// state after it, `at_ms` when it happened (ms since the Unix epoch).
pub fn on_event(event: &TaskEvent, row: Option<&TaskRow>, at_ms: u64) {
    let latency = || {
        if let Some(r) = row {
            let ms = at_ms.saturating_sub(r.submitted_ms);
            histogram!(TASK_LATENCY).record(ms as f64 / 1000.0);
        }
    };
    match event {
        TaskEvent::Submitted { .. } => counter!(SUBMISSIONS).increment(1),
        TaskEvent::Completed { .. } => {
            counter!(COMPLETIONS).increment(1);
            latency();
        }
        TaskEvent::Failed { kind, .. } => {
            counter!(FAILURES, "kind" => kind_label(*kind)).increment(1);
            latency();
        }
        TaskEvent::Lost { .. } => {
            // Lost and then failed (out of attempts) is not a retry.
            if !row.is_some_and(|r| matches!(r.state, RowState::Failed { .. })) {
                counter!(RETRIES).increment(1);
            }
        }
        TaskEvent::Cancelled { .. } => counter!(CANCELLATIONS).increment(1),
        TaskEvent::Leased { .. }
        | TaskEvent::Released { .. }
        | TaskEvent::Fetched
        | TaskEvent::Expired
        | TaskEvent::Deleted
        | TaskEvent::Recovered { .. }
        | TaskEvent::Joined { .. }
        | TaskEvent::Confirmed { .. } => {}
    }
}

fn kind_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Unsupported => "unsupported",
        FailureKind::Corrupt => "corrupt",
        FailureKind::TooLarge => "too_large",
        FailureKind::WorkerLost => "worker_lost",
        FailureKind::Internal => "internal",
        FailureKind::Cancelled => "cancelled",
        FailureKind::Crashes => "crashes",
        FailureKind::TimedOut => "timed_out",
    }
}

/// `n` leases expired.
pub fn leases_expired(n: usize) {
    counter!(LEASE_EXPIRIES).increment(n as u64);
}

/// A busy worker gave back an unstarted task the master asked for (stealing).
pub fn task_stolen() {
    counter!(STEALS).increment(1);
}

/// A backup attempt was launched for a straggler.
pub fn backup_launched() {
    counter!(BACKUPS).increment(1);
}

/// `n` image bytes arrived from `peer`.
pub fn bytes_received(peer: Peer, n: usize) {
    counter!(BYTES_RECEIVED, "from" => peer.label()).increment(n as u64);
}

/// A stream of `n` bytes announced by `header` was sent.
pub fn bytes_sent(header: &Msg, n: u64) {
    let peer = match header {
        Msg::Assign { .. } => Peer::Worker,
        _ => Peer::Client,
    };
    counter!(BYTES_SENT, "to" => peer.label()).increment(n);
}

/// Sets every gauge from the live view.
pub fn set_gauges(info: &ClusterInfo) {
    let t = &info.tasks;
    for (state, n) in [
        ("queued", t.queued),
        ("running", t.running),
        ("done", t.done),
        ("failed", t.failed),
        ("cancelled", t.cancelled),
    ] {
        gauge!(TASKS, "state" => state).set(n as f64);
    }
    gauge!(QUEUE_DEPTH).set(t.queued as f64);
    gauge!(WORKERS).set(f64::from(info.workers_total));
    for w in &info.workers {
        let labels = [("worker", w.name.clone()), ("addr", w.addr.clone())];
        if let Some(ms) = w.heartbeat_age_ms {
            gauge!(HEARTBEAT_AGE, &labels).set(ms as f64 / 1000.0);
        }
        gauge!(WORKER_RUNNING, &labels).set(f64::from(w.running));
    }
}
