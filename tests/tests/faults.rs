//! Worker faults with real processes: a master and workers started as
//! `tessera-node` processes on loopback, killed, paused and slowed down with
//! real signals. Every test checks every output pixel-exact and the delivered
//! set for no loss and no duplicate. Measured figures are printed as JSON
//! lines (`{"bench":"faults",...}`); no test asserts on timing.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::{Client, TaskId, TaskInfo, TaskState};
use tessera_tests::{
    Proc, check_swapped,
    inproc::{authed_to, send_result, start_assigned},
    photos, spawn_master,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(60);

fn worker(addr: &str, key: &Path, name: &str, extra: &[&str]) -> Proc {
    tessera_tests::spawn_worker(NODE, addr, key, name, extra)
}

/// A client of the master whose key file is `key`.
async fn connect(addr: &str, key: &Path) -> Result<Client, tessera_client::ClientError> {
    Client::connect(addr, &tessera_client::ClusterKey::load(key).unwrap()).await
}

/// `n` images: the Kodak photos over and over, under distinct names.
fn batch(n: usize) -> Vec<(String, Bytes)> {
    let photos: Vec<Bytes> = photos()
        .iter()
        .map(|p| Bytes::from(std::fs::read(p).unwrap()))
        .collect();
    (0..n)
        .map(|i| (format!("img-{i:03}.png"), photos[i % photos.len()].clone()))
        .collect()
}

async fn submit_all(client: &Client, images: &[(String, Bytes)]) -> Vec<TaskId> {
    let mut ids = Vec::new();
    for (name, data) in images {
        ids.push(client.submit(name, data.clone()).await.unwrap());
    }
    ids
}

/// Polls until `pick` finds a task in the state it wants (a condition, with a deadline).
async fn wait_for(
    client: &Client,
    ids: &[TaskId],
    what: &str,
    mut pick: impl FnMut(&TaskInfo) -> bool,
) -> TaskInfo {
    let start = Instant::now();
    loop {
        for id in ids {
            let info = client.status(*id).await.unwrap();
            if pick(&info) {
                return info;
            }
        }
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for every task, fetches and checks every result, and checks that
/// the master kept exactly one result per task (no duplicate delivered).
async fn check_all_done(
    client: &Client,
    ids: &[TaskId],
    images: &[(String, Bytes)],
    data_dir: &std::path::Path,
) -> Vec<TaskInfo> {
    let mut infos = Vec::new();
    for (id, (name, input)) in ids.iter().zip(images) {
        let info = tokio::time::timeout(T, client.wait(*id))
            .await
            .expect("task ends")
            .unwrap();
        assert_eq!(info.state, TaskState::Done, "{name}: {info:?}");
        let out = client.fetch(*id).await.unwrap();
        check_swapped(input, &out).unwrap_or_else(|e| panic!("{name}: {e}"));
        infos.push(info);
    }
    let results = std::fs::read_dir(data_dir.join("results")).unwrap().count();
    assert_eq!(results, ids.len(), "exactly one stored result per task");
    infos
}

fn figure(case: &str, fields: &[(&str, f64)]) {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v:.1}"))
        .collect();
    println!(
        "{{\"bench\":\"faults\",\"case\":\"{case}\",{}}}",
        fields.join(",")
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_image_that_kills_every_worker_fails_after_max_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_m, addr, key) = spawn_master(NODE, &data, &["--max-attempts", "3"]).await;
    // With the default prefetch: a worker that dies also holds images it
    // had not started, and those must not be charged for its death.
    let args = ["--threads", "1", "--test-crash-on", "poison"];
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| worker(&addr, &key, &format!("w{i}"), &args))
        .collect();
    let client = connect(&addr, &key).await.unwrap();
    let mut images = batch(10);
    images.insert(3, ("poison.png".to_string(), images[0].1.clone()));
    let ids = submit_all(&client, &images).await;
    let poison = ids[3];

    // A supervisor, like systemd: restart any worker that dies, until every
    // task has ended.
    let mut deaths = 0;
    let start = Instant::now();
    let info = loop {
        let mut all_ended = true;
        for id in &ids {
            all_ended &= client.status(*id).await.unwrap().state.is_terminal();
        }
        if all_ended {
            break client.status(poison).await.unwrap();
        }
        assert!(start.elapsed() < T, "the batch did not end");
        for (i, w) in workers.iter_mut().enumerate() {
            if let Ok(Some(status)) = w.child.try_wait() {
                assert!(!status.success(), "a worker exited cleanly: {status}");
                deaths += 1;
                *w = worker(&addr, &key, &format!("w{i}-{deaths}"), &args);
            }
        }
        assert!(deaths <= 10, "the poison keeps killing workers");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    match &info.state {
        TaskState::Failed { kind, reason } => {
            assert_eq!(*kind, tessera_proto::FailureKind::Crashes);
            assert!(
                reason.starts_with("failed for its content: 3 attempts ended with evidence"),
                "{reason}"
            );
            let alone = "while it was the only image running there";
            assert_eq!(reason.matches(alone).count(), 3, "{reason}");
        }
        other => panic!("poison should fail, got {other:?}"),
    }
    let mut good_ids = ids.clone();
    good_ids.remove(3);
    let mut good = images.clone();
    good.remove(3);
    for (id, (name, input)) in good_ids.iter().zip(&good) {
        let info = tokio::time::timeout(T, client.wait(*id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.state, TaskState::Done, "{name}");
        check_swapped(input, &client.fetch(*id).await.unwrap()).unwrap();
    }
    figure("poison", &[("worker_deaths", deaths as f64)]);
}

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
