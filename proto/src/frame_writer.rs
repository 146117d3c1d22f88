//! The writing half of a connection: typed frames out, buffered until a
//! flush. A chunk's payload is written from its own buffer (the `Bytes` the
//! caller holds: a slice of a result in memory, a chunk read from a file),
//! not copied into a frame buffer first; the frame's length prefix and
//! header, and small payloads, are gathered in one buffer. Over an
//! encrypted connection the record layer then seals straight from the
//! payload (`secure.rs`), so a chunk sent is copied once, by the cipher.
//!
//! Cancel safety: a frame is queued whole or not at all, and nothing is
//! queued across an `.await`; a flush cancelled part way leaves the rest
//! queued for the next.

use std::{
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::{
    error::ProtoError,
    frame::encode_head,
    handshake::{Hello, HelloReply},
    message::{Msg, StreamId},
    wire,
};

/// A payload shorter than this is copied in with its frame's header (one
/// write instead of two); longer ones are written from their own buffer.
const COPY_BELOW: usize = 4096;

/// Queued bytes past which queuing another frame first writes out what is
/// queued (as `FramedWrite`'s backpressure boundary): with 1 MiB chunks, at
/// most one chunk waits while the next is queued.
const BACKPRESSURE: usize = 64 * 1024;

/// The writing half of a connection.
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    max_frame: usize,
    /// What to write first, in order: gathered heads frozen out of `tail`,
    /// and large payloads.
    segments: VecDeque<Bytes>,
    /// Gathered after every segment: prefixes, headers, small payloads.
    tail: BytesMut,
    /// Bytes queued in `segments` and `tail`.
    queued: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W, max_frame: usize) -> Self {
        FrameWriter {
            io,
            max_frame,
            segments: VecDeque::new(),
            tail: BytesMut::new(),
            queued: 0,
        }
    }

    /// Sends one message and flushes.
    pub async fn send(&mut self, msg: &Msg) -> Result<(), ProtoError> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Queues one message without flushing (call [`Self::flush`]).
    pub async fn feed(&mut self, msg: &Msg) -> Result<(), ProtoError> {
        let header = wire::encode(msg)?;
        self.feed_frame(&header, Bytes::new()).await
    }

    /// Queues a chunk of stream `stream` without flushing.
    pub async fn feed_chunk(&mut self, stream: StreamId, payload: Bytes) -> Result<(), ProtoError> {
        let header = wire::encode(&Msg::Chunk { stream })?;
        self.feed_frame(&header, payload).await
    }

    pub async fn flush(&mut self) -> Result<(), ProtoError> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    pub async fn send_hello(&mut self, hello: &Hello) -> Result<(), ProtoError> {
        let body = wire::encode(hello)?;
        self.send_raw(body).await
    }

    pub async fn send_hello_reply(&mut self, reply: &HelloReply) -> Result<(), ProtoError> {
        let body = wire::encode(reply)?;
        self.send_raw(body).await
    }

    /// Sends `body` as one frame as it is (a Noise handshake message).
    pub async fn send_raw(&mut self, body: Vec<u8>) -> Result<(), ProtoError> {
        self.feed_frame(&body, Bytes::new()).await?;
        self.flush().await
    }

    /// The largest frame this writer sends.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The stream underneath (call after a flush: nothing is queued then).
    pub fn into_inner(self) -> W {
        debug_assert_eq!(self.queued, 0, "frames queued and not written");
        self.io
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
        &mut self.io
    }

    /// Queues one frame whole (after writing out what is queued, when that
    /// is over [`BACKPRESSURE`]). Refuses a frame over the maximum before
    /// anything of it is queued.
    async fn feed_frame(&mut self, header: &[u8], payload: Bytes) -> Result<(), ProtoError> {
        if self.queued >= BACKPRESSURE {
            poll_fn(|cx| self.poll_write_queued(cx)).await?;
        }
        let before = self.tail.len();
        encode_head(header, payload.len(), self.max_frame, &mut self.tail)?;
        self.queued += self.tail.len() - before + payload.len();
        if payload.len() < COPY_BELOW {
            self.tail.extend_from_slice(&payload);
        } else {
            let head = self.tail.split().freeze();
            self.segments.push_back(head);
            self.segments.push_back(payload);
        }
        Ok(())
    }

    /// Writes out everything queued (not flushing `io`).
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtoError>> {
        while self.queued > 0 {
            let front: &[u8] = match self.segments.front() {
                Some(segment) => segment,
                None => &self.tail,
            };
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, front))?;
            if n == 0 {
                return Poll::Ready(Err(
                    std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                ));
            }
            self.queued -= n;
            match self.segments.front_mut() {
                Some(segment) => {
                    segment.advance(n);
                    if segment.is_empty() {
                        self.segments.pop_front();
                    }
                }
                None => self.tail.advance(n),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtoError>> {
        ready!(self.poll_write_queued(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use proptest::prelude::*;
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::frame::{FrameCodec, OutFrame};

    /// A peer that takes at most `step` bytes a write, says "not now" to
    /// every other write (waking at once), and records what it took and
    /// the address of every buffer it was given.
    #[derive(Debug, Clone, Default)]
    struct Trickle {
        step: usize,
        pending_next: bool,
        taken: Arc<Mutex<Vec<u8>>>,
        buffers: Arc<Mutex<Vec<usize>>>,
    }

    impl Trickle {
        fn taking(step: usize) -> Self {
            Trickle {
                step,
                ..Trickle::default()
            }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.pending_next = !self.pending_next;
            if !self.pending_next {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.buffers.lock().unwrap().push(buf.as_ptr() as usize);
            let n = buf.len().min(self.step);
            self.taken.lock().unwrap().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What the codec (the frame layout's definition) makes of `frames`.
    fn encoded(frames: &[(Msg, Bytes)]) -> Vec<u8> {
        let mut codec = FrameCodec::new(crate::DEFAULT_MAX_FRAME);
        let mut out = BytesMut::new();
        for (msg, payload) in frames {
            let frame = OutFrame {
                header: wire::encode(msg).unwrap(),
                payload: payload.clone(),
            };
            codec.encode(frame, &mut out).unwrap();
        }
        out.to_vec()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the frames, their sizes, the flushes between them and
        /// how the peer takes the bytes: exactly the codec's bytes, in order.
        #[test]
        fn the_bytes_are_the_codecs(
            frames in prop::collection::vec(
                (any::<bool>(), 0usize..3 * COPY_BELOW, any::<bool>(), any::<u8>()),
                1..24,
            ),
            step in 1usize..20_000,
        ) {
            let frames: Vec<(Msg, Bytes, bool)> = frames
                .into_iter()
                .enumerate()
                .map(|(i, (chunk, len, flush, fill))| {
                    if chunk {
                        // Now and then a chunk of a whole MiB.
                        let len = if fill == 0 { crate::MAX_CHUNK } else { len };
                        (Msg::Chunk { stream: i as u64 }, Bytes::from(vec![fill; len]), flush)
                    } else {
                        (Msg::Ping { seq: i as u64 }, Bytes::new(), flush)
                    }
                })
                .collect();
            let peer = Trickle::taking(step);
            let taken = peer.taken.clone();
            runtime().block_on(async {
                let mut w = FrameWriter::new(peer, crate::DEFAULT_MAX_FRAME);
                for (msg, payload, flush) in &frames {
                    match msg {
                        Msg::Chunk { stream } => w.feed_chunk(*stream, payload.clone()).await.unwrap(),
                        m => w.feed(m).await.unwrap(),
                    }
                    if *flush {
                        w.flush().await.unwrap();
                    }
                }
                w.flush().await.unwrap();
            });
            let expected = encoded(
                &frames.into_iter().map(|(m, p, _)| (m, p)).collect::<Vec<_>>(),
            );
            let taken = taken.lock().unwrap().clone();
            prop_assert_eq!(taken, expected);
        }
    }

    /// A large payload reaches the peer from the caller's own buffer: the
    /// writes that carry it are given slices of it, not of a copy.
    #[tokio::test]
    async fn a_large_payload_is_written_from_its_own_buffer() {
        let peer = Trickle::taking(usize::MAX);
        let buffers = peer.buffers.clone();
        let payload = Bytes::from(vec![7u8; 100_000]);
        let mut w = FrameWriter::new(peer, crate::DEFAULT_MAX_FRAME);
        w.feed_chunk(1, payload.clone()).await.unwrap();
        w.flush().await.unwrap();
        let at = payload.as_ptr() as usize;
        assert!(
            buffers.lock().unwrap().contains(&at),
            "no write was given the payload's own buffer"
        );
    }

    /// A frame over the maximum is refused before anything of it is queued;
    /// the frames around it go out as they should.
    #[tokio::test]
    async fn an_oversized_frame_is_refused_whole() {
        let peer = Trickle::taking(usize::MAX);
        let taken = peer.taken.clone();
        let mut w = FrameWriter::new(peer, 64 * 1024);
        w.feed(&Msg::Ping { seq: 1 }).await.unwrap();
        let refused = w.feed_chunk(2, Bytes::from(vec![1u8; 64 * 1024])).await;
        assert!(matches!(refused, Err(ProtoError::FrameTooLarge { .. })));
        w.feed(&Msg::Ping { seq: 3 }).await.unwrap();
        w.flush().await.unwrap();
        let expected = encoded(&[
            (Msg::Ping { seq: 1 }, Bytes::new()),
            (Msg::Ping { seq: 3 }, Bytes::new()),
        ]);
        assert_eq!(*taken.lock().unwrap(), expected);
    }

    /// A flush dropped part way loses nothing: the next flush writes the
    /// rest, and the bytes are exact.
    #[tokio::test]
    async fn a_cancelled_flush_loses_nothing() {
        let peer = Trickle::taking(10_000);
        let taken = peer.taken.clone();
        let payload = Bytes::from((0..200_000).map(|i| i as u8).collect::<Vec<u8>>());
        let mut w = FrameWriter::new(peer, crate::DEFAULT_MAX_FRAME);
        w.feed(&Msg::Ping { seq: 1 }).await.unwrap();
        w.feed_chunk(5, payload.clone()).await.unwrap();
        {
            let flush = w.flush();
            tokio::pin!(flush);
            // A few writes get through, then the flush is dropped.
            for _ in 0..6 {
                let _ = futures::poll!(flush.as_mut());
            }
        }
        let part = taken.lock().unwrap().len();
        assert!(
            part > 0 && part < 200_000,
            "the flush was cut part way ({part})"
        );
        w.flush().await.unwrap();
        let expected = encoded(&[
            (Msg::Ping { seq: 1 }, Bytes::new()),
            (Msg::Chunk { stream: 5 }, payload),
        ]);
        assert_eq!(*taken.lock().unwrap(), expected);
    }
}
