//! Typed reading and writing of frames over any byte stream.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::{
    error::{DecodeError, ProtoError},
    frame::{FrameCodec, FrameLimits, OutFrame},
    handshake::{Hello, HelloReply},
    message::{Msg, StreamId},
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

/// The writing half of a connection.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: FramedWrite<W, FrameCodec>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W, max_frame: usize) -> Self {
        FrameWriter {
            inner: FramedWrite::new(io, FrameCodec::new(max_frame)),
        }
    }

    /// Sends one message and flushes.
    pub async fn send(&mut self, msg: &Msg) -> Result<(), ProtoError> {
        self.inner.send(OutFrame::message(msg)?).await
    }

    /// Queues one message without flushing (call [`Self::flush`]).
    pub async fn feed(&mut self, msg: &Msg) -> Result<(), ProtoError> {
        self.inner.feed(OutFrame::message(msg)?).await
    }

    /// Queues a chunk of stream `stream` without flushing.
    pub async fn feed_chunk(&mut self, stream: StreamId, payload: Bytes) -> Result<(), ProtoError> {
        let header = wire::encode(&Msg::Chunk { stream })?;
        self.inner.feed(OutFrame { header, payload }).await
    }

    pub async fn flush(&mut self) -> Result<(), ProtoError> {
        self.inner.flush().await
    }

    pub async fn send_hello(&mut self, hello: &Hello) -> Result<(), ProtoError> {
        self.inner.send(OutFrame::message(hello)?).await
    }

    pub async fn send_hello_reply(&mut self, reply: &HelloReply) -> Result<(), ProtoError> {
        self.inner.send(OutFrame::message(reply)?).await
    }

    /// Sends `body` as one frame as it is (a Noise handshake message).
    pub async fn send_raw(&mut self, body: Vec<u8>) -> Result<(), ProtoError> {
        self.inner
            .send(OutFrame {
                header: body,
                payload: Bytes::new(),
            })
            .await
    }

    /// The largest frame this writer sends.
    pub fn max_frame(&self) -> usize {
        self.inner.encoder().max_frame()
    }

    /// The stream underneath (call after a flush: nothing is buffered then).
    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }

    /// Sends every chunk of `data` on `stream` (at most [`crate::MAX_CHUNK`]
    /// bytes each, zero-copy slices, as the connection writer sends bytes
    /// in memory) and flushes. For peers that send one stream and nothing
    /// between its chunks (tests, benches); a connection's own traffic goes
    /// through [`crate::outgoing`].
    pub async fn send_stream(&mut self, stream: StreamId, data: &Bytes) -> Result<(), ProtoError> {
        let mut rest = data.clone();
        while let Some(chunk) = crate::outgoing::Body::next_chunk(&mut rest).await? {
            self.feed_chunk(stream, chunk).await?;
        }
        self.flush().await
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }
}
