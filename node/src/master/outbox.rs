//! The writing side of a master connection: one task owns the socket's write
//! half and sends what the connection's other tasks queue for it, streaming
//! stored files as chunks. The queue is bounded, so a slow peer slows its own
//! producers instead of growing memory.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use tessera_proto::{FrameWriter, MAX_CHUNK, Msg, ProtoError, StreamId};
use tokio::{
    io::{AsyncReadExt, AsyncWrite},
    sync::mpsc,
};

use super::disk::Disk;

/// Capacity of a connection's outgoing queue. A worker connection's queue
/// holds at most one assignment per credit plus one acknowledgement per
/// result, so it is sized from the credit cap instead (see `worker_capacity`).
pub const OUTBOX_CAPACITY: usize = 64;

/// Outgoing queue capacity for a worker connection with `max_credits`.
pub fn worker_capacity(max_credits: u32) -> usize {
    2 * max_credits as usize + 16
}

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

/// Sends everything queued on `rx` until every sender is gone.
pub async fn run<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Out>,
    disk: Arc<dyn Disk>,
) -> Result<(), OutboxError> {
    while let Some(item) = rx.recv().await {
        match item {
            Out::Msg(msg) => writer.feed(&msg).await?,
            Out::File {
                header,
                stream,
                path,
                len,
                if_unreadable,
            } => match send_file(&mut writer, &disk, header, stream, path, len).await {
                Ok(()) => {}
                Err(Unsent(e)) => {
                    tracing::debug!("not sent: {e}");
                    match if_unreadable {
                        IfUnreadable::Send(msg) => writer.feed(&msg).await?,
                        IfUnreadable::Call(f) => f(&e),
                    }
                }
                Err(Broken(e)) => return Err(e),
            },
        }
        if rx.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    Ok(())
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
    let mut file = tokio::fs::File::open(&path).await.map_err(file_err)?;
    let actual = file.metadata().await.map_err(file_err)?.len();
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
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf).await.map_err(|source| {
            Broken(OutboxError::File {
                path: path.clone(),
                source,
            })
        })?;
        remaining -= want as u64;
        writer.feed_chunk(stream, Bytes::from(buf)).await?;
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
