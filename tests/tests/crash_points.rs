//! The crash-point walk: for every named step of every ledger operation
//! (`tessera_node::master::failpoint::FAILPOINTS`), a real master process
//! is aborted exactly there (`TESSERA_FAILPOINT`, compiled in by the
//! `failpoints` feature these tests enable), restarted on its data
//! directory, and the oracle must hold:
//!
//! * no accepted image is lost: every id a client was answered `Submitted`
//!   for still exists (unless the client was told it was deleted) and ends
//!   done, pixel-exact, or failed for what is in it;
//! * no id is ever answered for two different images: each id still names
//!   the image it was given for (name and size);
//! * nothing a client was told is contradicted: told done stays done,
//!   failed stays failed with its kind, cancelled stays cancelled, deleted
//!   stays gone;
//! * a resubmission dedupes to the same task while its result is kept.
//!
//! The workload drives every ledger operation (submit, a second submitter
//! joining, a result, a failure, a cancel, confirmations, a delete; with a
//! short retention, expiry) and stops at the first error, which is where
//! the master died.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::process::ExitStatusExt,
    path::Path,
    time::Duration,
};

use bytes::Bytes;
use tessera_client::{
    Client, ClientConfig, ClientError, ClusterKey, FailureKind, TaskId, TaskState,
};
use tessera_node::master::failpoint::FAILPOINTS;
use tessera_tests::{Proc, check_swapped, corrupt_pngsuite, valid_pngsuite};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(60);

fn master(addr: &str, data: &Path, failpoint: Option<&str>, retention: &str) -> Proc {
    let mut cmd = tokio::process::Command::new(NODE);
    cmd.args(["master", "--listen", addr, "--data-dir"])
        .arg(data)
        .args(["--no-mdns", "--retention", retention])
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    match failpoint {
        Some(f) => cmd.env("TESSERA_FAILPOINT", f),
        None => cmd.env_remove("TESSERA_FAILPOINT"),
    };
    Proc {
        child: cmd.spawn().unwrap(),
        name: format!("master ({failpoint:?})"),
    }
}

/// What the clients were told, to hold the restarted master to.
#[derive(Debug, Default)]
struct Told {
    /// id → (name, input).
    submitted: BTreeMap<TaskId, (String, Bytes)>,
    done: BTreeSet<TaskId>,
    failed: BTreeMap<TaskId, FailureKind>,
    deleted: BTreeSet<TaskId>,
    /// Tasks whose every submitter got `Confirmed`.
    confirmed_by_all: BTreeSet<TaskId>,
    /// A cancel or delete was asked (its answer may not have come).
    cancel_or_delete_asked: BTreeSet<TaskId>,
}

struct Images {
    good: Vec<(String, Bytes)>,
    bad: (String, Bytes),
}

fn images() -> Images {
    let read = |p: &std::path::PathBuf| {
        (
            p.file_name().unwrap().to_string_lossy().into_owned(),
            Bytes::from(std::fs::read(p).unwrap()),
        )
    };
    Images {
        good: valid_pngsuite().iter().take(4).map(read).collect(),
        bad: read(&corrupt_pngsuite()[0]),
    }
}

async fn connect(addr: &str, key: &ClusterKey, submitter: u64) -> Result<Client, ClientError> {
    let config = ClientConfig {
        submitter,
        silence_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    Client::connect_with(addr, key, config).await
}

/// Every ledger operation once; returns at the first error (the master died).
async fn workload(
    addr: &str,
    key: &ClusterKey,
    imgs: &Images,
    told: &mut Told,
    expire_only: bool,
) -> Result<(), ClientError> {
    let a = connect(addr, key, 1).await?;
    let b = connect(addr, key, 2).await?;
    let (n0, d0) = imgs.good[0].clone();
    let t0 = a.submit(&n0, d0.clone()).await?;
    told.submitted.insert(t0, (n0.clone(), d0.clone()));
    if expire_only {
        let info = a.wait_timeout(t0, T).await?;
        if info.state == TaskState::Done {
            told.done.insert(t0);
        }
        // The retention sweep removes it; the master dies at its step.
        return Ok(());
    }
    // A second submitter of the same image joins the task.
    let joined = b.submit(&n0, d0.clone()).await?;
    assert_eq!(joined, t0, "the same image dedupes to one task");
    let (bn, bd) = imgs.bad.clone();
    let tb = a.submit(&bn, bd.clone()).await?;
    told.submitted.insert(tb, (bn, bd));
    let (n1, d1) = imgs.good[1].clone();
    let t1 = a.submit(&n1, d1.clone()).await?;
    told.submitted.insert(t1, (n1, d1));
    told.cancel_or_delete_asked.insert(t1);
    let info = a.cancel(t1).await?;
    if let TaskState::Failed { kind, .. } = info.state {
        told.failed.insert(t1, kind);
    }
    for t in [t0, tb] {
        let info = a.wait_timeout(t, T).await?;
        match info.state {
            TaskState::Done => {
                told.done.insert(t);
            }
            TaskState::Failed { kind, .. } => {
                told.failed.insert(t, kind);
            }
            other => panic!("wait answered {other:?}"),
        }
    }
    let got = a.fetch(t0).await?;
    check_swapped(&d0, &got).unwrap();
    a.confirm(t0).await?;
    let got = b.fetch(t0).await?;
    check_swapped(&d0, &got).unwrap();
    b.confirm(t0).await?;
    told.confirmed_by_all.insert(t0);
    let (n2, d2) = imgs.good[2].clone();
    let t2 = a.submit(&n2, d2.clone()).await?;
    told.submitted.insert(t2, (n2, d2));
    if a.wait_timeout(t2, T).await?.state == TaskState::Done {
        told.done.insert(t2);
    }
    told.cancel_or_delete_asked.insert(t2);
    a.delete(t2).await?;
    told.deleted.insert(t2);
    Ok(())
}

/// The oracle, against the restarted master; then every task finishes.
async fn check(
    addr: &str,
    key: &ClusterKey,
    told: &Told,
    point: &str,
    expiring: bool,
    first: &(String, Bytes),
) {
    let a = connect(addr, key, 1).await.unwrap();
    // The first image, whether or not its submission was answered: one
    // task at most holds it (a crash between recording and answering must
    // not make the resubmission a second task).
    if !expiring
        && !told
            .confirmed_by_all
            .iter()
            .any(|t| told.submitted[t].0 == first.0)
    {
        let again = a.submit(&first.0, first.1.clone()).await.unwrap();
        for id in 1..again.0 {
            if let Ok(info) = a.status(TaskId(id)).await {
                assert!(
                    info.name != first.0,
                    "{point}: {} is both task {id} and task {again}",
                    first.0
                );
            }
        }
    }
    for (task, (name, data)) in &told.submitted {
        let status = a.status(*task).await;
        if told.deleted.contains(task) {
            assert!(status.is_err(), "{point}: deleted task {task} is back");
            continue;
        }
        let info = match status {
            Ok(i) => i,
            Err(e) if told.cancel_or_delete_asked.contains(task) => {
                // Deleted, answer lost in the crash.
                assert_eq!(
                    e.code(),
                    Some(tessera_client::ErrorCode::NotFound),
                    "{point}: {e}"
                );
                continue;
            }
            Err(e) => panic!("{point}: accepted task {task} ({name}) lost: {e}"),
        };
        assert_eq!(&info.name, name, "{point}: task {task} names another image");
        assert_eq!(info.input_len, data.len() as u64, "{point}: task {task}");
        if told.done.contains(task) {
            assert_eq!(
                info.state,
                TaskState::Done,
                "{point}: task {task} was told done"
            );
        }
        if let Some(kind) = told.failed.get(task) {
            assert!(
                matches!(&info.state, TaskState::Failed { kind: k, .. } if k == kind),
                "{point}: task {task} was told failed ({kind}), now {:?}",
                info.state
            );
        }
        // A resubmission dedupes to the same task while its result is kept.
        // (With a 1 s retention, the result may be gone and its key free.)
        if !expiring
            && !told.confirmed_by_all.contains(task)
            && !told.cancel_or_delete_asked.contains(task)
        {
            let again = a.submit(name, data.clone()).await.unwrap();
            assert_eq!(
                again, *task,
                "{point}: the resubmission of {name} made a new task"
            );
        }
        // Everything finishes, exactly.
        let info = a.wait_timeout(*task, T).await.unwrap();
        match &info.state {
            TaskState::Done if !told.confirmed_by_all.contains(task) && !expiring => {
                let got = a.fetch(*task).await.unwrap();
                check_swapped(data, &got).unwrap_or_else(|e| panic!("{point}: {name}: {e}"));
            }
            TaskState::Done => {}
            TaskState::Failed { kind, reason } => assert!(
                matches!(kind, FailureKind::Corrupt | FailureKind::Cancelled),
                "{point}: {name} failed for a reason not in the image: {reason}"
            ),
            other => panic!("{point}: {name} is {other:?} after wait"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_leaves_a_master_that_keeps_every_promise() {
    let imgs = images();
    for point in FAILPOINTS {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
        let expire_only = point.starts_with("expire:");
        let retention = if expire_only { "1s" } else { "24h" };
        let mut m = master(&addr, &data, Some(point), retention);
        m.wait_for_line("listening on ", T).await;
        let key = ClusterKey::load(&data.join(tessera_proto::KEY_FILE_NAME)).unwrap();
        let key_file = data.join(tessera_proto::KEY_FILE_NAME);
        let _w = tessera_tests::spawn_worker(
            NODE,
            &addr,
            &key_file,
            "w1",
            &["--threads", "1", "--test-delay", "100ms"],
        );
        let mut told = Told::default();
        let ran = workload(&addr, &key, &imgs, &mut told, expire_only).await;
        let status = tokio::time::timeout(T, m.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("{point}: never reached (the master did not abort); workload: {ran:?}")
            })
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(6),
            "{point}: the master did not abort there: {status}"
        );
        let mut again = master(&addr, &data, None, retention);
        again.wait_for_line("listening on ", T).await;
        check(&addr, &key, &told, point, expire_only, &imgs.good[0]).await;
        println!(
            "crash point {point}: ok ({} submitted)",
            told.submitted.len()
        );
    }
}
