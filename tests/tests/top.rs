//! `tessera top` in a real terminal: tmux (a private server on its own
//! socket) runs it against a master and two worker processes; the test reads
//! the screen with `capture-pane`, runs a batch, watches the progress
//! appear, types `q` with `send-keys` and checks that top exited cleanly and
//! left the terminal as it found it. Needs `tmux` (.ci/run installs it).

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use tessera_tests::{photos, spawn_master, spawn_worker};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const T: Duration = Duration::from_secs(60);

/// A tmux server of this test's own, killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): install it (apt-get install tmux; .ci/run does)")
            })
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        assert!(out.status.success(), "capture-pane: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn alternate_screen_on(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits until the screen satisfies `cond`; returns it.
    async fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < T,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_workers_and_progress_and_q_quits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_master, addr, key) = spawn_master(NODE, &tmp.path().join("data"), &[]).await;
    let slow = ["--threads", "1", "--test-delay", "200ms"];
    let _w1 = spawn_worker(NODE, &addr, &key, "top-worker-1", &slow);
    let _w2 = spawn_worker(NODE, &addr, &key, "top-worker-2", &slow);

    let tmux = Tmux {
        socket: tmp.path().join("tmux.sock"),
    };
    // The shell line after top shows how it ended, on the normal screen.
    let command = format!(
        "RUST_LOG=warn {CLIENT} top --master {addr} --key-file {} --refresh 200ms; echo \"top exited with status $?\"; sleep 600",
        key.display()
    );
    let started = tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "tmux new-session: {started:?}");

    let screen = tmux
        .wait_screen("both workers on the screen", |s| {
            s.contains("top-worker-1") && s.contains("top-worker-2")
        })
        .await;
    assert!(screen.contains("tessera top"), "{screen}");
    assert!(screen.contains(&format!("at {addr}")), "{screen}");
    assert!(screen.contains("workers: 2"), "{screen}");
    assert!(
        tmux.alternate_screen_on(),
        "top draws on the alternate screen"
    );

    // A batch: the progress and the graph follow it.
    let out = tmp.path().join("out");
    let mut args = vec!["run".to_string(), "-o".into(), out.display().to_string()];
    args.extend(photos().iter().map(|p| p.display().to_string()));
    let n = photos().len();
    let run = tokio::process::Command::new(CLIENT)
        .args(&args)
        .env("TESSERA_MASTER", &addr)
        .env(tessera_proto::KEY_FILE_ENV, &key)
        .kill_on_drop(true)
        .output();
    let ran = tokio::time::timeout(T, run).await.unwrap().unwrap();
    assert!(ran.status.success(), "{ran:?}");
    let progress = format!("{n}/{n} tasks finished ({n} done, 0 failed, 0 cancelled)");
    let screen = tmux
        .wait_screen("the batch's progress", |s| s.contains(&progress))
        .await;
    assert!(screen.contains("images completed per second"), "{screen}");
    let done_by_workers: u64 = screen
        .lines()
        .filter(|l| l.contains("top-worker-"))
        .map(|l| {
            // WORKER ADDRESS THREADS RUNNING PREFETCHED DONE ...
            let cells: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
            cells[5].parse::<u64>().unwrap_or_else(|_| panic!("{l}"))
        })
        .sum();
    assert_eq!(done_by_workers, n as u64, "{screen}");

    tmux.run(&["send-keys", "-t", "top", "q"]);
    let screen = tmux
        .wait_screen("top to exit", |s| s.contains("top exited with status"))
        .await;
    assert!(
        screen.contains("top exited with status 0"),
        "top failed on q:\n{screen}"
    );
    assert!(!tmux.alternate_screen_on(), "the alternate screen was left");
    assert!(
        !screen.contains("tessera top") && !screen.contains("top-worker-1"),
        "the normal screen is as before, without top's drawing:\n{screen}"
    );
}
