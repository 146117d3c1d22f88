//! Every done result of a batch as one zip, streamed: a blocking thread
//! writes the archive (stored entries: PNGs do not compress further) into a
//! bounded channel that the response body drains, so memory stays at a few
//! buffers whatever the batch's size. A browser that goes away ends the
//! thread at its next write. A result removed meanwhile is left out.

use std::{
    collections::HashSet,
    io::{self, Write},
    path::PathBuf,
};

use bytes::Bytes;
use tessera_proto::TaskId;
use tokio::sync::mpsc;
use tracing::debug;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// Size of the pieces the archive is sent in.
const PIECE: usize = 256 * 1024;
/// Pieces buffered between the writer and the response.
const PIECES: usize = 4;

/// One result to put in the archive.
#[derive(Debug)]
pub struct ZipEntry {
    pub task: TaskId,
    pub name: String,
    pub path: PathBuf,
}

/// The archive's name for an image: its relative path, without any `..`,
/// `.` or root component; a name used already gets the task id.
pub fn entry_name(name: &str, task: TaskId, used: &mut HashSet<String>) -> String {
    let clean: Vec<&str> = name
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .collect();
    let mut out = if clean.is_empty() {
        format!("task-{}.png", task.0)
    } else {
        clean.join("/")
    };
    if used.contains(&out) {
        out = match out.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => {
                format!("{stem} (task {}).{ext}", task.0)
            }
            _ => format!("{out} (task {})", task.0),
        };
    }
    used.insert(out.clone());
    out
}

/// Sends what is written in pieces of [`PIECE`] bytes.
struct Pieces {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Pieces {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the browser went away"))
    }
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn write_archive(entries: Vec<ZipEntry>, out: Pieces) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(out);
    let mut used = HashSet::new();
    for entry in entries {
        let mut file = match std::fs::File::open(&entry.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(len >= u32::MAX as u64);
        let name = entry_name(&entry.name, entry.task, &mut used);
        zip.start_file(name, options).map_err(io::Error::other)?;
        io::copy(&mut file, &mut zip)?;
    }
    let mut out = zip.finish().map_err(io::Error::other)?;
    out.flush()
}

/// The archive of `entries`, as a stream of pieces.
pub fn stream(entries: Vec<ZipEntry>) -> impl futures::Stream<Item = io::Result<Bytes>> {
    let (tx, mut rx) = mpsc::channel(PIECES);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = Pieces {
            tx,
            buf: Vec::with_capacity(PIECE),
        };
        if let Err(e) = write_archive(entries, out) {
            debug!("zip of a batch stopped: {e}");
            // The response ends with an error: the browser shows the
            // download as failed, not as a complete but short archive.
            let _ = errors.blocking_send(Err(e));
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_inside_the_archive_and_are_unique() {
        let mut used = HashSet::new();
        assert_eq!(entry_name("a/b.png", TaskId(1), &mut used), "a/b.png");
        assert_eq!(
            entry_name("a/b.png", TaskId(2), &mut used),
            "a/b (task 2).png"
        );
        assert_eq!(
            entry_name("../../etc/x.png", TaskId(3), &mut used),
            "etc/x.png"
        );
        assert_eq!(entry_name("/abs/./y", TaskId(4), &mut used), "abs/y");
        assert_eq!(entry_name("abs/y", TaskId(5), &mut used), "abs/y (task 5)");
        assert_eq!(entry_name("..", TaskId(6), &mut used), "task-6.png");
    }

    #[tokio::test]
    async fn an_archive_holds_every_file_byte_for_byte() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for i in 0..3u64 {
            let data: Vec<u8> = (0..(300_000 + i * 7))
                .map(|b| (b * (i + 3)) as u8)
                .collect();
            let path = dir.path().join(format!("{i}"));
            std::fs::write(&path, &data).unwrap();
            entries.push(ZipEntry {
                task: TaskId(i),
                name: "same.png".into(),
                path,
            });
            expected.push(data);
        }
        entries.push(ZipEntry {
            task: TaskId(9),
            name: "gone.png".into(),
            path: dir.path().join("missing"),
        });
        let mut archive = Vec::new();
        let mut s = std::pin::pin!(stream(entries));
        while let Some(piece) = s.next().await {
            archive.extend_from_slice(&piece.unwrap());
        }
        let mut zip = zip::ZipArchive::new(io::Cursor::new(archive)).unwrap();
        assert_eq!(zip.len(), 3);
        let names = ["same.png", "same (task 1).png", "same (task 2).png"];
        for (i, name) in names.iter().enumerate() {
            let mut f = zip.by_name(name).unwrap();
            let mut got = Vec::new();
            io::Read::read_to_end(&mut f, &mut got).unwrap();
            assert_eq!(got, expected[i], "{name}");
        }
    }
}
