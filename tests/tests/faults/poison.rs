//! An image that kills every worker that runs it: failed for its content
//! after `--max-attempts`, and no other image charged for the deaths.

use std::time::{Duration, Instant};

use tessera_client::TaskState;
use tessera_tests::{Proc, check_swapped, spawn_master};

use crate::{
    NODE, T,
    harness::{batch, connect, figure, submit_all, worker},
};

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
