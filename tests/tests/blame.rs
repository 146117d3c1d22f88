//! Blame with real processes (issue 13): a machine's fault never fails an
//! image. A worker that went silent is given nothing until it shows life, so
//! its task is done by another worker instead of being re-leased to it until
//! it fails; and a poison image that crashes its worker fails alone, after
//! `--max-attempts` deaths that point at it, without taking the images
//! merely prefetched beside it along.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tessera_client::{Client, ClusterKey, TaskId, TaskState};
use tessera_tests::{
    copy_into, photos,
    run::{Expected, Run, history, judge},
    supervisor::{Locate, Master, WorkerSpec, Workers},
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(60);

async fn connect(addr: &str, key: &Path) -> Client {
    Client::connect(addr, &ClusterKey::load(key).unwrap())
        .await
        .unwrap()
}

/// Waits until `n` workers have joined.
async fn wait_for_workers(client: &Client, n: usize) {
    let start = Instant::now();
    while client.cluster().await.unwrap().workers.len() < n {
        assert!(start.elapsed() < T, "{n} workers never joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the master knows every task in `1..=n` (submitted and durable).
async fn wait_for_submitted(client: &Client, n: u64) {
    let start = Instant::now();
    for id in 1..=n {
        while client.status(TaskId(id)).await.is_err() {
            assert!(start.elapsed() < T, "task {id} was never submitted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_with_spare_credits_gets_nothing_and_its_task_is_done_by_another() {
    let tmp = tempfile::tempdir().unwrap();
    let master = Master::start(
        NODE,
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &["--lease-timeout", "1s", "--heartbeat-interval", "200ms"],
        None,
    )
    .await;
    let key = master.key_file();
    let locate = Locate::Addr(master.addr.clone());
    // `big` has 8 threads and 8 prefetch credits, far more free credits than
    // `small`, so the master prefers it for every hand-out.
    let mut workers = Workers::start(
        NODE,
        &key,
        locate.clone(),
        &[
            WorkerSpec::new("big", &["--threads", "8", "--test-delay", "3s"]),
            WorkerSpec::new("small", &["--threads", "1"]),
        ],
    );
    let client = connect(&master.addr, &key).await;
    wait_for_workers(&client, 2).await;

    let input = tmp.path().join("in");
    let photo = photos()[0].clone();
    copy_into(&input, std::slice::from_ref(&photo));
    let output = tmp.path().join("out");
    let run = Run::start(CLIENT, &key, &locate, &input, &output, &[]);

    // The task is leased to big (and sleeping in its --test-delay): hang big.
    let start = Instant::now();
    loop {
        if let Ok(info) = client.status(TaskId(1)).await
            && info.state == TaskState::Running
            && info.worker.as_deref() == Some("big-0")
        {
            break;
        }
        assert!(start.elapsed() < T, "the task was never leased to big");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers.pause(0);
    let paused = Instant::now();

    let out = run.finish(T).await.unwrap();
    let took = paused.elapsed();
    let expected = Expected {
        input_dir: input.clone(),
        output_dir: output.clone(),
        innocent: vec![PathBuf::from(photo.file_name().unwrap())],
        poison: None,
    };
    let verdict = judge(&out, &expected);
    let history = history(CLIENT, &key, &locate, 1).await;
    let info = client.status(TaskId(1)).await.unwrap();
    workers.resume_all();
    assert!(
        verdict.ok(),
        "{}\nfinal state: {info:?}\ntessera history 1:\n{history}",
        verdict.problems.join("\n")
    );
    assert_eq!(info.state, TaskState::Done, "{history}");
    assert_eq!(info.worker.as_deref(), Some("small-0"), "{history}");
    // big went silent holding attempt 1; it must be offered nothing more.
    assert_eq!(
        history.matches("leased to big-0").count(),
        1,
        "the silent worker was leased the task again:\n{history}"
    );
    assert!(history.contains("on small-0 completed"), "{history}");
    assert!(!history.contains("failed"), "{history}");
    println!(
        "{{\"bench\":\"blame\",\"case\":\"silent_worker_to_done_s\",\"seconds\":{:.2},\"lease_timeout_s\":1.0}}",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_image_fails_alone_and_the_images_prefetched_beside_it_are_done() {
    let tmp = tempfile::tempdir().unwrap();
    // The default --max-attempts (3) and the worker's default prefetch (2):
    // a worker that dies holds the poison and two innocent images.
    let max_attempts = 3;
    let master = Master::start(NODE, &tmp.path().join("data"), "127.0.0.1:0", &[], None).await;
    let key = master.key_file();
    let locate = Locate::Addr(master.addr.clone());
    let client = connect(&master.addr, &key).await;

    // Five photos (the four Kodak ones and a copy under another name, so
    // its own task) and the poison, a copy of one of them.
    let input = tmp.path().join("in");
    let photos = photos();
    copy_into(&input, &photos);
    std::fs::copy(&photos[0], input.join("z-copy.png")).unwrap();
    std::fs::copy(&photos[1], input.join("a0-poison.png")).unwrap();
    let mut innocent: Vec<PathBuf> = photos
        .iter()
        .map(|p| PathBuf::from(p.file_name().unwrap()))
        .collect();
    innocent.push("z-copy.png".into());
    assert_eq!(innocent.len(), 5);
    let output = tmp.path().join("out");
    let mut run = Run::start(CLIENT, &key, &locate, &input, &output, &[]);
    // Everything is queued before the worker starts, so its first credits
    // take the poison and two neighbours at once.
    wait_for_submitted(&client, 6).await;

    // A supervisor, like systemd: the worker is restarted whenever it dies.
    let mut workers = Workers::start(
        NODE,
        &key,
        locate.clone(),
        &[WorkerSpec::new(
            "w",
            &["--threads", "1", "--test-crash-on", "poison"],
        )],
    );
    let mut deaths = Vec::new();
    let start = Instant::now();
    while run.try_exit().is_none() {
        deaths.extend(workers.reap());
        assert!(
            deaths.len() <= 20,
            "the poison keeps killing workers: {deaths:?}"
        );
        assert!(start.elapsed() < T, "the batch did not end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = run.finish(T).await.unwrap();
    // The batch can end (the poison failed) a moment before the supervisor
    // has reaped the worker whose death decided it: wait for the evidence.
    let reaped_by = Instant::now() + Duration::from_secs(5);
    while deaths.len() < max_attempts && Instant::now() < reaped_by {
        deaths.extend(workers.reap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let expected = Expected {
        input_dir: input.clone(),
        output_dir: output.clone(),
        innocent,
        poison: Some(PathBuf::from("a0-poison.png")),
    };
    let verdict = judge(&out, &expected);
    let mut histories = String::new();
    for line in &out.images {
        if let Some(t) = line.task {
            histories.push_str(&format!("-- {} (task {t}):\n", line.input));
            histories.push_str(&history(CLIENT, &key, &locate, t).await);
        }
    }
    let died: Vec<&str> = deaths.iter().map(|d| d.name.as_str()).collect();
    assert!(
        verdict.ok(),
        "{}\nworkers that died: {died:?}\n{histories}",
        verdict.problems.join("\n")
    );
    // Found fast: every death pointed at the poison alone.
    assert_eq!(
        deaths.len(),
        max_attempts,
        "workers that died: {died:?}\n{histories}"
    );
    // The reason names the evidence: the workers it killed.
    let reason = verdict.poison_reason.clone().unwrap();
    for name in &died {
        assert!(
            reason.contains(name),
            "the reason does not name {name}: {reason}"
        );
    }
    println!(
        "{{\"bench\":\"blame\",\"case\":\"poison_with_prefetch\",\"worker_deaths\":{},\"poison_failed_after_s\":{:.2}}}",
        deaths.len(),
        verdict.poison_failed_at.unwrap().as_secs_f64()
    );
}
