//! The file system under the master's image files (`store.rs`): the seam a
//! simulation replaces with one whose crash loses what was not synced (the
//! simulation's `SimDisk`, over turmoil's simulated file system). The
//! record is not on it: it has its own seam (`record::TaskStore`).
//!
//! Calls block: the master makes them through
//! `tessera_proto::determinism::blocking`.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

/// See the module docs.
pub trait Disk: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Every entry of `dir`: its path and file name.
    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, String)>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` holding `data`, on stable storage when this returns
    /// (its directory entry is not: see [`Disk::sync_dir`]).
    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Makes the entries created, renamed or removed in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The machine's file system. Directories synced are kept open, so that a
/// sync costs one fsync and no `open`.
#[derive(Debug, Default)]
pub struct StdDisk {
    dirs: Mutex<BTreeMap<PathBuf, std::fs::File>>,
}

impl Disk for StdDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
        std::fs::read_dir(dir)?
            .map(|e| {
                let e = e?;
                Ok((e.path(), e.file_name().to_string_lossy().into_owned()))
            })
            .collect()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(data)?;
        file.sync_data()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        if !dirs.contains_key(dir) {
            dirs.insert(dir.to_path_buf(), std::fs::File::open(dir)?);
        }
        let synced = dirs[dir].sync_all();
        if synced.is_err() {
            // Open it again next time, in case the handle itself went bad.
            dirs.remove(dir);
        }
        synced
    }
}
