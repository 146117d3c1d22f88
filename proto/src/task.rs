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
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Unsupported => "unsupported",
            FailureKind::Corrupt => "corrupt",
            FailureKind::TooLarge => "too large",
            FailureKind::WorkerLost => "worker lost",
            FailureKind::Internal => "internal",
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
