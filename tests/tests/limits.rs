//! The master's limits on well-formed but excessive use, against a real
//! master on 127.0.0.1:0 (in this process): idle connections, and
//! submissions in flight per client (answered Busy, which the client library
//! respects); and the range of `--max-message-bytes` (a master process).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_client::{
    ClientConfig, ErrorCode, Reconnecting, TaskState,
    batch::{self, BatchOptions},
    files::Input,
};
use tessera_proto::{
    ClusterKey, FrameLimits, FrameReader, FrameWriter, Msg, Role, TaskId, TaskInfo, Welcome,
    accept::{AcceptOptions, accept},
};
use tessera_tests::inproc::{Cluster, until_closed};

const T: Duration = Duration::from_secs(30);
const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");

/// `--max-message-bytes` can lower the message limit, not raise it: every
/// message body is also decoded under a fixed 64 KiB limit (and peers read
/// the master's messages under it), so a larger value would have no effect.
/// The master refuses to start with one, naming the range; 64 KiB itself
/// is accepted.
#[tokio::test]
async fn max_message_bytes_over_64_kib_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let master = tokio::process::Command::new(NODE)
        .args([
            "master",
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--data-dir",
        ])
        .arg(&data)
        .args(["--max-message-bytes", "65537"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(T, master)
        .await
        .expect("the master exits at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid value '65537' for '--max-message-bytes")
            && stderr.contains("65537 is not in 8192..=65536"),
        "{stderr}"
    );
    let (_master, _, _) =
        tessera_tests::spawn_master(NODE, &data, &["--max-message-bytes", "65536"]).await;
}

/// An authenticated connection that says nothing is closed after the idle
/// timeout; one waiting on a task is not idle, and neither is a worker (it
/// heartbeats) busy on a task for longer than the timeout.
#[tokio::test]
async fn idle_connections_are_closed_but_waiting_clients_and_workers_are_not() {
    let idle = Duration::from_millis(500);
    let c = Cluster::start_with(
        0,
        |m| {
            m.idle_timeout = idle;
            m.heartbeat_interval = Duration::from_millis(100);
        },
        |_| {},
    )
    .await;
    let started = Instant::now();
    let mut silent = c.authed(Role::Client).await;
    assert_eq!(until_closed(&mut silent.0, T).await, 0);
    let took = started.elapsed();
    assert!(took >= idle, "closed after {took:?}");

    // A worker that needs 3x the idle timeout for one image.
    c.spawn_worker(|w| w.test_delay = Some(idle * 3));
    let client = c.client().await;
    let png = std::fs::read(tessera_tests::data_dir().join("pngsuite/basn2c08.png")).unwrap();
    let task = client.submit("slow.png", Bytes::from(png)).await.unwrap();
    let info = client.wait_timeout(task, T).await.unwrap();
    assert_eq!(info.state, TaskState::Done);
    assert_eq!(info.attempts, 1, "the worker's connection was never cut");
    // The waiting client's connection is still there.
    client.status(task).await.unwrap();
}

#[tokio::test]
async fn submissions_in_flight_past_the_limit_are_answered_busy() {
    let c = Cluster::start_with(0, |m| m.max_uploads_per_client = 2, |_| {}).await;
    let mut conn = c.authed(Role::Client).await;
    for req in 1..=3 {
        let name = format!("{req}.png");
        conn.1
            .send(&Msg::Submit {
                req,
                name,
                len: 4,
                checksum: tessera_proto::checksum(b"png!"),
                key: u128::from(req),
                submitter: 0,
            })
            .await
            .unwrap();
    }
    let reply = conn.0.recv_within(T).await.unwrap().msg;
    let message = "2 submissions already in flight on this connection (limit 2)";
    assert_eq!(
        reply,
        Msg::Error {
            req: Some(3),
            code: ErrorCode::Busy,
            message: message.into()
        }
    );
    // The refused stream's bytes are skipped; the others complete.
    for req in [3, 1, 2] {
        conn.1
            .feed_chunk(req, Bytes::from_static(b"png!"))
            .await
            .unwrap();
    }
    conn.1.flush().await.unwrap();
    // Answered by `req`, in whichever order each became durable.
    let mut submitted = std::collections::BTreeSet::new();
    for _ in [1, 2] {
        match conn.0.recv_within(T).await.unwrap().msg {
            Msg::Submitted { req, .. } => submitted.insert(req),
            reply => panic!("expected Submitted, got {reply:?}"),
        };
    }
    assert_eq!(submitted, [1, 2].into_iter().collect());
}

/// The client library backs off and retries a submission the master
/// answered Busy. The master here is a stand-in that answers the first
/// `Submit` Busy and the second with a task, which then fails.
#[tokio::test]
async fn the_client_retries_a_submission_answered_busy() {
    let key = ClusterKey::generate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let master_key = key.clone();
    let master = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (r, w) = socket.into_split();
        let r = FrameReader::new(r, 1 << 21);
        let w = FrameWriter::new(w, 1 << 21);
        let welcome = Welcome::new("stand-in", Duration::from_secs(1), Duration::from_secs(10));
        let options = AcceptOptions {
            timeout: T,
            limits: FrameLimits::default(),
        };
        let accepted = accept(r, w, &master_key, welcome, options, "client")
            .await
            .unwrap();
        let (mut r, mut w) = (accepted.reader, accepted.writer);
        let mut submits = 0;
        loop {
            let reply = match r.recv().await.unwrap().msg {
                Msg::Submit { req, .. } if submits == 0 => {
                    submits += 1;
                    Msg::Error {
                        req: Some(req),
                        code: ErrorCode::Busy,
                        message: "busy".into(),
                    }
                }
                Msg::Submit { req, .. } => {
                    submits += 1;
                    Msg::Submitted {
                        req,
                        task: TaskId(7),
                    }
                }
                Msg::Wait { req, task } => {
                    let state = TaskState::Failed {
                        kind: tessera_client::FailureKind::Corrupt,
                        reason: "stand-in failure".into(),
                    };
                    let info = TaskInfo {
                        task,
                        name: "a.png".into(),
                        state,
                        input_len: 4,
                        output_len: None,
                        attempts: 1,
                        worker: None,
                    };
                    w.send(&Msg::Info { req, info }).await.unwrap();
                    return submits;
                }
                _ => continue,
            };
            w.send(&reply).await.unwrap();
        }
    });
    let client = std::sync::Arc::new(
        Reconnecting::connect(&addr, &key, ClientConfig::default(), Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.png");
    std::fs::write(&path, b"png!").unwrap();
    let inputs = vec![Input {
        path,
        name: "a.png".into(),
    }];
    let options = BatchOptions {
        out_dir: tmp.path().join("out"),
        in_flight: 1,
    };
    let report = batch::run(client, inputs, &options, |_| {}).await;
    let (_, failure) = report.failed().next().expect("one outcome");
    assert_eq!(failure.task, Some(TaskId(7)), "{failure:?}");
    assert_eq!(failure.reason, "stand-in failure");
    assert_eq!(master.await.unwrap(), 2, "submitted again after Busy");
}

/// A master that timed our handshake out (a slow or congested network) is
/// a master to reconnect to, not a verdict on the request: the client
/// library retries on a new connection. The stand-in serves a first
/// connection and drops it, refuses the reconnection `Timeout` (as the
/// master does when the handshake misses its deadline), and serves the
/// next one.
#[tokio::test]
async fn a_handshake_the_master_timed_out_is_retried() {
    use tessera_proto::{HelloReply, Refusal};

    let key = ClusterKey::generate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let master_key = key.clone();
    let master = tokio::spawn(async move {
        let welcome = Welcome::new("stand-in", Duration::from_secs(1), Duration::from_secs(10));
        let options = AcceptOptions {
            timeout: T,
            limits: FrameLimits::default(),
        };
        let frames = |socket: tokio::net::TcpStream| {
            let (r, w) = socket.into_split();
            (FrameReader::new(r, 1 << 21), FrameWriter::new(w, 1 << 21))
        };
        // First connection: accepted, then lost.
        let (r, w) = frames(listener.accept().await.unwrap().0);
        drop(
            accept(r, w, &master_key, welcome.clone(), options, "client")
                .await
                .unwrap(),
        );
        // The reconnection: its handshake "missed the deadline".
        let (mut r, mut w) = frames(listener.accept().await.unwrap().0);
        r.next_frame().await.unwrap();
        let timeout = Refusal::Timeout { after_ms: 10_000 };
        w.send_hello_reply(&HelloReply::Refused(timeout))
            .await
            .unwrap();
        drop((r, w));
        // The next one is served.
        let (r, w) = frames(listener.accept().await.unwrap().0);
        let mut a = accept(r, w, &master_key, welcome, options, "client")
            .await
            .unwrap();
        loop {
            if let Msg::Status { req, task } = a.reader.recv().await.unwrap().msg {
                let info = TaskInfo {
                    task,
                    name: "a.png".into(),
                    state: TaskState::Queued,
                    input_len: 4,
                    output_len: None,
                    attempts: 0,
                    worker: None,
                };
                a.writer.send(&Msg::Info { req, info }).await.unwrap();
                return;
            }
        }
    });
    let client = Reconnecting::connect(&addr, &key, ClientConfig::default(), T)
        .await
        .unwrap();
    let info = client
        .run(|c| async move { c.status(TaskId(3)).await })
        .await
        .unwrap();
    assert_eq!(info.state, TaskState::Queued);
    master.await.unwrap();
}
