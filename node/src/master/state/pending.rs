//! Changes that are decided but not yet durable. A [`Pending`] holds the
//! journal's answer, the rows its tasks had before (to put them back if the
//! record cannot be written), and a [`Settling`] guard: while it lives, its
//! tasks are *unsettled*, and [`Shared::settled`] waits. Everything that
//! must answer from durable state (status, fetch, wait, history, a
//! resubmission's dedupe, the next ledger operation on the task) waits for
//! it, so nobody reads a state that a crash can still undo.

use tessera_proto::TaskId;
use tokio::sync::oneshot;

use super::{Durable, Shared};
use crate::master::record::{StoreError, TaskRow};

/// The waiters of one unsettled task.
#[derive(Debug, Default)]
pub(super) struct Unsettled {
    /// Pending changes that name the task.
    count: usize,
    waiters: Vec<oneshot::Sender<()>>,
}

/// A change queued to the journal and not yet durable; see the module docs.
#[must_use = "await it, then answer; or roll it back"]
#[derive(Debug)]
pub struct Pending {
    durable: Durable,
    settling: Settling,
    before: Vec<(TaskId, Option<TaskRow>)>,
}

/// While alive, its tasks are unsettled. Its drop takes the state's lock:
/// never drop one while holding it.
#[derive(Debug)]
pub struct Settling {
    shared: Shared,
    tasks: Vec<TaskId>,
}

/// A change whose record could not be written: roll it back with
/// [`Shared::rollback`].
#[derive(Debug)]
pub struct Unrecorded {
    pub error: StoreError,
    settling: Settling,
    before: Vec<(TaskId, Option<TaskRow>)>,
}

/// What adding a submitter to an existing task did.
#[derive(Debug)]
pub enum Join {
    /// The submitter shares the task already (a resubmission).
    Already,
    /// Added; answer once it is durable.
    Joined(Pending),
    /// The key names another task now, or none (rolled back, removed).
    Gone,
}

impl Pending {
    /// Waits until the change is on disk. `Ok`: keep the guard until the
    /// answers are out; `Err`: roll back.
    pub async fn durable(self) -> Result<Settling, Unrecorded> {
        match super::durable(self.durable).await {
            Ok(()) => Ok(self.settling),
            Err(error) => Err(Unrecorded {
                error,
                settling: self.settling,
                before: self.before,
            }),
        }
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        for task in &self.tasks {
            if let Some(u) = g.unsettled.get_mut(task) {
                u.count -= 1;
                if u.count == 0
                    && let Some(u) = g.unsettled.remove(task)
                {
                    // Its row is durable now: a task at rest leaves memory.
                    g.scheduler.archive(*task);
                    for w in u.waiters {
                        let _ = w.send(());
                    }
                }
            }
        }
    }
}

impl Shared {
    /// Queues the new events as one durable change naming `before`'s tasks
    /// (with the rows they had before it), which stay unsettled until the
    /// returned value (or its guard) is dropped.
    pub(super) fn pending(
        &self,
        g: &mut super::Inner,
        before: Vec<(TaskId, Option<TaskRow>)>,
    ) -> Pending {
        let tasks: Vec<TaskId> = before.iter().map(|(t, _)| *t).collect();
        for t in &tasks {
            g.unsettled.entry(*t).or_default().count += 1;
        }
        let durable = self.record_durable(g);
        Pending {
            durable,
            settling: Settling {
                shared: self.clone(),
                tasks,
            },
            before,
        }
    }

    /// Resolves once no change to `task` is waiting to become durable.
    pub async fn settled(&self, task: TaskId) {
        loop {
            let rx = {
                let mut g = self.lock();
                let Some(u) = g.unsettled.get_mut(&task) else {
                    return;
                };
                let (tx, rx) = oneshot::channel();
                u.waiters.push(tx);
                rx
            };
            let _ = rx.await;
        }
    }

    /// Puts the tasks of a change that could not be recorded back as their
    /// rows before it say (see `Scheduler::reinstate`); returns the error.
    pub fn rollback(&self, failed: Unrecorded) -> StoreError {
        let Unrecorded {
            error,
            settling,
            before,
        } = failed;
        {
            let mut g = self.lock();
            for (task, row) in before {
                let gone = row.is_none();
                if let Some((worker, attempt)) = g.scheduler.reinstate(task, row) {
                    g.workers.drop_lease(worker, task, attempt);
                }
                if gone {
                    g.waiters.forget(task);
                }
            }
            self.settle(&mut g);
        }
        drop(settling);
        error
    }
}
