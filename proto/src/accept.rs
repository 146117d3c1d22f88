//! The master's side of the handshake: read the peer's `Hello`, prove we hold
//! the cluster key, check the peer's proof. Until the peer has proved itself
//! every frame must fit in [`HANDSHAKE_MAX_FRAME`] bytes and the whole
//! exchange must finish within one deadline; nothing but handshake frames is
//! parsed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    FrameReader, FrameWriter, Hello, HelloReply, ProtoError, Refusal, Welcome, auth,
    frame::{FrameLimits, HANDSHAKE_MAX_FRAME},
    handshake::{Answer, Challenge, parse_answer, parse_hello},
    key::ClusterKey,
};

/// How long a refusal may take to send before the connection is dropped anyway.
const REFUSAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Deadline and limits for [`accept`].
#[derive(Debug, Clone, Copy)]
pub struct AcceptOptions {
    /// For the whole handshake, from the first byte read to the `Welcome`.
    pub timeout: Duration,
    /// Frame limits once the peer is authenticated.
    pub limits: FrameLimits,
}

/// Why a handshake did not end in `Welcome`.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// We refused the peer; the refusal was sent to it (best effort).
    #[error("{0}")]
    Refused(Refusal),
    /// The peer could not verify the master's proof: it holds another
    /// cluster's key (or is probing). No refusal is sent: it is leaving.
    #[error(
        "the peer holds a different cluster key (it could not verify the master's proof); give it a copy of this master's cluster.key"
    )]
    PeerHasOtherKey,
    /// The connection ended or failed during the handshake.
    #[error("{0}")]
    Proto(ProtoError),
}

impl AcceptError {
    /// True when the peer failed to authenticate (as opposed to going away).
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            AcceptError::PeerHasOtherKey | AcceptError::Refused(Refusal::Unauthorized)
        )
    }
}

/// Runs the master's side of the handshake on a fresh connection. On success
/// the reader is switched to `options.limits` and the peer's `Hello` is
/// returned; `welcome` has been sent.
pub async fn accept<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    key: &ClusterKey,
    welcome: Welcome,
    options: AcceptOptions,
) -> Result<Hello, AcceptError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reader.set_limits(FrameLimits::HANDSHAKE);
    let result = tokio::time::timeout(options.timeout, exchange(reader, writer, key, welcome))
        .await
        .unwrap_or_else(|_| {
            let after_ms = options.timeout.as_millis().min(u128::from(u32::MAX)) as u32;
            Err(AcceptError::Refused(Refusal::Timeout { after_ms }))
        });
    match &result {
        Ok(_) => reader.set_limits(options.limits),
        Err(AcceptError::Refused(refusal)) => {
            let reply = HelloReply::Refused(refusal.clone());
            let _ =
                tokio::time::timeout(REFUSAL_SEND_TIMEOUT, writer.send_hello_reply(&reply)).await;
        }
        Err(_) => {}
    }
    result
}

async fn exchange<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    key: &ClusterKey,
    welcome: Welcome,
) -> Result<Hello, AcceptError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = reader.next_frame().await.map_err(handshake_error)?;
    let hello = parse_hello(&frame).map_err(AcceptError::Refused)?;
    let nonce = auth::nonce();
    let proof = auth::master_proof(key, &hello.nonce, &nonce);
    writer
        .send_hello_reply(&HelloReply::Challenge(Challenge { nonce, proof }))
        .await
        .map_err(AcceptError::Proto)?;
    let frame = reader.next_frame().await.map_err(handshake_error)?;
    match parse_answer(&frame).map_err(AcceptError::Refused)? {
        Answer::MasterUnverified => Err(AcceptError::PeerHasOtherKey),
        Answer::Proof(p) if auth::verify_peer(key, hello.role, &nonce, &hello.nonce, &p) => {
            writer
                .send_hello_reply(&HelloReply::Welcome(welcome))
                .await
                .map_err(AcceptError::Proto)?;
            Ok(hello)
        }
        Answer::Proof(_) => Err(AcceptError::Refused(Refusal::Unauthorized)),
    }
}

/// An over-long frame during the handshake is refused by name; anything
/// else (closed, reset) just ends the connection.
fn handshake_error(e: ProtoError) -> AcceptError {
    match e {
        ProtoError::FrameTooLarge { len, .. } | ProtoError::MessageTooLarge { len, .. } => {
            AcceptError::Refused(Refusal::Malformed(format!(
                "handshake frame of {len} bytes is over the {HANDSHAKE_MAX_FRAME}-byte limit"
            )))
        }
        other => AcceptError::Proto(other),
    }
}
