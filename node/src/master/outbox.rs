//! The writing side of a master connection: one task owns the socket's write
//! half and sends what the connection's other tasks queue for it, streaming
//! stored files as chunks. The queue is bounded, so a slow peer slows its own
//! producers instead of growing memory.
//!
//! On a client connection ([`Order::ControlFirst`]) a message never waits
//! behind a file: messages are sent as soon as they are queued, between
//! two chunks of a file being streamed, and files go one after another. A
//! `Submitted` or a `Pong` would otherwise wait behind every download
//! queued before it (at 4 MiB a result, a second behind 16 of them on a
//! gigabit link), which stalled the client's pipeline. A worker connection
//! keeps strict order ([`Order::Fifo`]): a `Drop` or `Release` must not
//! overtake the assignment it is about.

use std::{collections::VecDeque, io::Read, path::PathBuf, sync::Arc};

use bytes::Bytes;
use tessera_proto::{FrameWriter, MAX_CHUNK, Msg, ProtoError, StreamId};
use tokio::{io::AsyncWrite, sync::mpsc};

use super::disk::Disk;

/// Capacity of a connection's outgoing queue. A worker connection's queue
/// holds at most one assignment per credit plus one acknowledgement per
/// result, so it is sized from the credit cap instead (see `worker_capacity`).
pub const OUTBOX_CAPACITY: usize = 64;

/// Outgoing queue capacity for a worker connection with `max_credits`.
pub fn worker_capacity(max_credits: u32) -> usize {
    2 * max_credits as usize + 16
}

/// In which order a connection's queue is sent (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Exactly as queued.
    Fifo,
    /// Messages before (and between the chunks of) files.
    ControlFirst,
}

/// Files pulled off the queue ahead of the one being sent, at most, under
/// [`Order::ControlFirst`] (past it, what is queued waits in the channel).
const FILES_AHEAD: usize = OUTBOX_CAPACITY;

/// Something to send.
#[derive(Debug)]
pub enum Out {
    Msg(Msg),
    /// `header`, then the `len` bytes of the file at `path` as chunks of
    /// `stream`. A file that cannot be read before anything of it was sent
    /// (removed meanwhile, or of another length) does not end the
    /// connection: `if_unreadable` says what to do instead.
    File {
        header: Msg,
        stream: StreamId,
        path: PathBuf,
        len: u64,
        if_unreadable: IfUnreadable,
    },
}

/// What to do instead of sending a file that cannot be read.
pub enum IfUnreadable {
    /// Send this message (an error answering the request).
    Send(Msg),
    /// Tell the sender why (an assignment that was not delivered).
    Call(Box<dyn FnOnce(&OutboxError) + Send>),
}

impl std::fmt::Debug for IfUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IfUnreadable::Send(m) => write!(f, "Send({})", m.name()),
            IfUnreadable::Call(_) => f.write_str("Call"),
        }
    }
}

/// Why the writer stopped, or a file was not sent.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {actual} bytes, {announced} were announced")]
    Length {
        path: PathBuf,
        announced: u64,
        actual: u64,
    },
}

/// A file to stream, as queued.
struct FileJob {
    header: Msg,
    stream: StreamId,
    path: PathBuf,
    len: u64,
    if_unreadable: IfUnreadable,
}

/// What `ControlFirst` pulled off the queue and has not sent yet: only
/// files (messages are sent at once).
struct Ahead<'a> {
    rx: &'a mut mpsc::Receiver<Out>,
    files: VecDeque<FileJob>,
}

impl Ahead<'_> {
    /// Takes what is queued without waiting: messages are fed to `writer`
    /// at once, files put aside (up to [`FILES_AHEAD`]).
    async fn take_queued<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
    ) -> Result<(), ProtoError> {
        while self.files.len() < FILES_AHEAD {
            let Ok(item) = self.rx.try_recv() else {
                break;
            };
            self.put(writer, item).await?;
        }
        Ok(())
    }

    async fn put<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        item: Out,
    ) -> Result<(), ProtoError> {
        match item {
            Out::Msg(msg) => writer.feed(&msg).await,
            Out::File {
                header,
                stream,
                path,
                len,
                if_unreadable,
            } => {
                self.files.push_back(FileJob {
                    header,
                    stream,
                    path,
                    len,
                    if_unreadable,
                });
                Ok(())
            }
        }
    }
}

/// Sends everything queued on `rx`, in `order`, until every sender is gone.
pub async fn run<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Out>,
    disk: Arc<dyn Disk>,
    order: Order,
) -> Result<(), OutboxError> {
    let mut ahead = Ahead {
        rx: &mut rx,
        files: VecDeque::new(),
    };
    loop {
        if ahead.files.is_empty() {
            let Some(item) = ahead.rx.recv().await else {
                break;
            };
            match (order, item) {
                (Order::ControlFirst, item) => ahead.put(&mut writer, item).await?,
                (Order::Fifo, Out::Msg(msg)) => writer.feed(&msg).await?,
                (
                    Order::Fifo,
                    Out::File {
                        header,
                        stream,
                        path,
                        len,
                        if_unreadable,
                    },
                ) => {
                    let job = FileJob {
                        header,
                        stream,
                        path,
                        len,
                        if_unreadable,
                    };
                    send_job(&mut writer, &disk, job, None).await?;
                }
            }
        }
        if order == Order::ControlFirst {
            ahead.take_queued(&mut writer).await?;
            if let Some(job) = ahead.files.pop_front() {
                send_job(&mut writer, &disk, job, Some(&mut ahead)).await?;
            }
        }
        if ahead.files.is_empty() && ahead.rx.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    Ok(())
}

/// Streams one file; what to do when it cannot be read. With `ahead`,
/// messages queued meanwhile go out between its chunks.
async fn send_job<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    disk: &Arc<dyn Disk>,
    job: FileJob,
    ahead: Option<&mut Ahead<'_>>,
) -> Result<(), OutboxError> {
    let FileJob {
        header,
        stream,
        path,
        len,
        if_unreadable,
    } = job;
    match send_file(writer, disk, header, stream, path, len, ahead).await {
        Ok(()) => Ok(()),
        Err(Unsent(e)) => {
            tracing::debug!("not sent: {e}");
            match if_unreadable {
                IfUnreadable::Send(msg) => writer.feed(&msg).await?,
                IfUnreadable::Call(f) => f(&e),
            }
            Ok(())
        }
        Err(Broken(e)) => Err(e),
    }
}

/// Why a file was not sent.
enum SendError {
    /// Nothing of it was sent: the connection can go on.
    Unsent(OutboxError),
    /// Part of it was sent, or the socket failed: the connection is over.
    Broken(OutboxError),
}

use SendError::{Broken, Unsent};

impl From<ProtoError> for SendError {
    fn from(e: ProtoError) -> Self {
        Broken(e.into())
    }
}

async fn send_file<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    disk: &Arc<dyn Disk>,
    header: Msg,
    stream: StreamId,
    path: PathBuf,
    len: u64,
    mut ahead: Option<&mut Ahead<'_>>,
) -> Result<(), SendError> {
    let file_err = |source| {
        Unsent(OutboxError::File {
            path: path.clone(),
            source,
        })
    };
    if len <= MAX_CHUNK as u64 {
        // A small file: read whole in one hand-off to a blocking thread.
        let from = path.clone();
        let disk = disk.clone();
        let data = tessera_proto::determinism::blocking(move || disk.read(&from))
            .await
            .map_err(file_err)?;
        if data.len() as u64 != len {
            return Err(Unsent(OutboxError::Length {
                path,
                announced: len,
                actual: data.len() as u64,
            }));
        }
        writer.feed(&header).await?;
        if len > 0 {
            writer.feed_chunk(stream, Bytes::from(data)).await?;
        }
        super::metrics::bytes_sent(&header, len);
        return Ok(());
    }
    let open = path.clone();
    let (mut file, actual) = tessera_proto::determinism::blocking(move || {
        let file = std::fs::File::open(&open)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    })
    .await
    .map_err(file_err)?;
    if actual != len {
        return Err(Unsent(OutboxError::Length {
            path,
            announced: len,
            actual,
        }));
    }
    writer.feed(&header).await?;
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(MAX_CHUNK as u64) as usize;
        // Read straight into the chunk, on a blocking thread (`tokio::fs`
        // would read into its own buffer and copy), into memory that is not
        // zeroed first.
        let (back, buf) = tessera_proto::determinism::blocking(move || {
            let mut buf = Vec::with_capacity(want);
            (&mut file).take(want as u64).read_to_end(&mut buf)?;
            if buf.len() < want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok((file, buf))
        })
        .await
        .map_err(|source| {
            Broken(OutboxError::File {
                path: path.clone(),
                source,
            })
        })?;
        file = back;
        remaining -= want as u64;
        writer.feed_chunk(stream, Bytes::from(buf)).await?;
        if let Some(ahead) = ahead.as_deref_mut() {
            ahead.take_queued(writer).await?;
        }
    }
    super::metrics::bytes_sent(&header, len);
    Ok(())
}

impl OutboxError {
    /// The file is not there at all (removed meanwhile, or lost).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, OutboxError::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use tessera_proto::FrameReader;

    use super::*;
    use crate::master::disk::StdDisk;

    /// Streams an 8 MiB file through a 64 KiB pipe, queues a `Pong` once
    /// the first chunk is out, and returns how many chunks arrived before it.
    async fn chunks_before_a_late_message(order: Order) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result");
        let len = 8 * MAX_CHUNK;
        std::fs::write(&path, vec![5u8; len]).unwrap();
        let (near, far) = tokio::io::duplex(64 * 1024);
        let max_frame = tessera_proto::DEFAULT_MAX_FRAME;
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let writer = tokio::spawn(run(
            FrameWriter::new(near, max_frame),
            rx,
            Arc::new(StdDisk::default()),
            order,
        ));
        tx.send(Out::File {
            header: Msg::Result {
                req: 1,
                task: tessera_proto::TaskId(1),
                len: len as u64,
                checksum: 0,
            },
            stream: 1,
            path,
            len: len as u64,
            if_unreadable: IfUnreadable::Send(Msg::Pong { seq: 0 }),
        })
        .await
        .unwrap();
        let mut reader = FrameReader::new(far, max_frame);
        let mut chunks = 0;
        let mut before = None;
        let mut sent_late = false;
        while chunks < 8 {
            match reader.recv().await.unwrap().msg {
                Msg::Chunk { .. } => {
                    chunks += 1;
                    if !sent_late {
                        tx.send(Out::Msg(Msg::Pong { seq: 7 })).await.unwrap();
                        sent_late = true;
                    }
                }
                Msg::Pong { seq: 7 } => before = Some(chunks),
                Msg::Result { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if before.is_none() {
            assert!(matches!(
                reader.recv().await.unwrap().msg,
                Msg::Pong { seq: 7 }
            ));
        }
        drop(tx);
        writer.await.unwrap().unwrap();
        before.unwrap_or(chunks)
    }

    #[tokio::test]
    async fn on_a_client_connection_a_message_does_not_wait_behind_a_file() {
        let before = chunks_before_a_late_message(Order::ControlFirst).await;
        assert!(before < 8, "the Pong came after all 8 chunks");
    }

    #[tokio::test]
    async fn on_a_worker_connection_the_order_is_kept() {
        assert_eq!(chunks_before_a_late_message(Order::Fifo).await, 8);
    }
}
