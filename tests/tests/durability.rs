//! The durable master, with real processes and real files: a SIGKILLed
//! master restarted on its data directory loses nothing it accepted, a
//! corrupted stored file is caught by its checksum, and a full disk refuses
//! new work without harming accepted work.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::{Client, ClientError, ClusterKey, ErrorCode, FailureKind, TaskId, TaskState};
use tessera_tests::{
    Proc, check_swapped, photos,
    tmpfs::{Ballast, Tmpfs},
    valid_pngsuite,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(120);

async fn master_on(addr: &str, data: &Path) -> Proc {
    master_logged(addr, data, &[], None).await
}

/// How many times `what` stands in the log at `log` so far.
fn lines_with(log: &Path, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(what)
        .count()
}

/// A master with `extra` options, its log written to `log` if given.
async fn master_logged(addr: &str, data: &Path, extra: &[&str], log: Option<&Path>) -> Proc {
    let mut args = vec![
        "master",
        "--listen",
        addr,
        "--data-dir",
        data.to_str().unwrap(),
        "--no-mdns",
    ];
    args.extend_from_slice(extra);
    let mut m = match log {
        Some(log) => Proc::spawn_logged("master", NODE, &args, log),
        None => Proc::spawn("master", NODE, &args),
    };
    m.wait_for_line("listening on ", Duration::from_secs(30))
        .await;
    m
}

/// The cluster key a master created in its data directory.
fn key_file(data: &Path) -> PathBuf {
    data.join(tessera_proto::KEY_FILE_NAME)
}

fn key(data: &Path) -> ClusterKey {
    ClusterKey::load(&key_file(data)).unwrap()
}

fn worker(addr: &str, data: &Path, name: &str, extra: &[&str]) -> Proc {
    let key = key_file(data);
    let mut args = vec![
        "worker",
        "--master",
        addr,
        "--name",
        name,
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Proc::spawn(name, NODE, &args)
}

fn count_files(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_master_restarted_on_its_data_dir_loses_nothing_and_the_client_rides_through() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let mut master = master_on(&addr, &data).await;
    let _w1 = worker(
        &addr,
        &data,
        "w1",
        &["--threads", "1", "--test-delay", "15ms"],
    );
    let _w2 = worker(
        &addr,
        &data,
        "w2",
        &["--threads", "1", "--test-delay", "15ms"],
    );

    // 330 images: the valid PngSuite twice, in two folders.
    let input = tmp.path().join("in");
    let mut originals = Vec::new();
    for sub in ["a", "b"] {
        std::fs::create_dir_all(input.join(sub)).unwrap();
        for f in valid_pngsuite() {
            let dest = input.join(sub).join(f.file_name().unwrap());
            std::fs::copy(&f, &dest).unwrap();
            originals.push((PathBuf::from(sub).join(f.file_name().unwrap()), f));
        }
    }
    assert!(originals.len() >= 200);
    let out = tmp.path().join("out");
    let run = tokio::process::Command::new(CLIENT)
        .args([
            "run",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--master",
            &addr,
        ])
        .args(["--key-file", key_file(&data).to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Mid-batch: some results are out, most are not.
    let start = Instant::now();
    while count_files(&out) < 40 {
        assert!(start.elapsed() < T, "the batch never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    master.signal("KILL");
    let _ = master.child.wait().await;
    let before = count_files(&out);
    let killed = Instant::now();
    let _restarted = master_on(&addr, &data).await;
    println!(
        "{{\"bench\":\"durability\",\"case\":\"restart_to_listening_ms\",\"ms\":{:.1},\"outputs_before_kill\":{before}}}",
        killed.elapsed().as_secs_f64() * 1000.0
    );

    let output = tokio::time::timeout(T, run.wait_with_output())
        .await
        .expect("run ends")
        .unwrap();
    assert!(
        output.status.success(),
        "tessera run did not ride through the restart: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    for (rel, original) in &originals {
        let result =
            std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        check_swapped(&std::fs::read(original).unwrap(), &result)
            .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
    }
    // Nothing was submitted twice: the master knows exactly one task per image.
    let client = Client::connect(&addr, &key(&data)).await.unwrap();
    let mut tasks = 0;
    for id in 1..=(originals.len() as u64 + 50) {
        match client.status(TaskId(id)).await {
            Ok(info) => {
                assert_eq!(info.state, TaskState::Done, "task {id}");
                tasks += 1;
            }
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}"),
        }
    }
    assert_eq!(
        tasks,
        originals.len(),
        "one task per image, none resubmitted"
    );
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// The file of `task`'s result under `data/results/` (named `<task>.<attempt>`).
fn result_file(data: &Path, task: TaskId) -> PathBuf {
    walk(&data.join("results"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{}.", task.0))
        })
        .expect("a stored result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_stored_file_is_caught_by_its_checksum_and_never_served() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Port 0: nothing restarts here, and a port picked in advance can be
    // taken by someone else before the master binds it (seen once).
    let (_master, addr, _) = tessera_tests::spawn_master(NODE, &data, &[]).await;
    let client = Client::connect(&addr, &key(&data)).await.unwrap();
    let photo = Bytes::from(std::fs::read(&photos()[0]).unwrap());

    // A stored input damaged before any worker reads it.
    let damaged_input = client
        .submit("damaged-input.png", photo.clone())
        .await
        .unwrap();
    flip_a_byte(&data.join("inputs").join(damaged_input.0.to_string()));
    let _w = worker(&addr, &data, "w", &["--threads", "1"]);
    let info = tokio::time::timeout(T, client.wait(damaged_input))
        .await
        .unwrap()
        .unwrap();
    match &info.state {
        TaskState::Failed { kind, reason } => {
            assert_eq!(*kind, FailureKind::Corrupt);
            assert!(
                reason.starts_with("the input is corrupt: its checksum is"),
                "{reason}"
            );
        }
        other => panic!("a damaged input must fail, got {other:?}"),
    }

    // A stored result damaged before the client downloads it.
    let task = client
        .submit("damaged-result.png", photo.clone())
        .await
        .unwrap();
    let info = tokio::time::timeout(T, client.wait(task))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.state, TaskState::Done);
    flip_a_byte(&result_file(&data, task));
    match client.fetch(task).await {
        Err(ClientError::Checksum {
            task: t,
            expected,
            got,
        }) => {
            assert_eq!(t, task);
            assert_ne!(expected, got);
        }
        other => panic!("a damaged result must not be served: {other:?}"),
    }
    let out = tmp.path().join("out.png");
    let fetched = std::process::Command::new(CLIENT)
        .args([
            "fetch",
            &task.to_string(),
            "-o",
            out.to_str().unwrap(),
            "--master",
            &addr,
        ])
        .args(["--key-file", key_file(&data).to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!fetched.status.success());
    let stderr = String::from_utf8_lossy(&fetched.stderr);
    assert!(
        stderr.contains(&format!("the result of task {task} is corrupt")),
        "{stderr}"
    );
    assert!(!out.exists(), "a corrupt result is never written");
}

/// Submits photos (each under a name of its own) until the master refuses
/// one; returns what it accepted, and checks the refusal says why.
async fn fill_up(client: &Client) -> Vec<(TaskId, Bytes)> {
    let photos: Vec<Bytes> = photos()
        .iter()
        .map(|p| Bytes::from(std::fs::read(p).unwrap()))
        .collect();
    let mut accepted: Vec<(TaskId, Bytes)> = Vec::new();
    let refusal = loop {
        let data = photos[accepted.len() % photos.len()].clone();
        match client
            .submit(&format!("img-{}.png", accepted.len()), data.clone())
            .await
        {
            Ok(task) => accepted.push((task, data)),
            Err(e) => break e,
        }
        assert!(accepted.len() < 50, "a 4 MiB disk never filled up");
    };
    assert_eq!(refusal.code(), Some(ErrorCode::Storage), "{refusal}");
    let message = refusal.to_string();
    assert!(
        message.starts_with("the master cannot store the image:"),
        "{message}"
    );
    assert!(message.contains("No space left on device"), "{message}");
    assert!(!accepted.is_empty());
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_submissions_and_keeps_what_was_accepted() {
    let fs = Tmpfs::mount("4m");
    let data = fs.path().join("data");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let _master = master_on(&addr, &data).await;
    let client = Client::connect(&addr, &key(&data)).await.unwrap();
    let accepted = fill_up(&client).await;

    // The master keeps serving: everything accepted is still there.
    for (task, _) in &accepted {
        assert_eq!(client.status(*task).await.unwrap().state, TaskState::Queued);
    }
    // Free room for one result by deleting all but one accepted task, then
    // let a worker finish the one that is left.
    let (keep, keep_data) = accepted[0].clone();
    for (task, _) in &accepted[1..] {
        client.delete(*task).await.unwrap();
    }
    let _w = worker(&addr, &data, "w", &["--threads", "1"]);
    let info = tokio::time::timeout(T, client.wait(keep))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.state, TaskState::Done);
    check_swapped(&keep_data, &client.fetch(keep).await.unwrap()).unwrap();
    // And new work is accepted again.
    let photo = Bytes::from(std::fs::read(&photos()[1]).unwrap());
    let again = client.submit("after.png", photo).await.unwrap();
    let info = tokio::time::timeout(T, client.wait(again))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.state, TaskState::Done);
}

/// The promise on a full disk: an image whose result the master has no
/// room to store is innocent. With one attempt allowed (`--max-attempts
/// 1`), results refused for want of room must spend none: every image
/// waits, queued or running, through refusal after refusal, and once room
/// is made every one is done with its own pixels, with no further event
/// needed to hand them out again (the master's pause after a refusal ends
/// by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_a_full_disk_cannot_take_wait_for_room_and_never_fail() {
    let fs = Tmpfs::mount("4m");
    let data = fs.path().join("data");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("master.log");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let _master = master_logged(&addr, &data, &["--max-attempts", "1"], Some(&log)).await;
    let client = Client::connect(&addr, &key(&data)).await.unwrap();
    let accepted = fill_up(&client).await;

    // A worker now finishes images whose results have no room.
    let _w = worker(&addr, &data, "w", &["--threads", "1"]);
    let refused = || lines_with(&log, "cannot store a result");
    // More refusals than images: some image was refused, handed out again
    // after the master's pause, and refused again, on its one attempt.
    let images = accepted.len();
    tessera_tests::eventually(
        T,
        "the master to refuse an image's result a second time",
        || refused() > images,
    )
    .await;
    for (task, _) in &accepted {
        let state = client.status(*task).await.unwrap().state;
        assert!(
            matches!(state, TaskState::Queued | TaskState::Running),
            "task {task} is {state:?} while its results had no room"
        );
    }

    // Room for two results: the rest are deleted.
    let keep = accepted.len().min(2);
    for (task, _) in &accepted[keep..] {
        client.delete(*task).await.unwrap();
    }
    for (task, input) in &accepted[..keep] {
        let Ok(info) = tokio::time::timeout(T, client.wait(*task)).await else {
            panic!(
                "task {task} not done {T:?} after room was made: {:?}\nhistory: {:?}\nfiles: {:?}\nmaster's log:\n{}",
                client.status(*task).await,
                tessera_tests::history_lines(&client, *task).await,
                walk(&data),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        assert_eq!(info.unwrap().state, TaskState::Done, "task {task}");
        check_swapped(input, &client.fetch(*task).await.unwrap()).unwrap();
    }
}

/// `tessera run` against a master whose disk something else filled up: the
/// images it cannot store yet are not failed. The batch says why it waits
/// and retries; once room is made every image is done, pixel-exact, and
/// the batch exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_out_a_full_disk_and_fails_nothing() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("master.log");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let _master = master_logged(&addr, &data, &[], Some(&log)).await;
    let _w = worker(&addr, &data, "w", &["--threads", "1"]);

    // Something else fills the disk.
    let ballast = Ballast::fill(fs.path(), "ballast");

    let input = tmp.path().join("in");
    let photos = photos();
    tessera_tests::copy_into(&input, &photos);
    let out = tmp.path().join("out");
    let key = key_file(&data);
    let run = tokio::process::Command::new(CLIENT)
        .args(["run", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--master", &addr, "--key-file", key.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let refusals = || lines_with(&log, "cannot store a submission");
    // Refused, and refused again: the batch retries.
    tessera_tests::eventually(T, "the master to refuse a submission twice", || {
        refusals() >= 2
    })
    .await;
    drop(ballast);

    let output = tokio::time::timeout(T, run.wait_with_output())
        .await
        .expect("the batch ended once room was made")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains("No space left on device") && stderr.contains("retrying for up to"),
        "the batch says why it waits:\n{stderr}"
    );
    for p in &photos {
        let result = std::fs::read(out.join(p.file_name().unwrap())).unwrap();
        check_swapped(&std::fs::read(p).unwrap(), &result).unwrap();
    }
}

/// The record on a disk that fills up: a commit refused for want of room
/// fails alone. Once room is made the same open record commits again, and
/// keeps every task it had committed before.
#[test]
fn the_record_commits_again_once_a_full_disk_has_room() {
    use tessera_node::master::record::{Entry, RedbStore, RowChange, RowState, TaskRow, TaskStore};
    use tessera_proto::{EventEntry, TaskEvent};

    let fs = Tmpfs::mount("2m");
    let mut store = RedbStore::open(&fs.path().join("record.redb")).unwrap();
    let entry = |task: u64| {
        // Long names, so the disk fills in a few hundred commits.
        let name = format!("{task:04}-{}", "x".repeat(2000));
        Entry {
            task: TaskId(task),
            event: Some(EventEntry {
                at_ms: 1,
                event: TaskEvent::Submitted {
                    name: name.clone(),
                    len: 3,
                    checksum: 9,
                },
            }),
            row: RowChange::Put(TaskRow {
                name,
                input_len: 3,
                input_checksum: 9,
                key: u128::from(task),
                submitted_ms: 1,
                attempts: 0,
                lost: 0,
                history: Vec::new(),
                state: RowState::Queued,
                strikes: 0,
                evidence: 0,
                submitters: Vec::new(),
                exposure_ms: 0,
            }),
        }
    };
    // Half the disk is taken by something else.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();
    let mut next = 1u64;
    let refusal = loop {
        match store.apply(&[entry(next)], next + 1, true) {
            Ok(()) => next += 1,
            Err(e) => break e,
        }
        assert!(next < 100_000, "a 2 MiB disk never filled up");
    };
    assert!(next > 1, "nothing was committed before the disk filled");
    assert!(
        refusal.to_string().contains("No space left on device"),
        "{refusal}"
    );

    std::fs::remove_file(&ballast).unwrap();
    store
        .apply(&[entry(next)], next + 1, true)
        .expect("the record commits again once there is room");
    for task in 1..=next {
        let row = store.row(TaskId(task)).unwrap();
        assert_eq!(
            row.map(|r| r.key),
            Some(u128::from(task)),
            "task {task} of {next}"
        );
    }
}

/// The whole master on a disk that fills up while its record grows: tiny
/// images fit in the room left, until the record's own file cannot grow
/// and a commit fails. Once room is made, the same master (no restart)
/// accepts and finishes images again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_record_could_not_grow_records_again_once_there_is_room() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("master.log");
    let addr = format!("127.0.0.1:{}", tessera_tests::supervisor::free_port());
    let _master = master_logged(&addr, &data, &[], Some(&log)).await;
    let client = Client::connect(&addr, &key(&data)).await.unwrap();
    let tiny = Bytes::from(std::fs::read(&valid_pngsuite()[0]).unwrap());
    let ballast = Ballast::fill(fs.path(), "ballast");
    // Leave 64 KiB: room for a few image files, not for the record to grow.
    let len = std::fs::metadata(fs.path().join("ballast")).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(fs.path().join("ballast"))
        .unwrap()
        .set_len(len - 64 * 1024)
        .unwrap();
    let mut accepted = Vec::new();
    let refusal = loop {
        let name = format!("tiny-{}.png", accepted.len());
        match client.submit(&name, tiny.clone()).await {
            Ok(task) => accepted.push(task),
            Err(e) => break e,
        }
        assert!(accepted.len() < 10_000, "the disk never filled up");
    };
    assert_eq!(refusal.code(), Some(ErrorCode::Storage), "{refusal}");
    // The record's commit, not the image file, found the disk full.
    assert!(
        refusal
            .to_string()
            .contains("task record: I/O error: No space left on device"),
        "{refusal}"
    );
    assert!(!accepted.is_empty(), "the 64 KiB left took no image");

    drop(ballast);
    accepted.push(client.submit("after.png", tiny.clone()).await.unwrap());
    let _w = worker(&addr, &data, "w", &["--threads", "1"]);
    // Everything accepted before the refusal, and after it, is done.
    for task in accepted {
        let info = tokio::time::timeout(T, client.wait(task))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.state, TaskState::Done, "task {task}");
        check_swapped(&tiny, &client.fetch(task).await.unwrap()).unwrap();
    }
}
