//! Errors of the wire layer, typed by what the caller should do.

use std::io;

/// A frame body could not be decoded. The frame boundary is intact, so the
/// receiver may answer with a typed error and keep the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message type (variant {found})")]
    UnknownVariant { found: u32 },
    #[error("message is truncated")]
    Truncated,
    #[error("message claims more than the {limit}-byte header limit")]
    LimitExceeded { limit: usize },
    #[error("{extra} unexpected trailing bytes after the message")]
    TrailingBytes { extra: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// What can go wrong on a framed connection.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The transport failed or the peer reset the connection: reconnect.
    #[error("connection error: {0}")]
    Io(io::Error),
    /// A record failed authentication (see [`crate::secure`]): the
    /// connection was tampered with. Nothing from it was acted on; close it.
    #[error("{0}")]
    Tampered(crate::secure::Tampered),
    /// The peer sent a length prefix over the maximum: the stream can no
    /// longer be trusted; close it.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    /// The peer sent a message other than a chunk over the (smaller) limit
    /// for such messages: close it, as for `FrameTooLarge`.
    #[error("message of {len} bytes is over the {max}-byte limit for messages other than chunks")]
    MessageTooLarge { len: usize, max: usize },
    /// A frame arrived but its body is not a valid message: answer with a
    /// typed error; the connection may continue.
    #[error("bad message: {0}")]
    Decode(#[from] DecodeError),
    /// The peer closed the connection cleanly.
    #[error("connection closed by peer")]
    Closed,
    /// No frame within the deadline.
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(std::time::Duration),
    /// A bug on our side: a message that cannot be encoded.
    #[error(transparent)]
    Encode(#[from] crate::wire::EncodeError),
}

impl From<io::Error> for ProtoError {
    /// A [`crate::secure::Tampered`] read error keeps its type.
    fn from(e: io::Error) -> Self {
        match crate::secure::Tampered::from_io(&e) {
            Some(t) => ProtoError::Tampered(t.clone()),
            None => ProtoError::Io(e),
        }
    }
}

impl ProtoError {
    /// True when the connection must be dropped (as opposed to answering the
    /// peer with a typed error and carrying on).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ProtoError::Decode(_))
    }
}
