//! Results and uploads gone wrong: a worker's chunk for no result, an empty
//! result, a client that vanishes mid-upload.

use bytes::Bytes;
use tessera_client::{Client, ErrorCode, TaskId, TaskState};
use tessera_proto::{Msg, Role};
use tessera_tests::{
    data_dir, eventually,
    inproc::{Cluster, Raw, send_result, start_assigned, until_closed},
};

use crate::{T, raw::expect_error};

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
