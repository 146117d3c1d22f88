//! The `tessera` command line.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tessera_proto::{TaskId, TaskState};

use crate::{
    Client,
    batch::{self, BatchOptions},
    files,
};

/// Send images through a tessera cluster: red and blue swapped, pixel-exact.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
pub struct Cli {
    /// The master's address (host:port).
    #[arg(
        long,
        global = true,
        env = "TESSERA_MASTER",
        default_value = "127.0.0.1:7878"
    )]
    pub master: String,
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
    /// relative paths kept. Exits non-zero if any image failed.
    ///
    /// Example: tessera run photos/ extra.png -o out/
    /// Example: tessera run --local photos/ -o out/   (no cluster needed)
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
    },
}

/// Entry point of the `tessera` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_node::cli::init_logging_with_default("warn");
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
        } => {
            let inputs = files::collect_inputs(&inputs)?;
            if inputs.is_empty() {
                bail!("no input files found");
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
                (Some(cluster), addr, key)
            } else {
                (None, cli.master.clone(), key()?)
            };
            let client = Arc::new(Client::connect(&addr, &key).await?);
            let total = inputs.len();
            let options = BatchOptions {
                out_dir: output,
                in_flight,
            };
            let report = batch::run(client, inputs, &options, |o| match &o.result {
                Ok(d) if verbose => println!(
                    "done    {} -> {} (task {})",
                    o.input.path.display(),
                    d.output.display(),
                    d.task
                ),
                Ok(_) => {}
                Err(f) => println!(
                    "FAILED  {}{}: {}",
                    o.input.path.display(),
                    f.task.map(|t| format!(" (task {t})")).unwrap_or_default(),
                    f.reason
                ),
            })
            .await;
            if let Some(c) = cluster {
                c.stop().await;
            }
            let done = report.done().count();
            let failed = report.failed().count();
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            println!(
                "{done}/{total} images done, {failed} failed, in {secs:.2} s: {:.1} images/s, {:.1} MPix/s",
                done as f64 / secs,
                report.megapixels() / secs
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Submit { files } => {
            let client = Client::connect(&cli.master, &key()?).await?;
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
            let client = Client::connect(&cli.master, &key()?).await?;
            for id in ids {
                let info = client.status(id).await?;
                println!("{}\t{}\t{}", info.task, info.state, info.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait { ids } => {
            let client = Client::connect(&cli.master, &key()?).await?;
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
        Command::Fetch { id, output } => {
            let client = Client::connect(&cli.master, &key()?).await?;
            let n = client.fetch_to(id, &output).await?;
            eprintln!("wrote {} ({n} bytes)", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
