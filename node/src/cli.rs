//! The `tessera-node` command line.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod work_args;

pub use work_args::{PngCompression, TEST_SWITCHES_ENV, WorkArgs, test_switches_enabled};

use crate::{
    cli_security::{self, KeyArgs, MasterLimitArgs},
    dev::{DevCluster, DevConfig},
    discovery::{
        Advertisement, DEFAULT_CLUSTER, Discovery, MdnsDiscovery, StaticAddr, parse_cluster,
    },
    master::{self, MasterConfig},
    worker::{self, WorkerConfig},
};

/// A node of a tessera image-processing cluster.
#[derive(Debug, Parser)]
#[command(
    name = "tessera-node",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  tessera-node master --data-dir /var/lib/tessera --metrics 9464\n  tessera-node worker --key-file cluster.key\n  tessera-node dev --workers 2"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the master: accepts images from clients and hands them to workers.
    ///
    /// Example: tessera-node master --listen 0.0.0.0:7878 --data-dir /var/lib/tessera
    ///
    /// Example: tessera-node master --metrics 9464   (Prometheus at http://127.0.0.1:9464/metrics)
    Master {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7878")]
        listen: SocketAddr,
        /// Directory for images and results.
        #[arg(long, default_value = "tessera-data")]
        data_dir: PathBuf,
        /// Largest image accepted, in bytes.
        #[arg(long, default_value_t = 256 * 1024 * 1024)]
        max_image_bytes: u64,
        /// Times an image may kill its worker while it runs there alone (or
        /// run past --task-timeout) before it fails: a poison image cannot
        /// take down every worker. Deaths beside other images, silence and
        /// prefetched tasks never count (see --max-lost). In a storm of worker
        /// deaths it takes more: until that many would be implausible for an
        /// innocent image.
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// How often workers send heartbeats (told to each worker when it joins).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        heartbeat_interval: Duration,
        /// A lease not covered by a heartbeat for this long expires, and its
        /// task is queued again.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        lease_timeout: Duration,
        /// Do not move unstarted tasks from busy workers to idle ones (for
        /// measuring what stealing gains).
        #[arg(long)]
        no_steal: bool,
        /// How long a result is kept when its client never confirms the download.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        retention: Duration,
        /// Give every change to the task record its own fsync instead of
        /// grouping concurrent ones (for measuring what grouping buys).
        #[arg(long)]
        no_group_commit: bool,
        /// Serve Prometheus metrics over HTTP at ADDR/metrics: a port (on
        /// loopback), or HOST:PORT (e.g. 0.0.0.0:9464 for other machines).
        #[arg(
            long,
            value_name = "ADDR",
            num_args = 0..=1,
            default_missing_value = DEFAULT_METRICS,
            value_parser = parse_local_addr
        )]
        metrics: Option<SocketAddr>,
        /// Serve the web page (upload, watch, download in a browser) at ADDR:
        /// a port (on loopback), or HOST:PORT. It opens only with the link
        /// the master prints (its token comes from the cluster key).
        #[arg(
            long,
            value_name = "ADDR",
            num_args = 0..=1,
            default_missing_value = DEFAULT_HTTP,
            value_parser = parse_local_addr
        )]
        http: Option<SocketAddr>,
        #[command(flatten)]
        mdns: AdvertiseArgs,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        limits: MasterLimitArgs,
        #[command(flatten)]
        faults: crate::cli_faults::FaultArgs,
    },
    /// Run a worker: pulls images from the master and processes them.
    ///
    /// Without --master it finds the master of its cluster on the LAN by mDNS,
    /// and looks again whenever it loses it.
    ///
    /// Example: tessera-node worker --cluster lab --threads 4
    ///
    /// Example: tessera-node worker --master 192.0.2.10:7878   (no mDNS)
    Worker {
        /// The master's address (host:port); skips mDNS discovery entirely.
        #[arg(long, env = "TESSERA_MASTER")]
        master: Option<String>,
        /// This worker's name in logs and task status (default: worker-PID-RANDOM).
        #[arg(long)]
        name: Option<String>,
        /// The cluster whose master to find by mDNS (ignored with --master).
        #[arg(long, env = "TESSERA_CLUSTER", default_value = DEFAULT_CLUSTER, value_parser = parse_cluster)]
        cluster: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        work: WorkArgs,
    },
    /// Run a master and N workers in this one process (for one machine).
    ///
    /// It advertises on mDNS like a master, so `tessera` on this machine finds it.
    ///
    /// Example: tessera-node dev --workers 2 --listen 127.0.0.1:7878
    Dev {
        /// Number of workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Address the master listens on.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
        /// Directory for images and results (default: a temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The cluster key file (default: DATA_DIR/cluster.key, created if
        /// missing; without --data-dir a fresh key in the temporary directory).
        #[arg(long, env = tessera_proto::KEY_FILE_ENV, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Serve the master's web page at ADDR (see `master --http`).
        #[arg(
            long,
            value_name = "ADDR",
            num_args = 0..=1,
            default_missing_value = DEFAULT_HTTP,
            value_parser = parse_local_addr
        )]
        http: Option<SocketAddr>,
        #[command(flatten)]
        work: WorkArgs,
        #[command(flatten)]
        mdns: AdvertiseArgs,
    },
}

/// Where `--http` without a value serves.
const DEFAULT_HTTP: &str = "127.0.0.1:7879";

/// Binds `--http` and prints the page's link (before "listening on":
/// scripts read both, in this order).
fn web_page(
    addr: SocketAddr,
    key: &tessera_proto::ClusterKey,
) -> anyhow::Result<master::web::WebConfig> {
    let web = master::web::WebConfig::bind(addr, master::web::Token::new(key.web_token()))?;
    if !web.local_addr().ip().is_loopback() {
        eprintln!(
            "warning: the web page is reachable from other machines at {}: anyone with its link can use the cluster, and HTTP is not encrypted",
            web.local_addr()
        );
    }
    println!("web page on {}", web.url());
    Ok(web)
}

/// Where `--metrics` without a value serves.
const DEFAULT_METRICS: &str = "127.0.0.1:9464";

/// `--metrics`, `--http`: a port alone means loopback.
fn parse_local_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("{s:?} is not a port or HOST:PORT address (e.g. 9464 or 127.0.0.1:9464)")
    })
}

/// The master's mDNS advertisement.
#[derive(Debug, clap::Args)]
pub struct AdvertiseArgs {
    /// The cluster this master serves; workers and clients of that cluster find it by mDNS.
    #[arg(long, env = "TESSERA_CLUSTER", default_value = DEFAULT_CLUSTER, value_parser = parse_cluster)]
    pub cluster: String,
    /// Do not advertise on mDNS (workers and clients then need --master).
    #[arg(long)]
    pub no_mdns: bool,
}

/// Sets up logging (`RUST_LOG`, default `info`).
pub fn init_logging() {
    init_logging_with_default("info");
}

/// Sets up logging to stderr from `RUST_LOG`, or `default` when it is unset.
pub fn init_logging_with_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// Entry point of the `tessera-node` binary.
/// An error that ends it is printed as one line (`error: ...`, each cause
/// once, no backtrace) and the exit status is 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::cli_error::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    match cli.command {
        Command::Master {
            listen,
            data_dir,
            max_image_bytes,
            max_attempts,
            heartbeat_interval,
            lease_timeout,
            no_steal,
            retention,
            no_group_commit,
            metrics,
            http,
            mdns,
            key,
            limits,
            faults,
        } => {
            anyhow::ensure!(
                heartbeat_interval < lease_timeout,
                "--heartbeat-interval ({heartbeat_interval:?}) must be shorter than --lease-timeout ({lease_timeout:?})"
            );
            anyhow::ensure!(
                heartbeat_interval < limits.idle_timeout,
                "--heartbeat-interval ({heartbeat_interval:?}) must be shorter than --idle-timeout ({:?}), or workers would be closed as idle",
                limits.idle_timeout
            );
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let (cluster_key, key_path) =
                cli_security::master_key(key.key_file.as_deref(), &data_dir)?;
            let mut config = MasterConfig::new(data_dir);
            config.key = cluster_key;
            limits.apply(&mut config)?;
            config.max_image_bytes = max_image_bytes;
            config.scheduler.max_attempts = max_attempts.max(1);
            config.scheduler.lease_timeout = lease_timeout;
            config.scheduler.stealing = !no_steal;
            faults.apply(&mut config.scheduler)?;
            config.heartbeat_interval = heartbeat_interval;
            config.retention = retention;
            config.group_commit = !no_group_commit;
            cli_security::print_join_instructions(&key_path, &config.key);
            if let Some(addr) = metrics {
                let exporter = master::metrics::Exporter::install(addr)?;
                // Before "listening on": scripts read both, in this order.
                println!("metrics on http://{}/metrics", exporter.local_addr());
                config.metrics = Some(exporter);
            }
            if let Some(addr) = http {
                config.web = Some(web_page(addr, &config.key)?);
            }
            let bound = listener.local_addr()?;
            // The bound address, for scripts and tests that asked for port 0.
            println!("listening on {bound}");
            let advert = (!mdns.no_mdns).then(|| {
                advertise_until(&mdns.cluster, &config.master_id, bound, shutdown.clone())
            });
            let served = master::run(listener, config, shutdown.clone()).await;
            shutdown.cancel();
            if let Some(advert) = advert {
                let _ = advert.await;
            }
            served?;
        }
        Command::Worker {
            master,
            name,
            cluster,
            key,
            work,
        } => {
            let cluster_key = cli_security::peer_key(key.key_file.as_deref())?;
            let mut config = WorkerConfig::new(master.clone().unwrap_or_default(), cluster_key);
            if let Some(name) = name {
                config.node_id = name;
            }
            work.apply(&mut config)?;
            let discovery: Box<dyn Discovery> = match master {
                Some(addr) => Box::new(StaticAddr::new(addr, "--master")),
                None => Box::new(MdnsDiscovery::start(&cluster, &config.key)?),
            };
            worker::run_with(config, discovery.as_ref(), shutdown).await?;
        }
        Command::Dev {
            workers,
            listen,
            data_dir,
            key_file,
            http,
            work,
            mdns,
        } => {
            anyhow::ensure!(workers > 0, "--workers must be at least 1");
            let mut config = DevConfig::new(workers);
            let mut key_path = None;
            if key_file.is_some() || data_dir.is_some() {
                let dir = data_dir.clone().unwrap_or_default();
                let (k, path) = cli_security::master_key(key_file.as_deref(), &dir)?;
                config.key = k;
                key_path = Some(path);
            }
            config.listen = listen;
            config.data_dir = data_dir;
            if let Some(addr) = http {
                config.web = Some(web_page(addr, &config.key)?);
            }
            // Every worker option, through the same path as `worker`'s (so
            // none is ignored); threads and prefetch default per dev worker.
            work.apply(&mut config.worker)?;
            config.threads = work.threads;
            config.prefetch = work.prefetch;
            let cluster = DevCluster::start(config)
                .await
                .with_context(|| format!("cannot start a dev cluster on {listen}"))?;
            let key_path = match key_path {
                Some(p) => p,
                None => {
                    // A fresh key: put it where clients can copy it from.
                    let p = cluster.data_dir.join(tessera_proto::KEY_FILE_NAME);
                    cluster.key.create_file(&p)?;
                    p
                }
            };
            cli_security::print_join_instructions(&key_path, &cluster.key);
            println!("listening on {}", cluster.addr);
            println!("dev cluster: master and {workers} workers; Ctrl-C to stop");
            let advert = (!mdns.no_mdns).then(|| {
                advertise_until(
                    &mdns.cluster,
                    &cluster.master_id,
                    cluster.addr,
                    shutdown.clone(),
                )
            });
            shutdown.cancelled().await;
            if let Some(advert) = advert {
                let _ = advert.await;
            }
            cluster.stop().await;
        }
    }
    Ok(())
}

/// Advertises the master on mDNS until `shutdown`, then withdraws the record.
/// A failure to advertise is logged, not fatal: `--master` still works.
fn advertise_until(
    cluster: &str,
    master_id: &str,
    bound: SocketAddr,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let advert = Advertisement::start(cluster, master_id, bound);
    tokio::spawn(async move {
        match advert {
            Ok(advert) => {
                shutdown.cancelled().await;
                advert.stop().await;
            }
            Err(e) => tracing::warn!(
                "not advertising on mDNS: {e}; workers and clients need --master {bound}"
            ),
        }
    })
}

#[cfg(test)]
mod tests;
