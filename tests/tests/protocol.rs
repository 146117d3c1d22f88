//! The master's answers to well-formed traffic and to a peer of another
//! version, over real TCP on 127.0.0.1:0, with the master and workers running
//! in this process. Hostile and malformed traffic: `hostile/`.

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

/// Counts what a worker's session reports to its observer.
#[derive(Debug, Default)]
struct Counted {
    credits: std::sync::atomic::AtomicU32,
    assigned: std::sync::atomic::AtomicU32,
    accepted: std::sync::atomic::AtomicU32,
}

impl tessera_node::worker::SessionObserver for Counted {
    fn credits_granted(&self, credits: u32) {
        self.credits
            .fetch_add(credits, std::sync::atomic::Ordering::SeqCst);
    }
    fn assigned(&self) {
        self.assigned
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn accepted(&self) {
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The load bench's workers: the real worker in its synthetic task mode
/// returns each input unchanged, and its observer sees every credit, every
/// assignment and every accepted result.
#[tokio::test]
async fn a_synthetic_worker_returns_inputs_and_its_observer_sees_every_step() {
    use std::sync::atomic::Ordering::SeqCst;
    let seen = Arc::new(Counted::default());
    let observer = seen.clone();
    let cluster = Cluster::start_with(
        1,
        |_| {},
        move |w| {
            w.prefetch = 2;
            w.synthetic = true;
            w.inline_compute = true;
            w.observer = Some(observer.clone());
        },
    )
    .await;
    let client = cluster.client().await;
    let images = valid_pngsuite();
    let mut tasks = Vec::new();
    for (i, path) in images.iter().take(12).enumerate() {
        let data = Bytes::from(std::fs::read(path).unwrap());
        tasks.push((
            client
                .submit(&format!("{i}.png"), data.clone())
                .await
                .unwrap(),
            data,
        ));
    }
    for (task, data) in &tasks {
        let info = client.wait(*task).await.unwrap();
        assert_eq!(info.state, TaskState::Done, "{info:?}");
        assert_eq!(
            client.fetch(*task).await.unwrap(),
            *data,
            "returned unchanged"
        );
    }
    // `Accepted` may trail the result the client already has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.accepted.load(SeqCst) < 12 {
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.assigned.load(SeqCst), 12, "{seen:?}");
    assert_eq!(seen.accepted.load(SeqCst), 12, "{seen:?}");
    // Three at first (one thread, two prefetched), then one per result.
    assert!(seen.credits.load(SeqCst) >= 3 + 12 - 1, "{seen:?}");
}
