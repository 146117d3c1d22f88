//! The handshake: the first frames of every connection.
//!
//! ```text
//! peer                                   master
//!  | Hello{magic, version, role, id, nonce_p} -> |
//!  | <- Challenge{nonce_m, master proof}         |   (or Refused)
//!  | Answer::Proof(peer proof) ->                |   (the peer checked the master's proof first)
//!  | <- Welcome                                  |   (or Refused(Unauthorized))
//! ```
//!
//! See [`crate::auth`] for the proofs. `Hello`'s prefix (magic, version) and
//! `HelloReply`'s first two variants (`Welcome`, `Refused` with the refusals
//! up to `Busy`) are the encodings that must stay stable across protocol
//! versions: a peer of any version can read the magic and the version, and
//! read a refusal that names both versions. New refusals are appended.

use serde::{Deserialize, Serialize};

use crate::{
    MAGIC, PROTOCOL_VERSION,
    auth::{Nonce, Proof},
    error::DecodeError,
    wire,
};

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
    /// The peer's fresh challenge to the master.
    pub nonce: Nonce,
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
            nonce: crate::auth::nonce(),
        }
    }
}

/// What the master sends during the handshake: `Challenge` (or `Refused`)
/// answering a `Hello`, then `Welcome` (or `Refused`) answering the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Welcome(Welcome),
    Refused(Refusal),
    Challenge(Challenge),
}

/// The master's proof that it holds the cluster key, and its own challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The master's fresh nonce.
    pub nonce: Nonce,
    /// [`crate::auth::master_proof`] over the peer's nonce and this one.
    pub proof: Proof,
}

/// How many variants [`Answer`] has.
const ANSWER_VARIANTS: u32 = 2;

/// The peer's second frame, answering a `Challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// [`crate::auth::peer_proof`]: the peer holds the cluster key.
    Proof(Proof),
    /// The master's proof did not verify under the peer's key (another
    /// cluster's key, or a spoofed master); the peer is leaving. Sent so the
    /// master can log the real reason.
    MasterUnverified,
}

/// Accepted: the connection now carries [`crate::Msg`] frames. The master
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

/// Decodes the peer's answer to a challenge.
pub fn parse_answer(frame: &[u8]) -> Result<Answer, Refusal> {
    wire::decode_enum_exact(frame, ANSWER_VARIANTS).map_err(|e: DecodeError| {
        Refusal::Malformed(format!("expected the answer to the challenge: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_variants_is_the_number_of_variants() {
        let last = wire::encode(&Answer::MasterUnverified).unwrap();
        assert_eq!(u32::from(last[0]) + 1, ANSWER_VARIANTS);
        assert_eq!(
            parse_answer(&[2]),
            Err(Refusal::Malformed(
                "expected the answer to the challenge: unknown message type (variant 2)".into()
            ))
        );
    }
}
