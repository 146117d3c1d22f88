//! A master (and workers) running in the test's own process on
//! 127.0.0.1:0, and connections to it: authenticated clients, raw
//! authenticated frame streams, and bare TCP for hostile handshakes.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, TaskState};
use tessera_node::{
    master::{self, MasterConfig},
    worker::{self, WorkerConfig},
};
use tessera_proto::{
    ClusterKey, FrameReader, FrameWriter, Msg, ProtoError, Role, TaskId,
    dial::{DialOptions, Dialed, dial},
    net::{ReadHalf, Tcp, WriteHalf},
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The two halves of a connection, as frames.
pub type Raw = (FrameReader<ReadHalf>, FrameWriter<WriteHalf>);

/// A running in-process cluster; stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    pub addr: String,
    pub data: tempfile::TempDir,
    pub key: ClusterKey,
    pub shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Cluster {
    /// A master with default settings and `workers` one-thread workers.
    pub async fn start(workers: usize) -> Cluster {
        Cluster::start_with(workers, |_| {}, |_| {}).await
    }

    /// A master configured by `master` and `workers` one-thread workers
    /// configured by `worker`.
    pub async fn start_with(
        workers: usize,
        master: impl FnOnce(&mut MasterConfig),
        worker: impl Fn(&mut WorkerConfig),
    ) -> Cluster {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let mut config = MasterConfig::new(data.path().to_path_buf());
        master(&mut config);
        let key = config.key.clone();
        tokio::spawn(master::run(listener, config, shutdown.clone()));
        let cluster = Cluster {
            addr,
            data,
            key,
            shutdown,
        };
        for _ in 0..workers {
            cluster.spawn_worker(&worker);
        }
        cluster
    }

    /// Starts one more in-process worker.
    pub fn spawn_worker(&self, configure: impl Fn(&mut WorkerConfig)) {
        let mut wc = WorkerConfig::new(self.addr.clone(), self.key.clone());
        wc.threads = 1;
        configure(&mut wc);
        tokio::spawn(worker::run(wc, self.shutdown.clone()));
    }

    /// The cluster key written to a file (for worker and client processes).
    pub fn key_file(&self) -> PathBuf {
        let path = self.data.path().join("copy-of-cluster.key");
        if !path.exists() {
            self.key.create_file(&path).unwrap();
        }
        path
    }

    /// A library client with the right key.
    pub async fn client(&self) -> Client {
        Client::connect(&self.addr, &self.key).await.unwrap()
    }

    /// An authenticated connection as `role` (named "raw"), as raw frames.
    pub async fn authed(&self, role: Role) -> Raw {
        authed_to(&self.addr, role, "raw", &self.key).await
    }

    /// A bare TCP connection (no handshake), as raw frames.
    pub async fn tcp(&self) -> Raw {
        let s = TcpStream::connect(&self.addr).await.unwrap();
        raw(s)
    }

    /// A bare TCP connection from the loopback address `from` (any of
    /// 127.0.0.0/8: another host, as far as the master can tell).
    pub async fn tcp_from(&self, from: std::net::Ipv4Addr) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        raw(socket.connect(self.addr.parse().unwrap()).await.unwrap())
    }
}

fn raw(s: TcpStream) -> Raw {
    {
        let c = Tcp::connection(s, None);
        (
            FrameReader::new(c.read, 1 << 21),
            FrameWriter::new(c.write, 1 << 21),
        )
    }
}

impl Cluster {
    /// Proves the cluster still serves: a fresh client submits a small
    /// valid PNG and, if `processed`, waits for it to come back done.
    pub async fn assert_serving(&self, processed: bool) {
        let png = std::fs::read(crate::data_dir().join("pngsuite/basn2c08.png")).unwrap();
        let client = self.client().await;
        let task = client.submit("ok.png", Bytes::from(png)).await.unwrap();
        if processed {
            let info = client
                .wait_timeout(task, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(info.state, TaskState::Done, "{info:?}");
        }
    }
}

/// An authenticated connection to the master at `addr` (any master, in
/// this process or not) as `role`, named `node_id`, as raw frames.
pub async fn authed_to(addr: &str, role: Role, node_id: &str, key: &ClusterKey) -> Raw {
    let Dialed { reader, writer, .. } = dial(
        &Tcp::default(),
        addr,
        role,
        node_id,
        key,
        DialOptions::default(),
    )
    .await
    .unwrap();
    (reader, writer)
}

/// On a raw worker connection: reads the `Assign` of `task` and its
/// input's chunks (all of it, within `deadline` each), reports the task
/// started, and returns the attempt.
pub async fn start_assigned(conn: &mut Raw, task: TaskId, deadline: Duration) -> u32 {
    let (attempt, len) = match conn.0.recv_within(deadline).await.unwrap().msg {
        Msg::Assign {
            task: t,
            attempt,
            len,
            ..
        } if t == task => (attempt, len),
        other => panic!("expected the Assign of {task}, got {other:?}"),
    };
    let mut received = 0;
    while received < len {
        let chunk = conn.0.recv_within(deadline).await.unwrap();
        assert_eq!(chunk.msg, Msg::Chunk { stream: task.0 });
        received += chunk.payload.len() as u64;
    }
    conn.1.send(&Msg::Started { task, attempt }).await.unwrap();
    attempt
}

/// On a raw worker connection: sends `data` as the result of `task`'s
/// `attempt` (`Done`, then its chunks).
pub async fn send_result(conn: &mut Raw, task: TaskId, attempt: u32, data: &Bytes) {
    let done = Msg::Done {
        task,
        attempt,
        len: data.len() as u64,
        checksum: tessera_proto::checksum(data),
    };
    conn.1.send(&done).await.unwrap();
    conn.1.send_stream(task.0, data).await.unwrap();
}

/// Waits until the peer closes `reader`'s connection (clean close or reset),
/// skipping frames; panics after `deadline`. Returns the frames skipped.
pub async fn until_closed(reader: &mut FrameReader<ReadHalf>, deadline: Duration) -> usize {
    let mut skipped = 0;
    let closed = tokio::time::timeout(deadline, async {
        loop {
            match reader.next_frame().await {
                Ok(_) => skipped += 1,
                Err(ProtoError::Closed | ProtoError::Io(_)) => return,
                Err(e) => panic!("unexpected error while waiting for close: {e}"),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection was not closed within {deadline:?}"
    );
    skipped
}
