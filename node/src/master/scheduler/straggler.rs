//! Stragglers: a started attempt that runs far longer than recent tasks of
//! its size gets a backup attempt on an idle worker once the queue is empty
//! (MapReduce's backup tasks, Spark's speculation). The first result wins;
//! the other attempt is told to drop the task.
//!
//! "Far longer" is `factor` × the 90th percentile of the last
//! [`SAMPLES`] execution times (start to result) of tasks in the same size
//! class (inputs within a factor of two), and never less than `floor`; a size
//! class with fewer than [`MIN_SAMPLES`] samples has no straggler yet.
//!
//! The straggling attempt keeps running as a [`Shadow`]: the task's lease
//! passes to the backup (so a task never has two live leases), the shadow's
//! heartbeats are not answered with `Drop`, its result is accepted if it comes
//! first, and its worker dying costs the task nothing. A task gets at most one
//! backup, and none while it is under suspicion (it must run alone).

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use tessera_proto::TaskEvent;

use super::{Assignment, Phase, Scheduler, Shadow, WorkerId};

/// Execution times kept per size class.
pub const SAMPLES: usize = 64;
/// Samples a size class needs before it can call a task a straggler.
pub const MIN_SAMPLES: usize = 5;

/// When to launch backup attempts.
#[derive(Debug, Clone, Copy)]
pub struct BackupConfig {
    pub enabled: bool,
    /// A straggler runs longer than this many times the 90th percentile.
    pub factor: u32,
    /// ...and longer than this.
    pub floor: Duration,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            enabled: true,
            factor: 4,
            floor: Duration::from_secs(1),
        }
    }
}

/// Recent execution times by size class (log2 of the input size).
#[derive(Debug, Default, Clone)]
pub struct Durations {
    by_class: BTreeMap<u32, VecDeque<Duration>>,
}

impl Durations {
    fn class(input_len: u64) -> u32 {
        64 - input_len.max(1).leading_zeros()
    }

    pub fn record(&mut self, input_len: u64, took: Duration) {
        let q = self.by_class.entry(Self::class(input_len)).or_default();
        if q.len() == SAMPLES {
            q.pop_front();
        }
        q.push_back(took);
    }

    /// The 90th percentile of the size class of `input_len`, once it has
    /// enough samples.
    pub fn p90(&self, input_len: u64) -> Option<Duration> {
        let q = self.by_class.get(&Self::class(input_len))?;
        if q.len() < MIN_SAMPLES {
            return None;
        }
        let mut v: Vec<Duration> = q.iter().copied().collect();
        v.sort();
        let i = (v.len() * 9).div_ceil(10) - 1;
        Some(v[i])
    }
}

/// A backup attempt decided by [`Scheduler::backups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Who runs the straggling attempt (it keeps running).
    pub straggler: WorkerId,
    pub straggling_attempt: u32,
    /// The backup: send it like any assignment.
    pub worker: WorkerId,
    pub assignment: Assignment,
}

impl Scheduler {
    /// How long a task of `input_len` bytes may run before it is a straggler.
    pub fn straggler_after(&self, input_len: u64) -> Option<Duration> {
        let b = self.config.backup;
        let p90 = self.durations.p90(input_len)?;
        Some((p90 * b.factor).max(b.floor))
    }

    /// Launches backup attempts for stragglers, longest-running first, one per
    /// idle thread of another worker, while nothing is queued.
    pub fn backups(&mut self, now: Instant) -> Vec<Backup> {
        if !self.config.backup.enabled || !self.queue.is_empty() {
            return Vec::new();
        }
        let mut stragglers: Vec<(Instant, super::TaskId)> = self
            .tasks
            .iter()
            .filter_map(|(id, t)| {
                let Phase::Leased(l) = &t.phase else {
                    return None;
                };
                // One backup per task; and none for a suspect (its lease is
                // isolated, see the invariants): it must not run twice at once.
                if t.shadow.is_some() || l.isolated {
                    return None;
                }
                let at = l.started_at?;
                let after = self.straggler_after(t.input_len)?;
                (now.saturating_duration_since(at) >= after).then_some((at, *id))
            })
            .collect();
        stragglers.sort();
        let mut out = Vec::new();
        for (_, task_id) in stragglers {
            let Some(Phase::Leased(l)) = self.tasks.get(&task_id).map(|t| &t.phase) else {
                continue;
            };
            let (holder, held) = (l.worker, l.attempt);
            let idle = self
                .workers
                .iter()
                .filter(|(id, s)| **id != holder && self.idle_threads(**id, s) > 0)
                .map(|(id, s)| (std::cmp::Reverse(s.credits), *id))
                .min()
                .map(|(_, id)| id);
            let Some(worker) = idle else {
                break;
            };
            // The straggler's lease becomes its shadow; the backup takes the lease.
            if let Some(slot) = self.workers.get_mut(&holder) {
                slot.leases.remove(&task_id);
                slot.shadows.insert(task_id);
            }
            let name = self
                .workers
                .get(&holder)
                .map_or_else(|| holder.to_string(), |s| s.name.to_string());
            let task = self.tasks.get_mut(&task_id).expect("listed above");
            task.shadow = Some(Shadow {
                worker: holder,
                attempt: held,
            });
            task.history.push(format!(
                "attempt {held} on {name}: a straggler, given a backup attempt"
            ));
            task.phase = Phase::Queued;
            self.events.push((
                task_id,
                TaskEvent::Released {
                    attempt: held,
                    worker: name,
                },
            ));
            let (worker, assignment) = self.lease_to(task_id, worker, now, false);
            out.push(Backup {
                straggler: holder,
                straggling_attempt: held,
                worker,
                assignment,
            });
        }
        out
    }
}
