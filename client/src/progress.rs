//! What `tessera run` prints as images finish, in one of three forms:
//!
//! * **bar** (stdout is a terminal): a progress bar with images done,
//!   failed and total, images/s, MB/s (of input) and the ETA; failures are
//!   printed above it as they happen, the summary line after it;
//! * **plain** (stdout is not a terminal): one `FAILED  <path> (task N):
//!   <reason>` line per failure (and a `done` line per image with `-v`),
//!   then the summary line `<done>/<total> images done, <failed> failed, in
//!   …` — scripts and tests parse these;
//! * **json** (`--json`): one JSON object per finished image, then one for
//!   the summary.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::batch::{Outcome, Report};

/// How to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar { verbose: bool },
    Plain { verbose: bool },
    Json,
}

impl Mode {
    /// `--json` wins; otherwise a bar on a terminal, plain lines elsewhere.
    pub fn choose(json: bool, verbose: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Bar { verbose }
        } else {
            Mode::Plain { verbose }
        }
    }
}

/// Counts so far, and the lines and objects they print as.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub bytes_in: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Outcome) {
        match &o.result {
            Ok(d) => {
                self.done += 1;
                self.bytes_in += d.bytes_in;
            }
            Err(_) => self.failed += 1,
        }
    }

    /// The bar's message: counts and rates after `elapsed`.
    pub fn message(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-3);
        format!(
            "{} done, {} failed · {:.1} images/s · {:.1} MB/s",
            self.done,
            self.failed,
            (self.done + self.failed) as f64 / secs,
            self.bytes_in as f64 / 1e6 / secs
        )
    }
}

/// The line printed for an image in plain and bar modes (`None`: nothing).
pub fn line(o: &Outcome, verbose: bool) -> Option<String> {
    match &o.result {
        Ok(d) if verbose => Some(format!(
            "done    {} -> {} (task {})",
            o.input.path.display(),
            d.output.display(),
            d.task
        )),
        Ok(_) => None,
        Err(f) => Some(format!(
            "FAILED  {}{}: {}",
            o.input.path.display(),
            f.task.map(|t| format!(" (task {t})")).unwrap_or_default(),
            f.reason
        )),
    }
}

/// The summary line: stable from its start up to "failed" (scripts parse it).
pub fn summary_line(report: &Report, total: usize) -> String {
    let done = report.done().count();
    let failed = report.failed().count();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let bytes: u64 = report.done().map(|d| d.bytes_in).sum();
    format!(
        "{done}/{total} images done, {failed} failed, in {secs:.2} s: {:.1} images/s, {:.1} MPix/s, {:.1} MB/s",
        done as f64 / secs,
        report.megapixels() / secs,
        bytes as f64 / 1e6 / secs
    )
}

/// One finished image, as a JSON line.
#[derive(Debug, Serialize)]
struct ImageJson<'a> {
    event: &'static str,
    input: String,
    output: Option<String>,
    task: Option<u64>,
    ok: bool,
    reason: Option<&'a str>,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
}

/// The end of a batch, as a JSON line.
#[derive(Debug, Serialize)]
struct SummaryJson {
    event: &'static str,
    total: usize,
    done: usize,
    failed: usize,
    skipped: usize,
    seconds: f64,
    images_per_s: f64,
    mb_per_s: f64,
    megapixels_per_s: f64,
}

pub fn image_json(o: &Outcome) -> String {
    let v = match &o.result {
        Ok(d) => ImageJson {
            event: "image",
            input: o.input.path.display().to_string(),
            output: Some(d.output.display().to_string()),
            task: Some(d.task.0),
            ok: true,
            reason: None,
            bytes_in: Some(d.bytes_in),
            bytes_out: Some(d.bytes_out),
        },
        Err(f) => ImageJson {
            event: "image",
            input: o.input.path.display().to_string(),
            output: None,
            task: f.task.map(|t| t.0),
            ok: false,
            reason: Some(&f.reason),
            bytes_in: None,
            bytes_out: None,
        },
    };
    serde_json::to_string(&v).expect("plain data serializes")
}

pub fn summary_json(report: &Report, total: usize, skipped: usize) -> String {
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let done = report.done().count();
    let bytes: u64 = report.done().map(|d| d.bytes_in).sum();
    let v = SummaryJson {
        event: "summary",
        total,
        done,
        failed: report.failed().count(),
        skipped,
        seconds: report.elapsed.as_secs_f64(),
        images_per_s: done as f64 / secs,
        mb_per_s: bytes as f64 / 1e6 / secs,
        megapixels_per_s: report.megapixels() / secs,
    };
    serde_json::to_string(&v).expect("plain data serializes")
}

/// Prints outcomes as they come, in one [`Mode`].
#[derive(Debug)]
pub struct Reporter {
    mode: Mode,
    tally: Tally,
    bar: Option<ProgressBar>,
    started: std::time::Instant,
}

impl Reporter {
    pub fn new(mode: Mode, total: usize) -> Reporter {
        let bar = matches!(mode, Mode::Bar { .. }).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} images  {msg}  ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("█▉▊▋▌▍▎▏ ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Reporter {
            mode,
            tally: Tally {
                total,
                ..Tally::default()
            },
            bar,
            started: std::time::Instant::now(),
        }
    }

    /// One image finished.
    pub fn outcome(&mut self, o: &Outcome) {
        self.tally.add(o);
        match self.mode {
            Mode::Json => println!("{}", image_json(o)),
            Mode::Plain { verbose } => {
                if let Some(l) = line(o, verbose) {
                    println!("{l}");
                }
            }
            Mode::Bar { verbose } => {
                if let Some(bar) = &self.bar {
                    if let Some(l) = line(o, verbose) {
                        bar.println(l);
                    }
                    bar.inc(1);
                    bar.set_message(self.tally.message(self.started.elapsed()));
                }
            }
        }
    }

    /// The batch is over: the summary.
    pub fn finish(self, report: &Report, skipped: usize) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match self.mode {
            Mode::Json => println!("{}", summary_json(report, self.tally.total, skipped)),
            Mode::Plain { .. } | Mode::Bar { .. } => {
                println!("{}", summary_line(report, self.tally.total))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tessera_proto::TaskId;

    use super::*;
    use crate::{
        batch::{Done, Failure},
        files::Input,
    };

    fn input(n: &str) -> Input {
        Input {
            path: PathBuf::from("in").join(n),
            name: PathBuf::from(n),
        }
    }

    fn done(n: &str) -> Outcome {
        Outcome {
            input: input(n),
            result: Ok(Done {
                task: TaskId(3),
                output: PathBuf::from("out").join(n),
                bytes_in: 2_000_000,
                bytes_out: 1_000_000,
                megapixels: 1.0,
            }),
        }
    }

    fn failed(n: &str) -> Outcome {
        Outcome {
            input: input(n),
            result: Err(Failure {
                task: Some(TaskId(4)),
                reason: "CRC mismatch in IDAT chunk".into(),
            }),
        }
    }

    /// tests/tests/processes.rs parses these lines: keep their shape.
    #[test]
    fn plain_lines_keep_their_format() {
        assert_eq!(line(&done("a.png"), false), None);
        assert_eq!(
            line(&done("a.png"), true).unwrap(),
            "done    in/a.png -> out/a.png (task 3)"
        );
        assert_eq!(
            line(&failed("b.png"), false).unwrap(),
            "FAILED  in/b.png (task 4): CRC mismatch in IDAT chunk"
        );
        let report = Report {
            outcomes: vec![done("a.png"), failed("b.png")],
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            summary_line(&report, 3),
            "1/3 images done, 1 failed, in 2.00 s: 0.5 images/s, 0.5 MPix/s, 1.0 MB/s"
        );
        // Nothing done: zeros, never "-0.0".
        let report = Report {
            outcomes: vec![failed("b.png")],
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            summary_line(&report, 1),
            "0/1 images done, 1 failed, in 2.00 s: 0.0 images/s, 0.0 MPix/s, 0.0 MB/s"
        );
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let v: serde_json::Value = serde_json::from_str(&image_json(&failed("b.png"))).unwrap();
        assert_eq!(v["event"], "image");
        assert_eq!(v["ok"], false);
        assert_eq!(v["task"], 4);
        assert_eq!(v["reason"], "CRC mismatch in IDAT chunk");
        let v: serde_json::Value = serde_json::from_str(&image_json(&done("a.png"))).unwrap();
        assert_eq!(v["output"], "out/a.png");
        assert_eq!(v["bytes_in"], 2_000_000);
        let report = Report {
            outcomes: vec![done("a.png")],
            elapsed: Duration::from_secs(1),
        };
        let v: serde_json::Value = serde_json::from_str(&summary_json(&report, 2, 5)).unwrap();
        assert_eq!(v["event"], "summary");
        assert_eq!(
            (v["done"].as_u64(), v["total"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(v["skipped"], 5);
        assert_eq!(v["mb_per_s"], 2.0);
    }

    #[test]
    fn the_bar_message_has_counts_and_rates() {
        let mut t = Tally::default();
        t.add(&done("a.png"));
        t.add(&failed("b.png"));
        assert_eq!(
            t.message(Duration::from_secs(2)),
            "1 done, 1 failed · 1.0 images/s · 1.0 MB/s"
        );
    }
}
