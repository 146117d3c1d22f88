//! The master's side of the handshake: read the peer's `Hello` and its
//! Noise message, answer with ours (which carries the `Welcome`), switch
//! the connection to encrypted records and wait for the peer's
//! confirmation, its first record. Until then every frame must
//! fit in [`HANDSHAKE_MAX_FRAME`] bytes and the whole exchange must finish
//! within one deadline; nothing but handshake frames is parsed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    FrameReader, FrameWriter, Hello, HelloReply, ProtoError, Refusal, Welcome,
    frame::{FrameLimits, HANDSHAKE_MAX_FRAME},
    handshake::{CONFIRMATION, MAX_ACCEPT, check_first_message, parse_hello},
    key::ClusterKey,
    noise,
    secure::{SecureReader, SecureWriter, upgrade},
    wire,
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
    /// `Refusal::Unauthorized`: its Noise message did not decrypt under our
    /// key (it holds another cluster's key, or is forging).
    #[error("{0}")]
    Refused(Refusal),
    /// The connection ended or failed during the handshake.
    #[error("{0}")]
    Proto(ProtoError),
}

impl AcceptError {
    /// True when the peer failed to authenticate (as opposed to going away).
    pub fn is_wrong_key(&self) -> bool {
        matches!(self, AcceptError::Refused(Refusal::Unauthorized))
    }
}

/// An accepted connection: the peer's `Hello` and the encrypted frames.
#[derive(Debug)]
pub struct Accepted<R, W> {
    pub hello: Hello,
    pub reader: SecureReader<R>,
    pub writer: SecureWriter<W>,
}

/// Runs the master's side of the handshake on a fresh connection from
/// `peer` (for logs). On success `welcome` has been sent (encrypted) and the
/// reader takes `options.limits`.
pub async fn accept<R, W>(
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    key: &ClusterKey,
    welcome: Welcome,
    options: AcceptOptions,
    peer: &str,
) -> Result<Accepted<R, W>, AcceptError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reader.set_limits(FrameLimits::HANDSHAKE);
    let deadline = tokio::time::Instant::now() + options.timeout;
    let timed_out = || {
        let after_ms = options.timeout.as_millis().min(u128::from(u32::MAX)) as u32;
        AcceptError::Refused(Refusal::Timeout { after_ms })
    };
    let result =
        tokio::time::timeout_at(deadline, exchange(&mut reader, &mut writer, key, welcome))
            .await
            .unwrap_or_else(|_| Err(timed_out()));
    match result {
        Ok((hello, keys)) => {
            // Encrypted from here: a failure is not refused in the clear
            // (the peer could not read it), the connection just ends.
            let (mut reader, writer) = upgrade(reader, writer, keys, peer, FrameLimits::HANDSHAKE);
            let confirmation = tokio::time::timeout_at(deadline, reader.next_frame())
                .await
                .map_err(|_| timed_out())?
                .map_err(AcceptError::Proto)?;
            if confirmation != CONFIRMATION {
                return Err(AcceptError::Refused(Refusal::Malformed(
                    "expected the handshake confirmation as the first encrypted frame".into(),
                )));
            }
            reader.set_limits(options.limits);
            Ok(Accepted {
                hello,
                reader,
                writer,
            })
        }
        Err(AcceptError::Refused(refusal)) => {
            let reply = HelloReply::Refused(refusal.clone());
            let _ =
                tokio::time::timeout(REFUSAL_SEND_TIMEOUT, writer.send_hello_reply(&reply)).await;
            Err(AcceptError::Refused(refusal))
        }
        Err(e) => Err(e),
    }
}

async fn exchange<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    key: &ClusterKey,
    welcome: Welcome,
) -> Result<(Hello, snow::StatelessTransportState), AcceptError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello_frame = reader.next_frame().await.map_err(handshake_error)?;
    let hello = parse_hello(&hello_frame).map_err(AcceptError::Refused)?;
    let first = reader.next_frame().await.map_err(handshake_error)?;
    check_first_message(&first).map_err(AcceptError::Refused)?;
    let mut noise = noise::responder(key, &hello_frame);
    let mut empty = [0u8; noise::FIRST_MESSAGE_LEN];
    noise
        .read_message(&first, &mut empty)
        .map_err(|_| AcceptError::Refused(Refusal::Unauthorized))?;
    let welcome = wire::encode(&welcome).map_err(|e| AcceptError::Proto(e.into()))?;
    let mut answer = vec![0u8; MAX_ACCEPT];
    let n = noise
        .write_message(&welcome, &mut answer)
        .map_err(|e| AcceptError::Proto(ProtoError::Io(std::io::Error::other(e))))?;
    answer.truncate(n);
    writer
        .send_hello_reply(&HelloReply::Accept(answer))
        .await
        .map_err(AcceptError::Proto)?;
    let keys = noise::transport(noise)
        .map_err(|e| AcceptError::Proto(ProtoError::Io(std::io::Error::other(e))))?;
    Ok((hello, keys))
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
