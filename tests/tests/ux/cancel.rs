//! Cancelling a queued task and a running one: the task's state and
//! history, the CLI's answers, and a worker freed of a cancelled task.

use std::time::{Duration, Instant};

use tessera_client::{Client, FailureKind, TaskId, TaskState};
use tessera_tests::photos;

use crate::{
    T,
    master::{master, stderr, stdout},
};

/// Waits until the task is in a state `want` accepts; returns that state.
async fn wait_state(
    client: &Client,
    task: TaskId,
    what: &str,
    want: impl Fn(&TaskState) -> bool,
) -> TaskState {
    let start = Instant::now();
    loop {
        let state = client.status(task).await.unwrap().state;
        if want(&state) {
            return state;
        }
        assert!(
            start.elapsed() < T,
            "timed out waiting for task {task} to be {what} (it is {state})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_cancelled(s: &TaskState) -> bool {
    matches!(
        s,
        TaskState::Failed {
            kind: FailureKind::Cancelled,
            ..
        }
    )
}

async fn submit_photo(client: &Client, i: usize) -> TaskId {
    let photo = &photos()[i % photos().len()];
    let data = std::fs::read(photo).unwrap();
    client
        .submit(&format!("photo-{i}.png"), data.into())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_is_cancelled_at_once_and_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let client = m.client().await;
    let doomed = submit_photo(&client, 0).await;
    let kept = submit_photo(&client, 1).await;

    let started = Instant::now();
    let out = m.cli(&["cancel", &doomed.to_string()]).await;
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("cancelled {doomed} (photo-0.png)\n"));
    // Cancelled when the command returns: no worker exists to involve.
    let state = client.status(doomed).await.unwrap().state;
    assert!(is_cancelled(&state), "{state:?}");
    assert_eq!(
        state.to_string(),
        "failed: cancelled on request while queued"
    );
    assert_eq!(
        client.status(kept).await.unwrap().state,
        TaskState::Queued,
        "only the cancelled task left the queue"
    );
    // A wait on it ends at once, as failed.
    let waited = m.cli(&["wait", &doomed.to_string()]).await;
    assert!(!waited.status.success());
    assert!(stdout(&waited).contains("cancelled"), "{waited:?}");

    // A worker arrives: the kept task runs, the cancelled one never does.
    let _w = m.worker("late", &["--threads", "1"]);
    let info = client.wait_timeout(kept, T).await.unwrap();
    assert_eq!(info.state, TaskState::Done);
    let state = client.status(doomed).await.unwrap().state;
    assert!(is_cancelled(&state), "still cancelled: {state:?}");
    let history = tessera_tests::history_lines(&client, doomed).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].starts_with("submitted photo-0.png"),
        "{history:?}"
    );
    assert_eq!(history[1], "cancelled while queued");

    // Cancelling what is decided changes nothing, and says so.
    let again = m.cli(&["cancel", &kept.to_string()]).await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(&format!("task {kept} was already done; nothing to cancel")),
        "{again:?}"
    );
    let missing = m.cli(&["cancel", "999999"]).await;
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no task 999999"), "{missing:?}");
    println!(
        "{{\"bench\":\"ux\",\"what\":\"cancel queued (CLI round trip)\",\"ms\":{}}}",
        took.as_millis()
    );
}

/// A worker with one thread and no prefetch, slowed down to 10 minutes per
/// image: task A runs on it and B waits in the queue. Cancelling A must fail
/// A at once and make the worker stop on A: only then does it ask for work
/// again, and B starts (within this test's deadline, far shorter than A's
/// 10 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_cancelled_and_its_worker_stops_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker(
        "slow",
        &["--threads", "1", "--prefetch", "0", "--test-delay", "10m"],
    );
    let client = m.client().await;
    let a = submit_photo(&client, 0).await;
    wait_state(&client, a, "running", |s| *s == TaskState::Running).await;
    let b = submit_photo(&client, 1).await;
    let cluster = client.cluster().await.unwrap();
    assert_eq!(cluster.workers.len(), 1);
    assert_eq!(cluster.workers[0].name, "slow");
    assert_eq!(
        cluster.tasks.queued, 1,
        "B waits: the worker has no free slot"
    );
    assert_eq!(client.status(b).await.unwrap().state, TaskState::Queued);

    let cancelled_at = Instant::now();
    let out = m.cli(&["cancel", &a.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    let state = client.status(a).await.unwrap().state;
    let to_cancelled = cancelled_at.elapsed();
    assert!(is_cancelled(&state), "A is cancelled: {state:?}");
    assert_eq!(
        state.to_string(),
        "failed: cancelled on request during attempt 1 on slow"
    );

    // The worker stopped on A: its only slot is free again, so B runs there.
    let b_state = wait_state(&client, b, "running", |s| *s != TaskState::Queued).await;
    let to_next = cancelled_at.elapsed();
    assert_eq!(b_state, TaskState::Running);
    assert_eq!(
        client.status(b).await.unwrap().worker.as_deref(),
        Some("slow")
    );
    // B is leased; the worker's report that it started B may still be on
    // its way, so wait for the cluster view to count B as running.
    let start = Instant::now();
    let cluster = loop {
        let cluster = client.cluster().await.unwrap();
        if cluster.workers[0].running == 1 {
            break cluster;
        }
        assert!(
            start.elapsed() < T,
            "the worker never reported B started: {cluster:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (cluster.workers[0].running, cluster.workers[0].prefetched),
        (1, 0),
        "the worker holds B only"
    );
    let history = tessera_tests::history_lines(&client, a).await;
    assert_eq!(
        history.last().map(String::as_str),
        Some("cancelled during attempt 1 on slow"),
        "{history:?}"
    );
    // A's late result (if any) must never turn it into done.
    assert!(is_cancelled(&client.status(a).await.unwrap().state));
    let _ = client.cancel(b).await;
    println!(
        "{{\"bench\":\"ux\",\"what\":\"cancel running\",\"ms_to_cancelled\":{},\"ms_to_worker_free\":{}}}",
        to_cancelled.as_millis(),
        to_next.as_millis()
    );
}
