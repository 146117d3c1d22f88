//! The live view through the shared state: a snapshot for `tessera cluster`,
//! `tessera top` and the metrics gauges, and where each worker connects from.

use tessera_proto::{ClusterInfo, cluster::listed_text};

use super::Shared;
use crate::master::{record::feed::Feed, scheduler::WorkerId};

impl Shared {
    /// The cluster now, as the master `master_id` sees it.
    pub fn snapshot(&self, master_id: &str) -> ClusterInfo {
        let now = self.clock.now();
        let mut info = self.lock().scheduler.snapshot(now);
        info.master_id = listed_text(master_id);
        info.uptime_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        info
    }

    /// The events the record writes from now on (the web page's task stream).
    pub fn feed(&self) -> &Feed {
        self.journal.feed()
    }

    /// Records where a worker's connection comes from.
    pub fn worker_address(&self, worker: WorkerId, addr: String) {
        self.lock().scheduler.worker_address(worker, addr);
    }

    /// Records that a worker declared itself synthetic (`--synthetic`).
    pub fn worker_synthetic(&self, worker: WorkerId) {
        self.lock().scheduler.worker_synthetic(worker);
    }
}
