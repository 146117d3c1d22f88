//! Task identity and state as seen on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A task's id, assigned by the master when it accepts an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(TaskId)
    }
}

/// Why a task failed, typed by what a user should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The input is a well-formed image of a format tessera does not process.
    Unsupported,
    /// The input is not a valid image (bad signature, CRC, truncated data...).
    Corrupt,
    /// The input exceeds a size limit (bytes, dimensions, decoded allocation).
    TooLarge,
    /// Workers kept dying or losing the task; see the reason for the attempts.
    WorkerLost,
    /// A bug in tessera itself.
    Internal,
    /// Cancelled on request (`tessera cancel`); nothing is wrong with the input.
    Cancelled,
    /// Processing this image kills the worker: its workers died while it was
    /// the only image executing there, `--max-attempts` times.
    Crashes,
    /// Processing this image never ends: it ran past `--task-timeout` on live
    /// workers, `--max-attempts` times (or that with crashes).
    TimedOut,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Unsupported => "unsupported",
            FailureKind::Corrupt => "corrupt",
            FailureKind::TooLarge => "too large",
            FailureKind::WorkerLost => "worker lost",
            FailureKind::Internal => "internal",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Crashes => "crashes its worker",
            FailureKind::TimedOut => "timed out",
        })
    }
}

/// The life of a task: queued → running → done | failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Running,
    Done,
    Failed { kind: FailureKind, reason: String },
}

impl TaskState {
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskState::Done | TaskState::Failed { .. })
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskState::Queued => f.write_str("queued"),
            TaskState::Running => f.write_str("running"),
            TaskState::Done => f.write_str("done"),
            TaskState::Failed { reason, .. } => write!(f, "failed: {reason}"),
        }
    }
}

/// What a status query returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub task: TaskId,
    /// The name the client gave the image (its path, relative to the batch root).
    pub name: String,
    pub state: TaskState,
    /// Input size in bytes.
    pub input_len: u64,
    /// Result size in bytes, once done.
    pub output_len: Option<u64>,
    /// How many times the task was handed to a worker.
    pub attempts: u32,
    /// The worker (its node id) that holds the task now, or that produced its result.
    pub worker: Option<String>,
}

/// One recorded event in a task's life, with its wall-clock time
/// (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEntry {
    pub at_ms: u64,
    pub event: TaskEvent,
}

/// What can happen to a task; the master's durable record is a sequence of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskEvent {
    /// The image was stored and the task queued.
    Submitted {
        name: String,
        len: u64,
        checksum: u64,
    },
    /// Handed to a worker under a lease.
    Leased { attempt: u32, worker: String },
    /// The attempt ended without a result (worker died, lease expired).
    Lost {
        attempt: u32,
        worker: String,
        why: String,
    },
    /// The worker gave the task back: unstarted (stealing, draining), or
    /// stopped by a drain out of grace. Not a strike.
    Released { attempt: u32, worker: String },
    /// The attempt's result was stored and decided the task.
    Completed {
        attempt: u32,
        worker: String,
        len: u64,
        checksum: u64,
        duration_ms: u64,
    },
    /// The attempt failed the task (a deterministic failure), or attempts ran out.
    Failed {
        attempt: u32,
        worker: String,
        kind: FailureKind,
        reason: String,
        duration_ms: u64,
    },
    /// The client confirmed it stored the result; the master removed its files.
    Fetched,
    /// Retention ran out; the master removed the task's files.
    Expired,
    /// Removed on request.
    Deleted,
    /// The master restarted while the task was leased; it was queued again.
    Recovered { attempt: u32 },
    /// Cancelled on request: while queued (no attempt), or during `attempt`
    /// on `worker`, which was told to drop it.
    Cancelled {
        attempt: Option<u32>,
        worker: Option<String>,
    },
    /// Another submitter sent the same image (the same idempotency key): it
    /// shares the task, and the result is kept until it confirms too.
    Joined { submitter: u64 },
    /// `submitter` confirmed its download; the result is kept for the
    /// `waiting` submitters that have not confirmed yet.
    Confirmed { submitter: u64, waiting: u32 },
}

impl fmt::Display for TaskEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskEvent::Submitted { name, len, .. } => write!(f, "submitted {name} ({len} bytes)"),
            TaskEvent::Leased { attempt, worker } => {
                write!(f, "attempt {attempt} leased to {worker}")
            }
            TaskEvent::Lost {
                attempt,
                worker,
                why,
            } => {
                write!(f, "attempt {attempt} on {worker} lost: {why}")
            }
            TaskEvent::Released { attempt, worker } => {
                write!(f, "attempt {attempt} given back by {worker}")
            }
            TaskEvent::Completed {
                attempt,
                worker,
                len,
                duration_ms,
                ..
            } => write!(
                f,
                "attempt {attempt} on {worker} completed in {duration_ms} ms ({len} bytes)"
            ),
            TaskEvent::Failed {
                attempt,
                worker,
                reason,
                duration_ms,
                ..
            } => write!(
                f,
                "attempt {attempt} on {worker} failed after {duration_ms} ms: {reason}"
            ),
            TaskEvent::Fetched => f.write_str("result downloaded and confirmed; files removed"),
            TaskEvent::Expired => f.write_str("retention ran out; files removed"),
            TaskEvent::Deleted => f.write_str("deleted"),
            TaskEvent::Recovered { attempt } => {
                write!(f, "master restarted during attempt {attempt}; queued again")
            }
            TaskEvent::Cancelled { attempt, worker } => match (attempt, worker) {
                (Some(a), Some(w)) => write!(f, "cancelled during attempt {a} on {w}"),
                (Some(a), None) => write!(f, "cancelled during attempt {a}"),
                _ => f.write_str("cancelled while queued"),
            },
            TaskEvent::Joined { submitter } => write!(
                f,
                "submitted again by submitter {submitter:016x}; the task and its result are shared"
            ),
            TaskEvent::Confirmed { submitter, waiting } => write!(
                f,
                "download confirmed by submitter {submitter:016x}; kept for {waiting} more"
            ),
        }
    }
}
