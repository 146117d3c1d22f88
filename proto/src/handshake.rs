//! The handshake: the first frames of every connection, a Noise
//! `NNpsk0` handshake (see [`crate::noise`]) behind a cleartext `Hello`.
//!
//! ```text
//! peer                                         master
//!  | Hello{magic, version, role, node_id} ->   |   cleartext; the prologue of the Noise handshake
//!  | Noise `-> psk, e` (48 bytes) ->           |   sent at once, no round trip
//!  | <- Accept(Noise `<- e, ee` + Welcome)     |   or Refused (cleartext): bad magic, version,
//!  |                                           |   Busy, Unauthorized (the first message did
//!  |                                           |   not decrypt under the master's key), Timeout
//!  | [CONFIRMATION] (first record) ->          |   the peer proves it holds the connection's keys
//!  | records (crate::secure) both ways ...     |
//! ```
//!
//! The confirmation closes a gap of `NNpsk0`: the peer's first message
//! proves the key but can be replayed from a capture, and only a record
//! under the new keys proves the peer is live. Until it arrives the master
//! counts the connection as unauthenticated (its handshake slot and
//! deadline), so a replayer gets nothing but a timeout. The peer sends it
//! right after the `Accept`, ahead of its first message: no round trip.
//!
//! `Hello`'s prefix (magic, version) and `HelloReply::Refused` (variant 1,
//! with the refusals up to `Busy`) are the encodings that must stay stable
//! across protocol versions: a peer of any version can read the magic and
//! the version, and read a refusal that names both versions. New refusals
//! are appended.

use serde::{Deserialize, Serialize};

use crate::{MAGIC, PROTOCOL_VERSION, error::DecodeError, wire};

/// Who is connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Client,
    Worker,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Worker => "worker",
        })
    }
}

/// The first frame a connecting peer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`]: tells a tessera peer from anything else on the port.
    pub magic: [u8; 4],
    pub version: u16,
    pub role: Role,
    /// The peer's self-chosen id, for logs (at most [`MAX_NODE_ID`] bytes).
    pub node_id: String,
}

/// Longest node id accepted in a `Hello`.
pub const MAX_NODE_ID: usize = 128;

impl Hello {
    pub fn new(role: Role, node_id: impl Into<String>) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            role,
            node_id: node_id.into(),
        }
    }
}

/// What the master answers a `Hello` and the Noise message after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The Noise message `<- e, ee`, whose payload is the encoded
    /// [`Welcome`]; the connection is encrypted from the next byte on.
    Accept(Vec<u8>),
    Refused(Refusal),
}

/// The body of the peer's first encrypted frame, which ends the handshake.
pub const CONFIRMATION: &[u8] = b"tessera handshake confirmed";

/// Longest `Accept` message: the master's ephemeral key, a `Welcome` and a tag.
pub const MAX_ACCEPT: usize = 512;

/// Accepted (inside the `Accept` message): the connection now carries
/// [`crate::Msg`] frames. The master
/// sets the lease timing for its whole cluster here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    pub master_id: String,
    /// How often a worker must send a heartbeat.
    pub heartbeat_interval_ms: u32,
    /// A lease not covered by a heartbeat for this long expires.
    pub lease_timeout_ms: u32,
}

impl Welcome {
    /// A `Welcome` of this protocol version; durations in whole
    /// milliseconds, saturating.
    pub fn new(
        master_id: impl Into<String>,
        heartbeat_interval: std::time::Duration,
        lease_timeout: std::time::Duration,
    ) -> Self {
        let ms = |d: std::time::Duration| d.as_millis().min(u128::from(u32::MAX)) as u32;
        Welcome {
            version: PROTOCOL_VERSION,
            master_id: master_id.into(),
            heartbeat_interval_ms: ms(heartbeat_interval),
            lease_timeout_ms: ms(lease_timeout),
        }
    }
}

/// Why the master refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("not a tessera peer: the first frame does not start with the magic bytes")]
    BadMagic,
    #[error(
        "protocol version mismatch: master speaks version {master}, this peer speaks version {peer}"
    )]
    VersionMismatch { master: u16, peer: u16 },
    #[error("malformed handshake: {0}")]
    Malformed(String),
    #[error("the master is at its connection limit ({limit}); retry later")]
    Busy { limit: u32 },
    #[error(
        "wrong cluster key: this peer could not prove it holds the master's cluster key; copy the master's cluster.key (in its data directory) and pass --key-file PATH or set TESSERA_KEY_FILE=PATH"
    )]
    Unauthorized,
    #[error("the handshake was not completed within {after_ms} ms")]
    Timeout { after_ms: u32 },
}

/// Checks and decodes a first frame. Magic first, then version (read from a
/// prefix that every version shares), then the rest.
pub fn parse_hello(frame: &[u8]) -> Result<Hello, Refusal> {
    if frame.len() < MAGIC.len() || frame[..MAGIC.len()] != MAGIC {
        return Err(Refusal::BadMagic);
    }
    let ((_, version), _) = wire::decode_prefix::<([u8; 4], u16)>(frame)
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    if version != PROTOCOL_VERSION {
        return Err(Refusal::VersionMismatch {
            master: PROTOCOL_VERSION,
            peer: version,
        });
    }
    let hello: Hello =
        wire::decode_exact(frame).map_err(|e: DecodeError| Refusal::Malformed(e.to_string()))?;
    if hello.node_id.len() > MAX_NODE_ID {
        return Err(Refusal::Malformed(format!(
            "node id of {} bytes is over the {MAX_NODE_ID}-byte limit",
            hello.node_id.len()
        )));
    }
    Ok(hello)
}

/// Checks the peer's Noise message that follows its `Hello`.
pub fn check_first_message(frame: &[u8]) -> Result<(), Refusal> {
    if frame.len() != crate::noise::FIRST_MESSAGE_LEN {
        return Err(Refusal::Malformed(format!(
            "expected the {}-byte Noise handshake message after the Hello, got {} bytes",
            crate::noise::FIRST_MESSAGE_LEN,
            frame.len()
        )));
    }
    Ok(())
}
