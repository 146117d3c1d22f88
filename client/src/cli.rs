//! The `tessera` command line.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tessera_proto::{FailureKind, TaskId, TaskState};

use tessera_node::discovery::{DEFAULT_CLUSTER, parse_cluster};

use crate::{
    batch::{self, BatchOptions},
    cluster_view, files, locate,
    progress::{Mode, Reporter},
    top,
};

/// Send images through a tessera cluster: red and blue swapped, pixel-exact.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  tessera run photos/ -o out/           process a folder (the master found by mDNS)\n  tessera run --local photos/ -o out/   no cluster needed\n  tessera cluster                       the workers, the queue, the throughput\n  tessera top                           the same, live"
)]
pub struct Cli {
    /// The master's address (host:port); skips mDNS discovery entirely.
    #[arg(long, global = true, env = "TESSERA_MASTER")]
    pub master: Option<String>,
    /// Without --master: the cluster whose master to find on the LAN by mDNS.
    #[arg(
        long,
        global = true,
        env = "TESSERA_CLUSTER",
        default_value = DEFAULT_CLUSTER,
        value_parser = parse_cluster
    )]
    pub cluster: String,
    /// A copy of the master's cluster.key (not needed with `run --local`).
    #[arg(long, global = true, env = tessera_proto::KEY_FILE_ENV, value_name = "PATH")]
    pub key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process files and directories; write results under -o DIR.
    ///
    /// Directories are walked recursively (hidden files skipped) and their
    /// relative paths kept. On a terminal a progress bar shows images done,
    /// failed and total, images/s, MB/s and the time left; elsewhere a line
    /// is printed per failure, then a summary. Exits non-zero if any image
    /// failed.
    ///
    /// Example: tessera run photos/ extra.png -o out/
    ///
    /// Example: tessera run --local photos/ -o out/   (no cluster needed)
    ///
    /// Example: tessera run photos/ -o out/ --skip-existing   (resume an interrupted batch)
    ///
    /// Example: tessera run photos/ -o out/ --json | jq 'select(.ok == false)'
    Run {
        /// Image files and directories.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
        /// Start a master and workers in this process instead of connecting to one.
        #[arg(long)]
        local: bool,
        /// Workers of the `--local` cluster.
        #[arg(long, default_value_t = 2, requires = "local")]
        workers: usize,
        /// Images in flight at once.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Print a line for every image, not just failures.
        #[arg(short, long)]
        verbose: bool,
        /// Print one JSON object per finished image and one for the summary
        /// (for scripts), instead of the bar or the plain lines.
        #[arg(long)]
        json: bool,
        /// Leave out inputs whose output already exists under -o (outputs are
        /// written atomically, so an existing one is complete).
        #[arg(long)]
        skip_existing: bool,
    },
    /// Upload images; print one task id per line.
    ///
    /// Example: tessera submit a.png b.png
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a task's state.
    ///
    /// Example: tessera status 42
    Status {
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Wait until tasks are done or failed; exit non-zero if any failed.
    ///
    /// Example: tessera wait 42 43
    Wait {
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Download a done task's result.
    ///
    /// Example: tessera fetch 42 -o out.png
    Fetch {
        id: TaskId,
        #[arg(short, long)]
        output: PathBuf,
        /// Leave the result on the master (by default the download is
        /// confirmed once written, and the master removes the result).
        #[arg(long)]
        keep: bool,
    },
    /// Show a task's recorded events: submission, leases, each attempt's
    /// outcome and duration.
    ///
    /// Example: tessera history 42
    History { id: TaskId },
    /// Remove tasks and their files from the master.
    ///
    /// Example: tessera delete 42 43
    Delete {
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Cancel tasks, queued or running.
    ///
    /// A queued task is cancelled at once; a running one too, and its worker
    /// stops working on it. A cancelled task fails with the reason
    /// "cancelled on request …". One that was already done or failed is left
    /// as it is, and the exit status is 1.
    ///
    /// Example: tessera cancel 42 43
    Cancel {
        /// Task ids, as `tessera submit` printed them.
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Show the master, its workers, the queue and the recent throughput.
    ///
    /// For each worker: its address, threads, running and prefetched tasks,
    /// images done and failed, and how long ago it sent a heartbeat.
    ///
    /// Example: tessera cluster
    ///
    /// Example: tessera cluster --json | jq '.workers[].name'
    Cluster {
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The cluster live in the terminal, with a throughput graph; q quits.
    ///
    /// The same figures as `tessera cluster`, refreshed every --refresh, with
    /// a progress gauge and images completed per second over the last minute.
    ///
    /// Example: tessera top
    ///
    /// Example: tessera top --refresh 500ms --master 192.0.2.10:7878
    Top {
        /// How often to ask the master for a new snapshot.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        refresh: Duration,
    },
    /// List the masters mDNS sees on the LAN: cluster, protocol version,
    /// whether they accept connections, addresses.
    ///
    /// Example: tessera discover --wait 3
    Discover {
        /// Seconds to listen for answers.
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
    },
}

/// How long `run` keeps trying to reach a master that went away (or whose
/// disk refuses its images).
const RECONNECT_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// `at_ms` (ms since the Unix epoch) as RFC 3339 UTC with milliseconds.
fn format_time(at_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Entry point of the `tessera` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `top` owns the terminal: a log line would tear its screen, so it logs
    // only when RUST_LOG asks for it.
    let default_log = match cli.command {
        Command::Top { .. } => "off",
        _ => "warn",
    };
    tessera_node::cli::init_logging_with_default(default_log);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", tessera_node::cli_error::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (master, cluster_name) = (cli.master, cli.cluster);
    // The cluster key from --key-file / TESSERA_KEY_FILE, or an error saying how to get one.
    let key_file = cli.key_file.clone();
    let key = || tessera_node::cli_security::peer_key(key_file.as_deref());
    match cli.command {
        Command::Run {
            inputs,
            output,
            local,
            workers,
            in_flight,
            verbose,
            json,
            skip_existing,
        } => {
            let files::Collected {
                inputs: all,
                not_images,
            } = files::collect_inputs(&inputs)?;
            if !not_images.is_empty() {
                eprintln!("{}", files::not_images_notice(&not_images));
            }
            if all.is_empty() {
                let args: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
                bail!(
                    "no input files found in {}; pass image files, or directories that contain some (hidden files are skipped)",
                    args.join(", ")
                );
            }
            let (inputs, skipped) = if skip_existing {
                files::without_existing_outputs(all, &output)
            } else {
                (all, 0)
            };
            if skipped > 0 {
                eprintln!(
                    "skipping {skipped} inputs whose output exists in {}",
                    output.display()
                );
            }
            let total = inputs.len();
            let mode = Mode::choose(json, verbose);
            if inputs.is_empty() {
                let report = batch::Report {
                    outcomes: Vec::new(),
                    elapsed: Duration::ZERO,
                };
                Reporter::new(mode, 0).finish(&report, skipped);
                return Ok(ExitCode::SUCCESS);
            }
            let (cluster, addr, key) = if local {
                let cluster = tessera_node::dev::DevCluster::start(
                    tessera_node::dev::DevConfig::new(workers.max(1)),
                )
                .await
                .context("cannot start the local cluster")?;
                let addr = cluster.addr.to_string();
                eprintln!("started a local cluster: master {addr}, {workers} workers");
                let key = cluster.key.clone();
                (Some(cluster), Some(addr), key)
            } else {
                (None, master, key()?)
            };
            // Rides through a master restart: reconnects and resumes.
            let client = Arc::new(
                locate::connect_reconnecting(addr.as_deref(), &cluster_name, &key, RECONNECT_FOR)
                    .await?,
            );
            let options = BatchOptions {
                out_dir: output,
                in_flight,
            };
            let mut reporter = Reporter::new(mode, total);
            let report = batch::run(client, inputs, &options, |o| reporter.outcome(o)).await;
            if let Some(c) = cluster {
                c.stop().await;
            }
            let failed = report.failed().count();
            reporter.finish(&report, skipped);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Submit { files } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let id = client
                    .submit_file(&f, &name)
                    .await
                    .with_context(|| format!("{}", f.display()))?;
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { ids } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            for id in ids {
                let info = client.status(id).await?;
                println!("{}\t{}\t{}", info.task, info.state, info.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait { ids } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            let mut ok = true;
            for id in ids {
                let info = client.wait(id).await?;
                ok &= matches!(info.state, TaskState::Done);
                println!("{}\t{}\t{}", info.task, info.state, info.name);
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Fetch { id, output, keep } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            let n = client.fetch_to(id, &output).await?;
            if !keep {
                client.confirm(id).await?;
            }
            eprintln!("wrote {} ({n} bytes)", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::History { id } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            for e in client.history(id).await? {
                println!("{}  {}", format_time(e.at_ms), e.event);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { ids } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            for id in ids {
                client.delete(id).await?;
                println!("deleted {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { ids } => {
            let client = locate::connect(master.as_deref(), &cluster_name, &key()?).await?;
            let mut ok = true;
            for id in ids {
                match client.cancel(id).await {
                    Ok(info) => match &info.state {
                        TaskState::Failed {
                            kind: FailureKind::Cancelled,
                            ..
                        } => println!("cancelled {id} ({})", info.name),
                        state => {
                            ok = false;
                            eprintln!("task {id} was already {state}; nothing to cancel");
                        }
                    },
                    Err(e) => {
                        ok = false;
                        eprintln!("task {id}: {e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Cluster { json } => {
            let conn = locate::connect_reconnecting(
                master.as_deref(),
                &cluster_name,
                &key()?,
                Duration::ZERO,
            )
            .await?;
            let info = conn.run(|c| async move { c.cluster().await }).await?;
            if json {
                println!("{}", cluster_view::json(&info, &conn.addr()));
            } else {
                print!("{}", cluster_view::render(&info, &conn.addr()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Top { refresh } => {
            anyhow::ensure!(
                refresh >= Duration::from_millis(100),
                "--refresh must be at least 100ms"
            );
            // Keeps trying while the master is away (the screen says so).
            let conn = locate::connect_reconnecting(
                master.as_deref(),
                &cluster_name,
                &key()?,
                Duration::from_secs(24 * 3600),
            )
            .await?;
            let addr = conn.addr();
            top::run(Arc::new(conn), addr, refresh).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Discover { wait } => {
            anyhow::ensure!(
                wait.is_finite() && wait >= 0.0,
                "--wait must be a number of seconds"
            );
            let wait = std::time::Duration::from_secs_f64(wait);
            let masters = locate::discover(wait).await?;
            print!("{}", locate::render(&masters));
            if masters.is_empty() {
                eprintln!("no tessera master answered on mDNS within {wait:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
