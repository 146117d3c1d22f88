//! Shared results are shared: identical submissions share one task (the
//! idempotency key), and that task's result stays on the master until every
//! submitter has confirmed its download. Real processes: one master, one
//! worker, several `tessera run` on the same folder at once.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tessera_tests::{check_swapped, spawn_master, spawn_worker, valid_pngsuite};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(180);

fn run_batch(input: &Path, out: &Path, addr: &str, key: &Path) -> tokio::process::Child {
    tokio::process::Command::new(CLIENT)
        .args(["run", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--master", addr, "--key-file", key.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Every output under `out` is its original with red and blue swapped.
fn check_outputs(out: &Path, originals: &[PathBuf]) {
    for original in originals {
        let name = original.file_name().unwrap();
        let result = std::fs::read(out.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", out.join(name).display()));
        check_swapped(&std::fs::read(original).unwrap(), &result)
            .unwrap_or_else(|e| panic!("{}: {e}", name.to_string_lossy()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_the_same_folder_at_once_both_get_every_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_master, addr, key) = spawn_master(NODE, &data, &[]).await;
    let _worker = spawn_worker(NODE, &addr, &key, "w1", &["--threads", "2"]);
    let originals = valid_pngsuite();
    let input = tmp.path().join("in");
    tessera_tests::copy_into(&input, &originals);

    let outs: Vec<PathBuf> = ["outA", "outB"]
        .iter()
        .map(|o| tmp.path().join(o))
        .collect();
    let runs: Vec<_> = outs
        .iter()
        .map(|out| run_batch(&input, out, &addr, &key))
        .collect();
    for (run, out) in runs.into_iter().zip(&outs) {
        let output = tokio::time::timeout(T, run.wait_with_output())
            .await
            .expect("the batch ends")
            .unwrap();
        assert!(
            output.status.success(),
            "tessera run -o {} failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        check_outputs(out, &originals);
    }
    // Both confirmed: the master removed every result (the data dir does not
    // keep them until retention).
    let results = data.join("results");
    tessera_tests::eventually(Duration::from_secs(10), "every result removed", || {
        std::fs::read_dir(&results).unwrap().count() == 0
    })
    .await;
}

fn cli(args: &[&str], addr: &str, key: &Path) -> std::process::Output {
    std::process::Command::new(CLIENT)
        .args(args)
        .args(["--master", addr, "--key-file", key.to_str().unwrap()])
        .output()
        .unwrap()
}

/// `tessera fetch` exits only once the master has recorded its
/// confirmation (before, the confirmation was queued and the process could
/// exit before it was sent, leaving the result on the master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_exits_only_once_its_confirmation_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_master, addr, key) = spawn_master(NODE, &data, &[]).await;
    let _worker = spawn_worker(NODE, &addr, &key, "w1", &[]);
    let original = &valid_pngsuite()[0];
    let client =
        tessera_client::Client::connect(&addr, &tessera_proto::ClusterKey::load(&key).unwrap())
            .await
            .unwrap();
    for round in 0..5 {
        let submitted = cli(&["submit", original.to_str().unwrap()], &addr, &key);
        assert!(submitted.status.success());
        let id = String::from_utf8_lossy(&submitted.stdout)
            .trim()
            .to_string();
        assert!(cli(&["wait", &id], &addr, &key).status.success());
        let out = tmp.path().join(format!("out{round}.png"));
        let fetched = cli(&["fetch", &id, "-o", out.to_str().unwrap()], &addr, &key);
        assert!(
            fetched.status.success(),
            "{}",
            String::from_utf8_lossy(&fetched.stderr)
        );
        check_swapped(
            &std::fs::read(original).unwrap(),
            &std::fs::read(&out).unwrap(),
        )
        .unwrap();
        // At once: the confirmation is in the record.
        let task = tessera_client::TaskId(id.parse().unwrap());
        let events = client.history(task).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e.event, tessera_proto::TaskEvent::Fetched)),
            "round {round}: the confirmation of task {id} is not recorded: {events:?}"
        );
    }
}

async fn master_on(addr: &str, data: &Path) -> tessera_tests::Proc {
    let args = [
        "master",
        "--listen",
        addr,
        "--data-dir",
        data.to_str().unwrap(),
        "--no-mdns",
    ];
    let mut m = tessera_tests::Proc::spawn("master", NODE, &args);
    m.wait_for_line("listening on ", Duration::from_secs(30))
        .await;
    m
}

/// Three `tessera run` on overlapping folders at once, while the master is
/// SIGKILLed and restarted on its data directory again and again: every run
/// exits 0 with every output exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_ride_through_repeated_master_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let mut master = master_on(&addr, &data).await;
    let key = data.join(tessera_proto::KEY_FILE_NAME);
    let _w1 = spawn_worker(NODE, &addr, &key, "w1", &["--test-delay", "50ms"]);
    let _w2 = spawn_worker(NODE, &addr, &key, "w2", &["--test-delay", "50ms"]);
    let all = valid_pngsuite();
    let n = all.len();
    let sets: Vec<Vec<PathBuf>> = vec![
        all[..n * 2 / 3].to_vec(),
        all[n / 3..].to_vec(),
        all.clone(),
    ];
    let mut runs = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let input = tmp.path().join(format!("in{i}"));
        tessera_tests::copy_into(&input, set);
        let out = tmp.path().join(format!("out{i}"));
        runs.push((run_batch(&input, &out, &addr, &key), out, set.clone()));
    }
    let outputs = |runs: &[(tokio::process::Child, PathBuf, Vec<PathBuf>)]| -> usize {
        runs.iter()
            .map(|(_, out, _)| std::fs::read_dir(out).map_or(0, |d| d.count()))
            .sum()
    };
    let total: usize = sets.iter().map(Vec::len).sum();
    let mut mid_batch = 0;
    for _ in 0..3 {
        // Let the batches make progress, then kill the master mid-way.
        let before = outputs(&runs);
        tessera_tests::eventually(T, "progress", || {
            let now = outputs(&runs);
            now >= before + 10 || now >= total
        })
        .await;
        mid_batch += usize::from(outputs(&runs) < total);
        master.signal("KILL");
        let _ = master.child.wait().await;
        master = master_on(&addr, &data).await;
    }
    assert!(mid_batch >= 2, "only {mid_batch} kills came mid-batch");
    for (run, out, set) in runs {
        let output = tokio::time::timeout(T, run.wait_with_output())
            .await
            .expect("the batch ends")
            .unwrap();
        assert!(
            output.status.success(),
            "tessera run -o {} failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        check_outputs(&out, &set);
    }
}
