//! The ledger's rules, against a real master over real TCP: a repeated
//! report of the winning result leaves the stored result alone, a file
//! missing under a connection's outbox does not end the connection, and a
//! decided task's input is removed, and a connection is still read while
//! what it sent waits for the disk (a worker's reports, a client's
//! submissions and confirmations).

use std::{path::Path, time::Duration};

use bytes::Bytes;
use tessera_client::{ClientError, ErrorCode, FailureKind, TaskId, TaskState};
use tessera_node::master::record::MemStore;
use tessera_proto::{Msg, Role, TaskEvent, checksum};
use tessera_tests::{
    corrupt_pngsuite, eventually,
    inproc::{Cluster, Raw},
};

const T: Duration = Duration::from_secs(30);

fn png() -> Bytes {
    Bytes::from(std::fs::read(tessera_tests::data_dir().join("pngsuite/basn2c08.png")).unwrap())
}

/// A hand-driven worker: joins with one thread and `credits`.
async fn raw_worker(c: &Cluster, credits: u32) -> Raw {
    let mut w = c.authed(Role::Worker).await;
    w.1.send(&Msg::Capacity {
        threads: 1,
        synthetic: false,
    })
    .await
    .unwrap();
    w.1.send(&Msg::Ready { credits }).await.unwrap();
    w
}

/// The next message that is not a chunk or a heartbeat answer.
async fn next_msg(w: &mut Raw) -> Msg {
    loop {
        let incoming = w.0.recv_within(T).await.unwrap();
        match incoming.msg {
            Msg::Chunk { .. } | Msg::Pong { .. } => continue,
            m => return m,
        }
    }
}

async fn send_result(w: &mut Raw, task: TaskId, attempt: u32, data: &Bytes) {
    w.1.send(&Msg::Done {
        task,
        attempt,
        len: data.len() as u64,
        checksum: checksum(data),
    })
    .await
    .unwrap();
    w.1.send_stream(task.0, data).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_done_for_the_winning_attempt_leaves_the_stored_result_alone() {
    let c = Cluster::start(0).await;
    let client = c.client().await;
    let task = client.submit("a.png", png()).await.unwrap();
    let mut w = raw_worker(&c, 1).await;
    let Msg::Assign { attempt, .. } = next_msg(&mut w).await else {
        panic!("expected an assignment");
    };
    let result = Bytes::from_static(b"the result bytes");
    send_result(&mut w, task, attempt, &result).await;
    assert_eq!(next_msg(&mut w).await, Msg::Accepted { task });
    // The same report again (a worker that resent it after a reconnection).
    send_result(&mut w, task, attempt, &result).await;
    assert_eq!(next_msg(&mut w).await, Msg::Accepted { task });
    // The result is still served, and served again.
    for _ in 0..2 {
        let got = client.fetch(task).await.unwrap();
        assert_eq!(got, result);
    }
}

/// The files under `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_fails_its_task_and_the_worker_connection_goes_on() {
    let c = Cluster::start(0).await;
    let client = c.client().await;
    let lost = client.submit("lost.png", png()).await.unwrap();
    // The stored input vanishes (a delete racing the assignment, a lost disk).
    std::fs::remove_file(c.data.path().join("inputs").join(lost.0.to_string())).unwrap();
    let mut w = raw_worker(&c, 2).await;
    let info = client.wait_timeout(lost, T).await.unwrap();
    match &info.state {
        TaskState::Failed { kind, reason } => {
            assert_eq!(*kind, FailureKind::Internal, "{reason}");
            assert!(
                reason.starts_with("the master lost the stored input"),
                "{reason}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The same connection still gets work and its results are taken.
    let next = client.submit("next.png", png()).await.unwrap();
    let Msg::Assign { task, attempt, .. } = next_msg(&mut w).await else {
        panic!("expected an assignment");
    };
    assert_eq!(task, next);
    send_result(&mut w, task, attempt, &png()).await;
    assert_eq!(next_msg(&mut w).await, Msg::Accepted { task });
    assert_eq!(
        client.wait_timeout(next, T).await.unwrap().state,
        TaskState::Done
    );
    // No attempt was lost to a dropped connection.
    let lost_attempts = client
        .history(next)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event, TaskEvent::Lost { .. }))
        .count();
    assert_eq!(lost_attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_a_result_removed_meanwhile_is_an_error_not_a_closed_connection() {
    let c = Cluster::start(1).await;
    let client = c.client().await;
    let task = client.submit("a.png", png()).await.unwrap();
    assert_eq!(
        client.wait_timeout(task, T).await.unwrap().state,
        TaskState::Done
    );
    for name in names_in(&c.data.path().join("results")) {
        std::fs::remove_file(c.data.path().join("results").join(name)).unwrap();
    }
    match client.fetch(task).await {
        Err(e @ ClientError::Master { .. }) => {
            assert_eq!(e.code(), Some(ErrorCode::NotReady), "{e}")
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
    assert!(client.is_connected());
    c.assert_serving(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_task_s_input_is_removed() {
    let c = Cluster::start(1).await;
    let client = c.client().await;
    let corrupt = Bytes::from(std::fs::read(&corrupt_pngsuite()[0]).unwrap());
    let failed = client.submit("bad.png", corrupt).await.unwrap();
    let done = client.submit("good.png", png()).await.unwrap();
    assert!(matches!(
        client.wait_timeout(failed, T).await.unwrap().state,
        TaskState::Failed { .. }
    ));
    assert_eq!(
        client.wait_timeout(done, T).await.unwrap().state,
        TaskState::Done
    );
    let inputs = c.data.path().join("inputs");
    eventually(T, "the inputs of decided tasks removed", || {
        names_in(&inputs).is_empty()
    })
    .await;
    // The done task's result is still there to fetch.
    assert!(!client.fetch(done).await.unwrap().is_empty());
}

/// A cluster with no workers whose record is in memory, and the record
/// (to hold its writes: a slow disk).
async fn with_memory_record() -> (Cluster, MemStore) {
    let record = MemStore::new();
    let held = record.clone();
    let c = Cluster::start_with(
        0,
        move |m| m.record = tessera_node::master::RecordStore::Memory(held),
        |_| {},
    )
    .await;
    (c, record)
}

/// Lets the record's writes go when the test ends, failed or not (the
/// runtime's shutdown waits for the journal's blocked thread).
struct Release(MemStore);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.hold_writes(false);
    }
}

/// On a raw client connection: submits `data` as request `req` with
/// idempotency key `key`, for submitter 5 (`Submit`, then its chunks).
async fn raw_submit(conn: &mut Raw, req: u64, key: u128, data: &Bytes) {
    conn.1
        .send(&Msg::Submit {
            req,
            name: format!("{req}.png"),
            len: data.len() as u64,
            checksum: checksum(data),
            key,
            submitter: 5,
        })
        .await
        .unwrap();
    conn.1.send_stream(req, data).await.unwrap();
}

/// Reads `conn` until the `Pong` of `seq`, within 5 s; panics on an answer
/// in `forbidden` first (an answer given before its state was durable).
async fn pong_before(conn: &mut Raw, seq: u64, forbidden: impl Fn(&Msg) -> bool) {
    loop {
        match conn.0.recv_within(Duration::from_secs(5)).await {
            Ok(incoming) if incoming.msg == (Msg::Pong { seq }) => return,
            Ok(incoming) if forbidden(&incoming.msg) => {
                panic!("answered before it was durable: {:?}", incoming.msg)
            }
            Ok(_) => continue,
            Err(e) => panic!("no Pong while the disk is slow: {e}"),
        }
    }
}

/// While a worker's reports wait for the record's commit (a slow disk), the
/// master still reads that worker's connection: its `Ping` is answered and
/// its next frames are taken, so a slow commit never stalls the worker's
/// other results or costs it its leases. The reports are answered
/// (`Accepted`) only once the commit is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_still_read_while_its_reports_wait_for_the_disk() {
    let (c, record) = with_memory_record().await;
    let client = c.client().await;
    let done = client.submit("done.png", png()).await.unwrap();
    let failed = client.submit("failed.png", png()).await.unwrap();
    let mut w = raw_worker(&c, 2).await;
    let mut attempts = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let Msg::Assign { task, attempt, .. } = next_msg(&mut w).await else {
            panic!("expected an assignment");
        };
        attempts.insert(task, attempt);
    }
    let _release = Release(record.clone());
    record.hold_writes(true);
    send_result(&mut w, done, attempts[&done], &png()).await;
    w.1.send(&Msg::Failed {
        task: failed,
        attempt: attempts[&failed],
        kind: FailureKind::Internal,
        reason: "the worker's disk is full".into(),
    })
    .await
    .unwrap();
    w.1.send(&Msg::Ping { seq: 7 }).await.unwrap();
    pong_before(&mut w, 7, |m| matches!(m, Msg::Accepted { .. })).await;
    record.hold_writes(false);
    let mut accepted = std::collections::BTreeSet::new();
    while accepted.len() < 2 {
        if let Msg::Accepted { task } = next_msg(&mut w).await {
            accepted.insert(task);
        }
    }
    assert_eq!(accepted, [done, failed].into_iter().collect());
    assert_eq!(
        client.wait_timeout(done, T).await.unwrap().state,
        TaskState::Done
    );
}

/// The same for a client: while its finished submission waits for the
/// record's commit, the connection is still read (its `Ping` answered, its
/// next submission taken), and `Submitted` comes only once it is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_still_read_while_its_submission_waits_for_the_disk() {
    let (c, record) = with_memory_record().await;
    let mut conn = c.authed(Role::Client).await;
    let _release = Release(record.clone());
    record.hold_writes(true);
    let data = png();
    for (req, key) in [(1, 11), (2, 22)] {
        raw_submit(&mut conn, req, key, &data).await;
    }
    conn.1.send(&Msg::Ping { seq: 9 }).await.unwrap();
    pong_before(&mut conn, 9, |m| matches!(m, Msg::Submitted { .. })).await;
    record.hold_writes(false);
    let mut submitted = std::collections::BTreeSet::new();
    while submitted.len() < 2 {
        match next_msg(&mut conn).await {
            Msg::Submitted { req, .. } => {
                submitted.insert(req);
            }
            other => panic!("expected Submitted, got {other:?}"),
        }
    }
    assert_eq!(submitted, [1, 2].into_iter().collect());
}

/// And for a confirmation: while the record's commit is slow, the client's
/// connection is still read, and `Confirmed` comes only once it is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_still_read_while_its_confirmation_waits_for_the_disk() {
    let (c, record) = with_memory_record().await;
    let mut conn = c.authed(Role::Client).await;
    let data = png();
    raw_submit(&mut conn, 1, 1, &data).await;
    let Msg::Submitted { task, .. } = next_msg(&mut conn).await else {
        panic!("expected Submitted");
    };
    let mut w = raw_worker(&c, 1).await;
    let Msg::Assign { attempt, .. } = next_msg(&mut w).await else {
        panic!("expected an assignment");
    };
    send_result(&mut w, task, attempt, &data).await;
    assert_eq!(next_msg(&mut w).await, Msg::Accepted { task });
    let _release = Release(record.clone());
    record.hold_writes(true);
    conn.1
        .send(&Msg::Confirm {
            req: 2,
            task,
            submitter: 5,
        })
        .await
        .unwrap();
    conn.1.send(&Msg::Ping { seq: 3 }).await.unwrap();
    pong_before(&mut conn, 3, |m| matches!(m, Msg::Confirmed { .. })).await;
    record.hold_writes(false);
    assert_eq!(next_msg(&mut conn).await, Msg::Confirmed { req: 2, task });
}

/// The machine's disk, except that while `held` every file written whole
/// (a small image: an input or a result) waits: a slow disk.
#[derive(Debug, Default)]
struct SlowDisk {
    inner: tessera_node::master::disk::StdDisk,
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl SlowDisk {
    fn hold(&self, on: bool) {
        *self.held.lock().unwrap() = on;
        self.released.notify_all();
    }
}

impl tessera_node::master::disk::Disk for SlowDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<(std::path::PathBuf, String)>> {
        self.inner.list(dir)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn write_synced(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.released.wait(held).unwrap();
        }
        drop(held);
        self.inner.write_synced(path, data)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

/// A worker that sends a whole result and goes: the result is decided
/// before the worker's leases are lost, even when storing it is slow. Were
/// the loss first, this task, on its one allowed attempt, would fail for a
/// worker that did its work (and its image would carry the blame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_received_whole_is_decided_before_its_worker_is_lost() {
    let disk = std::sync::Arc::new(SlowDisk::default());
    let seam = disk.clone();
    let c = Cluster::start_with(
        0,
        move |m| {
            m.disk = seam;
            m.scheduler.max_attempts = 1;
        },
        |_| {},
    )
    .await;
    let client = c.client().await;
    let task = client.submit("a.png", png()).await.unwrap();
    let mut w = raw_worker(&c, 1).await;
    let Msg::Assign { attempt, .. } = next_msg(&mut w).await else {
        panic!("expected an assignment");
    };
    struct Open(std::sync::Arc<SlowDisk>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.hold(false);
        }
    }
    let _open = Open(disk.clone());
    w.1.send(&Msg::Started { task, attempt }).await.unwrap();
    disk.hold(true);
    send_result(&mut w, task, attempt, &png()).await;
    w.1.flush().await.unwrap();
    drop(w);
    // While the result cannot be stored, the worker is not declared lost.
    // (No event can say "not yet"; two seconds is ample for the master to
    // see the connection end, as it does at once when nothing is pending.)
    let mut lost_early = false;
    for _ in 0..200 {
        if client.cluster().await.unwrap().workers_total == 0 {
            lost_early = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    disk.hold(false);
    let info = client.wait_timeout(task, T).await.unwrap();
    assert_eq!(info.state, TaskState::Done, "{info:?}");
    assert!(
        !lost_early,
        "the worker was lost before its result was decided"
    );
}
