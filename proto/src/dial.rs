//! Opening a connection to a master: TCP connect and the Noise handshake
//! under the cluster key (see [`crate::handshake`]), each with a deadline;
//! the connection is encrypted from then on.

use std::time::Duration;

use crate::{
    FrameReader, FrameWriter, Hello, HelloReply, ProtoError, Refusal, Role, Welcome,
    frame::FrameLimits,
    handshake::CONFIRMATION,
    key::ClusterKey,
    net::{Connection, Dialer, ReadHalf, WriteHalf},
    noise,
    secure::streams,
    wire,
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
    /// The keys differ: the master could not decrypt our handshake message
    /// (it refused us `Unauthorized`), or its answer did not decrypt under
    /// our key (a spoofed master, or tampering in transit). Skip it
    /// (discovery) or fix the key file.
    #[error(
        "{addr} did not prove it holds this cluster's key (our key's fingerprint is {fingerprint}): it is a master of another cluster or not a tessera master, or the key file is not a copy of the master's cluster.key"
    )]
    Unauthenticated { addr: String, fingerprint: String },
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
    let (welcome, keys) = tokio::time::timeout(
        options.handshake_timeout,
        handshake(addr, role, node_id, key, &mut reader, &mut writer),
    )
    .await
    .map_err(|_| ProtoError::Timeout(options.handshake_timeout))??;
    let (read, write) = streams(reader, writer, keys, addr);
    let mut writer = FrameWriter::new(Box::new(write) as WriteHalf, options.limits.max_frame);
    tokio::time::timeout(
        options.handshake_timeout,
        writer.send_raw(CONFIRMATION.to_vec()),
    )
    .await
    .map_err(|_| ProtoError::Timeout(options.handshake_timeout))??;
    Ok(Dialed {
        reader: FrameReader::with_limits(Box::new(read), options.limits),
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
) -> Result<(Welcome, snow::StatelessTransportState), DialError> {
    let hello = wire::encode(&Hello::new(role, node_id)).map_err(ProtoError::from)?;
    let mut noise = noise::initiator(key, &hello);
    let mut first = vec![0u8; noise::FIRST_MESSAGE_LEN];
    noise
        .write_message(&[], &mut first)
        .map_err(|e| ProtoError::Io(std::io::Error::other(e)))?;
    // Both frames at once: the handshake costs one round trip.
    writer.send_raw(hello).await?;
    writer.send_raw(first).await?;
    let answer = match reader.next_hello_reply().await? {
        HelloReply::Accept(answer) => answer,
        // The master could not decrypt our message: the keys differ. Said
        // as when the master's answer does not decrypt, with our key's
        // fingerprint to compare.
        HelloReply::Refused(Refusal::Unauthorized) => return Err(unauthenticated(addr, key)),
        HelloReply::Refused(r) => return Err(DialError::Refused(r)),
    };
    let mut welcome = vec![0u8; answer.len()];
    let n = noise
        .read_message(&answer, &mut welcome)
        .map_err(|_| unauthenticated(addr, key))?;
    let welcome: Welcome = wire::decode_exact(&welcome[..n]).map_err(ProtoError::from)?;
    let keys = noise::transport(noise).map_err(|e| ProtoError::Io(std::io::Error::other(e)))?;
    Ok((welcome, keys))
}

fn unauthenticated(addr: &str, key: &ClusterKey) -> DialError {
    DialError::Unauthenticated {
        addr: addr.to_string(),
        fingerprint: key.fingerprint(),
    }
}
