//! The master's disk in the simulation: turmoil's simulated file system,
//! one per host, behind the `Disk` seam (`tessera_node::master::disk`). A
//! crash of the host keeps only what was synced: file data after
//! `sync_data`, a directory's entries (files created, renamed, removed)
//! after the directory was synced. It can be made full for a while: new
//! files are then refused with `ENOSPC`, as a real full disk refuses them.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tessera_node::master::disk::Disk;
use turmoil::fs::shim::std::fs;

/// See the module docs. The calls must run on the simulated host (inline:
/// the simulation seeds its thread, `tessera_proto::determinism`). Clones
/// share whether the disk is full.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    full: Arc<AtomicBool>,
}

impl SimDisk {
    /// Makes the disk full (new files are refused) or gives it room again.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
        let mut entries = fs::read_dir(dir)?
            .map(|e| {
                let e = e?;
                Ok((e.path(), e.file_name().to_string_lossy().into_owned()))
            })
            .collect::<io::Result<Vec<_>>>()?;
        // In name order, whatever order the simulated directory keeps.
        entries.sort();
        Ok(entries)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            // ENOSPC: what the master sees from a real full disk.
            return Err(io::Error::from_raw_os_error(28));
        }
        let mut file = fs::File::create(path)?;
        file.write_all(data)?;
        file.sync_data()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fs::sync_dir(dir)
    }
}
