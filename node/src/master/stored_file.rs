//! A stored file as a connection's payload (`tessera_proto::outgoing`, the
//! one connection writer): an input sent to a worker with its `Assign`, a
//! result sent to a client with its `Result`. It is opened, and its length
//! checked, only when the writer gets to it; a file that cannot be read
//! then (removed meanwhile, or of another length) does not end the
//! connection: [`IfUnreadable`] says what to send or whom to tell instead.
//!
//! A small file is read whole in one hand-off to a blocking thread; a large
//! one chunk by chunk, straight into each chunk's buffer (`tokio::fs` would
//! read into its own buffer and copy).

use std::{fs::File, io::Read, path::PathBuf, sync::Arc};

use bytes::Bytes;
use tessera_proto::{
    MAX_CHUNK, Msg, ProtoError, StreamId,
    outgoing::{Body, Opened, Payload},
};

use super::disk::Disk;

/// `header`, then the `len` bytes of the file at `path` as chunks of
/// `stream`.
#[derive(Debug)]
pub struct StoredFile {
    pub header: Msg,
    pub stream: StreamId,
    pub path: PathBuf,
    pub len: u64,
    pub if_unreadable: IfUnreadable,
    pub disk: Arc<dyn Disk>,
}

/// What to do instead of sending a file that cannot be read.
pub enum IfUnreadable {
    /// Send this message (an error answering the request).
    Send(Msg),
    /// Tell the sender why (an assignment that was not delivered).
    Call(Box<dyn FnOnce(&SendFileError) + Send>),
}

impl std::fmt::Debug for IfUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IfUnreadable::Send(m) => write!(f, "Send({})", m.name()),
            IfUnreadable::Call(_) => f.write_str("Call"),
        }
    }
}

/// Why a connection's writer stopped, or a file was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendFileError {
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

impl SendFileError {
    /// The file is not there at all (removed meanwhile, or lost).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, SendFileError::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Opens the file at `path` and checks its length against `len`.
async fn open_file(
    path: PathBuf,
    len: u64,
    disk: Arc<dyn Disk>,
    header: Msg,
) -> Result<FileBody, SendFileError> {
    let file_err = |source| SendFileError::File {
        path: path.clone(),
        source,
    };
    let from = path.clone();
    let (source, actual) = if len <= MAX_CHUNK as u64 {
        // A small file: read whole in one hand-off to a blocking thread.
        let data = tessera_proto::determinism::blocking(move || disk.read(&from))
            .await
            .map_err(file_err)?;
        let actual = data.len() as u64;
        (Source::Whole(Bytes::from(data)), actual)
    } else {
        let (file, actual) = tessera_proto::determinism::blocking(move || {
            let file = File::open(&from)?;
            let len = file.metadata()?.len();
            Ok((file, len))
        })
        .await
        .map_err(file_err)?;
        (Source::File(Some(file)), actual)
    };
    if actual != len {
        return Err(SendFileError::Length {
            path,
            announced: len,
            actual,
        });
    }
    Ok(FileBody {
        source,
        path,
        remaining: len,
        counted: (header, len),
    })
}

impl Payload for StoredFile {
    type Error = SendFileError;
    type Body = FileBody;

    async fn open(self) -> Result<Opened<FileBody>, Option<Msg>> {
        let StoredFile {
            header,
            stream,
            path,
            len,
            if_unreadable,
            disk,
        } = self;
        match open_file(path, len, disk, header.clone()).await {
            Ok(body) => Ok(Opened {
                header,
                stream,
                body,
            }),
            Err(e) => {
                tracing::debug!("not sent: {e}");
                match if_unreadable {
                    IfUnreadable::Send(msg) => Err(Some(msg)),
                    IfUnreadable::Call(f) => {
                        f(&e);
                        Err(None)
                    }
                }
            }
        }
    }
}

/// An opened stored file's bytes.
#[derive(Debug)]
pub struct FileBody {
    source: Source,
    path: PathBuf,
    remaining: u64,
    /// The header and length to count in the metrics once all is sent.
    counted: (Msg, u64),
}

#[derive(Debug)]
enum Source {
    /// Read whole already.
    Whole(Bytes),
    /// Read chunk by chunk (`None` only while a read is on its thread).
    File(Option<File>),
}

impl Body for FileBody {
    type Error = SendFileError;

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SendFileError> {
        if self.remaining == 0 {
            let (header, len) = &self.counted;
            super::metrics::bytes_sent(header, *len);
            return Ok(None);
        }
        let chunk = match &mut self.source {
            // Checked against `remaining` when opened; a shortfall here
            // would be a bug, and must not loop on empty chunks.
            Source::Whole(data) if data.len() as u64 == self.remaining => std::mem::take(data),
            Source::Whole(_) => {
                return Err(SendFileError::Length {
                    path: self.path.clone(),
                    announced: self.counted.1,
                    actual: self.counted.1 - self.remaining,
                });
            }
            Source::File(file) => {
                let mut file = file.take().expect("no read in flight");
                let want = self.remaining.min(MAX_CHUNK as u64) as usize;
                // Straight into the chunk, into memory not zeroed first.
                let (back, buf) = tessera_proto::determinism::blocking(move || {
                    let mut buf = Vec::with_capacity(want);
                    (&mut file).take(want as u64).read_to_end(&mut buf)?;
                    if buf.len() < want {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok((file, buf))
                })
                .await
                .map_err(|source| SendFileError::File {
                    path: self.path.clone(),
                    source,
                })?;
                self.source = Source::File(Some(back));
                Bytes::from(buf)
            }
        };
        self.remaining -= chunk.len() as u64;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use tessera_proto::{FrameReader, FrameWriter, TaskId, outgoing};

    use super::*;
    use crate::master::disk::StdDisk;

    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

    fn stored(path: PathBuf, len: u64, if_unreadable: IfUnreadable) -> StoredFile {
        StoredFile {
            header: Msg::Result {
                req: 1,
                task: TaskId(1),
                len,
                checksum: 0,
            },
            stream: 1,
            path,
            len,
            if_unreadable,
            disk: Arc::new(StdDisk::default()),
        }
    }

    /// Large and small files arrive whole, chunk by chunk; a file removed or
    /// of another length is answered with its `Send` message, or its `Call`
    /// is told why, and the connection goes on to the next.
    #[tokio::test]
    async fn files_arrive_whole_and_unreadable_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let large = dir.path().join("large");
        let large_len = 3 * MAX_CHUNK + 17;
        let large_bytes: Vec<u8> = (0..large_len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&large, &large_bytes).unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"tiny").unwrap();
        let (near, far) = tokio::io::duplex(64 * 1024);
        let max = tessera_proto::DEFAULT_MAX_FRAME;
        let (tx, run) = outgoing::in_order(FrameWriter::new(near, max), 8, None);
        let writer = tokio::spawn(run);
        let (told_tx, told_rx) = std::sync::mpsc::channel();
        let missing = stored(
            dir.path().join("gone"),
            10,
            IfUnreadable::Call(Box::new(move |e| {
                told_tx.send(e.is_missing_file()).unwrap()
            })),
        );
        let other_len = stored(small.clone(), 5, IfUnreadable::Send(Msg::Pong { seq: 9 }));
        for f in [
            stored(
                large,
                large_len as u64,
                IfUnreadable::Send(Msg::Pong { seq: 0 }),
            ),
            missing,
            other_len,
            stored(small, 4, IfUnreadable::Send(Msg::Pong { seq: 0 })),
        ] {
            tx.send(outgoing::Item::Payload(f)).await.unwrap();
        }
        drop(tx);
        let mut reader = FrameReader::new(far, max);
        let mut got = Vec::new();
        let mut headers = 0;
        let mut pongs = Vec::new();
        while let Ok(incoming) = reader.recv_within(DEADLINE).await {
            match incoming.msg {
                Msg::Result { .. } => headers += 1,
                Msg::Chunk { .. } => got.extend_from_slice(&incoming.payload),
                Msg::Pong { seq } => pongs.push(seq),
                other => panic!("unexpected {other:?}"),
            }
        }
        writer.await.unwrap().unwrap();
        assert_eq!(headers, 2, "only the readable files are announced");
        let mut expected = large_bytes;
        expected.extend_from_slice(b"tiny");
        assert_eq!(got, expected);
        assert_eq!(pongs, [9], "the file of another length is answered instead");
        assert!(told_rx.recv().unwrap(), "the missing file's sender is told");
    }
}
