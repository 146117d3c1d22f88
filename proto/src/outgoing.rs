//! The writing side of a connection that uploads byte streams (a worker's
//! results, a client's submissions): one task owns the write half and sends
//! what two bounded queues hold. Control messages go first: a message queued
//! while an upload is being sent goes out between two of its chunks, so a
//! heartbeat, a `Ping` or a client's `Fetch` never waits behind megabytes of
//! uploads. Uploads go one after another, each whole (its header, then its
//! chunks), in the order queued.
//!
//! The master's side of a connection, which streams stored files instead of
//! bytes in memory, has its own writer with the same rule (`outbox.rs` in
//! `tessera-node`).

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use tokio::{io::AsyncWrite, sync::mpsc};

use crate::{FrameWriter, Liveness, MAX_CHUNK, Msg, ProtoError, StreamId};

/// A byte stream to send: `header` (a `Submit` or a `Done` announcing its
/// length and checksum), then `data` as chunks of `stream`.
#[derive(Debug)]
pub struct Upload {
    pub header: Msg,
    pub stream: StreamId,
    pub data: Bytes,
}

/// The two queues the writer serves; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub control: mpsc::Sender<Msg>,
    pub uploads: mpsc::Sender<Upload>,
}

/// Creates the queues and returns the writer future to spawn. The writer
/// ends (flushed) when both queues are closed, or with the first write
/// error. Every upload chunk the peer takes is recorded in `liveness`.
pub fn outgoing<W: AsyncWrite + Unpin + Send + 'static>(
    writer: FrameWriter<W>,
    control_capacity: usize,
    upload_capacity: usize,
    liveness: Arc<Liveness>,
) -> (
    Outgoing,
    impl Future<Output = Result<(), ProtoError>> + Send + 'static,
) {
    let (control, control_rx) = mpsc::channel(control_capacity);
    let (uploads, uploads_rx) = mpsc::channel(upload_capacity);
    (
        Outgoing { control, uploads },
        run(writer, control_rx, uploads_rx, liveness),
    )
}

async fn run<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut control: mpsc::Receiver<Msg>,
    mut uploads: mpsc::Receiver<Upload>,
    liveness: Arc<Liveness>,
) -> Result<(), ProtoError> {
    let mut control_open = true;
    let mut uploads_open = true;
    while control_open || uploads_open {
        tokio::select! {
            biased;
            msg = control.recv(), if control_open => match msg {
                Some(m) => writer.send(&m).await?,
                None => control_open = false,
            },
            upload = uploads.recv(), if uploads_open => match upload {
                Some(u) => send_upload(&mut writer, &mut control, u, &liveness).await?,
                None => uploads_open = false,
            },
        }
    }
    writer.flush().await
}

/// Sends one upload, and whatever control messages are queued meanwhile
/// between its chunks.
async fn send_upload<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    control: &mut mpsc::Receiver<Msg>,
    u: Upload,
    liveness: &Liveness,
) -> Result<(), ProtoError> {
    writer.feed(&u.header).await?;
    let mut offset = 0;
    while offset < u.data.len() {
        let end = (offset + MAX_CHUNK).min(u.data.len());
        writer
            .feed_chunk(u.stream, u.data.slice(offset..end))
            .await?;
        liveness.took_data();
        offset = end;
        while let Ok(m) = control.try_recv() {
            writer.feed(&m).await?;
        }
        writer.flush().await?;
    }
    writer.flush().await
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

    /// A message queued while uploads are queued and one is being sent goes
    /// out before the rest of that upload's chunks, and before every later
    /// upload; the uploads arrive whole, in order. The pipe is small and the
    /// peer reads nothing past the first header until the ping is queued, so
    /// the writer is blocked inside the first upload then.
    #[tokio::test]
    async fn a_message_overtakes_queued_uploads_and_goes_between_chunks() {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let writer = FrameWriter::new(near, crate::DEFAULT_MAX_FRAME);
        let mut reader = FrameReader::new(far, crate::DEFAULT_MAX_FRAME);
        let liveness = Arc::new(Liveness::new());
        let (out, run) = outgoing(writer, 4, 4, liveness);
        let writer = tokio::spawn(run);
        let len = 4 * MAX_CHUNK;
        for stream in 1..=3 {
            out.uploads.send(upload(stream, len)).await.unwrap();
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
        let mut received = [0usize; 4];
        while let Ok(incoming) = reader.recv_within(DEADLINE).await {
            seen.push(match incoming.msg {
                Msg::Ping { seq } => Seen::Ping(seq),
                Msg::Done { task, .. } => Seen::Header(task.0),
                Msg::Chunk { stream } => {
                    received[stream as usize] += incoming.payload.len();
                    Seen::Chunk(stream, incoming.payload.len())
                }
                other => panic!("unexpected {other:?}"),
            });
        }
        writer.await.unwrap().unwrap();

        assert_eq!(received[1..], [len, len, len], "every upload arrives whole");
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
}
