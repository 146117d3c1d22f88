//! The writing side of a master connection: one task owns the socket's write
//! half and sends what the connection's other tasks queue for it, streaming
//! stored files as chunks. The queue is bounded, so a slow peer slows its own
//! producers instead of growing memory.

use std::path::PathBuf;

use bytes::Bytes;
use tessera_proto::{FrameWriter, MAX_CHUNK, Msg, ProtoError, StreamId};
use tokio::{
    io::{AsyncReadExt, AsyncWrite},
    sync::mpsc,
};

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
    /// `header`, then the `len` bytes of the file at `path` as chunks of `stream`.
    File {
        header: Msg,
        stream: StreamId,
        path: PathBuf,
        len: u64,
    },
}

/// Why the writer stopped.
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
) -> Result<(), OutboxError> {
    while let Some(item) = rx.recv().await {
        match item {
            Out::Msg(msg) => writer.feed(&msg).await?,
            Out::File {
                header,
                stream,
                path,
                len,
            } => send_file(&mut writer, header, stream, path, len).await?,
        }
        if rx.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    Ok(())
}

async fn send_file<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    header: Msg,
    stream: StreamId,
    path: PathBuf,
    len: u64,
) -> Result<(), OutboxError> {
    let file_err = |source| OutboxError::File {
        path: path.clone(),
        source,
    };
    if len <= MAX_CHUNK as u64 {
        // A small file: read whole in one hand-off to a blocking thread.
        let from = path.clone();
        let data = tokio::task::spawn_blocking(move || std::fs::read(from))
            .await
            .map_err(|e| file_err(std::io::Error::other(e)))?
            .map_err(file_err)?;
        if data.len() as u64 != len {
            return Err(OutboxError::Length {
                path,
                announced: len,
                actual: data.len() as u64,
            });
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
        return Err(OutboxError::Length {
            path,
            announced: len,
            actual,
        });
    }
    writer.feed(&header).await?;
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(MAX_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf).await.map_err(file_err)?;
        remaining -= want as u64;
        writer.feed_chunk(stream, Bytes::from(buf)).await?;
    }
    super::metrics::bytes_sent(&header, len);
    Ok(())
}
