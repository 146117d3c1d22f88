//! A master in a process of its own, so that its CPU time and memory can be
//! measured apart from the load that drives it. The benchmark binary starts
//! itself again with [`MASTER_DIR_ENV`] set; that copy runs only the master
//! and answers `stats` lines on its stdin with its CPU seconds and memory.
//! Closing its stdin (the parent exiting, even by a crash) stops it.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use anyhow::Context;
use tessera_node::master::{self, MasterConfig};
use tokio_util::sync::CancellationToken;

/// Set in the child: the master's data directory.
pub const MASTER_DIR_ENV: &str = "TESSERA_BENCH_MASTER_DIR";

/// The cluster key of the benchmark's masters.
pub fn bench_key() -> tessera_proto::ClusterKey {
    tessera_proto::ClusterKey::from_bytes([7; 32])
}

/// A master's resource use at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// CPU seconds used so far (all threads, user and system).
    pub cpu: f64,
    /// Resident memory now, MiB.
    pub rss_mib: f64,
    /// Peak resident memory so far, MiB.
    pub peak_rss_mib: f64,
}

/// In the child: when [`MASTER_DIR_ENV`] is set, runs the master until stdin
/// closes and returns true; otherwise returns false at once.
pub fn serve_if_child() -> anyhow::Result<bool> {
    let Some(dir) = std::env::var_os(MASTER_DIR_ENV) else {
        return Ok(false);
    };
    let rt = tokio::runtime::Runtime::new()?;
    let shutdown = CancellationToken::new();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let mut config = MasterConfig::new(dir.into());
    config.key = bench_key();
    // Up to 256 workers connect at once.
    config.max_unauthenticated = 512;
    // Every synthetic worker connects from 127.0.0.1 at once.
    config.max_unauthenticated_per_address = 512;
    let master = rt.spawn(master::run(listener, config, shutdown.clone()));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line? == "stats" {
            let s = own_stats();
            writeln!(out, "{} {} {}", s.cpu, s.rss_mib, s.peak_rss_mib)?;
            out.flush()?;
        }
    }
    shutdown.cancel();
    rt.block_on(master)??;
    Ok(true)
}

fn own_stats() -> Stats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Stats {
        cpu: crate::cpu_seconds(),
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
    }
}

/// The parent's handle on a master child process.
#[derive(Debug)]
pub struct ChildMaster {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub addr: String,
}

impl ChildMaster {
    /// Starts this executable again as a master on `data_dir`.
    pub fn spawn(data_dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .env(MASTER_DIR_ENV, data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the master process")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut addr = String::new();
        stdout.read_line(&mut addr)?;
        anyhow::ensure!(!addr.is_empty(), "the master process exited at start");
        Ok(ChildMaster {
            child,
            stdin,
            stdout,
            addr: addr.trim().to_string(),
        })
    }

    /// The master's CPU time and memory now.
    pub fn stats(&mut self) -> anyhow::Result<Stats> {
        writeln!(self.stdin, "stats")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let v: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad stats line {line:?}"))?;
        anyhow::ensure!(v.len() == 3, "bad stats line {line:?}");
        Ok(Stats {
            cpu: v[0],
            rss_mib: v[1],
            peak_rss_mib: v[2],
        })
    }

    /// Stops the master (closes its stdin) and waits for it.
    pub fn stop(self) -> anyhow::Result<()> {
        let ChildMaster {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = child.wait()?;
        anyhow::ensure!(status.success(), "the master process ended with {status}");
        Ok(())
    }
}
