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
#[derive(Debug)]
pub struct DevCluster {
    pub addr: SocketAddr,
    /// The master's id, as in its handshake.
    pub master_id: String,
    /// The cluster's key: clients of this cluster need it.
    pub key: ClusterKey,
    /// Where the master keeps its files.
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
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
    /// `None`: a temporary directory removed on stop.
    pub data_dir: Option<PathBuf>,
    pub options: tessera_imaging::Options,
    /// The cluster key (default: a fresh one, known only to this process).
    pub key: ClusterKey,
}

impl DevConfig {
    pub fn new(workers: usize) -> Self {
        DevConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers,
            threads: None,
            data_dir: None,
            options: Default::default(),
            key: ClusterKey::generate(),
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
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut master_config = MasterConfig::new(data_dir.clone());
        master_config.key = config.key.clone();
        let master_id = master_config.master_id.clone();
        let m = master::run(listener, master_config, shutdown.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = m.await {
                tracing::error!("dev master stopped: {e}");
            }
        }));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = config
            .threads
            .unwrap_or_else(|| (cores / config.workers.max(1)).max(1));
        for i in 0..config.workers {
            let mut wc = WorkerConfig::new(addr.to_string(), config.key.clone());
            wc.threads = threads;
            wc.prefetch = threads.max(2);
            wc.node_id = format!("dev-worker-{i}");
            wc.options = config.options.clone();
            let w = worker::run(wc, shutdown.clone());
            tasks.push(tokio::spawn(async move {
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
            shutdown,
            tasks,
            _tmp: tmp,
        })
    }

    /// Stops every node and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
