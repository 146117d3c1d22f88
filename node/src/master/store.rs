//! Image files under the master's data directory.
//!
//! Layout: `inputs/<task>`, `results/<task>.<attempt>`, and `tmp/` for
//! files being received, next to the record (`record.redb`). A file is
//! written under `tmp/` and renamed into place, so a reader never sees a
//! partial image; the journal makes it durable before the record does.

use std::{
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use tessera_proto::TaskId;
use tokio::{fs, io::AsyncWriteExt};

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
    root: PathBuf,
    next_tmp: AtomicU64,
}

impl DataDir {
    /// Opens (creating) the data directory. Files left half-written under
    /// `tmp/` by an earlier run are removed.
    pub async fn open(root: &Path) -> io::Result<Self> {
        for sub in ["inputs", "results"] {
            fs::create_dir_all(root.join(sub)).await?;
        }
        let tmp = root.join("tmp");
        match fs::remove_dir_all(&tmp).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        fs::create_dir_all(&tmp).await?;
        Ok(DataDir {
            root: root.to_path_buf(),
            next_tmp: AtomicU64::new(0),
        })
    }

    /// Removes every image file that `keep` does not claim (a crash between
    /// writing a file and recording it leaves such files). Returns how many.
    pub async fn sweep(&self, keep: impl Fn(Kind, TaskId) -> bool) -> io::Result<usize> {
        let mut removed = 0;
        for sub in ["inputs", "results"] {
            let mut dir = fs::read_dir(self.root.join(sub)).await?;
            while let Some(entry) = dir.next_entry().await? {
                let name = entry.file_name();
                let parsed = parse_name(sub, &name.to_string_lossy());
                if !parsed.is_some_and(|(kind, task)| keep(kind, task)) {
                    fs::remove_file(entry.path()).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
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

    /// Starts a new file under `tmp/`.
    pub async fn create_tmp(&self) -> io::Result<TmpFile> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join("tmp").join(format!("{n}.part"));
        let file = fs::File::create(&path).await?;
        Ok(TmpFile {
            path,
            file: Some(file),
        })
    }

    /// Makes a finished temporary file the `kind` file of `task` by renaming
    /// it into place. It is not durable yet: the journal's next durable
    /// commit flushes it (one `syncfs` for the whole batch) before the record
    /// that refers to it, and a crash before that leaves a file no record
    /// claims, which the next start removes.
    pub async fn publish(&self, mut tmp: TmpFile, kind: Kind, task: TaskId) -> io::Result<PathBuf> {
        let mut file = tmp.file.take().expect("a TmpFile is published once");
        file.flush().await?;
        drop(file);
        let dest = self.path(kind, task);
        fs::rename(&tmp.path, &dest).await?;
        tmp.path = PathBuf::new();
        Ok(dest)
    }

    /// Removes the files of a task (missing files are fine).
    pub async fn remove(&self, kind: Kind, task: TaskId) -> io::Result<()> {
        match fs::remove_file(self.path(kind, task)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
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

/// A file being received. Dropped without [`DataDir::commit`], it is deleted.
#[derive(Debug)]
pub struct TmpFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl TmpFile {
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("not committed")
            .write_all(data)
            .await
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
