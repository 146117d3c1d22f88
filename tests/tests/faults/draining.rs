//! A worker told to stop (SIGTERM): unstarted tasks handed back, the
//! running one finished, or handed back without a strike once its grace is
//! over.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use tessera_client::{TaskId, TaskInfo, TaskState};
use tessera_tests::spawn_master;

use crate::{
    NODE, T,
    harness::{batch, check_all_done, connect, figure, submit_all, wait_for, worker},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_hands_back_unstarted_tasks_and_finishes_its_running_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_m, addr, key) = spawn_master(NODE, &data, &["--lease-timeout", "60s"]).await;
    let mut draining = worker(
        &addr,
        &key,
        "draining",
        &["--threads", "1", "--prefetch", "4", "--test-delay", "800ms"],
    );
    let client = connect(&addr, &key).await.unwrap();
    let images = batch(12);
    let ids = submit_all(&client, &images).await;
    let running = wait_for(&client, &ids, "the worker to start a task", |i| {
        i.state == TaskState::Running && i.worker.as_deref() == Some("draining")
    })
    .await;
    // Wait for it to also hold unstarted tasks, then drain it.
    let mut held: Vec<TaskId> = Vec::new();
    let start = Instant::now();
    while held.len() < 3 {
        held.clear();
        for id in &ids {
            let i = client.status(*id).await.unwrap();
            if i.state == TaskState::Running && i.worker.as_deref() == Some("draining") {
                held.push(*id);
            }
        }
        assert!(start.elapsed() < T, "the worker never prefetched");
    }
    let _other = worker(&addr, &key, "other", &["--threads", "1"]);
    draining.signal("TERM");
    let termed = Instant::now();
    let others: Vec<TaskId> = held
        .iter()
        .copied()
        .filter(|t| *t != running.task)
        .collect();
    wait_for(
        &client,
        &others,
        "an unstarted task to be handed back",
        |i| i.worker.as_deref() != Some("draining"),
    )
    .await;
    figure(
        "drain_to_released_ms",
        &[("ms", termed.elapsed().as_secs_f64() * 1000.0)],
    );
    let status = tokio::time::timeout(T, draining.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "a drained worker exits cleanly: {status}");

    let infos = check_all_done(&client, &ids, &images, &data).await;
    let by_id: BTreeMap<TaskId, &TaskInfo> = infos.iter().map(|i| (i.task, i)).collect();
    // The task it was running when told to stop, it finished itself.
    assert_eq!(by_id[&running.task].worker.as_deref(), Some("draining"));
    assert_eq!(by_id[&running.task].attempts, 1);
}

/// A drain that runs out of grace hands its running task back explicitly
/// (`Released`) before the worker closes: the task's history shows a
/// hand-back, not a lost attempt, and another worker completes it. With
/// `--max-attempts 1`, a hand-back counted as a loss would fail the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_out_of_grace_hands_its_running_task_back_without_a_strike() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_m, addr, key) = spawn_master(
        NODE,
        &data,
        &["--lease-timeout", "60s", "--max-attempts", "1"],
    )
    .await;
    let mut slow = worker(
        &addr,
        &key,
        "slow",
        &[
            "--threads",
            "1",
            "--prefetch",
            "0",
            "--test-delay",
            "10m",
            "--drain-grace",
            "300ms",
        ],
    );
    let client = connect(&addr, &key).await.unwrap();
    let images = batch(1);
    let ids = submit_all(&client, &images).await;
    wait_for(&client, &ids, "the slow worker to start the task", |i| {
        i.state == TaskState::Running && i.worker.as_deref() == Some("slow")
    })
    .await;
    // Started, as the master sees it: it is the only running task.
    let started = Instant::now();
    loop {
        let cluster = client.cluster().await.unwrap();
        if cluster
            .workers
            .iter()
            .any(|w| w.name == "slow" && w.running == 1)
        {
            break;
        }
        assert!(started.elapsed() < T, "the master never saw the start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    slow.signal("TERM");
    let status = tokio::time::timeout(T, slow.child.wait())
        .await
        .expect("the worker exits once its grace is over")
        .unwrap();
    assert!(status.success(), "a drained worker exits cleanly: {status}");
    let _other = worker(&addr, &key, "other", &["--threads", "1"]);
    let infos = check_all_done(&client, &ids, &images, &data).await;
    assert_eq!(infos[0].worker.as_deref(), Some("other"));
    let history = tessera_tests::history_lines(&client, ids[0]).await;
    assert!(
        history.iter().any(|e| e == "attempt 1 given back by slow"),
        "{history:?}"
    );
    assert!(
        !history.iter().any(|e| e.contains("lost")),
        "no lost attempt: {history:?}"
    );
}
