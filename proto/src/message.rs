//! Every message after the handshake.
//!
//! Requests from a client carry a `req` id chosen by the client; every reply
//! names it, so one connection carries many requests at once. Image bytes never
//! go through bincode: a message that announces `len` bytes is followed by
//! [`Msg::Chunk`] frames whose payloads (at most [`MAX_CHUNK`] bytes each) add
//! up to exactly `len`.
//!
//! The variant order is the wire encoding: append new variants at the end and
//! bump [`crate::PROTOCOL_VERSION`] on any change (the golden-bytes tests fail
//! on an accidental one).

use serde::{Deserialize, Serialize};

use crate::{
    cluster::ClusterInfo,
    task::{EventEntry, FailureKind, TaskId, TaskInfo},
};

/// Largest payload of one chunk frame.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// How many variants [`Msg`] has; a frame whose variant index is at or past
/// this is an unknown message type.
pub const MSG_VARIANTS: u32 = 33;

/// The first byte of every [`Msg::Chunk`] frame (its variant index), the
/// only message that may exceed the control-frame limit.
pub const CHUNK_TAG: u8 = 12;

/// Which stream a chunk belongs to: the `req` of a submit or fetch, or the
/// task id of an assignment or a result.
pub type StreamId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    // ---- client → master ----
    /// Start uploading an image of `len` bytes whose [`crate::checksum()`] is
    /// `checksum`; chunks follow on stream `req`. A submission whose `key` the
    /// master already knows gets the existing task (idempotent resubmission),
    /// shared with every other `submitter` of it: its result is kept until
    /// each has sent `Confirm`. `submitter` is chosen by the client (one
    /// random number per batch, so its own resubmissions count once;
    /// [`ANONYMOUS_SUBMITTER`] for the one-shot command-line commands).
    Submit {
        req: u64,
        name: String,
        len: u64,
        checksum: u64,
        key: u128,
        submitter: u64,
    },
    /// Ask for a task's state now.
    Status {
        req: u64,
        task: TaskId,
    },
    /// Ask to be told when the task is done or failed (answered with `Info`).
    Wait {
        req: u64,
        task: TaskId,
    },
    /// Ask for a done task's result (answered with `Result` and chunks).
    Fetch {
        req: u64,
        task: TaskId,
    },

    // ---- master → client ----
    /// The image of submission `req` is stored and queued as `task`.
    Submitted {
        req: u64,
        task: TaskId,
    },
    /// A task's state, answering `Status` or `Wait`.
    Info {
        req: u64,
        info: TaskInfo,
    },
    /// A result of `len` bytes with [`crate::checksum()`] `checksum` follows
    /// as chunks on stream `req`.
    Result {
        req: u64,
        task: TaskId,
        len: u64,
        checksum: u64,
    },

    // ---- worker → master ----
    /// The worker can take `credits` more tasks (pull).
    Ready {
        credits: u32,
    },
    /// The result of (`task`, `attempt`), `len` bytes, follows as chunks on stream `task`.
    Done {
        task: TaskId,
        attempt: u32,
        len: u64,
        checksum: u64,
    },
    /// The worker could not process (`task`, `attempt`).
    Failed {
        task: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
    },

    // ---- master → worker ----
    /// Process this image; `len` bytes follow as chunks on stream `task`.
    Assign {
        task: TaskId,
        attempt: u32,
        name: String,
        len: u64,
        checksum: u64,
    },
    /// The master stored the result of `task` (or no longer needs it).
    Accepted {
        task: TaskId,
    },

    // ---- both directions ----
    /// Part of the byte stream `stream`; the payload follows the header in the frame.
    Chunk {
        stream: StreamId,
    },
    /// A typed error reply; `req` names the request it answers, if any.
    Error {
        req: Option<u64>,
        code: ErrorCode,
        message: String,
    },

    // ---- leases (worker ↔ master) ----
    /// Worker → master, on the worker's own timer: "I hold these leases";
    /// extends each one that is still live.
    Heartbeat {
        leases: Vec<LeaseRef>,
    },
    /// Worker → master: the worker began processing (`task`, `attempt`);
    /// from now on it will not give the task back for stealing.
    Started {
        task: TaskId,
        attempt: u32,
    },
    /// Master → worker: give (`task`, `attempt`) back if you have not started it.
    Release {
        task: TaskId,
        attempt: u32,
    },
    /// Worker → master: (`task`, `attempt`) is given back: unstarted
    /// (answering `Release`, or while draining), or stopped by a drain whose
    /// grace ran out. Never a strike against the task.
    Released {
        task: TaskId,
        attempt: u32,
    },
    /// Master → worker: stop working on (`task`, `attempt`): its lease is gone
    /// or another attempt already decided the task.
    Drop {
        task: TaskId,
        attempt: u32,
    },
    /// Worker → master: the worker is shutting down: assign it nothing more.
    Draining,
    /// Worker → master, first after the handshake: how many images it
    /// processes at once (so the master knows when it is idle), and whether
    /// it is a synthetic load-test worker (`--synthetic`: its "results" are
    /// its inputs, unprocessed), so the master can say so.
    Capacity {
        threads: u32,
        synthetic: bool,
    },

    // ---- durable record (client ↔ master) ----
    /// Ask for a task's recorded events (answered with `History`).
    GetHistory {
        req: u64,
        task: TaskId,
    },
    /// A task's recorded events, oldest first.
    History {
        req: u64,
        task: TaskId,
        events: Vec<EventEntry>,
    },
    /// Remove a task and its files (answered with `Deleted`).
    Delete {
        req: u64,
        task: TaskId,
    },
    Deleted {
        req: u64,
        task: TaskId,
    },
    /// `submitter` has safely stored the result of `task` (answered with
    /// `Confirmed` once that is recorded): the master removes the result
    /// when every submitter of the task has confirmed.
    Confirm {
        req: u64,
        task: TaskId,
        submitter: u64,
    },

    // ---- cancellation and the live view (client ↔ master) ----
    /// Cancel a task (answered with `Info`: its state afterwards). A queued
    /// task is cancelled at once; a running one too, and its worker is told
    /// to drop it; a decided one is left as it is.
    Cancel {
        req: u64,
        task: TaskId,
    },
    /// Ask for a snapshot of the cluster (answered with `Cluster`).
    GetCluster {
        req: u64,
    },
    /// The master's tasks, workers and recent throughput.
    Cluster {
        req: u64,
        cluster: ClusterInfo,
    },
    // ---- liveness (client or worker → master, and back) ----
    /// "Are you there?": sent by a client or worker that has heard nothing
    /// from the master for a while but is waiting on it. The master answers
    /// at once with `Pong` carrying the same `seq`.
    Ping {
        seq: u64,
    },
    /// The master's answer to `Ping`.
    Pong {
        seq: u64,
    },
    /// The confirmation `req` is recorded.
    Confirmed {
        req: u64,
        task: TaskId,
    },
    /// Worker → master, its last word on a connection it gives up because
    /// it heard nothing from the master for `silent_ms` (the master's lease
    /// timeout): the master stopped, or its messages were lost on the way.
    /// What the worker held there is lost to that silence, not to a crash,
    /// so it is no evidence against any image (`scheduler/blame.rs`).
    HangingUp {
        silent_ms: u64,
    },
}

/// The submitter of `tessera submit` and `tessera fetch`, which run as
/// separate processes and share no other identity.
pub const ANONYMOUS_SUBMITTER: u64 = 0;

/// One lease, as named in a heartbeat: the task and the attempt (the fencing token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub task: TaskId,
    pub attempt: u32,
}

impl Msg {
    /// A short name for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Submit { .. } => "Submit",
            Msg::Status { .. } => "Status",
            Msg::Wait { .. } => "Wait",
            Msg::Fetch { .. } => "Fetch",
            Msg::Submitted { .. } => "Submitted",
            Msg::Info { .. } => "Info",
            Msg::Result { .. } => "Result",
            Msg::Ready { .. } => "Ready",
            Msg::Done { .. } => "Done",
            Msg::Failed { .. } => "Failed",
            Msg::Assign { .. } => "Assign",
            Msg::Accepted { .. } => "Accepted",
            Msg::Chunk { .. } => "Chunk",
            Msg::Error { .. } => "Error",
            Msg::Heartbeat { .. } => "Heartbeat",
            Msg::Started { .. } => "Started",
            Msg::Release { .. } => "Release",
            Msg::Released { .. } => "Released",
            Msg::Drop { .. } => "Drop",
            Msg::Draining => "Draining",
            Msg::Capacity { .. } => "Capacity",
            Msg::GetHistory { .. } => "GetHistory",
            Msg::History { .. } => "History",
            Msg::Delete { .. } => "Delete",
            Msg::Deleted { .. } => "Deleted",
            Msg::Confirm { .. } => "Confirm",
            Msg::Cancel { .. } => "Cancel",
            Msg::GetCluster { .. } => "GetCluster",
            Msg::Cluster { .. } => "Cluster",
            Msg::Ping { .. } => "Ping",
            Msg::Pong { .. } => "Pong",
            Msg::Confirmed { .. } => "Confirmed",
            Msg::HangingUp { .. } => "HangingUp",
        }
    }
}

/// Error replies, typed by what the receiver should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame did not decode as any known message. Do not resend it.
    UnknownMessage,
    /// A valid message that this peer does not accept now (wrong role or state).
    UnexpectedMessage,
    /// A valid message with inconsistent content (chunks past the announced length...).
    Malformed,
    /// No such task.
    NotFound,
    /// The task exists but has no result (yet, or because it failed).
    NotReady,
    /// Over a configured limit; the message says which.
    TooLarge,
    /// The master is at capacity; retry later with backoff.
    Busy,
    /// The master could not store data (disk full, I/O error); retry later.
    Storage,
    /// A bug on the master.
    Internal,
    /// Bytes did not match their checksum: corrupted in transit or on disk.
    Checksum,
}
