//! Opening a connection to a master: TCP connect and the mutually
//! authenticated handshake, each with a deadline.

use std::time::Duration;

use crate::{
    FrameReader, FrameWriter, Hello, HelloReply, ProtoError, Refusal, Role, Welcome, auth,
    frame::FrameLimits,
    handshake::Answer,
    key::ClusterKey,
    net::{Connection, Dialer, ReadHalf, WriteHalf},
};

/// An open, accepted connection.
pub struct Dialed {
    pub reader: FrameReader<ReadHalf>,
    pub writer: FrameWriter<WriteHalf>,
    pub welcome: Welcome,
}

impl std::fmt::Debug for Dialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialed")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

/// Deadlines and limits for [`dial`].
#[derive(Debug, Clone, Copy)]
pub struct DialOptions {
    pub connect_timeout: Duration,
    /// For the whole handshake (challenge and proofs included).
    pub handshake_timeout: Duration,
    /// Frame limits once the handshake is over (before it, every frame must
    /// fit in [`crate::frame::HANDSHAKE_MAX_FRAME`]).
    pub limits: FrameLimits,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            limits: FrameLimits::default(),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Nothing answered at that address in time: retry later or check the address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The master answered and refused us (`Refusal::Unauthorized`: our key
    /// is not the master's).
    #[error("master refused the connection: {0}")]
    Refused(Refusal),
    /// The server did not prove it holds our cluster key: a master of
    /// another cluster, a spoofed one, or our key file is not a copy of the
    /// master's. Skip it (discovery) or fix the key file.
    #[error(
        "{addr} did not prove it holds this cluster's key (our key's fingerprint is {fingerprint}): it is a master of another cluster or not a tessera master, or the key file is not a copy of the master's cluster.key"
    )]
    Unauthenticated { addr: String, fingerprint: String },
    /// The master broke the handshake's order.
    #[error("handshake with {addr} failed: expected {expected}, got {got}")]
    UnexpectedReply {
        addr: String,
        expected: &'static str,
        got: &'static str,
    },
    /// The connection broke during the handshake.
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

impl DialError {
    /// True when the cluster keys differ (either side found out): retrying
    /// the same address with the same key cannot succeed.
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            DialError::Unauthenticated { .. } | DialError::Refused(Refusal::Unauthorized)
        )
    }
}

fn reply_name(reply: &HelloReply) -> &'static str {
    match reply {
        HelloReply::Welcome(_) => "Welcome",
        HelloReply::Refused(_) => "Refused",
        HelloReply::Challenge(_) => "Challenge",
    }
}

/// Connects to `addr` (`host:port`) through `dialer` and completes the
/// handshake as `role`, proving we hold `key` and checking that the master
/// does too.
pub async fn dial(
    dialer: &dyn Dialer,
    addr: &str,
    role: Role,
    node_id: &str,
    key: &ClusterKey,
    options: DialOptions,
) -> Result<Dialed, DialError> {
    let connect_err = |source| DialError::Connect {
        addr: addr.to_string(),
        source,
    };
    let Connection { read, write, .. } =
        tokio::time::timeout(options.connect_timeout, dialer.connect(addr))
            .await
            .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_err)?;
    let mut reader = FrameReader::with_limits(read, FrameLimits::HANDSHAKE);
    let mut writer = FrameWriter::new(write, options.limits.max_frame);
    let welcome = tokio::time::timeout(
        options.handshake_timeout,
        handshake(addr, role, node_id, key, &mut reader, &mut writer),
    )
    .await
    .map_err(|_| ProtoError::Timeout(options.handshake_timeout))??;
    reader.set_limits(options.limits);
    Ok(Dialed {
        reader,
        writer,
        welcome,
    })
}

async fn handshake(
    addr: &str,
    role: Role,
    node_id: &str,
    key: &ClusterKey,
    reader: &mut FrameReader<ReadHalf>,
    writer: &mut FrameWriter<WriteHalf>,
) -> Result<Welcome, DialError> {
    let hello = Hello::new(role, node_id);
    writer.send_hello(&hello).await?;
    let challenge = match reader.next_hello_reply().await? {
        HelloReply::Challenge(c) => c,
        HelloReply::Refused(r) => return Err(DialError::Refused(r)),
        // A master that welcomes without proving anything is not ours.
        HelloReply::Welcome(_) => return Err(unauthenticated(addr, key)),
    };
    if !auth::verify_master(key, &hello.nonce, &challenge.nonce, &challenge.proof) {
        // Best effort: tell it why we leave, so its log says so.
        let _ = writer.send_answer(&Answer::MasterUnverified).await;
        return Err(unauthenticated(addr, key));
    }
    let proof = auth::peer_proof(key, role, &challenge.nonce, &hello.nonce);
    writer.send_answer(&Answer::Proof(proof)).await?;
    match reader.next_hello_reply().await? {
        HelloReply::Welcome(w) => Ok(w),
        HelloReply::Refused(r) => Err(DialError::Refused(r)),
        other => Err(DialError::UnexpectedReply {
            addr: addr.to_string(),
            expected: "Welcome",
            got: reply_name(&other),
        }),
    }
}

fn unauthenticated(addr: &str, key: &ClusterKey) -> DialError {
    DialError::Unauthenticated {
        addr: addr.to_string(),
        fingerprint: key.fingerprint(),
    }
}
