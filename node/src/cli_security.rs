//! The `tessera-node` options for the cluster key and the limits, and how a
//! node finds its key. Kept apart from `cli.rs`, which only flattens them in.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use tessera_proto::{ClusterKey, KEY_FILE_ENV, KEY_FILE_NAME, key::permissions_warning};

use crate::{master::MasterConfig, worker::WorkerConfig};

/// The most `--max-message-bytes` may be: the fixed limit every message
/// body is decoded under (`tessera_proto::wire::HEADER_DECODE_LIMIT`).
const MAX_MESSAGE_BYTES: i64 = tessera_proto::wire::HEADER_DECODE_LIMIT as i64;

/// `--key-file` (or `TESSERA_KEY_FILE`), the same on master, worker and client.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The cluster key file. On a worker or client: a copy of the master's
    /// cluster.key. On the master: default DATA_DIR/cluster.key, created on
    /// first start.
    #[arg(long, env = KEY_FILE_ENV, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// The master's connection limits (defaults as in `MasterConfig::new`).
#[derive(Debug, Clone, clap::Args)]
pub struct MasterLimitArgs {
    /// Most connections at once; more are refused with Busy.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Most connections still in their handshake at once; more are refused with Busy.
    #[arg(long, default_value_t = 128)]
    pub max_unauthenticated: usize,
    /// Most of those from one address, so that one address cannot take
    /// every handshake slot; more are refused with Busy.
    #[arg(long, default_value_t = 16)]
    pub max_unauthenticated_per_address: usize,
    /// Time a new connection has to complete the handshake.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Close a connection that sent and received nothing for this long (a
    /// client waiting on a task is not idle; workers heartbeat).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Submissions one client connection may have mid-upload; more are
    /// answered Busy (the client backs off and retries).
    #[arg(long, default_value_t = 64)]
    pub max_uploads_per_client: usize,
    /// Largest message other than an image chunk, in bytes: 8192 (an image
    /// name may take 4096) to 65536 (every message body is also decoded,
    /// here and by workers and clients, under that fixed limit).
    #[arg(
        long,
        default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u32).range(8192..=MAX_MESSAGE_BYTES)
    )]
    pub max_message_bytes: u32,
}

impl MasterLimitArgs {
    pub fn apply(&self, config: &mut MasterConfig) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be at least 1"
        );
        anyhow::ensure!(
            self.max_unauthenticated > 0,
            "--max-unauthenticated must be at least 1"
        );
        anyhow::ensure!(
            self.max_unauthenticated_per_address > 0,
            "--max-unauthenticated-per-address must be at least 1"
        );
        anyhow::ensure!(
            self.max_uploads_per_client > 0,
            "--max-uploads-per-client must be at least 1"
        );
        config.max_connections = self.max_connections;
        config.max_unauthenticated = self.max_unauthenticated.min(self.max_connections);
        config.max_unauthenticated_per_address = self
            .max_unauthenticated_per_address
            .min(config.max_unauthenticated);
        config.handshake_timeout = self.handshake_timeout;
        config.idle_timeout = self.idle_timeout;
        config.max_uploads_per_client = self.max_uploads_per_client;
        config.max_control_frame = self.max_message_bytes as usize;
        Ok(())
    }
}

/// A worker's limits on one image (defaults as in `tessera_imaging::Limits`).
#[derive(Debug, Clone, clap::Args)]
pub struct ImageLimitArgs {
    /// Largest image the worker accepts, in bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub max_image_bytes: u64,
    /// Widest image, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 32768)]
    pub max_width: u32,
    /// Tallest image, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 32768)]
    pub max_height: u32,
    /// Most memory one image may decode to, in bytes (checked from the
    /// header; also caps the decoder's own allocations): stops PNG bombs.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub max_decoded_bytes: u64,
}

impl ImageLimitArgs {
    pub fn limits(&self) -> tessera_imaging::Limits {
        tessera_imaging::Limits {
            max_input_bytes: self.max_image_bytes,
            max_width: self.max_width,
            max_height: self.max_height,
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }

    pub fn apply(&self, config: &mut WorkerConfig) {
        config.max_image_bytes = self.max_image_bytes;
        config.options.limits = self.limits();
    }
}

/// The master's key: `key_file` if given (it must exist), else
/// DATA_DIR/cluster.key, created on first start. Returns the key and its file.
pub fn master_key(
    key_file: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(ClusterKey, PathBuf)> {
    let (key, path) = match key_file {
        Some(path) => (ClusterKey::load(path)?, path.to_path_buf()),
        None => {
            let path = data_dir.join(KEY_FILE_NAME);
            let (key, created) = ClusterKey::load_or_create(&path)?;
            if created {
                tracing::info!("created a new cluster key in {}", path.display());
            }
            (key, path)
        }
    };
    warn_if_readable_by_others(&path);
    Ok((key, path))
}

/// A worker's or client's key, from `--key-file` or `TESSERA_KEY_FILE`.
pub fn peer_key(key_file: Option<&Path>) -> anyhow::Result<ClusterKey> {
    let path = key_file.with_context(|| {
        format!(
            "no cluster key: copy the master's {KEY_FILE_NAME} (in its data directory) to this machine and pass --key-file PATH or set {KEY_FILE_ENV}=PATH"
        )
    })?;
    let key = ClusterKey::load(path)?;
    warn_if_readable_by_others(path);
    Ok(key)
}

fn warn_if_readable_by_others(path: &Path) {
    if let Some(warning) = permissions_warning(path) {
        tracing::warn!("{warning}");
    }
}

/// Prints where the key is and how others join (stdout, before `listening on`).
pub fn print_join_instructions(path: &Path, key: &ClusterKey) {
    println!(
        "cluster key: {} (fingerprint {})",
        path.display(),
        key.fingerprint()
    );
    println!(
        "to join, copy that file to each worker and client machine and pass --key-file PATH or set {KEY_FILE_ENV}=PATH"
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        master: MasterLimitArgs,
        #[command(flatten)]
        image: ImageLimitArgs,
    }

    /// The flags' documented defaults are the libraries' defaults.
    #[test]
    fn flag_defaults_match_the_configs() {
        let args = Args::parse_from(["x"]);
        let want = MasterConfig::new(PathBuf::from("d"));
        let mut got = MasterConfig::new(PathBuf::from("d"));
        args.master.apply(&mut got).unwrap();
        assert_eq!(got.max_connections, want.max_connections);
        assert_eq!(got.max_unauthenticated, want.max_unauthenticated);
        assert_eq!(
            got.max_unauthenticated_per_address,
            want.max_unauthenticated_per_address
        );
        assert_eq!(got.handshake_timeout, want.handshake_timeout);
        assert_eq!(got.idle_timeout, want.idle_timeout);
        assert_eq!(got.max_uploads_per_client, want.max_uploads_per_client);
        assert_eq!(got.max_control_frame, want.max_control_frame);
        assert_eq!(args.image.limits(), tessera_imaging::Limits::default());
        let worker = WorkerConfig::new("m", ClusterKey::generate());
        assert_eq!(args.image.max_image_bytes, worker.max_image_bytes);
    }

    #[test]
    fn image_limit_flags_reach_the_worker() {
        let args = Args::parse_from(["x", "--max-decoded-bytes", "1000", "--max-width", "7"]);
        let mut config = WorkerConfig::new("m", ClusterKey::generate());
        args.image.apply(&mut config);
        assert_eq!(config.options.limits.max_decoded_bytes, 1000);
        assert_eq!(config.options.limits.max_width, 7);
    }

    #[test]
    fn a_missing_key_names_the_fix() {
        let err = peer_key(None).unwrap_err().to_string();
        assert!(
            err.starts_with("no cluster key: copy the master's cluster.key")
                && err.contains("--key-file PATH")
                && err.contains("TESSERA_KEY_FILE=PATH"),
            "{err}"
        );
    }
}
