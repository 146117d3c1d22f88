//! The worker's reconnect loop against a scripted [`Discovery`] and a fake
//! master on loopback: what simulation tests get from the trait.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use tessera_proto::{ClusterKey, PROTOCOL_VERSION, Welcome};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The key the fake master and the worker share.
fn test_key() -> ClusterKey {
    ClusterKey::from_bytes([7; 32])
}

use super::{Discovery, DiscoveryError, Found, How, MasterRecord};
use crate::worker::{
    WorkerConfig,
    fake_master::{self, Conn, DEADLINE},
    run_with,
};

/// Answers from a list, then `then` forever; counts the calls.
#[derive(Debug)]
struct Script {
    answers: Mutex<VecDeque<Result<Found, DiscoveryError>>>,
    then: Found,
    calls: AtomicUsize,
}

impl Discovery for Script {
    fn find(&self, _within: Duration) -> BoxFuture<'_, Result<Found, DiscoveryError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.answers.lock().unwrap().pop_front();
        let answer = next.unwrap_or_else(|| Ok(self.then.clone()));
        Box::pin(std::future::ready(answer))
    }
}

/// Accepts one worker and returns the connection once it has asked for work.
async fn accept_worker(listener: &TcpListener) -> Conn {
    let welcome = Welcome::new(
        "fake-master",
        Duration::from_secs(1),
        Duration::from_secs(10),
    );
    let (conn, hello, _) = fake_master::accept_worker(listener, &test_key(), welcome).await;
    assert_eq!(hello.node_id, "sim-worker");
    conn
}

fn record(id: &str, addr: &str) -> MasterRecord {
    MasterRecord::new(
        id,
        id,
        "lab",
        Some(PROTOCOL_VERSION),
        [addr.parse().unwrap()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_retries_past_a_duplicate_skips_a_dead_address_and_asks_again_when_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap();
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let found = Found {
        addrs: vec![dead.to_string(), live.to_string()],
        how: How::Mdns {
            id: "fake-master".into(),
            cluster: "lab".into(),
        },
    };
    let duplicate = DiscoveryError::Duplicate {
        cluster: "lab".into(),
        first: Box::new(record("m-a", "198.18.0.1:1")),
        second: Box::new(record("m-b", "198.18.0.2:1")),
    };
    let script = Arc::new(Script {
        answers: Mutex::new(VecDeque::from([Err(duplicate), Ok(found.clone())])),
        then: found,
        calls: AtomicUsize::new(0),
    });
    let mut config = WorkerConfig::new("", test_key());
    config.threads = 1;
    config.node_id = "sim-worker".into();
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let worker = {
        let (script, shutdown) = (script.clone(), shutdown.clone());
        tokio::spawn(async move { run_with(config, script.as_ref(), shutdown).await })
    };

    // A duplicate is not fatal: the worker asks again, then skips the dead
    // address and connects to the live one.
    let first = accept_worker(&listener).await;
    assert_eq!(script.calls.load(Ordering::SeqCst), 2);

    // Losing the master sends the worker back to its discovery.
    drop(first);
    let _second = accept_worker(&listener).await;
    assert_eq!(script.calls.load(Ordering::SeqCst), 3);

    shutdown.cancel();
    tokio::time::timeout(DEADLINE, worker)
        .await
        .expect("the worker stops on shutdown")
        .unwrap()
        .unwrap();
}
