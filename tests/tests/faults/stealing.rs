//! Idle workers stealing a slow worker's unstarted tasks, against the same
//! batch with stealing off.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::TaskInfo;
use tessera_tests::spawn_master;

use crate::{
    NODE,
    harness::{batch, check_all_done, connect, figure, submit_all, worker},
};

/// Runs `images` on two fast workers and a slow one; returns the makespan and
/// every task's final info.
async fn slow_worker_batch(steal: bool, images: &[(String, Bytes)]) -> (Duration, Vec<TaskInfo>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Backup attempts for the slow worker's started task are off in both
    // runs: this measures stealing alone (benches/ measures backups).
    let extra: &[&str] = if steal {
        &["--no-backup"]
    } else {
        &["--no-steal", "--no-backup"]
    };
    let (_m, addr, key) = spawn_master(NODE, &data, extra).await;
    let client = Arc::new(connect(&addr, &key).await.unwrap());
    // Submit before any worker exists, so all start from the same queue.
    let ids = submit_all(&client, images).await;
    let fast = ["--threads", "1", "--prefetch", "2", "--test-delay", "40ms"];
    let start = Instant::now();
    let _slow = worker(
        &addr,
        &key,
        "slow",
        &[
            "--threads",
            "1",
            "--prefetch",
            "2",
            "--test-delay",
            "1500ms",
        ],
    );
    let _f1 = worker(&addr, &key, "fast-1", &fast);
    let _f2 = worker(&addr, &key, "fast-2", &fast);
    let infos = check_all_done(&client, &ids, images, &data).await;
    (start.elapsed(), infos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_steal_a_slow_worker_s_unstarted_tasks() {
    let images = batch(30);
    let (with, infos) = slow_worker_batch(true, &images).await;
    let stolen: Vec<&TaskInfo> = infos
        .iter()
        .filter(|i| i.attempts >= 2 && i.worker.as_deref() != Some("slow"))
        .collect();
    assert!(
        !stolen.is_empty(),
        "no task was taken from the slow worker: {infos:#?}"
    );
    let by_slow = infos
        .iter()
        .filter(|i| i.worker.as_deref() == Some("slow"))
        .count();

    let (without, infos_without) = slow_worker_batch(false, &images).await;
    assert!(
        infos_without.iter().all(|i| i.attempts == 1),
        "--no-steal moved a task"
    );
    let by_slow_without = infos_without
        .iter()
        .filter(|i| i.worker.as_deref() == Some("slow"))
        .count();
    figure(
        "slow_worker_makespan",
        &[
            ("with_stealing_s", with.as_secs_f64()),
            ("without_stealing_s", without.as_secs_f64()),
            ("slow_done_with", by_slow as f64),
            ("slow_done_without", by_slow_without as f64),
            ("stolen", stolen.len() as f64),
        ],
    );
}
