//! A small file system of its own (a tmpfs mounted on a fresh directory,
//! root only), to fill up: the master's disk running out of room is real
//! `ENOSPC` from a real file system, not an injected error.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// A tmpfs of a given size, unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `4m`).
    pub fn mount(size: &str) -> Tmpfs {
        assert_eq!(
            crate::netns::euid(),
            Some(0),
            "this test mounts a small tmpfs to fill up and needs root: run `cargo test` as root (as .ci/run does in CI)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tessera-test"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A file that takes every byte left on its file system, removed on drop
/// (room again).
#[derive(Debug)]
pub struct Ballast {
    path: PathBuf,
}

impl Ballast {
    /// Writes `dir/name` until the file system is full.
    pub fn fill(dir: &Path, name: &str) -> Ballast {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block, byte by byte in smaller writes.
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        Ballast { path }
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
