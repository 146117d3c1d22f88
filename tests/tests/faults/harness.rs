//! What every test here shares: starting workers and connecting to the
//! master, a batch of photos submitted, waiting on its tasks, checking
//! every result, and printing figures.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::{Client, TaskId, TaskInfo, TaskState};
use tessera_tests::{Proc, check_swapped, photos};

use crate::{NODE, T};

pub(crate) fn worker(addr: &str, key: &Path, name: &str, extra: &[&str]) -> Proc {
    tessera_tests::spawn_worker(NODE, addr, key, name, extra)
}

/// A client of the master whose key file is `key`.
pub(crate) async fn connect(addr: &str, key: &Path) -> Result<Client, tessera_client::ClientError> {
    Client::connect(addr, &tessera_client::ClusterKey::load(key).unwrap()).await
}

/// `n` images: the Kodak photos over and over, under distinct names.
pub(crate) fn batch(n: usize) -> Vec<(String, Bytes)> {
    let photos: Vec<Bytes> = photos()
        .iter()
        .map(|p| Bytes::from(std::fs::read(p).unwrap()))
        .collect();
    (0..n)
        .map(|i| (format!("img-{i:03}.png"), photos[i % photos.len()].clone()))
        .collect()
}

pub(crate) async fn submit_all(client: &Client, images: &[(String, Bytes)]) -> Vec<TaskId> {
    let mut ids = Vec::new();
    for (name, data) in images {
        ids.push(client.submit(name, data.clone()).await.unwrap());
    }
    ids
}

/// Polls until `pick` finds a task in the state it wants (a condition, with a deadline).
pub(crate) async fn wait_for(
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
pub(crate) async fn check_all_done(
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

pub(crate) fn figure(case: &str, fields: &[(&str, f64)]) {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v:.1}"))
        .collect();
    println!(
        "{{\"bench\":\"faults\",\"case\":\"{case}\",{}}}",
        fields.join(",")
    );
}
