//! Blame: what a lost attempt says about its image, and what it costs the
//! task. A plain decision over the task, the lease and how it ended.
//!
//! The rules, strictest first:
//!
//! * **An image is blamed only on evidence that points at it alone**: its
//!   worker died while it was the *only* image executing there, or it ran
//!   past the task timeout on a worker whose heartbeats kept coming. At
//!   `max_attempts` pieces of evidence the task fails ([`FailureKind::Crashes`]
//!   or [`FailureKind::TimedOut`]), and the reason lists them; in a storm of
//!   worker deaths it takes more, until that many deaths alone would be
//!   implausible for an innocent image ([`super::background`]).
//! * **Suspicion is not evidence.** A worker that dies while executing several
//!   images at once casts suspicion on each (a *strike*), but condemns none:
//!   a task with a strike is handed out to run alone from then on
//!   (`super::dispatch`), so the next death names one image.
//! * **Silence is never evidence.** A worker's heartbeats run on their own
//!   timer, independent of the image work, so an image cannot make its worker
//!   silent: a lease that expires means the process or its host paused, or the
//!   network was cut. The task goes back to the queue; the worker is offered
//!   nothing more until it shows life again ([`super::lease`]). The master's
//!   silence is no evidence either: a worker that heard nothing from the
//!   master for the lease timeout gives its connection up and says so
//!   (`HangingUp`), and its leases end as [`Loss::HungUp`], not as a death.
//! * **An image that was not executing is innocent.** A prefetched task whose
//!   worker died or went silent goes back to the front of the queue.
//! * **A broken cluster is still bounded.** Every lost attempt without evidence
//!   counts towards `max_lost` (50 by default, far above what faults produce
//!   on a cluster that works); past it the task fails as
//!   [`FailureKind::WorkerLost`] with its history, instead of looping forever.

use std::time::Instant;

use tessera_proto::{FailureKind, TaskEvent, TaskId};

use super::{Phase, Scheduler, WorkerId, background::implausible};

/// How an attempt was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The worker's connection closed or broke (crash, kill, reset).
    /// `alone`: the task was the only image executing on that worker.
    Died { alone: bool },
    /// The lease expired: no heartbeat for the lease timeout.
    Silent,
    /// The worker gave its connection up after hearing nothing from the
    /// master for the lease timeout (the master stopped, or its messages
    /// were lost): silence again, from the other side.
    HungUp,
    /// The attempt ran past the task timeout on a live worker.
    TimedOut,
}

/// What a lost attempt cost the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing against the image: queued again at the front.
    Innocent,
    /// Suspicion (a strike): queued again, to run alone.
    Suspect,
    /// Evidence against the image: queued again to run alone, or failed
    /// when it is the `max_attempts`-th.
    Evidence,
}

/// Whether a task that failed as `kind` frees its idempotency key: it failed
/// for no fault of the image (machine faults, or cancelled on request), so the
/// same image submitted again is new work. A task failed for its content
/// keeps its key, and a resubmission is answered with that failure at once.
pub fn frees_key(kind: FailureKind) -> bool {
    matches!(kind, FailureKind::WorkerLost | FailureKind::Cancelled)
}

/// The plain decision: what `loss` of an attempt that had (`started`) or had
/// not begun executing says about the image.
pub fn verdict(loss: Loss, started: bool) -> Verdict {
    match (loss, started) {
        (_, false) => Verdict::Innocent,
        (Loss::Silent | Loss::HungUp, true) => Verdict::Innocent,
        (Loss::Died { alone: false }, true) => Verdict::Suspect,
        (Loss::Died { alone: true }, true) | (Loss::TimedOut, true) => Verdict::Evidence,
    }
}

impl Scheduler {
    /// Ends the live lease of `task_id` as lost: the task goes to the front
    /// of the queue, or fails when the evidence (or the losses without any)
    /// reach their bound. Returns true when it failed. The caller removes the
    /// task from the worker's lease set.
    pub(super) fn end_lease(
        &mut self,
        task_id: TaskId,
        worker_name: &str,
        loss: Loss,
        why: &str,
        now: Instant,
    ) -> bool {
        let max_evidence = self.config.max_attempts;
        let max_lost = self.config.max_lost;
        let background = self.background.rate();
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return false;
        };
        let Phase::Leased(lease) = &task.phase else {
            return false;
        };
        let attempt = lease.attempt;
        let holder = lease.worker;
        if let Some(at) = lease.started_at {
            task.exposure_ms += now.saturating_duration_since(at).as_millis() as u64;
        }
        // A worker that times out twice on the same image is the suspect:
        // its pool may be stuck, and would time out on anything.
        let again = loss == Loss::TimedOut && task.timed_out_on.contains(&holder);
        let verdict = if again {
            Verdict::Innocent
        } else {
            verdict(loss, lease.started)
        };
        if loss == Loss::TimedOut && !again {
            task.timed_out_on.push(holder);
        }
        let what = match (verdict, loss) {
            (Verdict::Innocent, Loss::TimedOut) => {
                "again on this worker (the worker is suspect, not the image)"
            }
            (Verdict::Innocent, _) if !lease.started => "before it started",
            (Verdict::Innocent, Loss::HungUp) => {
                "while it ran (not its fault: the worker heard nothing from the master)"
            }
            (Verdict::Innocent, _) => "while it ran (not its fault: the worker went silent)",
            (Verdict::Suspect, _) => "while it ran beside other images",
            (Verdict::Evidence, Loss::TimedOut) => "",
            (Verdict::Evidence, _) => "while it was the only image running there",
        };
        let entry = if what.is_empty() {
            format!("attempt {attempt} on {worker_name}: {why}")
        } else {
            format!("attempt {attempt} on {worker_name}: {why}, {what}")
        };
        task.history.push(entry.clone());
        task.lost += 1;
        match verdict {
            Verdict::Innocent => {}
            Verdict::Suspect => task.strikes += 1,
            Verdict::Evidence => {
                task.strikes += 1;
                task.evidence += 1;
            }
        }
        self.events.push((
            task_id,
            TaskEvent::Lost {
                attempt,
                worker: worker_name.to_string(),
                why: entry,
            },
        ));
        let without_evidence = task.lost - task.evidence;
        let failure = if task.evidence >= max_evidence
            && (loss == Loss::TimedOut || implausible(task.evidence, task.exposure_ms, background))
        {
            let kind = if loss == Loss::TimedOut {
                FailureKind::TimedOut
            } else {
                FailureKind::Crashes
            };
            let reason = format!(
                "failed for its content: {} attempts ended with evidence against this image alone ({})",
                task.evidence,
                task.history.join("; ")
            );
            Some((kind, reason))
        } else if without_evidence >= max_lost {
            let reason = format!(
                "gave up after {without_evidence} attempts were lost to machine faults, none pointing at this image ({})",
                task.history.join("; ")
            );
            Some((FailureKind::WorkerLost, reason))
        } else {
            None
        };
        match failure {
            Some((kind, reason)) => {
                let failed = TaskEvent::Failed {
                    attempt,
                    worker: worker_name.to_string(),
                    kind,
                    reason: reason.clone(),
                    duration_ms: 0,
                };
                self.events.push((task_id, failed));
                self.background
                    .decided(task.evidence, task.exposure_ms, Some(kind));
                task.phase = Phase::Failed { kind, reason };
                task.shadow = None;
                if frees_key(kind) && self.by_key.get(&task.key) == Some(&task_id) {
                    self.by_key.remove(&task.key);
                }
                true
            }
            None => {
                task.phase = Phase::Queued;
                self.queue.push_front(task_id);
                false
            }
        }
    }

    /// The task is under suspicion: it must run where it executes alone.
    pub(super) fn suspect(&self, task: TaskId) -> bool {
        self.tasks.get(&task).is_some_and(|t| t.strikes > 0)
    }

    /// An attempt of `task` ran past the task timeout on `worker`.
    pub(super) fn timed_out_on(&self, task: TaskId, worker: WorkerId) -> bool {
        self.tasks
            .get(&task)
            .is_some_and(|t| t.timed_out_on.contains(&worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_executing_image_alone_on_a_dead_worker_or_timed_out_is_evidence() {
        for loss in [
            Loss::Died { alone: true },
            Loss::Died { alone: false },
            Loss::Silent,
            Loss::HungUp,
            Loss::TimedOut,
        ] {
            assert_eq!(verdict(loss, false), Verdict::Innocent, "{loss:?}");
        }
        assert_eq!(verdict(Loss::Silent, true), Verdict::Innocent);
        assert_eq!(verdict(Loss::HungUp, true), Verdict::Innocent);
        assert_eq!(verdict(Loss::Died { alone: false }, true), Verdict::Suspect);
        assert_eq!(verdict(Loss::Died { alone: true }, true), Verdict::Evidence);
        assert_eq!(verdict(Loss::TimedOut, true), Verdict::Evidence);
    }
}
