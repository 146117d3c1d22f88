//! Errors of the client library, typed by what the caller should do.

use std::{path::PathBuf, time::Duration};

use tessera_proto::{ErrorCode, ProtoError, Refusal, TaskId};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No master at that address (or it did not answer in time).
    #[error(
        "cannot connect to master at {addr}: {source}; start one with `tessera-node master` (or `tessera-node dev`), or pass --master / TESSERA_MASTER"
    )]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// No master to be seen where it is looked for (mDNS shows no live
    /// master of the cluster): it may come back.
    #[error("cannot find the master: {0}")]
    NotFound(String),
    /// The master refused the handshake (version mismatch, at capacity,
    /// `Unauthorized`: our key is not the master's...).
    #[error("master refused the connection: {0}")]
    Refused(Refusal),
    /// The server did not prove it holds our cluster key.
    #[error(
        "{addr} did not prove it holds this cluster's key (our key's fingerprint is {fingerprint}): it is a master of another cluster or not a tessera master, or --key-file / TESSERA_KEY_FILE is not a copy of the master's cluster.key"
    )]
    Unauthenticated { addr: String, fingerprint: String },
    /// The connection dropped; what was pending did not complete.
    #[error(
        "lost the connection to the master (it stopped, or the network failed); run the command again once it is back"
    )]
    Disconnected,
    /// The master answered a request with a typed error.
    #[error("{message}")]
    Master { code: ErrorCode, message: String },
    #[error("the master sent a malformed reply: {0}")]
    Protocol(String),
    #[error("result of {len} bytes is over this client's limit of {max} bytes")]
    TooLarge { len: u64, max: u64 },
    /// A downloaded result does not match the checksum the master recorded.
    #[error(
        "the result of task {task} is corrupt: its checksum is {got:016x}, the master recorded {expected:016x}; it was not written"
    )]
    Checksum {
        task: TaskId,
        expected: u64,
        got: u64,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The master gave no sign of life for this long while calls waited on
    /// it (it answers pings at once): it is hung, or the network to it is
    /// cut. The connection was given up.
    #[error(
        "no word from the master for {:.1} s although it answers pings at once: it is hung or the network to it is cut",
        .0.as_secs_f64()
    )]
    MasterSilent(Duration),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wire(#[from] ProtoError),
}

impl ClientError {
    /// The master's error code, when the master answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Master { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when this client's cluster key is not the master's (either side
    /// found out).
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            ClientError::Unauthenticated { .. } | ClientError::Refused(Refusal::Unauthorized)
        )
    }

    /// What to do about this error: the client's one retry classifier.
    pub fn retry(&self) -> Retry {
        match self {
            ClientError::Disconnected
            | ClientError::Connect { .. }
            | ClientError::NotFound(_)
            | ClientError::Wire(_)
            | ClientError::Timeout(_)
            | ClientError::MasterSilent(_)
            // A handshake the master timed out: the network was too slow
            // for its deadline, which says nothing about the request.
            | ClientError::Refused(Refusal::Timeout { .. })
            // At its connection limit now; a connection may close.
            | ClientError::Refused(Refusal::Busy { .. }) => Retry::Reconnect,
            ClientError::Master {
                code: ErrorCode::Busy,
                ..
            } => Retry::Later { bounded: false },
            ClientError::Master {
                code: ErrorCode::Storage,
                ..
            } => Retry::Later { bounded: true },
            _ => Retry::Never,
        }
    }
}

/// What a caller should do about a [`ClientError`] ([`ClientError::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The master is gone for now (restart, crash, network): repeat the
    /// request on a new connection.
    Reconnect,
    /// The master answered that it cannot do this now: repeat the request
    /// after a pause. `Busy` (its memory or queues are full) passes as
    /// its work drains, so it is not bounded; `Storage` (its disk refused
    /// the data: full, or failing) needs someone to make room, so it is
    /// given up after as long as an outage would be.
    Later { bounded: bool },
    /// The answer is final: repeating the request cannot change it.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(code: ErrorCode) -> ClientError {
        ClientError::Master {
            code,
            message: String::new(),
        }
    }

    #[test]
    fn errors_are_classed_by_what_to_do() {
        assert_eq!(ClientError::Disconnected.retry(), Retry::Reconnect);
        assert_eq!(
            ClientError::Refused(Refusal::Busy { limit: 1 }).retry(),
            Retry::Reconnect
        );
        assert_eq!(
            master(ErrorCode::Busy).retry(),
            Retry::Later { bounded: false }
        );
        assert_eq!(
            master(ErrorCode::Storage).retry(),
            Retry::Later { bounded: true }
        );
        for never in [
            master(ErrorCode::TooLarge),
            master(ErrorCode::NotFound),
            master(ErrorCode::Checksum),
            ClientError::Refused(Refusal::Unauthorized),
            ClientError::Refused(Refusal::VersionMismatch { master: 1, peer: 2 }),
        ] {
            assert_eq!(never.retry(), Retry::Never, "{never}");
        }
    }
}
