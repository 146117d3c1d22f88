//! The master's answers to well-formed and malformed traffic, over real TCP
//! on 127.0.0.1:0, with the master and workers running in this process.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, ClientError, ErrorCode, TaskState};
use tessera_node::{
    master::{self, MasterConfig},
    worker::{self, WorkerConfig},
};
use tessera_proto::{
    FrameReader, FrameWriter, Hello, HelloReply, Msg, PROTOCOL_VERSION, Refusal, Role, wire,
};
use tessera_tests::{check_swapped, eventually, photos, valid_pngsuite};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_util::sync::CancellationToken;

struct Cluster {
    addr: String,
    data: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(workers: usize) -> Cluster {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let config = MasterConfig::new(data.path().to_path_buf());
    tokio::spawn(master::run(listener, config, shutdown.clone()));
    for _ in 0..workers {
        let mut wc = WorkerConfig::new(addr.clone());
        wc.threads = 1;
        tokio::spawn(worker::run(wc, shutdown.clone()));
    }
    Cluster {
        addr,
        data,
        shutdown,
    }
}

async fn raw(
    addr: &str,
) -> (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, w) = s.into_split();
    (FrameReader::new(r, 1 << 21), FrameWriter::new(w, 1 << 21))
}

async fn raw_client(
    addr: &str,
) -> (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let (mut r, mut w) = raw(addr).await;
    w.send_hello(&Hello::new(Role::Client, "raw"))
        .await
        .unwrap();
    match r.recv_hello_reply(Duration::from_secs(5)).await.unwrap() {
        HelloReply::Welcome(_) => {}
        other => panic!("refused: {other:?}"),
    }
    (r, w)
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_library_submits_waits_and_fetches_many_at_once() {
    let c = start(2).await;
    let client = Arc::new(Client::connect(&c.addr).await.unwrap());
    let files: Vec<_> = valid_pngsuite()
        .into_iter()
        .take(40)
        .chain(photos())
        .collect();
    let mut jobs = tokio::task::JoinSet::new();
    for f in files.clone() {
        let client = client.clone();
        jobs.spawn(async move {
            let data = std::fs::read(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let task = client
                .submit(&name, Bytes::from(data.clone()))
                .await
                .unwrap();
            let info = tokio::time::timeout(T * 6, client.wait(task))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(info.state, TaskState::Done, "{name}");
            assert_eq!(info.name, name);
            let out = client.fetch(task).await.unwrap();
            assert_eq!(info.output_len, Some(out.len() as u64));
            check_swapped(&data, &out).unwrap_or_else(|e| panic!("{name}: {e}"));
        });
    }
    let mut n = 0;
    while let Some(r) = jobs.join_next().await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, files.len());
}

#[tokio::test]
async fn typed_errors_for_unknown_and_unfinished_tasks() {
    let c = start(0).await;
    let client = Client::connect(&c.addr).await.unwrap();
    let err = client
        .status(tessera_proto::TaskId(424242))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    assert_eq!(err.to_string(), "no task 424242 on this master");
    let task = client
        .submit("a.png", Bytes::from(std::fs::read(&photos()[0]).unwrap()))
        .await
        .unwrap();
    let err = client.fetch(task).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotReady));
    assert_eq!(
        err.to_string(),
        format!("task {task} is queued; it has no result yet")
    );
    let err = client
        .wait_timeout(task, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn a_failed_task_reports_its_reason_and_has_no_result() {
    let c = start(1).await;
    let client = Client::connect(&c.addr).await.unwrap();
    let task = client
        .submit("notes.txt", Bytes::from_static(b"hello, not an image"))
        .await
        .unwrap();
    let info = tokio::time::timeout(T, client.wait(task))
        .await
        .unwrap()
        .unwrap();
    match &info.state {
        TaskState::Failed { kind, reason } => {
            assert_eq!(*kind, tessera_proto::FailureKind::Corrupt);
            assert!(reason.starts_with("not a PNG: bad signature"), "{reason}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(info.attempts, 1, "a deterministic failure is not retried");
    let err = client.fetch(task).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotReady));
    assert!(err.to_string().contains("failed: not a PNG"), "{err}");
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_refused_with_bad_magic() {
    let c = start(0).await;
    let (mut r, mut w) = raw(&c.addr).await;
    w.get_mut()
        .write_all(b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        r.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(Refusal::BadMagic)
    );
    // And the master goes on serving others.
    Client::connect(&c.addr).await.unwrap();
}

#[tokio::test]
async fn a_version_mismatch_names_both_versions() {
    let c = start(0).await;
    let (mut r, mut w) = raw(&c.addr).await;
    let mut hello = Hello::new(Role::Worker, "future-worker");
    hello.version = PROTOCOL_VERSION + 1;
    w.send_hello(&hello).await.unwrap();
    let reply = r.recv_hello_reply(T).await.unwrap();
    let want = Refusal::VersionMismatch {
        master: PROTOCOL_VERSION,
        peer: PROTOCOL_VERSION + 1,
    };
    assert_eq!(reply, HelloReply::Refused(want.clone()));
    assert_eq!(
        want.to_string(),
        format!(
            "protocol version mismatch: master speaks version {}, this peer speaks version {}",
            PROTOCOL_VERSION,
            PROTOCOL_VERSION + 1
        )
    );
}

#[tokio::test]
async fn unknown_and_out_of_place_messages_get_typed_errors_and_the_connection_survives() {
    let c = start(0).await;
    let (mut r, mut w) = raw_client(&c.addr).await;
    // An unknown message type.
    w.get_mut().write_all(&[0, 0, 0, 1, 0x7f]).await.unwrap();
    let reply = r.recv_within(T).await.unwrap().msg;
    assert!(
        matches!(&reply, Msg::Error { req: None, code: ErrorCode::UnknownMessage, message } if message.contains("unknown message type")),
        "{reply:?}"
    );
    // A valid message a client may not send.
    w.send(&Msg::Ready { credits: 5 }).await.unwrap();
    let reply = r.recv_within(T).await.unwrap().msg;
    assert_eq!(
        reply,
        Msg::Error {
            req: None,
            code: ErrorCode::UnexpectedMessage,
            message: "Ready is not a message a client may send".into()
        }
    );
    // A chunk with no submission.
    w.feed_chunk(77, Bytes::from_static(b"xx")).await.unwrap();
    w.flush().await.unwrap();
    let reply = r.recv_within(T).await.unwrap().msg;
    assert!(
        matches!(
            reply,
            Msg::Error {
                req: Some(77),
                code: ErrorCode::UnexpectedMessage,
                ..
            }
        ),
        "{reply:?}"
    );
    // More bytes than announced.
    w.send(&Msg::Submit {
        req: 1,
        name: "a".into(),
        len: 2,
        checksum: 0,
        key: 0,
    })
    .await
    .unwrap();
    w.feed_chunk(1, Bytes::from_static(b"xyz")).await.unwrap();
    w.flush().await.unwrap();
    let reply = r.recv_within(T).await.unwrap().msg;
    assert!(
        matches!(
            reply,
            Msg::Error {
                req: Some(1),
                code: ErrorCode::Malformed,
                ..
            }
        ),
        "{reply:?}"
    );
    // Still served.
    w.send(&Msg::Status {
        req: 9,
        task: tessera_proto::TaskId(1),
    })
    .await
    .unwrap();
    let reply = r.recv_within(T).await.unwrap().msg;
    assert!(
        matches!(
            reply,
            Msg::Error {
                req: Some(9),
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn an_oversized_submission_is_refused_and_its_chunks_skipped() {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let mut config = MasterConfig::new(data.path().to_path_buf());
    config.max_image_bytes = 1000;
    tokio::spawn(master::run(listener, config, shutdown.clone()));
    let client = Client::connect(&addr).await.unwrap();
    let err = client
        .submit("big.png", Bytes::from(vec![0u8; 5000]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge));
    assert_eq!(
        err.to_string(),
        "big.png: 5000 bytes is over the master's image size limit of 1000 bytes"
    );
    // The refused stream's chunks did not derail the connection.
    let ok = client
        .submit("small.png", Bytes::from(vec![0u8; 10]))
        .await
        .unwrap();
    assert_eq!(client.status(ok).await.unwrap().state, TaskState::Queued);
    shutdown.cancel();
}

#[tokio::test]
async fn a_client_that_vanishes_mid_upload_leaves_no_task_and_no_file() {
    let c = start(0).await;
    {
        let (_r, mut w) = raw_client(&c.addr).await;
        w.send(&Msg::Submit {
            req: 1,
            name: "half.png".into(),
            len: 1_000_000,
            checksum: 0,
            key: 0,
        })
        .await
        .unwrap();
        w.feed_chunk(1, Bytes::from(vec![1u8; 300_000]))
            .await
            .unwrap();
        w.flush().await.unwrap();
        // Dropped here: the connection closes mid-upload.
    }
    let tmp = c.data.path().join("tmp");
    eventually(T, "the partial upload to be removed", || {
        std::fs::read_dir(&tmp)
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    })
    .await;
    let client = Client::connect(&c.addr).await.unwrap();
    let err = client.status(tessera_proto::TaskId(1)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NotFound),
        "no partial task was created"
    );
    assert_eq!(
        std::fs::read_dir(c.data.path().join("inputs"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn the_nine_byte_bomb_frame_is_refused_by_the_decoder() {
    // Submit, req 1, then a name length claiming 64 GiB: must not allocate.
    let mut body = vec![0x00, 0x01, 0xfd];
    body.extend_from_slice(&(64u64 << 30).to_le_bytes());
    assert!(wire::decode_exact::<Msg>(&body).is_err());
}
