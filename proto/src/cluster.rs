//! The live view of a cluster, as the master reports it (`GetCluster` →
//! `Cluster`): its tasks, its workers and its recent throughput. Plain
//! counts only (no floats): the viewer computes rates.

use serde::{Deserialize, Serialize};

/// At most this many workers are listed in one [`ClusterInfo`] (the rest are
/// counted in `workers_total`), so the message stays far below the header
/// decode limit.
pub const MAX_WORKERS_LISTED: usize = 200;

/// Longest worker name or address listed (longer ones are cut).
pub const MAX_LISTED_TEXT: usize = 100;

/// A snapshot of the master's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The master's id, as in its handshake.
    pub master_id: String,
    /// How long the master has been running, in milliseconds.
    pub uptime_ms: u64,
    pub tasks: TaskCounts,
    /// Connected workers, in the order they joined (at most [`MAX_WORKERS_LISTED`]).
    pub workers: Vec<WorkerInfo>,
    /// Connected workers, listed or not.
    pub workers_total: u32,
    pub throughput: Throughput,
}

/// Tasks the master knows, by state. `queued` is the queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    /// Failed tasks: for what is in the image, or out of attempts.
    /// Cancelled ones are counted apart.
    pub failed: u64,
    /// Cancelled on request (`tessera cancel`, the web page).
    pub cancelled: u64,
}

impl TaskCounts {
    pub fn total(&self) -> u64 {
        self.queued + self.running + self.done + self.failed + self.cancelled
    }
}

/// One connected worker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's name (its `--name`, or its node id).
    pub name: String,
    /// The address its connection comes from.
    pub addr: String,
    /// Images it processes at once.
    pub threads: u32,
    /// Tasks it has started.
    pub running: u32,
    /// Tasks handed to it that it has not started yet (prefetched).
    pub prefetched: u32,
    /// Results of its that decided a task, since it joined.
    pub done: u64,
    /// Tasks it failed (undecodable inputs), since it joined.
    pub failed: u64,
    /// Milliseconds since its last heartbeat; `None` before the first one.
    pub heartbeat_age_ms: Option<u64>,
    /// It is shutting down and takes no new work.
    pub draining: bool,
    /// A synthetic load-test worker (`--synthetic`): its results are its
    /// inputs, unprocessed.
    pub synthetic: bool,
}

/// Completed tasks over the last seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// The window `images` and `bytes` cover, in milliseconds.
    pub window_ms: u64,
    /// Tasks completed within the window.
    pub images: u64,
    /// Input bytes of those tasks.
    pub bytes: u64,
    /// Tasks completed in each of the last whole seconds, oldest first (the
    /// current, partial second is not included).
    pub per_second: Vec<u32>,
}

/// `text`, cut to at most [`MAX_LISTED_TEXT`] bytes on a character boundary.
pub fn listed_text(text: &str) -> String {
    if text.len() <= MAX_LISTED_TEXT {
        return text.to_string();
    }
    let mut end = MAX_LISTED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(listed_text("w1"), "w1");
        let long = "é".repeat(80); // 160 bytes
        let cut = listed_text(&long);
        assert!(cut.len() <= MAX_LISTED_TEXT);
        assert_eq!(cut, "é".repeat(50));
    }

    /// The largest snapshot the master may send decodes within the limit.
    #[test]
    fn a_full_snapshot_fits_the_header_limit() {
        let worker = WorkerInfo {
            name: "n".repeat(MAX_LISTED_TEXT),
            addr: "a".repeat(MAX_LISTED_TEXT),
            threads: u32::MAX,
            running: u32::MAX,
            prefetched: u32::MAX,
            done: u64::MAX,
            failed: u64::MAX,
            heartbeat_age_ms: Some(u64::MAX),
            draining: true,
            synthetic: true,
        };
        let info = ClusterInfo {
            master_id: "m".repeat(MAX_LISTED_TEXT),
            uptime_ms: u64::MAX,
            tasks: TaskCounts::default(),
            workers: vec![worker; MAX_WORKERS_LISTED],
            workers_total: u32::MAX,
            throughput: Throughput {
                window_ms: 10_000,
                images: u64::MAX,
                bytes: u64::MAX,
                per_second: vec![u32::MAX; 60],
            },
        };
        let bytes = crate::wire::encode(&info).unwrap();
        let back: ClusterInfo = crate::wire::decode_exact(&bytes).unwrap();
        assert_eq!(back, info);
    }
}
