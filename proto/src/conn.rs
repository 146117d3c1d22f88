//! Typed reading and writing of frames over any byte stream.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use crate::{
    error::{DecodeError, ProtoError},
    frame::{FrameCodec, FrameLimits},
    handshake::HelloReply,
    message::Msg,
    wire,
};

/// One received message and, for chunks, its payload (a zero-copy slice of
/// the frame buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub msg: Msg,
    pub payload: Bytes,
}

/// The reading half of a connection.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: FramedRead<R, FrameCodec>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, max_frame: usize) -> Self {
        FrameReader::with_limits(io, FrameLimits::uniform(max_frame))
    }

    pub fn with_limits(io: R, limits: FrameLimits) -> Self {
        FrameReader {
            inner: FramedRead::new(io, FrameCodec::with_limits(limits)),
        }
    }

    /// The stream underneath and the bytes read from it past the last frame.
    pub fn into_parts(self) -> (R, bytes::BytesMut) {
        let parts = self.inner.into_parts();
        (parts.io, parts.read_buf)
    }

    /// The frame limits in force.
    pub fn limits(&self) -> FrameLimits {
        let codec = self.inner.decoder();
        FrameLimits {
            max_frame: codec.max_frame(),
            max_control: codec.max_control(),
        }
    }

    /// Changes the frame limits from the next frame on.
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.inner.decoder_mut().set_limits(limits);
    }

    /// The next raw frame body. `Err(Closed)` on a clean end of stream.
    pub async fn next_frame(&mut self) -> Result<bytes::BytesMut, ProtoError> {
        match self.inner.next().await {
            Some(frame) => frame,
            None => Err(ProtoError::Closed),
        }
    }

    /// The next raw frame body, or `Err(Timeout)` after `deadline`.
    pub async fn next_frame_within(
        &mut self,
        deadline: Duration,
    ) -> Result<bytes::BytesMut, ProtoError> {
        tokio::time::timeout(deadline, self.next_frame())
            .await
            .map_err(|_| ProtoError::Timeout(deadline))?
    }

    /// The next message. A body that does not decode is `Err(Decode)`, which
    /// is not fatal: the frame boundary is intact.
    pub async fn recv(&mut self) -> Result<Incoming, ProtoError> {
        let frame = self.next_frame().await?;
        decode_msg(frame).map_err(ProtoError::Decode)
    }

    /// [`Self::recv`] with a deadline.
    pub async fn recv_within(&mut self, deadline: Duration) -> Result<Incoming, ProtoError> {
        tokio::time::timeout(deadline, self.recv())
            .await
            .map_err(|_| ProtoError::Timeout(deadline))?
    }

    /// Reads the master's next handshake frame.
    pub async fn recv_hello_reply(&mut self, deadline: Duration) -> Result<HelloReply, ProtoError> {
        let frame = self.next_frame_within(deadline).await?;
        Ok(wire::decode_exact(&frame)?)
    }

    /// [`Self::recv_hello_reply`] without a deadline of its own (the caller's
    /// deadline covers the whole handshake).
    pub async fn next_hello_reply(&mut self) -> Result<HelloReply, ProtoError> {
        let frame = self.next_frame().await?;
        Ok(wire::decode_exact(&frame)?)
    }
}

/// Splits a frame into its message and, for chunks, the payload after it.
pub fn decode_msg(mut frame: bytes::BytesMut) -> Result<Incoming, DecodeError> {
    // serde reports an unknown enum variant only as text; read the variant
    // index (the leading varint) ourselves to type it.
    let (variant, _) = wire::decode_prefix::<u32>(&frame)?;
    if variant >= crate::message::MSG_VARIANTS {
        return Err(DecodeError::UnknownVariant { found: variant });
    }
    let (msg, used) = wire::decode_prefix::<Msg>(&frame)?;
    let payload = frame.split_off(used).freeze();
    if !payload.is_empty() && !matches!(msg, Msg::Chunk { .. }) {
        return Err(DecodeError::TrailingBytes {
            extra: payload.len(),
        });
    }
    Ok(Incoming { msg, payload })
}
