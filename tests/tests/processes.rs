//! The whole path an image takes, with every part a real process: a master
//! and two workers started as `tessera-node` processes on 127.0.0.1:0, and
//! the `tessera` CLI pushing the whole corpus through them.

use std::{collections::BTreeMap, path::Path, time::Duration};

use tessera_tests::{
    Proc, bad_pngs, check_swapped, copy_into, corrupt_pngsuite, photos, reasons::corrupt_reason,
    spawn_master, valid_pngsuite,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_master_and_two_worker_processes_is_pixel_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("master-data");
    let (_master, addr, key_file) = spawn_master(NODE, &data, &[]).await;
    let key = key_file.to_str().unwrap();
    let worker = |name| {
        let args = [
            "worker",
            "--master",
            &addr,
            "--threads",
            "1",
            "--key-file",
            key,
        ];
        Proc::spawn(name, NODE, &args)
    };
    let _w1 = worker("worker 1");
    let _w2 = worker("worker 2");

    // A batch mixing every valid image with every corrupt one, in nested folders.
    let inputs = tmp.path().join("in");
    let good: Vec<_> = valid_pngsuite().into_iter().chain(photos()).collect();
    let bad: Vec<_> = corrupt_pngsuite().into_iter().chain(bad_pngs()).collect();
    copy_into(&inputs.join("good/suite"), &valid_pngsuite());
    copy_into(&inputs.join("good/photos"), &photos());
    copy_into(&inputs.join("bad/suite"), &corrupt_pngsuite());
    copy_into(&inputs.join("bad/other"), &bad_pngs());
    let out = tmp.path().join("out");

    let run = tokio::process::Command::new(CLIENT)
        .args(["run", inputs.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--master", &addr, "--key-file", key])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("tessera run finished within 5 minutes")
        .expect("tessera run started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "corrupt inputs must make `run` exit non-zero:\n{stdout}"
    );

    // Every good image came back pixel-exact, at its relative path.
    let mut problems = Vec::new();
    for (sub, files) in [("good/suite", valid_pngsuite()), ("good/photos", photos())] {
        for f in files {
            let name = f.file_name().unwrap();
            let result = out.join(sub).join(name);
            match std::fs::read(&result) {
                Ok(bytes) => {
                    if let Err(e) = check_swapped(&std::fs::read(&f).unwrap(), &bytes) {
                        problems.push(format!("{}: {e}", f.display()));
                    }
                }
                Err(e) => problems.push(format!("{}: no output ({e})", f.display())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} bad outputs:\n{}\n{stdout}",
        problems.len(),
        problems.join("\n")
    );

    // Every corrupt image is reported, by name, with a specific reason; no
    // output is written for it.
    let failures: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED  "))
        .map(|l| {
            let (path, reason) = l.split_once(": ").expect("FAILED line has a reason");
            let file = Path::new(path.split(" (task").next().unwrap());
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                reason.to_string(),
            )
        })
        .collect();
    for f in &bad {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let reason = failures
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not reported:\n{stdout}"));
        assert_eq!(reason, corrupt_reason(&name), "{name}");
    }
    assert_eq!(
        failures.len(),
        bad.len(),
        "only the corrupt inputs fail:\n{stdout}"
    );
    assert!(!out.join("bad").exists(), "no output for a failed input");
    let summary = stdout.lines().last().unwrap();
    let want = format!(
        "{}/{} images done, {} failed",
        good.len(),
        good.len() + bad.len(),
        bad.len()
    );
    assert!(
        summary.starts_with(&want),
        "summary {summary:?}, want {want:?}"
    );

    // A few reasons, pinned exactly: what a user sees for common damage.
    assert_eq!(
        failures["xs1n0g01.png"]
            .split(' ')
            .take(4)
            .collect::<Vec<_>>(),
        ["not", "a", "PNG:", "bad"]
    );
    assert_eq!(failures["xcsn0g01.png"], "CRC mismatch in IDAT chunk");
    assert_eq!(failures["xhdn0g08.png"], "CRC mismatch in IHDR chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_status_wait_fetch_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_master, addr, key_file) = spawn_master(NODE, &data, &[]).await;
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(CLIENT);
        c.args(args)
            .env("TESSERA_MASTER", &addr)
            .env("TESSERA_KEY_FILE", &key_file);
        c
    };
    let photo = &photos()[0];
    let submitted = cli(&["submit", photo.to_str().unwrap()]).output().unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let id = String::from_utf8(submitted.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        id.parse::<u64>().is_ok(),
        "submit prints a task id, got {id:?}"
    );

    // No worker yet: the task waits in the queue, and has no result.
    let status = cli(&["status", &id]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("queued"),
        "{status:?}"
    );
    let early = cli(&[
        "fetch",
        &id,
        "-o",
        tmp.path().join("x.png").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("no result yet"),
        "{early:?}"
    );

    let key = key_file.to_str().unwrap();
    let _worker = Proc::spawn(
        "worker",
        NODE,
        &["worker", "--master", &addr, "--key-file", key],
    );
    let waited = cli(&["wait", &id]).output().unwrap();
    assert!(waited.status.success(), "{waited:?}");
    assert!(
        String::from_utf8_lossy(&waited.stdout).contains("done"),
        "{waited:?}"
    );
    let out = tmp.path().join("result.png");
    let fetched = cli(&["fetch", &id, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    check_swapped(
        &std::fs::read(photo).unwrap(),
        &std::fs::read(&out).unwrap(),
    )
    .unwrap();

    let missing = cli(&["status", "999999"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no task 999999"),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_local_needs_no_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let photos = photos();
    let mut args = vec![
        "run".to_string(),
        "--local".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
    ];
    args.extend(photos.iter().map(|p| p.to_str().unwrap().to_string()));
    let run = tokio::process::Command::new(CLIENT)
        .args(&args)
        // Make sure it is not silently using some other master.
        .env("TESSERA_MASTER", "127.0.0.1:9")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    for p in &photos {
        let result = std::fs::read(out.join(p.file_name().unwrap())).unwrap();
        check_swapped(&std::fs::read(p).unwrap(), &result).unwrap();
    }
}

/// The synthetic task mode (`worker --synthetic`, for load tests): every
/// task is done with its input returned unchanged, even one that is not an
/// image (a real worker would fail it as undecodable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synthetic_worker_returns_each_input_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_master, addr, key_file) = spawn_master(NODE, &data, &[]).await;
    let key = tessera_proto::ClusterKey::load(&key_file).unwrap();
    let _worker =
        tessera_tests::spawn_worker(NODE, &addr, &key_file, "synthetic", &["--synthetic"]);
    let client = tessera_client::Client::connect(&addr, &key).await.unwrap();
    let inputs = [
        std::fs::read(&photos()[0]).unwrap(),
        b"not an image at all".to_vec(),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let task = client
            .submit(&format!("{i}.png"), bytes::Bytes::from(input.clone()))
            .await
            .unwrap();
        let info = tokio::time::timeout(Duration::from_secs(60), client.wait(task))
            .await
            .expect("done within a minute")
            .unwrap();
        assert_eq!(info.state, tessera_proto::TaskState::Done, "{info:?}");
        let result = client.fetch(task).await.unwrap();
        assert_eq!(&result[..], &input[..], "input {i} returned unchanged");
    }
}
