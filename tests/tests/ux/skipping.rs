//! What `tessera run` leaves out: inputs whose output exists
//! (`--skip-existing`), and files in a folder that are not images.

use tessera_tests::{check_swapped, copy_into, photos};

use crate::master::{master, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_existing_resumes_an_interrupted_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker("w", &["--threads", "1"]);
    let out = tmp.path().join("out");
    let inputs = photos();
    let mut args = vec!["run", "-o", out.to_str().unwrap(), "--skip-existing"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));

    let first = m.cli(&args).await;
    assert!(first.status.success(), "{first:?}");
    // As if interrupted: one output missing, one stale and left in place.
    let missing = out.join(inputs[1].file_name().unwrap());
    std::fs::remove_file(&missing).unwrap();
    let kept = out.join(inputs[2].file_name().unwrap());
    std::fs::write(&kept, b"not touched").unwrap();

    let again = m.cli(&args).await;
    assert!(again.status.success(), "{again:?}");
    let n = inputs.len();
    assert!(
        stderr(&again).contains(&format!("skipping {} inputs whose output exists", n - 1)),
        "{again:?}"
    );
    assert!(
        stdout(&again).starts_with("1/1 images done, 0 failed"),
        "{again:?}"
    );
    check_swapped(
        &std::fs::read(&inputs[1]).unwrap(),
        &std::fs::read(&missing).unwrap(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&kept).unwrap(), b"not touched");

    // Nothing left to do: no work, success.
    let done = m.cli(&args).await;
    assert!(done.status.success(), "{done:?}");
    assert!(
        stdout(&done).starts_with("0/0 images done, 0 failed"),
        "{done:?}"
    );
}

/// A folder of photos with a README and a licence beside them: the two are
/// left out before anything is uploaded and named once, and the batch
/// succeeds (they used to fail as `not a PNG`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_s_readme_and_licence_are_skipped_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let _w = m.worker("w", &["--threads", "1"]);
    let inputs = tmp.path().join("in");
    copy_into(&inputs, &photos());
    std::fs::write(inputs.join("README.md"), "# holiday photos\n").unwrap();
    std::fs::write(inputs.join("LICENSE"), "CC-BY 4.0\n").unwrap();
    let out = tmp.path().join("out");
    let run = m
        .cli(&["run", inputs.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .await;
    assert!(run.status.success(), "{run:?}");
    let n = photos().len();
    assert!(
        stdout(&run).starts_with(&format!("{n}/{n} images done, 0 failed")),
        "{run:?}"
    );
    let notice = format!(
        "skipping 2 files that are not images (no image extension or signature): {}, {}",
        inputs.join("LICENSE").display(),
        inputs.join("README.md").display()
    );
    assert!(stderr(&run).contains(&notice), "{run:?}");
    assert!(!out.join("README.md").exists());
}
