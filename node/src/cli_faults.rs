//! The master's options for machine faults beyond leases: the bound on
//! attempts lost without evidence, the start-to-close timeout, and backup
//! attempts for stragglers (see `master/scheduler/blame.rs` and
//! `straggler.rs`).

use std::time::Duration;

use clap::Args;

use crate::master::scheduler::SchedulerConfig;

#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Attempts a task may lose to machine faults with no evidence against
    /// the image (workers paused, cut off, or killed while it waited or ran
    /// beside others) before it fails as "worker lost": a bound for a cluster
    /// that keeps breaking, far above what faults cost a working one.
    #[arg(long, default_value_t = 50)]
    pub max_lost: u32,
    /// An attempt that runs this long on a worker whose heartbeats keep
    /// coming is taken back and counts against the image (start to result).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub task_timeout: Duration,
    /// Never launch backup attempts for stragglers (for measuring what they gain).
    #[arg(long)]
    pub no_backup: bool,
    /// A started task is a straggler once it runs this many times longer than
    /// the 90th percentile of recent tasks of its size...
    #[arg(long, default_value_t = 4)]
    pub backup_factor: u32,
    /// ...and at least this long.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub backup_after: Duration,
}

impl FaultArgs {
    pub fn apply(&self, config: &mut SchedulerConfig) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_lost >= 1, "--max-lost must be at least 1");
        anyhow::ensure!(
            self.backup_factor >= 1,
            "--backup-factor must be at least 1"
        );
        anyhow::ensure!(
            !self.task_timeout.is_zero(),
            "--task-timeout must be more than 0"
        );
        config.max_lost = self.max_lost;
        config.task_timeout = self.task_timeout;
        config.backup.enabled = !self.no_backup;
        config.backup.factor = self.backup_factor;
        config.backup.floor = self.backup_after;
        Ok(())
    }
}
