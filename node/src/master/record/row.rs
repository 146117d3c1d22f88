//! The current state of a task as the durable record keeps it: derived from
//! the task's events and written in the same transaction as each event.

use serde::{Deserialize, Serialize};
use tessera_proto::FailureKind;

/// One task's durable current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    pub name: String,
    pub input_len: u64,
    pub input_checksum: u64,
    /// The idempotency key it was submitted under.
    pub key: u128,
    /// Wall clock, milliseconds since the Unix epoch.
    pub submitted_ms: u64,
    /// Hand-outs so far (the last fencing token used).
    pub attempts: u32,
    /// Attempts that ended by worker death or lease expiry.
    pub lost: u32,
    /// How lost attempts ended, for the failure reason.
    pub history: Vec<String>,
    pub state: RowState,
    /// Lost attempts that cast suspicion on the image (see
    /// `scheduler/blame.rs`): it runs alone from then on.
    pub strikes: u32,
    /// Lost attempts that point at the image alone.
    pub evidence: u32,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowState {
    Queued,
    /// Leased when last recorded; after a restart it is queued again.
    Leased {
        attempt: u32,
    },
    Done {
        attempt: u32,
        output_len: u64,
        output_checksum: u64,
        done_ms: u64,
        worker: String,
        /// The result's files were removed (confirmed download or retention).
        removed: bool,
    },
    Failed {
        kind: FailureKind,
        reason: String,
    },
}
