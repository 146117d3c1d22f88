//! A worker lost while it holds leases: killed (its connection closes), or
//! paused past its lease (and its late result taken for nothing).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tessera_client::{Client, TaskId, TaskState};
use tessera_tests::{
    check_swapped,
    inproc::{authed_to, send_result, start_assigned},
    spawn_master,
};

use crate::{
    NODE, T,
    harness::{batch, check_all_done, connect, figure, submit_all, wait_for, worker},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_a_worker_holding_leases_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A long lease timeout: re-leasing must come from the closed connection.
    let (_m, addr, key) = spawn_master(NODE, &data, &["--lease-timeout", "60s"]).await;
    let victim = worker(
        &addr,
        &key,
        "victim",
        // Slow enough that a task seen running on it is still held when it dies.
        &["--threads", "1", "--test-delay", "5s"],
    );
    let _survivor = worker(
        &addr,
        &key,
        "survivor",
        &["--threads", "1", "--test-delay", "50ms"],
    );
    let client = connect(&addr, &key).await.unwrap();
    let images = batch(16);
    let ids = submit_all(&client, &images).await;

    let held = wait_for(&client, &ids, "the victim to run a task", |i| {
        i.state == TaskState::Running && i.worker.as_deref() == Some("victim")
    })
    .await;
    victim.signal("KILL");
    let killed = Instant::now();
    let moved = wait_for(&client, &[held.task], "the task to be re-leased", |i| {
        i.attempts >= 2 || i.worker.as_deref() == Some("survivor")
    })
    .await;
    figure(
        "sigkill_to_released_ms",
        &[("ms", killed.elapsed().as_secs_f64() * 1000.0)],
    );
    assert_ne!(moved.worker.as_deref(), Some("victim"));

    let infos = check_all_done(&client, &ids, &images, &data).await;
    let redone = infos.iter().find(|i| i.task == held.task).unwrap();
    assert_eq!(redone.worker.as_deref(), Some("survivor"));
    assert_eq!(redone.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_loses_the_task_and_its_late_result_is_not_delivered_twice()
{
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_m, addr, key) = spawn_master(
        NODE,
        &data,
        &["--lease-timeout", "1s", "--heartbeat-interval", "100ms"],
    )
    .await;
    let paused = worker(
        &addr,
        &key,
        "paused",
        &["--threads", "1", "--test-delay", "400ms"],
    );
    let _other = worker(
        &addr,
        &key,
        "other",
        &["--threads", "1", "--test-delay", "100ms"],
    );
    let client = connect(&addr, &key).await.unwrap();
    let images = batch(12);
    let ids = submit_all(&client, &images).await;

    let held = wait_for(&client, &ids, "the paused worker to run a task", |i| {
        i.state == TaskState::Running && i.worker.as_deref() == Some("paused")
    })
    .await;
    paused.signal("STOP");
    let stopped = Instant::now();
    let moved = wait_for(
        &client,
        &[held.task],
        "the lease to expire and the task to move",
        |i| i.attempts >= 2 || i.state == TaskState::Done,
    )
    .await;
    figure(
        "sigstop_to_released",
        &[
            ("seconds", stopped.elapsed().as_secs_f64()),
            ("lease_timeout_s", 1.0),
        ],
    );
    assert!(
        moved.attempts >= 2,
        "re-leased after the timeout: {moved:?}"
    );
    paused.signal("CONT");
    check_all_done(&client, &ids, &images, &data).await;

    // The late result itself. A resumed process rarely sends one: its first
    // heartbeat names the expired lease, the master answers `Drop`, and the
    // job ends before its image is done. So a worker connection driven by
    // the test plays the paused worker on the wire: it takes a task, starts
    // it, falls silent past its lease, and once another worker has finished
    // the task sends its late result: the unswapped input, so that if the
    // master kept it, the fetch below would show it.
    for mut w in [paused, _other] {
        w.child.kill().await.unwrap();
    }
    let late = late_result_after_another_worker_finished(&client, &addr, &key).await;
    let results = std::fs::read_dir(data.join("results")).unwrap().count();
    assert_eq!(results, ids.len() + 1, "exactly one stored result per task");
    assert!(
        !data.join(format!("results/{}.1", late.0)).exists(),
        "the stale result's file was removed"
    );
}

/// Connects a worker (to a master with no other) that takes one task and
/// falls silent past its lease; starts a real worker that redoes the task;
/// then sends the zombie's late result (attempt 1, wrong pixels) and waits
/// for the master's answer to it, the evidence that the master has received
/// and judged it. Checks that the task is unchanged and serves the real
/// worker's pixels. Returns the task.
async fn late_result_after_another_worker_finished(
    client: &Client,
    addr: &str,
    key: &Path,
) -> TaskId {
    use tessera_proto::{Msg, Role};
    let cluster_key = tessera_client::ClusterKey::load(key).unwrap();
    let mut zombie = authed_to(addr, Role::Worker, "zombie", &cluster_key).await;
    zombie
        .1
        .send(&Msg::Capacity {
            threads: 1,
            synthetic: false,
        })
        .await
        .unwrap();
    zombie.1.send(&Msg::Ready { credits: 1 }).await.unwrap();
    let only_zombie = async {
        loop {
            let workers = client.cluster().await.unwrap().workers;
            if workers.len() == 1 && workers[0].name == "zombie" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(T, only_zombie)
        .await
        .expect("the zombie to be the master's only worker");
    let input = batch(1).remove(0).1;
    let task = client.submit("late.png", input.clone()).await.unwrap();
    let attempt = start_assigned(&mut zombie, task, T).await;
    // Silent from here on (no heartbeat): a paused worker, seen from the master.
    let _rescuer = worker(addr, key, "rescuer", &["--threads", "1"]);
    let decided = tokio::time::timeout(T, client.wait(task))
        .await
        .expect("the task ends")
        .unwrap();
    assert_eq!(decided.state, TaskState::Done, "{decided:?}");
    assert_eq!(decided.worker.as_deref(), Some("rescuer"), "{decided:?}");
    assert_eq!(decided.attempts, 2, "{decided:?}");

    send_result(&mut zombie, task, attempt, &input).await;
    let answered = tokio::time::timeout(T, async {
        loop {
            match zombie.0.recv().await.unwrap().msg {
                Msg::Accepted { task: t } if t == task => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "the master answered the late result");

    let after = client.status(task).await.unwrap();
    assert_eq!(
        (after.state.clone(), after.worker.as_deref(), after.attempts),
        (TaskState::Done, Some("rescuer"), 2),
        "the late result changed nothing: {after:?}"
    );
    let out = client.fetch(task).await.unwrap();
    check_swapped(&input, &out).unwrap_or_else(|e| panic!("the rescuer's pixels: {e}"));
    task
}
