//! What workers report about their leases: a result (the first one wins),
//! a failure, a start, a task given back, or a result the master
//! could not store or deliver.

use std::time::{Duration, Instant};

use tessera_proto::{FailureKind, TaskEvent, TaskId};

use super::{Outcome, Phase, Scheduler, WorkerId};

impl Scheduler {
    /// The master could not store the result of (`task`, `attempt`): the
    /// task is queued again at the front without counting the attempt as
    /// lost, whoever holds it now. Nothing happens to a task that is
    /// queued or already decided.
    pub fn not_stored(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32, why: &str) {
        let Some(Phase::Leased(l)) = self.tasks.get(&task_id).map(|t| &t.phase) else {
            return;
        };
        let holder = l.worker;
        let name = self
            .workers
            .get(&worker)
            .map_or_else(|| worker.to_string(), |s| s.name.to_string());
        let event = TaskEvent::Lost {
            attempt,
            worker: name,
            why: format!("result not stored: {why}"),
        };
        self.events.push((task_id, event));
        self.requeue_front(holder, task_id);
    }

    /// An assignment never reached its worker (its connection closed first):
    /// the task goes back to the front of the queue without losing an attempt.
    pub fn undeliverable(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) {
        if self.lease_mut(worker, task_id, attempt).is_some() {
            self.requeue_front(worker, task_id);
        }
    }

    fn requeue_front(&mut self, worker: WorkerId, task_id: TaskId) {
        let name = self.workers.get_mut(&worker).map(|slot| {
            slot.leases.remove(&task_id);
            slot.name.to_string()
        });
        if let Some(task) = self.tasks.get_mut(&task_id) {
            if let Phase::Leased(l) = &task.phase {
                let worker = name.unwrap_or_else(|| worker.to_string());
                self.events.push((
                    task_id,
                    TaskEvent::Released {
                        attempt: l.attempt,
                        worker,
                    },
                ));
            }
            task.phase = Phase::Queued;
            self.queue.push_front(task_id);
        }
    }

    /// A worker returned a result. The first result of a task wins, whichever
    /// attempt produced it (an attempt whose lease expired included: its result
    /// is as good as any); any later one is stale and changes nothing.
    /// Every other attempt still running (the live lease, a straggler that a
    /// backup replaced) is returned: its holder must be told to drop the task.
    pub fn complete(
        &mut self,
        reporter: WorkerId,
        task_id: TaskId,
        attempt: u32,
        output_len: u64,
        output_checksum: u64,
        now: Instant,
    ) -> (Outcome, Vec<(WorkerId, u32)>) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return (Outcome::Unknown, Vec::new());
        };
        if attempt == 0 || attempt > task.attempts {
            return (Outcome::Stale, Vec::new());
        }
        let shadow = task.shadow.take();
        let (to_drop, duration, ran) = match &task.phase {
            Phase::Done { .. } | Phase::Failed { .. } => return (Outcome::Stale, Vec::new()),
            Phase::Queued => (None, Duration::ZERO, None),
            Phase::Leased(l) => {
                let (took, ran) = if l.attempt == attempt {
                    let ran = l.started_at.map(|at| now.saturating_duration_since(at));
                    (now - l.leased_at, ran)
                } else {
                    (Duration::ZERO, None)
                };
                (Some((l.worker, l.attempt)), took, ran)
            }
        };
        if let Some(ran) = ran {
            self.durations.record(task.input_len, ran);
            task.exposure_ms += ran.as_millis() as u64;
        }
        if matches!(task.phase, Phase::Queued) {
            self.queue.retain(|t| *t != task_id);
        }
        self.background
            .decided(task.evidence, task.exposure_ms, None);
        task.phase = Phase::Done {
            output_len,
            output_checksum,
            attempt,
            done_ms: self.wall_ms,
            removed: false,
        };
        if let Some(slot) = self.workers.get(&reporter) {
            task.last_worker = Some(slot.name.clone());
        }
        let worker = task.last_worker.as_deref().unwrap_or("?").to_string();
        self.events.push((
            task_id,
            TaskEvent::Completed {
                attempt,
                worker,
                len: output_len,
                checksum: output_checksum,
                duration_ms: duration.as_millis() as u64,
            },
        ));
        self.recent.record(now, task.input_len);
        if let Some(slot) = self.workers.get_mut(&reporter) {
            slot.stats.done += 1;
        }
        let mut drops = Vec::new();
        if let Some((holder, held)) = to_drop {
            if let Some(slot) = self.workers.get_mut(&holder) {
                slot.leases.remove(&task_id);
            }
            if holder != reporter || held != attempt {
                drops.push((holder, held));
            }
        }
        if let Some(sh) = shadow {
            if let Some(slot) = self.workers.get_mut(&sh.worker) {
                slot.shadows.remove(&task_id);
            }
            if sh.worker != reporter || sh.attempt != attempt {
                drops.push((sh.worker, sh.attempt));
            }
        }
        (Outcome::Accepted, drops)
    }

    /// A worker reports that the input cannot be processed (a deterministic
    /// failure: no retry). Only the live lease may fail a task.
    pub fn fail(
        &mut self,
        worker: WorkerId,
        task_id: TaskId,
        attempt: u32,
        kind: FailureKind,
        reason: String,
        now: Instant,
    ) -> Outcome {
        if !self.tasks.contains_key(&task_id) {
            return Outcome::Unknown;
        }
        let Some(lease) = self.lease_mut(worker, task_id, attempt) else {
            return Outcome::Stale;
        };
        let leased_at = lease.leased_at;
        if let Some(task) = self.tasks.get_mut(&task_id) {
            let name = task.last_worker.as_deref().unwrap_or("?").to_string();
            let duration_ms = now.saturating_duration_since(leased_at).as_millis() as u64;
            let event = TaskEvent::Failed {
                attempt,
                worker: name,
                kind,
                reason: reason.clone(),
                duration_ms,
            };
            self.events.push((task_id, event));
            self.background
                .decided(task.evidence, task.exposure_ms, Some(kind));
            task.phase = Phase::Failed { kind, reason };
            task.shadow = None;
        }
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.leases.remove(&task_id);
            slot.stats.failed += 1;
        }
        Outcome::Accepted
    }

    /// The worker began processing the task.
    pub fn started(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32, now: Instant) {
        if let Some(lease) = self.lease_mut(worker, task_id, attempt)
            && !lease.started
        {
            lease.started = true;
            lease.started_at = Some(now);
            lease.releasing = false;
        }
    }

    /// The worker gave the task back: unstarted (to be stolen, or because it
    /// is draining), or started by a draining worker whose grace ran out
    /// (it stopped the task and says so, so nothing about the image is
    /// suspect). Either way the task goes to the front of the queue without
    /// losing an attempt. Returns false when this is not the live lease, or
    /// is a started one of a worker that is not draining.
    pub fn released(&mut self, worker: WorkerId, task_id: TaskId, attempt: u32) -> bool {
        let draining = self.workers.get(&worker).is_some_and(|slot| slot.draining);
        match self.lease_mut(worker, task_id, attempt) {
            Some(lease) if !lease.started || draining => {
                self.requeue_front(worker, task_id);
                true
            }
            _ => false,
        }
    }
}
