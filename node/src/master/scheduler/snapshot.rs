//! The live view of the scheduler (`tessera cluster`, `tessera top`, the
//! metrics gauges): a plain function of the state and an injected `now`.

use std::time::Instant;

use tessera_proto::{
    ClusterInfo, FailureKind, TaskCounts, Throughput, WorkerInfo,
    cluster::{MAX_WORKERS_LISTED, listed_text},
};

use super::{Phase, Scheduler, WorkerId};

/// What the live view shows about a worker beyond its leases.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// Where its connection comes from.
    pub addr: Option<String>,
    pub last_heartbeat: Option<Instant>,
    /// Its results that decided a task.
    pub done: u64,
    /// Tasks it failed.
    pub failed: u64,
    /// It declared itself a synthetic load-test worker (`--synthetic`).
    pub synthetic: bool,
}

impl Scheduler {
    /// Records where the worker's connection comes from.
    pub fn worker_address(&mut self, worker: WorkerId, addr: String) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.stats.addr = Some(addr);
        }
    }

    /// The worker declared itself synthetic (`--synthetic`: its results are
    /// its inputs, unprocessed); the live view says so.
    pub fn worker_synthetic(&mut self, worker: WorkerId) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.stats.synthetic = true;
        }
    }

    /// Tasks by state (`queued` is the queue depth).
    pub fn task_counts(&self) -> TaskCounts {
        let mut c = TaskCounts::default();
        for t in self.tasks.values() {
            match t.phase {
                Phase::Queued => c.queued += 1,
                Phase::Leased(_) => c.running += 1,
                Phase::Done { .. } => c.done += 1,
                Phase::Failed {
                    kind: FailureKind::Cancelled,
                    ..
                } => c.cancelled += 1,
                Phase::Failed { .. } => c.failed += 1,
            }
        }
        // Tasks at rest are in the record only.
        c.done += self.archived.done;
        c.failed += self.archived.failed;
        c.cancelled += self.archived.cancelled;
        c
    }

    /// The cluster as of `now`. The caller fills in what the scheduler does
    /// not know: the master's id and uptime.
    pub fn snapshot(&self, now: Instant) -> ClusterInfo {
        let workers = self
            .workers
            .values()
            .take(MAX_WORKERS_LISTED)
            .map(|slot| {
                let started = slot
                    .leases
                    .iter()
                    .filter(|t| self.live_lease(**t).is_some_and(|l| l.started))
                    .count() as u32;
                WorkerInfo {
                    name: listed_text(&slot.name),
                    addr: listed_text(slot.stats.addr.as_deref().unwrap_or("?")),
                    threads: slot.threads,
                    running: started,
                    prefetched: slot.leases.len() as u32 - started,
                    done: slot.stats.done,
                    failed: slot.stats.failed,
                    heartbeat_age_ms: slot
                        .stats
                        .last_heartbeat
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    draining: slot.draining,
                    synthetic: slot.stats.synthetic,
                }
            })
            .collect();
        let window = self.recent.window(now);
        ClusterInfo {
            master_id: String::new(),
            uptime_ms: 0,
            tasks: self.task_counts(),
            workers,
            workers_total: self.workers.len() as u32,
            throughput: Throughput {
                // At least a second: a first completion a moment ago is not a
                // rate of thousands per second.
                window_ms: (window.span.as_millis() as u64).max(1000),
                images: window.images,
                bytes: window.bytes,
                per_second: self.recent.per_second(now),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera_proto::{FailureKind, LeaseRef};

    use super::*;
    use crate::master::scheduler::SchedulerConfig;

    #[test]
    fn the_snapshot_shows_tasks_workers_and_throughput() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        let tasks: Vec<_> = (0..5).map(|i| s.submit(format!("{i}"), 100)).collect();
        let w = WorkerId(1);
        s.worker_joined(w, "node-1".into());
        s.worker_address(w, "127.0.0.1:5000".into());
        s.worker_capacity(w, 2);
        s.worker_ready(w, 3);
        let idle = WorkerId(2);
        s.worker_joined(idle, "node-2".into());
        s.worker_synthetic(idle);

        let before = s.snapshot(t0);
        assert_eq!(before.workers[0].heartbeat_age_ms, None, "no heartbeat yet");
        assert!(before.throughput.per_second.is_empty());

        s.dispatch(t0); // tasks 0, 1, 2 leased to w
        s.started(w, tasks[0], 1, Instant::now());
        s.started(w, tasks[1], 1, Instant::now());
        let info = &s.snapshot(t0).workers[0];
        assert_eq!(
            (info.running, info.prefetched),
            (2, 1),
            "two of its three tasks started, one held"
        );
        s.heartbeat(
            w,
            &[LeaseRef {
                task: tasks[0],
                attempt: 1,
            }],
            t0,
        );
        let t1 = t0 + Duration::from_millis(1500);
        s.complete(w, tasks[0], 1, 80, 0, t1);
        s.fail(w, tasks[1], 1, FailureKind::Corrupt, "bad".into(), t1);

        let now = t0 + Duration::from_millis(2750);
        let snap = s.snapshot(now);
        assert_eq!(snap.tasks.queued, 2);
        assert_eq!(snap.tasks.running, 1);
        assert_eq!(snap.tasks.done, 1);
        assert_eq!(snap.tasks.failed, 1);
        assert_eq!(snap.workers_total, 2);
        let info = &snap.workers[0];
        assert_eq!(info.name, "node-1");
        assert_eq!(info.addr, "127.0.0.1:5000");
        assert_eq!(info.threads, 2);
        assert_eq!((info.running, info.prefetched), (0, 1));
        assert_eq!((info.done, info.failed), (1, 1));
        assert_eq!(info.heartbeat_age_ms, Some(2750));
        assert!(!info.synthetic);
        assert_eq!(snap.workers[1].addr, "?");
        assert!(snap.workers[1].synthetic, "it said it was");
        assert_eq!(snap.throughput.images, 1);
        assert_eq!(snap.throughput.bytes, 100, "input bytes");
        assert_eq!(snap.throughput.window_ms, 1250);
        assert_eq!(snap.throughput.per_second, vec![1]);
    }
}
