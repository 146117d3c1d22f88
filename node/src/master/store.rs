//! Image files under the master's data directory.
//!
//! Layout: `inputs/<task>`, `results/<task>.<attempt>`, and `tmp/` for
//! files being received, next to the record (`record.redb`). A file is
//! written under `tmp/` and renamed into place, so a reader never sees a
//! partial image; the journal makes the rename durable before the record.
//!
//! Small files (all but large images) go through the [`Disk`] seam, which
//! a simulation replaces; a file too large to collect in memory streams to
//! the machine's disk through tokio's file API.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use std::io::Write;
use tessera_proto::{TaskId, determinism::blocking};

use super::disk::Disk;

/// Files up to this size are collected in memory while they arrive and then
/// written, fsynced and renamed in one blocking call, instead of one
/// blocking call (a thread hand-off each way) per step.
pub const SMALL_FILE: u64 = tessera_proto::MAX_CHUNK as u64;

/// Most bytes of small files held in memory at once, over all connections;
/// beyond it, files stream to disk as large ones do.
pub const SMALL_FILES_BUDGET: usize = 64 * 1024 * 1024;

/// Where an image is kept. Each attempt's result has its own file, so two
/// attempts that finish at once never overwrite each other; the scheduler
/// records which attempt won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Input,
    Result { attempt: u32 },
}

/// The master's data directory.
#[derive(Debug)]
pub struct DataDir {
    disk: Arc<dyn Disk>,
    root: PathBuf,
    next_tmp: AtomicU64,
    /// Bytes of small files now held in memory.
    buffered: Arc<AtomicUsize>,
}

impl DataDir {
    /// Opens (creating) the data directory. Files left half-written under
    /// `tmp/` by an earlier run are removed. The directory is synced, so
    /// that the subdirectories made here survive a power cut.
    pub async fn open(disk: Arc<dyn Disk>, root: &Path) -> io::Result<Self> {
        let (d, dir) = (disk.clone(), root.to_path_buf());
        blocking(move || {
            for sub in ["inputs", "results", "tmp"] {
                d.create_dir_all(&dir.join(sub))?;
            }
            for (path, _) in d.list(&dir.join("tmp"))? {
                d.remove_file(&path)?;
            }
            // The subdirectories' own entries, durable before any file in
            // them is counted on.
            d.sync_dir(&dir)
        })
        .await?;
        Ok(DataDir {
            disk,
            root: root.to_path_buf(),
            next_tmp: AtomicU64::new(0),
            buffered: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The file system the image files are on.
    pub fn disk(&self) -> Arc<dyn Disk> {
        self.disk.clone()
    }

    /// Removes every image file that `keep` does not claim (a crash between
    /// writing a file and recording it leaves such files). Returns how many.
    pub async fn sweep(&self, keep: impl Fn(Kind, TaskId) -> bool) -> io::Result<usize> {
        let (root, disk) = (self.root.clone(), self.disk.clone());
        // The names first (one blocking hand-off), then what `keep` says.
        let found = blocking(move || {
            let mut found = Vec::new();
            for sub in ["inputs", "results"] {
                for (path, name) in disk.list(&root.join(sub))? {
                    found.push((path, parse_name(sub, &name)));
                }
            }
            Ok(found)
        })
        .await?;
        let doomed: Vec<PathBuf> = found
            .into_iter()
            .filter(|(_, parsed)| !parsed.is_some_and(|(kind, task)| keep(kind, task)))
            .map(|(path, _)| path)
            .collect();
        let removed = doomed.len();
        let disk = self.disk.clone();
        blocking(move || doomed.iter().try_for_each(|p| disk.remove_file(p))).await?;
        Ok(removed)
    }

    /// The directories images are renamed into.
    pub fn image_dirs(&self) -> Vec<PathBuf> {
        vec![self.root.join("inputs"), self.root.join("results")]
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, kind: Kind, task: TaskId) -> PathBuf {
        match kind {
            Kind::Input => self.root.join("inputs").join(task.0.to_string()),
            Kind::Result { attempt } => self
                .root
                .join("results")
                .join(format!("{}.{attempt}", task.0)),
        }
    }

    /// Starts a new file of `len` bytes under `tmp/`: in memory when it is
    /// small and the budget allows, else on disk.
    pub async fn create_tmp(&self, len: u64) -> io::Result<TmpFile> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join("tmp").join(format!("{n}.part"));
        if len <= SMALL_FILE {
            let size = len as usize;
            let reserved = self.buffered.fetch_add(size, Ordering::Relaxed);
            if reserved + size <= SMALL_FILES_BUDGET {
                return Ok(TmpFile {
                    path,
                    body: Body::Memory(Vec::with_capacity(size)),
                    budget: Some((self.buffered.clone(), size)),
                });
            }
            self.buffered.fetch_sub(size, Ordering::Relaxed);
        }
        let create = path.clone();
        let file = blocking(move || std::fs::File::create(&create)).await?;
        Ok(TmpFile {
            path,
            body: Body::Disk(OnDisk {
                file: Some(file),
                ..OnDisk::default()
            }),
            budget: None,
        })
    }

    /// Makes a finished temporary file the `kind` file of `task`: its data is
    /// fsynced, then it is renamed into place. The rename (a directory entry)
    /// is made durable by the journal's next durable commit, which fsyncs the
    /// image directories once for its whole batch before the record that
    /// refers to the file; a crash before that leaves at most a file no record
    /// claims, which the next start removes.
    pub async fn publish(&self, mut tmp: TmpFile, kind: Kind, task: TaskId) -> io::Result<PathBuf> {
        let dest = self.path(kind, task);
        match std::mem::replace(&mut tmp.body, Body::Disk(OnDisk::default())) {
            Body::Memory(data) => {
                let path = std::mem::take(&mut tmp.path);
                let to = dest.clone();
                // One hand-off to a blocking thread for the whole file.
                let disk = self.disk.clone();
                blocking(move || write_whole(&*disk, &path, &data, &to)).await?;
            }
            Body::Disk(mut disk) => {
                disk.written().await?;
                let mut file = disk.file.ok_or_else(|| io::Error::other(UNWRITABLE))?;
                let gathered = disk.gathered;
                let (from, to) = (tmp.path.clone(), dest.clone());
                blocking(move || {
                    file.write_all(&gathered)?;
                    file.sync_data()?;
                    drop(file);
                    std::fs::rename(&from, &to)
                })
                .await?;
                tmp.path = PathBuf::new();
            }
        }
        Ok(dest)
    }

    /// Removes the files of a task (missing files are fine).
    pub async fn remove(&self, kind: Kind, task: TaskId) -> io::Result<()> {
        let (path, disk) = (self.path(kind, task), self.disk.clone());
        blocking(move || match disk.remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }
}

/// The kind and task of a file under `inputs/` or `results/`.
fn parse_name(sub: &str, name: &str) -> Option<(Kind, TaskId)> {
    match sub {
        "inputs" => name.parse().ok().map(|t| (Kind::Input, TaskId(t))),
        _ => {
            let (task, attempt) = name.split_once('.')?;
            Some((
                Kind::Result {
                    attempt: attempt.parse().ok()?,
                },
                TaskId(task.parse().ok()?),
            ))
        }
    }
}

/// Writes `data` to `tmp`, fsyncs it and renames it to `dest`; on failure
/// nothing is left at `tmp`.
fn write_whole(disk: &dyn Disk, tmp: &Path, data: &[u8], dest: &Path) -> io::Result<()> {
    let written = disk
        .write_synced(tmp, data)
        .and_then(|()| disk.rename(tmp, dest));
    if written.is_err() {
        let _ = disk.remove_file(tmp);
    }
    written
}

/// A file being received. Dropped without [`DataDir::publish`], it is deleted.
#[derive(Debug)]
pub struct TmpFile {
    /// Empty once published (or when nothing was created on disk).
    path: PathBuf,
    body: Body,
    /// The share of the small-file budget this file holds.
    budget: Option<(Arc<AtomicUsize>, usize)>,
}

#[derive(Debug)]
enum Body {
    Memory(Vec<u8>),
    Disk(OnDisk),
}

/// A temporary file on disk.
#[derive(Debug, Default)]
struct OnDisk {
    /// `None` once published, or while a write is in a blocking thread.
    file: Option<std::fs::File>,
    /// Small pieces not yet written.
    gathered: Vec<u8>,
    /// The write in a blocking thread, which hands the file back.
    writing: Option<Writing>,
}

/// A write of a piece in a blocking thread: the file back, and how the
/// write went.
type Writing = tokio::task::JoinHandle<io::Result<(std::fs::File, io::Result<()>)>>;

/// Why a file on disk can take no more data: an earlier write's hand-off
/// to a blocking thread did not come back.
const UNWRITABLE: &str = "an earlier write to this file did not finish";

/// Pieces smaller than this are gathered before they go to disk (a web
/// upload arrives in pieces of a few KiB; a protocol chunk is 1 MiB).
const GATHER: usize = 256 * 1024;

impl TmpFile {
    /// Appends `data`. On disk, a large piece goes to a blocking thread as
    /// it is (no copy into an intermediate buffer, as `tokio::fs` makes);
    /// small ones are gathered first. A piece is written behind: this
    /// returns once the piece before it is written, so the connection
    /// reading the next piece does not wait for the disk, and at most one
    /// piece is held beyond what is written. A failed write is returned by
    /// the next `write` or by [`DataDir::publish`].
    pub async fn write(&mut self, data: Bytes) -> io::Result<()> {
        match &mut self.body {
            Body::Memory(buf) => {
                buf.extend_from_slice(&data);
                Ok(())
            }
            Body::Disk(disk) => {
                if disk.gathered.is_empty() && data.len() >= GATHER {
                    return disk.write_out(data).await;
                }
                disk.gathered.extend_from_slice(&data);
                if disk.gathered.len() < GATHER {
                    return Ok(());
                }
                let gathered = std::mem::take(&mut disk.gathered);
                disk.write_out(Bytes::from(gathered)).await
            }
        }
    }
}

impl OnDisk {
    /// Waits for the write in progress; its error, if it failed.
    async fn written(&mut self) -> io::Result<()> {
        if let Some(writing) = self.writing.take() {
            let (file, written) = writing.await.map_err(io::Error::other)??;
            self.file = Some(file);
            written?;
        }
        Ok(())
    }

    /// Starts writing `data` at the end of the file in a blocking thread,
    /// once the write before it is done; does not wait for this one.
    async fn write_out(&mut self, data: Bytes) -> io::Result<()> {
        self.written().await?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other(UNWRITABLE))?;
        self.writing = Some(tokio::spawn(blocking(move || {
            let written = file.write_all(&data);
            Ok((file, written))
        })));
        Ok(())
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some((budget, size)) = self.budget.take() {
            budget.fetch_sub(size, Ordering::Relaxed);
        }
        if matches!(self.body, Body::Disk(_)) && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::fs;

    use super::*;

    async fn files_in(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        let mut entries = fs::read_dir(dir).await.unwrap();
        while let Some(e) = entries.next_entry().await.unwrap() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        names
    }

    #[tokio::test]
    async fn small_and_large_files_are_published_whole_and_budget_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(Arc::new(super::super::disk::StdDisk::default()), dir.path())
            .await
            .unwrap();
        for len in [
            0,
            1000,
            SMALL_FILE as usize,
            SMALL_FILE as usize + 1,
            3 * SMALL_FILE as usize + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut tmp = store.create_tmp(len as u64).await.unwrap();
            let small = len as u64 <= SMALL_FILE;
            assert_eq!(matches!(tmp.body, Body::Memory(_)), small, "len {len}");
            // Pieces above, below and at the size small ones are gathered to,
            // in an order that leaves some gathered before a large one.
            let mut rest = &data[..];
            for size in [1000, 300_000, 7, GATHER, GATHER - 1, 2].iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, after) = rest.split_at((*size).min(rest.len()));
                tmp.write(Bytes::copy_from_slice(piece)).await.unwrap();
                rest = after;
            }
            let task = TaskId(len as u64);
            let path = store.publish(tmp, Kind::Input, task).await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "len {len}");
            assert_eq!(store.buffered.load(Ordering::Relaxed), 0);
        }
        assert!(files_in(&dir.path().join("tmp")).await.is_empty());
    }

    /// Records the directories synced.
    #[derive(Debug, Default)]
    struct Recording {
        disk: crate::master::disk::StdDisk,
        synced: std::sync::Mutex<Vec<PathBuf>>,
    }

    impl Disk for Recording {
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.disk.create_dir_all(dir)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
            self.disk.list(dir)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.disk.remove_file(path)
        }
        fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
            self.disk.write_synced(path, data)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.disk.rename(from, to)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            self.disk.read(path)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.synced.lock().unwrap().push(dir.to_path_buf());
            self.disk.sync_dir(dir)
        }
    }

    /// A power cut right after the first start must not take the image
    /// directories away: their entries are synced before anything is
    /// written into them.
    #[tokio::test]
    async fn opening_makes_the_new_subdirectories_durable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let disk = Arc::new(Recording::default());
        let store = DataDir::open(disk.clone(), &root).await.unwrap();
        assert_eq!(*disk.synced.lock().unwrap(), vec![root.clone()]);
        assert!(store.image_dirs().iter().all(|d| d.is_dir()));
    }

    #[tokio::test]
    async fn an_abandoned_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(Arc::new(super::super::disk::StdDisk::default()), dir.path())
            .await
            .unwrap();
        for len in [10, SMALL_FILE + 10] {
            let mut tmp = store.create_tmp(len).await.unwrap();
            tmp.write(Bytes::from_static(b"partial")).await.unwrap();
            drop(tmp);
        }
        assert!(files_in(&dir.path().join("tmp")).await.is_empty());
        assert_eq!(store.buffered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn small_files_beyond_the_budget_go_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(Arc::new(super::super::disk::StdDisk::default()), dir.path())
            .await
            .unwrap();
        let mut held = Vec::new();
        let per = SMALL_FILE;
        for _ in 0..SMALL_FILES_BUDGET / per as usize {
            let tmp = store.create_tmp(per).await.unwrap();
            assert!(matches!(tmp.body, Body::Memory(_)));
            held.push(tmp);
        }
        let over = store.create_tmp(per).await.unwrap();
        assert!(matches!(over.body, Body::Disk(_)), "over the budget");
        drop(held);
        let again = store.create_tmp(per).await.unwrap();
        assert!(matches!(again.body, Body::Memory(_)), "budget returned");
        drop((over, again));
    }

    #[tokio::test]
    async fn a_write_behind_that_fails_is_reported_by_the_next_write_or_the_publish() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(Arc::new(super::super::disk::StdDisk::default()), dir.path())
            .await
            .unwrap();
        let full = || TmpFile {
            path: PathBuf::new(),
            body: Body::Disk(OnDisk {
                // Every write to /dev/full fails: no space left.
                file: Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap(),
                ),
                ..OnDisk::default()
            }),
            budget: None,
        };
        let piece = || Bytes::from(vec![7u8; GATHER]);
        // Reported by the next write…
        let mut tmp = full();
        tmp.write(piece()).await.expect("started, not yet written");
        let e = tmp.write(piece()).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        // …or by publishing, which then makes nothing.
        let mut tmp = full();
        tmp.write(piece()).await.expect("started, not yet written");
        let e = store
            .publish(tmp, Kind::Input, TaskId(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(!store.path(Kind::Input, TaskId(1)).exists());
    }
}
