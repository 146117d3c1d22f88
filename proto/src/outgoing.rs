//! The writing side of every connection: one task owns the write half and
//! sends what the connection's other tasks queue for it, messages and
//! *payloads*: a header announcing a byte stream (`Submit`, `Done`,
//! `Assign`, `Result`), then the stream as chunks. The queues are bounded,
//! so a slow peer slows its own producers instead of growing memory.
//!
//! Two disciplines, one writer:
//! * [`outgoing`] (control first): a message never waits behind a payload.
//!   Messages go as soon as they are queued, also between two chunks of the
//!   payload being sent; payloads go one after another, each whole, in the
//!   order queued. A heartbeat, a `Ping`, a client's `Fetch` or the
//!   master's `Submitted` would otherwise wait behind megabytes. Used by
//!   the worker, the client and the master's client connections.
//! * [`in_order`]: exactly as queued, messages and payloads in one queue.
//!   The master's worker connections: a `Drop` or `Release` must not
//!   overtake the assignment it is about.
//!
//! What a payload is, is the caller's: bytes in memory ([`Upload`]: a
//! worker's result, a client's submission) or, in the master, a stored file
//! read chunk by chunk. A payload that cannot be readied (its file removed
//! meanwhile) does not end the connection: [`Payload::open`] says what to
//! send instead, if anything.

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use tokio::{io::AsyncWrite, sync::mpsc};

use crate::{FrameWriter, Liveness, MAX_CHUNK, Msg, ProtoError, StreamId};

/// Something to send as a header and then a byte stream.
pub trait Payload: Send + 'static {
    /// What ends the connection while the stream is being sent.
    type Error: From<ProtoError> + Send;
    /// The stream, once ready.
    type Body: Body<Error = Self::Error>;
    /// Readies the stream, before anything of it is sent. On failure the
    /// connection goes on: `Err(Some(msg))` sends `msg` instead (an error
    /// answering a request), `Err(None)` nothing.
    fn open(self) -> impl Future<Output = Result<Opened<Self::Body>, Option<Msg>>> + Send;
}

/// A readied payload: its header, its stream id, its bytes.
#[derive(Debug)]
pub struct Opened<B> {
    pub header: Msg,
    pub stream: StreamId,
    pub body: B,
}

/// A payload's bytes, chunk by chunk.
pub trait Body: Send {
    type Error: From<ProtoError> + Send;
    /// The next chunk (at most [`MAX_CHUNK`] bytes), `None` after the last.
    /// An error ends the connection (part of the stream is sent).
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

/// A byte stream in memory: `header` (a `Submit` or a `Done` announcing its
/// length and checksum), then `data` as chunks of `stream`.
#[derive(Debug)]
pub struct Upload {
    pub header: Msg,
    pub stream: StreamId,
    pub data: Bytes,
}

impl Payload for Upload {
    type Error = ProtoError;
    type Body = Bytes;

    async fn open(self) -> Result<Opened<Bytes>, Option<Msg>> {
        Ok(Opened {
            header: self.header,
            stream: self.stream,
            body: self.data,
        })
    }
}

/// Bytes in memory, sent as [`MAX_CHUNK`] slices (no copy).
impl Body for Bytes {
    type Error = ProtoError;

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ProtoError> {
        if self.is_empty() {
            return Ok(None);
        }
        let n = self.len().min(MAX_CHUNK);
        Ok(Some(self.split_to(n)))
    }
}

/// The two queues of a control-first writer; cheap to clone.
#[derive(Debug)]
pub struct Outgoing<P = Upload> {
    pub control: mpsc::Sender<Msg>,
    pub payloads: mpsc::Sender<P>,
}

impl<P> Clone for Outgoing<P> {
    fn clone(&self) -> Self {
        Outgoing {
            control: self.control.clone(),
            payloads: self.payloads.clone(),
        }
    }
}

/// Creates a control-first writer's queues and returns the writer future to
/// spawn. The writer ends (flushed) when both queues are closed, or with
/// the first write error. With `liveness`, every chunk the peer takes is
/// recorded in it.
pub fn outgoing<P: Payload, W: AsyncWrite + Unpin + Send + 'static>(
    writer: FrameWriter<W>,
    control_capacity: usize,
    payload_capacity: usize,
    liveness: Option<Arc<Liveness>>,
) -> (
    Outgoing<P>,
    impl Future<Output = Result<(), P::Error>> + Send + 'static,
) {
    let (control, control_rx) = mpsc::channel(control_capacity);
    let (payloads, payloads_rx) = mpsc::channel(payload_capacity);
    let mut w = Writer {
        writer,
        control: Some(control_rx),
        liveness,
    };
    let run = async move {
        let mut payloads = Some(payloads_rx);
        loop {
            w.feed_queued_control().await?;
            let next = match payloads.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(p)) => Some(p),
                Some(Err(mpsc::error::TryRecvError::Disconnected)) => {
                    payloads = None;
                    None
                }
                Some(Err(mpsc::error::TryRecvError::Empty)) | None => None,
            };
            if let Some(p) = next {
                w.send_payload(p).await?;
                continue;
            }
            // Nothing is queued: what was fed goes out before waiting.
            w.writer.flush().await?;
            let (control_open, payloads_open) = (w.control.is_some(), payloads.is_some());
            tokio::select! {
                biased;
                msg = recv(w.control.as_mut()), if control_open => match msg {
                    Some(m) => w.writer.feed(&m).await?,
                    None => w.control = None,
                },
                p = recv(payloads.as_mut()), if payloads_open => match p {
                    Some(p) => w.send_payload(p).await?,
                    None => payloads = None,
                },
                else => break,
            }
        }
        w.writer.flush().await?;
        Ok(())
    };
    (Outgoing { control, payloads }, run)
}

/// What an [`in_order`] writer sends.
#[derive(Debug)]
pub enum Item<P> {
    Msg(Msg),
    Payload(P),
}

/// Creates an in-order writer's queue and returns the writer future to
/// spawn (see [`outgoing`] for when it ends).
pub fn in_order<P: Payload, W: AsyncWrite + Unpin + Send + 'static>(
    writer: FrameWriter<W>,
    capacity: usize,
    liveness: Option<Arc<Liveness>>,
) -> (
    mpsc::Sender<Item<P>>,
    impl Future<Output = Result<(), P::Error>> + Send + 'static,
) {
    let (tx, mut rx) = mpsc::channel(capacity);
    let mut w = Writer {
        writer,
        control: None,
        liveness,
    };
    let run = async move {
        loop {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    w.writer.flush().await?;
                    match rx.recv().await {
                        Some(item) => item,
                        None => break,
                    }
                }
            };
            match item {
                Item::Msg(m) => w.writer.feed(&m).await?,
                Item::Payload(p) => w.send_payload(p).await?,
            }
        }
        w.writer.flush().await?;
        Ok(())
    };
    (tx, run)
}

/// Waits on a queue the writer still has (`select!`'s preconditions keep
/// a closed one from being polled).
async fn recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The write half and what the writer sends between chunks.
struct Writer<W> {
    writer: FrameWriter<W>,
    /// Messages that go between chunks (control first); `None` when closed
    /// or in order.
    control: Option<mpsc::Receiver<Msg>>,
    liveness: Option<Arc<Liveness>>,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Feeds every message queued now, without waiting for more.
    async fn feed_queued_control(&mut self) -> Result<(), ProtoError> {
        let Some(rx) = self.control.as_mut() else {
            return Ok(());
        };
        loop {
            match rx.try_recv() {
                Ok(m) => self.writer.feed(&m).await?,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.control = None;
                    return Ok(());
                }
            }
        }
    }

    /// Sends one payload whole, and (control first) the messages queued
    /// meanwhile between its chunks; or what its `open` says instead.
    async fn send_payload<P: Payload>(&mut self, p: P) -> Result<(), P::Error> {
        let Opened {
            header,
            stream,
            mut body,
        } = match p.open().await {
            Ok(opened) => opened,
            Err(Some(instead)) => return Ok(self.writer.feed(&instead).await?),
            Err(None) => return Ok(()),
        };
        self.writer.feed(&header).await?;
        while let Some(chunk) = body.next_chunk().await? {
            self.writer.feed_chunk(stream, chunk).await?;
            self.writer.flush().await?;
            if let Some(l) = &self.liveness {
                l.took_data();
            }
            self.feed_queued_control().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameReader, TaskId};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn upload(stream: StreamId, len: usize) -> Upload {
        Upload {
            header: Msg::Done {
                task: TaskId(stream),
                attempt: 1,
                len: len as u64,
                checksum: 0,
            },
            stream,
            data: Bytes::from(vec![stream as u8; len]),
        }
    }

    /// What the peer read, in order: a `Ping` by its seq, an upload's header
    /// or one of its chunks (with its length), by stream.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Ping(u64),
        Header(StreamId),
        Chunk(StreamId, usize),
    }

    /// Reads until the writer has closed the stream.
    async fn read_all<R: tokio::io::AsyncRead + Unpin>(
        reader: &mut FrameReader<R>,
        seen: &mut Vec<Seen>,
    ) {
        while let Ok(incoming) = reader.recv_within(DEADLINE).await {
            seen.push(match incoming.msg {
                Msg::Ping { seq } => Seen::Ping(seq),
                Msg::Done { task, .. } => Seen::Header(task.0),
                Msg::Chunk { stream } => Seen::Chunk(stream, incoming.payload.len()),
                other => panic!("unexpected {other:?}"),
            });
        }
    }

    fn received(seen: &[Seen], stream: StreamId) -> usize {
        seen.iter()
            .map(|s| match s {
                Seen::Chunk(s, n) if *s == stream => *n,
                _ => 0,
            })
            .sum()
    }

    fn pipe() -> (
        FrameWriter<tokio::io::DuplexStream>,
        FrameReader<tokio::io::DuplexStream>,
    ) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        (
            FrameWriter::new(near, crate::DEFAULT_MAX_FRAME),
            FrameReader::new(far, crate::DEFAULT_MAX_FRAME),
        )
    }

    /// Control first: a message queued while uploads are queued and one is
    /// being sent goes out before the rest of that upload's chunks, and
    /// before every later upload; the uploads arrive whole, in order. The
    /// pipe is small and the peer reads nothing past the first header until
    /// the ping is queued, so the writer is blocked inside the first upload
    /// then.
    #[tokio::test]
    async fn a_message_overtakes_queued_uploads_and_goes_between_chunks() {
        let (writer, mut reader) = pipe();
        let (out, run) = outgoing(writer, 4, 4, Some(Arc::new(Liveness::new())));
        let writer = tokio::spawn(run);
        let len = 4 * MAX_CHUNK;
        for stream in 1..=3 {
            out.payloads.send(upload(stream, len)).await.unwrap();
        }
        // The writer is inside the first upload: its header is here, and
        // the pipe is full long before its last chunk.
        let first = reader.recv_within(DEADLINE).await.unwrap();
        assert!(matches!(
            first.msg,
            Msg::Done {
                task: TaskId(1),
                ..
            }
        ));
        out.control.send(Msg::Ping { seq: 7 }).await.unwrap();
        drop(out);

        let mut seen = vec![Seen::Header(1)];
        read_all(&mut reader, &mut seen).await;
        writer.await.unwrap().unwrap();

        for stream in 1..=3 {
            assert_eq!(received(&seen, stream), len, "every upload arrives whole");
        }
        let ping = seen
            .iter()
            .position(|s| *s == Seen::Ping(7))
            .expect("the ping is sent");
        let last_of_first = seen
            .iter()
            .rposition(|s| matches!(s, Seen::Chunk(1, _)))
            .unwrap();
        assert!(
            ping < last_of_first,
            "the ping went between the first upload's chunks, not after them: {seen:?}"
        );
        // Uploads are not interleaved with each other.
        let streams: Vec<StreamId> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Header(s) | Seen::Chunk(s, _) => Some(*s),
                Seen::Ping(_) => None,
            })
            .collect();
        let mut sorted = streams.clone();
        sorted.sort_unstable();
        assert_eq!(streams, sorted, "uploads go one after another, in order");
    }

    /// In order: a message queued while a payload is being sent comes after
    /// all of that payload's chunks, and before the payload queued after it.
    #[tokio::test]
    async fn in_order_keeps_the_order_queued() {
        let (writer, mut reader) = pipe();
        let (tx, run) = in_order(writer, 8, None);
        let writer = tokio::spawn(run);
        let len = 4 * MAX_CHUNK;
        tx.send(Item::Payload(upload(1, len))).await.unwrap();
        let first = reader.recv_within(DEADLINE).await.unwrap();
        assert!(matches!(first.msg, Msg::Done { .. }));
        tx.send(Item::Msg(Msg::Ping { seq: 7 })).await.unwrap();
        tx.send(Item::Payload(upload(2, 10))).await.unwrap();
        drop(tx);
        let mut seen = vec![Seen::Header(1)];
        read_all(&mut reader, &mut seen).await;
        writer.await.unwrap().unwrap();
        let mut expected = vec![Seen::Header(1)];
        expected.extend((0..4).map(|_| Seen::Chunk(1, MAX_CHUNK)));
        expected.extend([Seen::Ping(7), Seen::Header(2), Seen::Chunk(2, 10)]);
        assert_eq!(seen, expected);
    }

    /// A payload that cannot be readied: with `Some(msg)`, `msg` goes
    /// instead; with `None`, nothing; either way the connection goes on.
    #[derive(Debug)]
    struct Unreadable(Option<Msg>);

    impl Payload for Unreadable {
        type Error = ProtoError;
        type Body = Bytes;
        async fn open(self) -> Result<Opened<Bytes>, Option<Msg>> {
            Err(self.0)
        }
    }

    #[tokio::test]
    async fn an_unreadable_payload_sends_what_it_says_and_the_connection_goes_on() {
        for control_first in [true, false] {
            let (writer, mut reader) = pipe();
            let instead = Some(Msg::Ping { seq: 1 });
            let run: std::pin::Pin<Box<dyn Future<Output = Result<(), ProtoError>> + Send>> =
                if control_first {
                    let (out, run) = outgoing(writer, 4, 4, None);
                    out.payloads.send(Unreadable(instead)).await.unwrap();
                    out.payloads.send(Unreadable(None)).await.unwrap();
                    out.control.send(Msg::Ping { seq: 2 }).await.unwrap();
                    Box::pin(run)
                } else {
                    let (tx, run) = in_order(writer, 4, None);
                    tx.send(Item::Payload(Unreadable(instead))).await.unwrap();
                    tx.send(Item::Payload(Unreadable(None))).await.unwrap();
                    tx.send(Item::Msg(Msg::Ping { seq: 2 })).await.unwrap();
                    Box::pin(run)
                };
            run.await.unwrap();
            let mut seen = Vec::new();
            read_all(&mut reader, &mut seen).await;
            let mut expected = vec![Seen::Ping(1), Seen::Ping(2)];
            if control_first {
                // The queued message goes ahead of both payloads.
                expected.reverse();
            }
            assert_eq!(seen, expected, "control first: {control_first}");
        }
    }

    /// The writer ends, flushed, once every queue is closed (the last
    /// message is not left in its buffer).
    #[tokio::test]
    async fn the_writer_flushes_and_ends_when_the_queues_close() {
        let (writer, mut reader) = pipe();
        let (out, run) = outgoing::<Upload, _>(writer, 4, 4, None);
        out.control.send(Msg::Ping { seq: 3 }).await.unwrap();
        drop(out);
        tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap();
        let mut seen = Vec::new();
        read_all(&mut reader, &mut seen).await;
        assert_eq!(seen, [Seen::Ping(3)]);
    }
}
