//! Hostile images, end to end through a master and a worker: a PNG bomb, a
//! panic while decoding, every corrupt PNG of the corpus. Each must fail its
//! own task with a clear reason, once (no retries), and leave the worker
//! serving the next image.

use std::time::Duration;

use bytes::Bytes;
use tessera_client::{Client, FailureKind, TaskInfo, TaskState};
use tessera_tests::{
    Proc, bad_pngs, corrupt_pngsuite, inproc::Cluster, png_bomb, reasons::corrupt_reason,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(60);

async fn run_one(client: &Client, name: &str, data: Vec<u8>) -> TaskInfo {
    let task = client.submit(name, Bytes::from(data)).await.unwrap();
    client.wait_timeout(task, T).await.unwrap()
}

fn failed(info: &TaskInfo) -> (FailureKind, &str) {
    match &info.state {
        TaskState::Failed { kind, reason } => (*kind, reason.as_str()),
        other => panic!("{}: expected failed, got {other:?}", info.name),
    }
}

/// A 256 KB file that decodes to 256 MiB, sent to a worker process started
/// with `--max-decoded-bytes 64MiB`: refused from its header, before any
/// decoding, and the same worker then processes a good image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_png_bomb_fails_too_large_and_the_worker_keeps_serving() {
    let c = Cluster::start(0).await;
    let key = c.key_file();
    let _worker = Proc::spawn(
        "worker",
        NODE,
        &[
            "worker",
            "--master",
            &c.addr,
            "--key-file",
            key.to_str().unwrap(),
            "--threads",
            "1",
            "--max-decoded-bytes",
            "67108864",
        ],
    );
    let bomb = png_bomb(16384);
    assert!(
        bomb.len() < 300_000,
        "a bomb is small: {} bytes",
        bomb.len()
    );
    let client = c.client().await;
    let info = run_one(&client, "bomb.png", bomb).await;
    assert_eq!(
        failed(&info),
        (
            FailureKind::TooLarge,
            "image too large: decoding 16384x16384 pixels needs 268435456 bytes (256.0 MiB), \
             the limit is 64.0 MiB"
        )
    );
    assert_eq!(info.attempts, 1, "a bomb does not take the worker down");
    c.assert_serving(true).await;
}

/// A panic while processing an image fails that task as an internal error
/// and the worker goes on.
#[tokio::test]
async fn a_panic_while_decoding_fails_the_task_and_the_worker_keeps_serving() {
    let c = Cluster::start_with(1, |_| {}, |w| w.test_panic_on = Some("panic".into())).await;
    let client = c.client().await;
    let png = std::fs::read(tessera_tests::photos()[0].clone()).unwrap();
    let info = run_one(&client, "panic.png", png).await;
    assert_eq!(
        failed(&info),
        (
            FailureKind::Internal,
            "internal error: panic while processing the image: --test-panic-on matched this image"
        )
    );
    assert_eq!(info.attempts, 1);
    c.assert_serving(true).await;
}

/// Every corrupt PNG of the corpus fails once, as corrupt, with its own
/// reason (`tessera_tests::reasons`), and the worker serves on.
#[tokio::test]
async fn every_corrupt_png_of_the_corpus_fails_once_and_the_worker_keeps_serving() {
    let c = Cluster::start(1).await;
    let client = c.client().await;
    let files: Vec<_> = corrupt_pngsuite().into_iter().chain(bad_pngs()).collect();
    assert!(files.len() >= 20, "the corpus is there");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let info = run_one(&client, &name, std::fs::read(f).unwrap()).await;
        let (kind, reason) = failed(&info);
        assert_eq!(kind, FailureKind::Corrupt, "{name}: {reason}");
        assert_eq!(reason, corrupt_reason(&name), "{name}");
        assert_eq!(info.attempts, 1, "{name}");
    }
    c.assert_serving(true).await;
}
