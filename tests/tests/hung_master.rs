//! A hung master (a real `tessera-node master` process stopped with
//! SIGSTOP): its TCP connections stay open, so only its silence gives it
//! away. Workers and clients must notice, give the connection up and come
//! back when the master does, instead of waiting on it forever.

use std::{collections::BTreeSet, path::Path, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, ClientConfig, ClientError, ClusterKey, TaskState};
use tessera_tests::{check_swapped, eventually, photos, spawn_master, spawn_worker};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(60);

/// Local ports of the ESTABLISHED TCP connections that process `pid` holds
/// to remote port `remote_port` (from /proc: its socket fds, matched by
/// inode against /proc/net/tcp and tcp6).
fn connections_to(pid: u32, remote_port: u16) -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_string());
            }
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "01" || !inodes.contains(f[9]) {
                continue;
            }
            let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
            if port(f[2]) == Some(remote_port)
                && let Some(local) = port(f[1])
            {
                ports.insert(local);
            }
        }
    }
    ports
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn key(key_file: &Path) -> ClusterKey {
    ClusterKey::load(key_file).unwrap()
}

/// A worker whose master stops answering gives its connection up after the
/// master's lease timeout (it does not wait on the open TCP connection
/// forever), and rejoins when the master runs again: the master then sees
/// it on a new connection, and it processes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_gives_up_a_hung_master_and_rejoins_when_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (master, addr, key_file) = spawn_master(
        NODE,
        &tmp.path().join("data"),
        &["--heartbeat-interval", "100ms", "--lease-timeout", "600ms"],
    )
    .await;
    let worker = spawn_worker(NODE, &addr, &key_file, "w", &["--threads", "1"]);
    let client = Client::connect(&addr, &key(&key_file)).await.unwrap();
    let joined = async {
        loop {
            let cluster = client.cluster().await.unwrap();
            if let Some(w) = cluster.workers.first() {
                break w.addr.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let before = tokio::time::timeout(T, joined)
        .await
        .expect("the worker joined the master");
    let master_port = port_of(&addr);
    let first = port_of(&before);
    assert_eq!(
        connections_to(worker.pid(), master_port),
        BTreeSet::from([first]),
        "the worker's one connection, as the master sees it"
    );
    drop(client);

    master.signal("STOP");
    // The master is hung: the worker must drop the connection it had.
    eventually(T, "the worker to give up its connection", || {
        !connections_to(worker.pid(), master_port).contains(&first)
    })
    .await;
    master.signal("CONT");

    // Back: the worker is on a new connection and works.
    let client = Client::connect(&addr, &key(&key_file)).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let cluster = client.cluster().await.unwrap();
        let addrs: Vec<&str> = cluster.workers.iter().map(|w| w.addr.as_str()).collect();
        if addrs.len() == 1 && addrs[0] != before {
            break;
        }
        assert!(
            start.elapsed() < T,
            "the worker never rejoined on a new connection: {addrs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let input = std::fs::read(&photos()[0]).unwrap();
    let task = client
        .submit("after.png", Bytes::from(input.clone()))
        .await
        .unwrap();
    let info = tokio::time::timeout(T, client.wait(task))
        .await
        .expect("done in time")
        .unwrap();
    assert_eq!(info.state, TaskState::Done, "{info:?}");
    assert_eq!(info.worker.as_deref(), Some("w"));
    check_swapped(&input, &client.fetch(task).await.unwrap()).unwrap();
}

/// A client waiting on a master that stops answering gets a typed
/// `MasterSilent` error after its silence timeout (not a wait without end),
/// and a new connection works once the master runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_on_a_hung_master_gets_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (master, addr, key_file) = spawn_master(NODE, &tmp.path().join("data"), &[]).await;
    let config = ClientConfig {
        silence_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&addr, &key(&key_file), config.clone())
        .await
        .unwrap();
    // No worker: the task stays queued, so the wait below can only end by
    // the master answering or by the client giving up on it.
    let input = std::fs::read(&photos()[0]).unwrap();
    let task = client
        .submit("a.png", Bytes::from(input.clone()))
        .await
        .unwrap();

    // A quiet but live master is not given up: the wait outlasts several
    // silence timeouts while pings are answered.
    let quiet = tokio::time::timeout(Duration::from_secs(4), client.wait(task)).await;
    assert!(quiet.is_err(), "the wait ended early: {quiet:?}");
    assert!(client.is_connected());

    master.signal("STOP");
    let waited = tokio::time::timeout(T, client.wait(task))
        .await
        .expect("the client gave up on the hung master in time");
    match waited {
        Err(ClientError::MasterSilent(silence)) => {
            assert!(silence >= config.silence_timeout, "{silence:?}")
        }
        other => panic!("expected MasterSilent, got {other:?}"),
    }
    assert!(!client.is_connected(), "the connection was given up");
    master.signal("CONT");

    // The master is back with the task it had: a worker finishes it.
    let client = Client::connect_with(&addr, &key(&key_file), config)
        .await
        .unwrap();
    let _worker = spawn_worker(NODE, &addr, &key_file, "w", &["--threads", "1"]);
    let info = tokio::time::timeout(T, client.wait(task))
        .await
        .expect("done in time")
        .unwrap();
    assert_eq!(info.state, TaskState::Done, "{info:?}");
    check_swapped(&input, &client.fetch(task).await.unwrap()).unwrap();
}

/// A master that pauses is nobody's evidence: its workers give their
/// connections up while it is stopped (as they must, above), and when it
/// runs again it reads those connections' ends. An image that was executing
/// alone on such a worker must not be blamed as if the worker had died of
/// it: with `--max-attempts 1` one such blame would fail an innocent image.
/// Three images, each paused over while it executes; every one ends done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_pauses_blames_no_image_its_workers_were_running() {
    let tmp = tempfile::tempdir().unwrap();
    let (master, addr, key_file) = spawn_master(
        NODE,
        &tmp.path().join("data"),
        &[
            "--heartbeat-interval",
            "100ms",
            "--lease-timeout",
            "600ms",
            "--max-attempts",
            "1",
        ],
    )
    .await;
    let _worker = spawn_worker(
        NODE,
        &addr,
        &key_file,
        "w",
        &["--threads", "1", "--prefetch", "0", "--test-delay", "2s"],
    );
    let config = ClientConfig {
        silence_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&addr, &key(&key_file), config)
        .await
        .unwrap();
    let input = std::fs::read(&photos()[0]).unwrap();
    for round in 0..3 {
        let task = client
            .submit(&format!("paused-{round}.png"), Bytes::from(input.clone()))
            .await
            .unwrap();
        let start = std::time::Instant::now();
        while client.status(task).await.unwrap().state != TaskState::Running {
            assert!(start.elapsed() < T, "round {round}: never leased");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The worker has it (`Started` goes before its --test-delay).
        tokio::time::sleep(Duration::from_millis(300)).await;
        master.signal("STOP");
        // Past the worker's silence limit (the lease timeout): it hangs up.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        master.signal("CONT");
        let info = tokio::time::timeout(T, client.wait(task))
            .await
            .expect("decided in time")
            .unwrap();
        assert_eq!(
            info.state,
            TaskState::Done,
            "round {round}: {info:?}\n{:?}",
            client.history(task).await
        );
        check_swapped(&input, &client.fetch(task).await.unwrap()).unwrap();
    }
}
