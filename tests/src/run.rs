//! `tessera run --json` as a real process: its JSON lines read as they come
//! (each stamped with when it arrived), and the oracle a batch is judged by:
//! every innocent image reported once, done, under a task of its own and
//! pixel-exact; the poison (if any) failed with a reason; the exit status
//! says so.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Proc, check_swapped, supervisor::Locate};

/// One finished image as `tessera run --json` reported it.
#[derive(Debug, Clone)]
pub struct ImageLine {
    /// When the line arrived, since the run started.
    pub at: Duration,
    pub input: String,
    pub output: Option<String>,
    pub task: Option<u64>,
    pub ok: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
struct Lines {
    images: Vec<ImageLine>,
    summary: Option<serde_json::Value>,
    /// stdout lines that are not the JSON objects of `--json`.
    other: Vec<String>,
}

/// A `tessera run --json` process.
#[derive(Debug)]
pub struct Run {
    pub proc: Proc,
    pub started: Instant,
    lines: Arc<Mutex<Lines>>,
    reader: tokio::task::JoinHandle<()>,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub images: Vec<ImageLine>,
    pub summary: Option<serde_json::Value>,
    pub other: Vec<String>,
    pub elapsed: Duration,
}

impl Run {
    /// Starts `tessera run INPUT -o OUT --json` (the binary at `client`)
    /// for the master `locate` names, with the key in `key`.
    pub fn start(
        client: &str,
        key: &Path,
        locate: &Locate,
        input: &Path,
        out: &Path,
        extra: &[&str],
    ) -> Run {
        let mut args: Vec<String> = vec![
            "run".into(),
            input.to_str().expect("utf-8 path").into(),
            "-o".into(),
            out.to_str().expect("utf-8 path").into(),
            "--json".into(),
            "--key-file".into(),
            key.to_str().expect("utf-8 path").into(),
        ];
        args.extend(locate.args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = Proc::spawn("tessera run", client, &args);
        let started = Instant::now();
        let stdout = proc.child.stdout.take().expect("stdout piped");
        let lines = Arc::new(Mutex::new(Lines::default()));
        let sink = lines.clone();
        let reader = tokio::spawn(async move {
            let mut rd = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = rd.next_line().await {
                let at = started.elapsed();
                let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
                let mut l = sink.lock().unwrap();
                match parsed {
                    Some(v) if v["event"] == "image" => l.images.push(ImageLine {
                        at,
                        input: v["input"].as_str().unwrap_or_default().into(),
                        output: v["output"].as_str().map(String::from),
                        task: v["task"].as_u64(),
                        ok: v["ok"] == true,
                        reason: v["reason"].as_str().map(String::from),
                    }),
                    Some(v) if v["event"] == "summary" => l.summary = Some(v),
                    _ => l.other.push(line),
                }
            }
        });
        Run {
            proc,
            started,
            lines,
            reader,
        }
    }

    /// Images reported so far.
    pub fn reported(&self) -> usize {
        self.lines.lock().unwrap().images.len()
    }

    /// The images reported so far.
    pub fn images(&self) -> Vec<ImageLine> {
        self.lines.lock().unwrap().images.clone()
    }

    /// `Some` once the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.proc.child.try_wait().expect("poll tessera run")
    }

    /// Waits for the process to exit (up to `deadline`) and for its last lines.
    pub async fn finish(mut self, deadline: Duration) -> Result<RunOutput, String> {
        let status = match tokio::time::timeout(deadline, self.proc.child.wait()).await {
            Ok(s) => s.expect("wait for tessera run"),
            Err(_) => {
                let n = self.reported();
                return Err(format!(
                    "tessera run did not end within {deadline:?} ({n} images reported)"
                ));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
        let l = std::mem::take(&mut *self.lines.lock().unwrap());
        Ok(RunOutput {
            status,
            images: l.images,
            summary: l.summary,
            other: l.other,
            elapsed: self.started.elapsed(),
        })
    }
}

/// What a batch should have come to.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The input directory given to `tessera run`.
    pub input_dir: PathBuf,
    /// The output directory.
    pub output_dir: PathBuf,
    /// Every input's path relative to `input_dir`.
    pub innocent: Vec<PathBuf>,
    /// The image that must fail, relative to `input_dir`.
    pub poison: Option<PathBuf>,
}

/// The judgement of a batch: counts, and every way it broke the promise.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Innocent images reported failed, with their reasons.
    pub innocent_failures: Vec<String>,
    /// Images reported more than once, or two images under one task.
    pub duplicates: usize,
    /// When the poison's failure was reported, since the run started.
    pub poison_failed_at: Option<Duration>,
    pub poison_reason: Option<String>,
    /// Everything wrong, one line each (empty: the batch kept the promise).
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Judges `out` against `expected`: every innocent image reported once,
/// done, under a distinct task, its output pixel-exact (checked here with
/// [`check_swapped`]); the poison reported once, failed, with a reason; the
/// exit status 1 with a poison and 0 without.
pub fn judge(out: &RunOutput, expected: &Expected) -> Verdict {
    let mut v = Verdict::default();
    let key = |rel: &Path| expected.input_dir.join(rel).display().to_string();
    let mut by_input: BTreeMap<&str, Vec<&ImageLine>> = BTreeMap::new();
    for line in &out.images {
        by_input.entry(line.input.as_str()).or_default().push(line);
    }
    let mut by_task: BTreeMap<u64, &str> = BTreeMap::new();
    for line in &out.images {
        if let Some(t) = line.task
            && let Some(other) = by_task.insert(t, &line.input)
            && other != line.input
        {
            v.duplicates += 1;
            v.problems.push(format!(
                "task {t} reported for both {other} and {}",
                line.input
            ));
        }
    }
    for rel in &expected.innocent {
        let input = key(rel);
        let lines = by_input.remove(input.as_str()).unwrap_or_default();
        match lines.len() {
            0 => {
                v.problems.push(format!("{input}: never reported"));
                continue;
            }
            1 => {}
            n => {
                v.duplicates += n - 1;
                v.problems.push(format!("{input}: reported {n} times"));
            }
        }
        let line = lines[0];
        if !line.ok {
            let reason = line.reason.clone().unwrap_or_default();
            v.innocent_failures.push(format!("{input}: {reason}"));
            v.problems.push(format!(
                "innocent {input} (task {:?}) failed: {reason}",
                line.task
            ));
            continue;
        }
        let original = std::fs::read(&input).expect("read an input");
        let result = match std::fs::read(expected.output_dir.join(rel)) {
            Ok(r) => r,
            Err(e) => {
                v.problems.push(format!("{input}: no output: {e}"));
                continue;
            }
        };
        if let Err(e) = check_swapped(&original, &result) {
            v.problems.push(format!("{input}: wrong pixels: {e}"));
        }
    }
    if let Some(rel) = &expected.poison {
        let input = key(rel);
        let lines = by_input.remove(input.as_str()).unwrap_or_default();
        match lines.as_slice() {
            [] => v.problems.push(format!("poison {input}: never reported")),
            [line, rest @ ..] => {
                if !rest.is_empty() {
                    v.duplicates += rest.len();
                    v.problems
                        .push(format!("poison {input}: reported {} times", lines.len()));
                }
                if line.ok {
                    v.problems.push(format!("poison {input} was reported done"));
                } else {
                    v.poison_failed_at = Some(line.at);
                    v.poison_reason = line.reason.clone();
                    if line.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                        v.problems
                            .push(format!("poison {input} failed without a reason"));
                    }
                }
            }
        }
    }
    for (input, lines) in by_input {
        v.problems.push(format!(
            "{input}: reported {} times but never submitted",
            lines.len()
        ));
    }
    let want = if expected.poison.is_some() { 1 } else { 0 };
    if out.status.code() != Some(want) {
        v.problems.push(format!(
            "tessera run exited with {} (want exit status {want})",
            out.status
        ));
    }
    if !out.other.is_empty() {
        v.problems.push(format!(
            "tessera run --json printed lines that are not JSON: {:?}",
            out.other
        ));
    }
    v
}

/// `tessera history TASK` (the binary at `client`): the task's recorded
/// events, one per line, or the command's error output.
pub async fn history(client: &str, key: &Path, locate: &Locate, task: u64) -> String {
    let mut args: Vec<String> = vec![
        "history".into(),
        task.to_string(),
        "--key-file".into(),
        key.to_str().expect("utf-8 path").into(),
    ];
    args.extend(locate.args());
    let out = tokio::process::Command::new(client)
        .args(&args)
        .env("RUST_LOG", "warn")
        .env(crate::TEST_SWITCHES_ENV, "1")
        .output()
        .await
        .expect("run tessera history");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&format!(
            "tessera history {task} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    text
}
