//! The master's answers to well-formed traffic and to a peer of another
//! version, over real TCP on 127.0.0.1:0, with the master and workers running
//! in this process. Hostile and malformed traffic: `hostile.rs`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, ClientError, ErrorCode, TaskState};
use tessera_node::master::{self, MasterConfig};
use tessera_proto::{Hello, HelloReply, PROTOCOL_VERSION, Refusal, Role};
use tessera_tests::{check_swapped, inproc::Cluster, photos, valid_pngsuite};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_library_submits_waits_and_fetches_many_at_once() {
    let c = Cluster::start(2).await;
    let client = Arc::new(c.client().await);
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
    let c = Cluster::start(0).await;
    let client = c.client().await;
    let err = client
        .status(tessera_proto::TaskId(424242))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    assert_eq!(
        err.to_string(),
        "no task 424242 on this master; check the id (as `tessera submit` printed it) and that this is the master it was submitted to"
    );
    let task = client
        .submit("a.png", Bytes::from(std::fs::read(&photos()[0]).unwrap()))
        .await
        .unwrap();
    let err = client.fetch(task).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotReady));
    assert_eq!(
        err.to_string(),
        format!("task {task} is queued; it has no result yet (`tessera wait {task}` waits for it)")
    );
    let err = client
        .wait_timeout(task, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn a_failed_task_reports_its_reason_and_has_no_result() {
    let c = Cluster::start(1).await;
    let client = c.client().await;
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
async fn a_version_mismatch_names_both_versions() {
    let c = Cluster::start(0).await;
    let (mut r, mut w) = c.tcp().await;
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
async fn an_oversized_submission_is_refused_and_its_chunks_skipped() {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let mut config = MasterConfig::new(data.path().to_path_buf());
    config.max_image_bytes = 1000;
    let key = config.key.clone();
    tokio::spawn(master::run(listener, config, shutdown.clone()));
    let client = Client::connect(&addr, &key).await.unwrap();
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
