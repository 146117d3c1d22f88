//! A master process and the CLI run against it: its workers, a client of
//! it, and `tessera` commands with their output.

use std::path::PathBuf;

use tessera_client::{Client, ClusterKey};
use tessera_tests::{Proc, spawn_master};

use crate::{CLIENT, NODE, T};

/// A master process, its address and its cluster key.
pub(crate) struct Master {
    pub(crate) _proc: Proc,
    pub(crate) addr: String,
    pub(crate) key: PathBuf,
}

pub(crate) async fn master(tmp: &std::path::Path) -> Master {
    let (proc, addr, key) = spawn_master(NODE, &tmp.join("data"), &[]).await;
    Master {
        _proc: proc,
        addr,
        key,
    }
}

impl Master {
    pub(crate) fn worker(&self, name: &str, extra: &[&str]) -> Proc {
        tessera_tests::spawn_worker(NODE, &self.addr, &self.key, name, extra)
    }

    pub(crate) async fn client(&self) -> Client {
        let key = ClusterKey::load(&self.key).unwrap();
        Client::connect(&self.addr, &key).await.unwrap()
    }

    /// Runs the CLI against this master to completion.
    pub(crate) async fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.addr, &self.key, args).await
    }
}

/// Runs the CLI against `addr` to completion.
pub(crate) async fn cli(addr: &str, key: &std::path::Path, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(CLIENT)
        .args(args)
        .env("TESSERA_MASTER", addr)
        .env(tessera_proto::KEY_FILE_ENV, key)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(T, run)
        .await
        .unwrap_or_else(|_| panic!("tessera {args:?} did not finish within {T:?}"))
        .expect("tessera started")
}

pub(crate) fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
