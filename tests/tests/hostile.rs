//! Hostile input on the wire, one test per class, against a real master on
//! 127.0.0.1:0 (in this process, with one worker). Each test pins the exact
//! outcome (the refusal or error and its message, whether the connection is
//! closed) and then checks that the master and its worker still serve a
//! well-behaved client. Hostile images: `hostile_images.rs`; limits that are
//! not about malformed input: `limits.rs`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_client::{Client, ErrorCode, TaskState};
use tessera_node::worker::{self, WorkerConfig};
use tessera_proto::net::WriteHalf;
use tessera_proto::{ClusterKey, Hello, HelloReply, Msg, Refusal, Role, TaskId, noise, wire};
use tessera_tests::{
    data_dir, eventually,
    inproc::{Cluster, Raw, send_result, start_assigned, until_closed},
};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(10);

/// Writes raw bytes (anything, framed or not) on the connection.
async fn send_raw(w: &mut Raw, bytes: &[u8]) {
    let stream = w.1.get_mut();
    stream.write_all(bytes).await.unwrap();
    // After the handshake the stream seals what it was given on a flush.
    stream.flush().await.unwrap();
}

/// A frame of `body` with its length prefix.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Expects the master's handshake reply `want`, then the connection closed.
async fn expect_refused_and_closed(conn: &mut Raw, want: Refusal) {
    assert_eq!(
        conn.0.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(want)
    );
    assert_eq!(
        until_closed(&mut conn.0, T).await,
        0,
        "nothing after a refusal"
    );
}

/// Expects the next message to be `Error{req, code, message}`.
async fn expect_error(conn: &mut Raw, req: Option<u64>, code: ErrorCode, message: &str) {
    let got = conn.0.recv_within(T).await.unwrap().msg;
    let want = Msg::Error {
        req,
        code,
        message: message.into(),
    };
    assert_eq!(got, want);
}

/// The connection is still served: a status request is answered.
async fn expect_still_served(conn: &mut Raw) {
    conn.1
        .send(&Msg::Status {
            req: 99,
            task: TaskId(424242),
        })
        .await
        .unwrap();
    expect_error(
        conn,
        Some(99),
        ErrorCode::NotFound,
        "no task 424242 on this master; check the id (as `tessera submit` printed it) and that this is the master it was submitted to",
    )
    .await;
}

/// A `Hello` sent: the master waits for the peer's Noise message.
async fn hello_sent(c: &Cluster) -> (Raw, Vec<u8>) {
    let mut conn = c.tcp().await;
    let hello = wire::encode(&Hello::new(Role::Client, "hostile")).unwrap();
    conn.1.send_raw(hello.clone()).await.unwrap();
    (conn, hello)
}

/// The Noise message that follows `hello`, made with `key`.
fn first_message(key: &ClusterKey, hello: &[u8]) -> Vec<u8> {
    let mut first = vec![0; noise::FIRST_MESSAGE_LEN];
    noise::initiator(key, hello)
        .write_message(&[], &mut first)
        .unwrap();
    first
}

#[tokio::test]
async fn garbage_bytes_instead_of_a_handshake_are_refused_and_closed() {
    let c = Cluster::start(1).await;
    // A well-formed frame whose body is not a Hello.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n").await;
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // Unframed garbage: its first four bytes ("GET ") read as a length of 1.1 GB.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let want = "handshake frame of 1195725856 bytes is over the 1024-byte limit";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_from_the_prefix_alone() {
    let c = Cluster::start(1).await;
    // Before the handshake: refused by name, closed.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, &[0xff; 4]).await;
    let want = "handshake frame of 4294967295 bytes is over the 1024-byte limit";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    // After it, from a client or a worker: the stream cannot be trusted any
    // more, so the connection is closed (with nothing sent).
    for role in [Role::Client, Role::Worker] {
        let mut conn = c.authed(role).await;
        send_raw(&mut conn, &[0xff; 4]).await;
        assert_eq!(until_closed(&mut conn.0, T).await, 0, "{role}");
    }
    // A control message over its own limit (64 KiB) is refused from its
    // prefix and type byte alone, though a chunk that long would be fine.
    let mut conn = c.authed(Role::Client).await;
    let mut prefix = (100_000u32).to_be_bytes().to_vec();
    prefix.push(0); // Submit
    send_raw(&mut conn, &prefix).await;
    assert_eq!(until_closed(&mut conn.0, T).await, 0);
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_tiny_frame_claiming_a_64_gib_vector_is_refused_without_allocating() {
    let c = Cluster::start(1).await;
    let claim = (64u64 << 30).to_le_bytes();
    // After the handshake: Submit{req 1, name of 64 GiB}: a typed error,
    // and the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    let mut body = vec![0x00, 0x01, 0xfd];
    body.extend_from_slice(&claim);
    send_raw(&mut conn, &framed(&body)).await;
    let message = "message claims more than the 65536-byte header limit";
    expect_error(&mut conn, None, ErrorCode::Malformed, message).await;
    // From a worker, a Heartbeat claiming 64 Gi leases (the decoder reads
    // elements one by one, without reserving, and finds the frame's end).
    let mut worker = c.authed(Role::Worker).await;
    let mut body = vec![0x0e, 0xfd];
    body.extend_from_slice(&claim);
    send_raw(&mut worker, &framed(&body)).await;
    let truncated = "message is truncated";
    expect_error(&mut worker, None, ErrorCode::Malformed, truncated).await;
    expect_still_served(&mut conn).await;
    // In a Hello's node id: refused, closed.
    let mut conn = c.tcp().await;
    let mut body = b"TSRA".to_vec();
    body.extend_from_slice(&[tessera_proto::PROTOCOL_VERSION as u8, 0, 0xfd]);
    body.extend_from_slice(&claim);
    send_raw(&mut conn, &framed(&body)).await;
    let want = format!("malformed handshake: {message}");
    let refusal = Refusal::Malformed(message.into());
    assert_eq!(refusal.to_string(), want);
    expect_refused_and_closed(&mut conn, refusal).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn an_unknown_message_type_gets_a_typed_error() {
    let c = Cluster::start(1).await;
    // After the handshake: answered, the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    send_raw(&mut conn, &framed(&[0x7f])).await;
    let message = "unknown message type (variant 127)";
    expect_error(&mut conn, None, ErrorCode::UnknownMessage, message).await;
    expect_still_served(&mut conn).await;
    // In place of the Noise message: refused, closed.
    let (mut conn, _) = hello_sent(&c).await;
    send_raw(&mut conn, &framed(&[0x7f])).await;
    let want = "expected the 48-byte Noise handshake message after the Hello, got 1 bytes";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_valid_frame_at_the_wrong_time_is_refused() {
    let c = Cluster::start(1).await;
    // A message before the handshake: not a tessera Hello.
    let mut conn = c.tcp().await;
    let status = wire::encode(&Msg::Status {
        req: 1,
        task: TaskId(1),
    })
    .unwrap();
    send_raw(&mut conn, &framed(&status)).await;
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // A Noise message before the Hello.
    let mut conn = c.tcp().await;
    let first = first_message(&c.key, b"no hello");
    conn.1.send_raw(first).await.unwrap();
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // A second Hello instead of the Noise message.
    let (mut conn, hello_frame) = hello_sent(&c).await;
    conn.1.send_raw(hello_frame.clone()).await.unwrap();
    let want = format!(
        "expected the 48-byte Noise handshake message after the Hello, got {} bytes",
        hello_frame.len()
    );
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want)).await;
    let hello = Hello::new(Role::Client, "hostile");

    // After the handshake, each answered with a typed error; the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    conn.1.send(&Msg::Ready { credits: 5 }).await.unwrap();
    let message = "Ready is not a message a client may send";
    expect_error(&mut conn, None, ErrorCode::UnexpectedMessage, message).await;
    conn.1.send_hello(&hello).await.unwrap();
    let message = "unknown message type (variant 84)";
    expect_error(&mut conn, None, ErrorCode::UnknownMessage, message).await;
    conn.1
        .feed_chunk(77, Bytes::from_static(b"xx"))
        .await
        .unwrap();
    conn.1.flush().await.unwrap();
    let message = "chunk for stream 77, which has no submission in progress";
    expect_error(&mut conn, Some(77), ErrorCode::UnexpectedMessage, message).await;
    conn.1
        .send(&Msg::Submit {
            req: 1,
            name: "a".into(),
            len: 2,
            checksum: 0,
            key: 0,
            submitter: 0,
        })
        .await
        .unwrap();
    conn.1
        .feed_chunk(1, Bytes::from_static(b"xyz"))
        .await
        .unwrap();
    conn.1.flush().await.unwrap();
    let message = "stream overrun: 3 bytes received, 2 announced";
    expect_error(&mut conn, Some(1), ErrorCode::Malformed, message).await;
    expect_still_served(&mut conn).await;
    // A worker sending a client's request.
    let mut worker = c.authed(Role::Worker).await;
    worker
        .1
        .send(&Msg::Submit {
            req: 1,
            name: "a".into(),
            len: 0,
            checksum: 0,
            key: 0,
            submitter: 0,
        })
        .await
        .unwrap();
    let message = "Submit is not a message a worker may send";
    expect_error(&mut worker, None, ErrorCode::UnexpectedMessage, message).await;
    c.assert_serving(true).await;
}

/// A master with no worker but a raw worker connection (one thread, one
/// credit) that has been assigned and has started a task of a client's.
async fn raw_worker_with_a_task() -> (Cluster, Raw, Client, Bytes, TaskId, u32) {
    let c = Cluster::start(0).await;
    let mut worker = c.authed(Role::Worker).await;
    worker
        .1
        .send(&Msg::Capacity {
            threads: 1,
            synthetic: false,
        })
        .await
        .unwrap();
    worker.1.send(&Msg::Ready { credits: 1 }).await.unwrap();
    let client = c.client().await;
    let png = Bytes::from(std::fs::read(data_dir().join("pngsuite/basn2c08.png")).unwrap());
    let task = client.submit("a.png", png.clone()).await.unwrap();
    let attempt = start_assigned(&mut worker, task, T).await;
    (c, worker, client, png, task, attempt)
}

/// A worker's chunk for no result in progress is answered with a typed
/// error and the connection goes on, as on a client connection: the worker
/// keeps its lease and its result is taken (dropping the connection would
/// cost every lease it holds).
#[tokio::test]
async fn a_worker_chunk_for_no_result_gets_a_typed_error_and_the_worker_keeps_its_lease() {
    let (_c, mut worker, client, png, task, attempt) = raw_worker_with_a_task().await;

    worker
        .1
        .feed_chunk(999, Bytes::from_static(b"xx"))
        .await
        .unwrap();
    worker.1.flush().await.unwrap();
    let message = "chunk for task 999, which has no result in progress";
    expect_error(&mut worker, None, ErrorCode::UnexpectedMessage, message).await;

    // Still its lease: the result is taken, on the first attempt.
    send_result(&mut worker, task, attempt, &png).await;
    assert_eq!(
        worker.0.recv_within(T).await.unwrap().msg,
        Msg::Accepted { task }
    );
    let info = client.wait_timeout(task, T).await.unwrap();
    assert_eq!(
        (info.state, info.attempts, info.worker.as_deref()),
        (TaskState::Done, 1, Some("raw")),
        "the first attempt's result"
    );
}

/// An empty result is never a task's output: the worker's connection is
/// closed (its task queued again) and nothing is accepted.
#[tokio::test]
async fn an_empty_result_is_refused_and_the_task_runs_again() {
    let (_c, mut worker, client, _, task, attempt) = raw_worker_with_a_task().await;
    send_result(&mut worker, task, attempt, &Bytes::new()).await;
    until_closed(&mut worker.0, T).await;
    let info = client.status(task).await.unwrap();
    assert_eq!(
        info.state,
        TaskState::Queued,
        "queued again, not done: {info:?}"
    );
}

/// An upload larger than one chunk streams to a temporary file on disk (a
/// smaller one is collected in memory); a client that vanishes halfway
/// leaves neither a task nor that file.
#[tokio::test]
async fn a_client_that_vanishes_mid_upload_leaves_no_task_and_no_file() {
    let c = Cluster::start(1).await;
    let tmp = c.data.path().join("tmp");
    let tmp_files = || std::fs::read_dir(&tmp).expect("the master's tmp/").count();
    {
        let mut conn = c.authed(Role::Client).await;
        conn.1
            .send(&Msg::Submit {
                req: 1,
                name: "half.png".into(),
                len: 3 * tessera_proto::MAX_CHUNK as u64,
                checksum: 0,
                key: 0,
                submitter: 0,
            })
            .await
            .unwrap();
        for part in [tessera_proto::MAX_CHUNK, 300_000] {
            conn.1
                .feed_chunk(1, Bytes::from(vec![1u8; part]))
                .await
                .unwrap();
        }
        conn.1.flush().await.unwrap();
        // The upload is on disk, under tmp/.
        eventually(T, "the upload's temporary file on disk", || {
            tmp_files() == 1
        })
        .await;
        // Dropped here: the connection closes mid-upload.
    }
    eventually(T, "the partial upload's file to be removed", || {
        tmp_files() == 0
    })
    .await;
    let client = c.client().await;
    let err = client.status(TaskId(1)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "no partial task");
    let inputs = std::fs::read_dir(c.data.path().join("inputs")).unwrap();
    assert_eq!(inputs.count(), 0);
    c.assert_serving(true).await;
}

/// Slowloris: a peer that trickles one byte a second is cut off by the
/// handshake deadline, whether it trickles its Hello or its proof.
#[tokio::test]
async fn a_slowloris_is_cut_off_by_the_handshake_deadline() {
    let deadline = Duration::from_millis(1500);
    let c = Cluster::start_with(1, |m| m.handshake_timeout = deadline, |_| {}).await;
    let hello = wire::encode(&Hello::new(Role::Client, "slow")).unwrap();
    let trickle = |bytes: Vec<u8>, mut w: tessera_proto::FrameWriter<WriteHalf>| {
        tokio::spawn(async move {
            for b in bytes {
                if w.get_mut().write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Trickling the Hello.
    let started = Instant::now();
    let (mut r1, w1) = c.tcp().await;
    let t1 = trickle(framed(&hello), w1);
    // Trickling the Noise message, after a prompt Hello.
    let ((mut r2, w2), hello_frame) = hello_sent(&c).await;
    let t2 = trickle(framed(&first_message(&c.key, &hello_frame)), w2);
    let after_ms = deadline.as_millis() as u32;
    for r in [&mut r1, &mut r2] {
        assert_eq!(
            r.recv_hello_reply(T).await.unwrap(),
            HelloReply::Refused(Refusal::Timeout { after_ms })
        );
        assert_eq!(until_closed(r, T).await, 0);
    }
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(5),
        "cut off after {took:?}"
    );
    t1.abort();
    t2.abort();
    c.assert_serving(true).await;
}

/// The idle connections of the test below.
const IDLE_CONNECTIONS: usize = 2000;

/// Raises this process's soft limit of open files (1,024 on many systems)
/// towards its hard limit, so it holds `IDLE_CONNECTIONS` connections at two
/// descriptors each (ours and the in-process master's) and room for the
/// other tests of this file. Fails, never scales down, if the hard limit is
/// too low.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let want = (2 * IDLE_CONNECTIONS + 1024) as u64;
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= want,
        "this test opens {IDLE_CONNECTIONS} connections and needs {want} open files; \
         the hard limit is {hard} (raise it: ulimit -Hn {want})"
    );
    if limit.current.is_some_and(|soft| soft < want) {
        let raised = rustix::process::Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).expect("raise the soft limit of open files");
    }
}

/// 2,000 connections from one address that never say a word: past that
/// address's share of handshakes they are refused with Busy at once, the
/// rest are closed at the handshake deadline; meanwhile a client from
/// another address gets in (one address cannot take every handshake
/// slot), and the master serves normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_from_one_address_leave_room_for_others() {
    raise_fd_limit();
    let n = IDLE_CONNECTIONS;
    let pool = n / 2;
    let share = 100;
    let deadline = Duration::from_secs(3);
    let c = Cluster::start_with(
        1,
        |m| {
            m.max_unauthenticated = pool;
            m.max_unauthenticated_per_address = share;
            m.max_connections = n + 64;
            m.handshake_timeout = deadline;
            // These all count as failures of their address: keep the delay
            // it owes short.
            m.failure_delays.max = Duration::from_millis(100);
        },
        |_| {},
    )
    .await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let started = Instant::now();
    let mut replies = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (mut r, w) = c.tcp_from(attacker).await;
        replies.spawn(async move {
            let reply = r.recv_hello_reply(T).await;
            let at = started.elapsed();
            let skipped = until_closed(&mut r, T).await;
            drop(w);
            (reply.unwrap(), at, skipped)
        });
    }
    // While they hold their address's whole share, a client from another
    // address (127.0.0.1) is let in, before their deadline.
    let client = Client::connect(&c.addr, &c.key).await.unwrap();
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    drop(client);
    let (mut busy, mut timed_out) = (0, 0);
    while let Some(joined) = replies.join_next().await {
        let (reply, at, skipped) = joined.unwrap();
        assert_eq!(skipped, 0);
        match reply {
            HelloReply::Refused(Refusal::Busy { limit: l }) => {
                assert_eq!(l as usize, share);
                assert!(at < deadline, "Busy is answered at once, not after {at:?}");
                busy += 1;
            }
            HelloReply::Refused(Refusal::Timeout { after_ms }) => {
                assert_eq!(after_ms, 3000);
                assert!(at >= deadline, "timed out early, after {at:?}");
                timed_out += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((busy, timed_out), (n - share, share));
    c.assert_serving(true).await;
}

/// An address that owes a failure delay waits it out without a slot of the
/// shared handshake pool: with a pool of one, a client from another address
/// gets in while a delayed connection waits.
#[tokio::test]
async fn a_delayed_address_holds_no_handshake_slot_while_it_waits() {
    // No worker: nothing else handshakes meanwhile.
    let c = Cluster::start_with(
        0,
        |m| {
            m.max_unauthenticated = 1;
            m.failure_delays.free = 0;
            m.failure_delays.base = Duration::from_secs(20);
            m.failure_delays.max = Duration::from_secs(20);
        },
        |_| {},
    )
    .await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    // One failure: the attacker's address now owes 20 s per connection.
    let mut failed = c.tcp_from(attacker).await;
    send_raw(&mut failed, b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n").await;
    expect_refused_and_closed(&mut failed, Refusal::BadMagic).await;
    // Its next connection waits out the delay...
    let (mut waiting, _w) = c.tcp_from(attacker).await;
    // ... and a client from 127.0.0.1 is let in meanwhile, not refused Busy.
    let began = Instant::now();
    let client = Client::connect(&c.addr, &c.key).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    drop(client);
    // The delayed connection has still not been answered.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), waiting.recv_hello_reply(T))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_wrong_key_fails_on_both_sides_and_repeated_failures_are_slowed_down() {
    let c = Cluster::start(1).await;
    let other = ClusterKey::generate();
    // A client: the master cannot prove it holds the client's key.
    let err = Client::connect(&c.addr, &other).await.unwrap_err();
    assert!(err.is_wrong_key(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} did not prove it holds this cluster's key (our key's fingerprint is {}): it is a master of another cluster or not a tessera master, or --key-file / TESSERA_KEY_FILE is not a copy of the master's cluster.key",
            c.addr,
            other.fingerprint()
        )
    );
    // A worker gives up at once: retrying cannot fix a key.
    let mut wc = WorkerConfig::new(c.addr.clone(), other.clone());
    wc.threads = 1;
    let err = tokio::time::timeout(T, worker::run(wc, CancellationToken::new()))
        .await
        .expect("the worker stops by itself")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("did not prove it holds this cluster's key")
    );
    // A raw peer with the other key: refused by name.
    let (mut conn, hello) = hello_sent(&c).await;
    conn.1
        .send_raw(first_message(&other, &hello))
        .await
        .unwrap();
    expect_refused_and_closed(&mut conn, Refusal::Unauthorized).await;
    // Three failures so far are free; each further one doubles the delay
    // before this address is answered (100 ms, 200 ms, ...).
    for _ in 0..2 {
        let _ = Client::connect(&c.addr, &other).await.unwrap_err();
    }
    let started = Instant::now();
    let (mut conn, hello) = hello_sent(&c).await;
    conn.1
        .send_raw(first_message(&c.key, &hello))
        .await
        .unwrap();
    let reply = conn.0.recv_hello_reply(T).await.unwrap();
    assert!(matches!(reply, HelloReply::Accept(_)), "{reply:?}");
    let waited = started.elapsed();
    // At least four failures are recorded by now (the last may still be in
    // flight on the master's side).
    assert!(
        waited >= Duration::from_millis(100),
        "answered after {waited:?}"
    );
    // The right key still gets in (after its delay), and is served.
    c.assert_serving(true).await;
}
