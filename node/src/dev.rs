//! A master and N workers in one process, for one machine.

use std::{net::SocketAddr, path::PathBuf};

use tessera_proto::ClusterKey;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    master::{self, MasterConfig},
    worker::{self, WorkerConfig},
};

/// A running dev cluster. Dropping it does not stop it: call [`DevCluster::stop`].
/// Stopping drains the workers first (each within its `drain_grace`), then
/// stops the master, so a drain can hand its work back to a live master.
#[derive(Debug)]
pub struct DevCluster {
    pub addr: SocketAddr,
    /// The master's id, as in its handshake.
    pub master_id: String,
    /// The cluster's key: clients of this cluster need it.
    pub key: ClusterKey,
    /// Where the master keeps its files.
    pub data_dir: PathBuf,
    /// Stops the workers (they drain).
    workers_shutdown: CancellationToken,
    /// Stops the master, once the workers are gone.
    master_shutdown: CancellationToken,
    master: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    /// Holds the temporary data directory, when the cluster made one.
    _tmp: Option<tempfile::TempDir>,
}

/// How to start a dev cluster.
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    /// Threads per worker; `None` shares the machine's cores among the workers.
    pub threads: Option<usize>,
    /// Tasks each worker fetches ahead; `None`: as many as its threads, at
    /// least 2.
    pub prefetch: Option<usize>,
    /// `None`: a temporary directory removed on stop.
    pub data_dir: Option<PathBuf>,
    /// Every other setting of the workers (image options and limits, drain
    /// grace, test switches), applied to each; its master, key, threads,
    /// prefetch and node id are the dev cluster's.
    pub worker: WorkerConfig,
    /// The cluster key (default: a fresh one, known only to this process).
    pub key: ClusterKey,
    /// Serve the master's web page (`--http`).
    pub web: Option<crate::master::web::WebConfig>,
}

impl DevConfig {
    pub fn new(workers: usize) -> Self {
        let key = ClusterKey::generate();
        DevConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers,
            threads: None,
            prefetch: None,
            data_dir: None,
            worker: WorkerConfig::new("", key.clone()),
            key,
            web: None,
        }
    }
}

impl DevCluster {
    pub async fn start(config: DevConfig) -> std::io::Result<DevCluster> {
        let (data_dir, tmp) = match config.data_dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::Builder::new().prefix("tessera-dev-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let master_shutdown = CancellationToken::new();
        let workers_shutdown = CancellationToken::new();
        let mut master_config = MasterConfig::new(data_dir.clone());
        master_config.key = config.key.clone();
        master_config.web = config.web.clone();
        let master_id = master_config.master_id.clone();
        let m = master::run(listener, master_config, master_shutdown.clone());
        let master = tokio::spawn(async move {
            if let Err(e) = m.await {
                tracing::error!("dev master stopped: {e}");
            }
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = config
            .threads
            .unwrap_or_else(|| (cores / config.workers.max(1)).max(1));
        let mut workers = Vec::new();
        for i in 0..config.workers {
            let wc = WorkerConfig {
                master: addr.to_string(),
                key: config.key.clone(),
                threads,
                prefetch: config.prefetch.unwrap_or(threads.max(2)),
                node_id: format!("dev-worker-{i}"),
                ..config.worker.clone()
            };
            let w = worker::run(wc, workers_shutdown.clone());
            workers.push(tokio::spawn(async move {
                if let Err(e) = w.await {
                    tracing::error!("dev worker stopped: {e}");
                }
            }));
        }
        Ok(DevCluster {
            addr,
            master_id,
            key: config.key,
            data_dir,
            workers_shutdown,
            master_shutdown,
            master,
            workers,
            _tmp: tmp,
        })
    }

    /// Stops every node and waits for them: the workers first (they drain:
    /// unstarted tasks go back at once, running ones finish within their
    /// grace or are handed back), then the master.
    pub async fn stop(self) {
        self.workers_shutdown.cancel();
        for w in self.workers {
            let _ = w.await;
        }
        self.master_shutdown.cancel();
        let _ = self.master.await;
    }
}
