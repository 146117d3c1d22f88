//! The worker's own book of the tasks it holds: downloading, waiting for a
//! thread (prefetched), running, and reported (finished: the result is
//! uploading or the failure sent, until the master answers `Accepted`).
//! Every one of them is named in heartbeats. Plain data; the session does
//! the I/O.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use tessera_proto::{
    LeaseRef, TaskId,
    stream::{Collector, Overrun, Progress},
};
use tokio_util::sync::CancellationToken;

/// A task whose bytes are still arriving.
#[derive(Debug)]
struct Downloading {
    attempt: u32,
    name: String,
    checksum: u64,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Collect(Collector),
    /// Not wanted (over the size limit, dropped or given back): the rest of
    /// the bytes are counted and thrown away.
    Discard {
        progress: Progress,
        too_large: bool,
    },
}

/// A task ready to run.
#[derive(Debug)]
pub struct Waiting {
    pub task: TaskId,
    pub attempt: u32,
    pub name: String,
    /// The checksum the master recorded for the input.
    pub checksum: u64,
    pub data: Bytes,
}

/// What a finished download turned out to be.
#[derive(Debug)]
pub enum Downloaded {
    /// Queued to run.
    Queued,
    /// Over the worker's size limit: report the failure.
    TooLarge { attempt: u32 },
    /// Dropped or given back while downloading: just free the slot.
    Discarded,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Local {
    downloading: BTreeMap<TaskId, Downloading>,
    waiting: VecDeque<Waiting>,
    running: BTreeMap<TaskId, (u32, CancellationToken)>,
    /// Finished, its outcome on its way to the master: still leased to us
    /// until the master says `Accepted` (or `Drop`), so still named in
    /// heartbeats however long the upload takes.
    reported: BTreeMap<TaskId, u32>,
}

/// What became of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Report its outcome (under this attempt); it stays held until accepted.
    Report { attempt: u32 },
    /// It was dropped meanwhile: throw the outcome away.
    Dropped,
}

impl Local {
    /// A new assignment of `len` bytes; `max` is the worker's size limit.
    pub fn assigned(
        &mut self,
        task: TaskId,
        attempt: u32,
        name: String,
        checksum: u64,
        len: u64,
        max: u64,
    ) {
        let body = if len > max {
            Body::Discard {
                progress: Progress::new(len),
                too_large: true,
            }
        } else {
            Body::Collect(Collector::new(len))
        };
        self.downloading.insert(
            task,
            Downloading {
                attempt,
                name,
                checksum,
                body,
            },
        );
    }

    /// A chunk of `task`'s bytes. `Ok(None)` while more are expected.
    pub fn chunk(
        &mut self,
        task: TaskId,
        payload: Bytes,
    ) -> Result<Option<Downloaded>, ChunkError> {
        let d = self
            .downloading
            .get_mut(&task)
            .ok_or(ChunkError::Unknown(task))?;
        let outcome = match &mut d.body {
            Body::Collect(c) => match c.push(payload)? {
                None => return Ok(None),
                Some(data) => Some(data),
            },
            Body::Discard { progress, .. } => {
                if !progress.add(payload.len())? {
                    return Ok(None);
                }
                None
            }
        };
        Ok(Some(self.finish(task, outcome)))
    }

    /// An assignment of zero bytes is complete at once.
    pub fn finish_empty(&mut self, task: TaskId) -> Option<Downloaded> {
        let d = self.downloading.get(&task)?;
        let empty = match &d.body {
            Body::Collect(c) => c.is_complete(),
            Body::Discard { progress, .. } => progress.is_complete(),
        };
        let data = matches!(d.body, Body::Collect(_)).then(Bytes::new);
        empty.then(|| self.finish(task, data))
    }

    fn finish(&mut self, task: TaskId, data: Option<Bytes>) -> Downloaded {
        let d = self.downloading.remove(&task).expect("present");
        match (data, d.body) {
            (Some(data), _) => {
                self.waiting.push_back(Waiting {
                    task,
                    attempt: d.attempt,
                    name: d.name,
                    checksum: d.checksum,
                    data,
                });
                Downloaded::Queued
            }
            (
                None,
                Body::Discard {
                    too_large: true, ..
                },
            ) => Downloaded::TooLarge { attempt: d.attempt },
            (None, _) => Downloaded::Discarded,
        }
    }

    /// The next task to start, marked running; its token is cancelled if it
    /// gets dropped (the job stops at once).
    pub fn start_next(&mut self) -> Option<(Waiting, CancellationToken)> {
        let w = self.waiting.pop_front()?;
        let dropped = CancellationToken::new();
        self.running.insert(w.task, (w.attempt, dropped.clone()));
        Some((w, dropped))
    }

    /// The run of (`task`, `attempt`) finished: to report (and held until
    /// the master accepts it), or dropped meanwhile. A newer attempt of the
    /// same task may be running here by now (the master handed the task out
    /// again, e.g. after this worker went silent): that one is left running,
    /// and this outcome is never reported under its attempt.
    pub fn finished(&mut self, task: TaskId, attempt: u32) -> Finished {
        match self.running.get(&task) {
            Some((a, dropped)) if *a == attempt => {
                let dropped = dropped.is_cancelled();
                self.running.remove(&task);
                if dropped {
                    return Finished::Dropped;
                }
                self.reported.insert(task, attempt);
                Finished::Report { attempt }
            }
            _ => Finished::Dropped,
        }
    }

    /// The master has the outcome of `task` (`Accepted`): no longer held.
    pub fn accepted(&mut self, task: TaskId) -> bool {
        self.reported.remove(&task).is_some()
    }

    /// Whether (`task`, `attempt`) is finished and its outcome on its way.
    pub fn is_reported(&self, task: TaskId, attempt: u32) -> bool {
        self.reported.get(&task) == Some(&attempt)
    }

    /// Forgets a reported (`task`, `attempt`) whose outcome will not be sent
    /// after all (a drain out of time gives it back).
    pub fn unreport(&mut self, task: TaskId, attempt: u32) -> bool {
        if self.is_reported(task, attempt) {
            self.reported.remove(&task);
            true
        } else {
            false
        }
    }

    /// Gives back (`task`, `attempt`) if it has not started. True when given
    /// back and the slot is free now; a download in progress is discarded
    /// (and frees its slot when its last byte arrives).
    pub fn release(&mut self, task: TaskId, attempt: u32) -> Release {
        if let Some(i) = self
            .waiting
            .iter()
            .position(|w| w.task == task && w.attempt == attempt)
        {
            self.waiting.remove(i);
            return Release::Freed;
        }
        if let Some(d) = self
            .downloading
            .get_mut(&task)
            .filter(|d| d.attempt == attempt)
        {
            if let Body::Collect(c) = &d.body {
                let announced = c.progress().announced();
                let mut progress = Progress::new(announced);
                let _ = progress.add(c.progress().received() as usize);
                d.body = Body::Discard {
                    progress,
                    too_large: false,
                };
            }
            return Release::Later;
        }
        Release::NotHeld
    }

    /// Stops (`task`, `attempt`): given back if unstarted, cancelled if
    /// running, forgotten if reported (its outcome is no longer wanted; one
    /// already on its way is stale to the master).
    pub fn drop_task(&mut self, task: TaskId, attempt: u32) -> Release {
        match self.release(task, attempt) {
            Release::NotHeld => {
                if let Some((a, flag)) = self.running.get(&task)
                    && *a == attempt
                {
                    flag.cancel();
                    Release::Later
                } else if self.unreport(task, attempt) {
                    Release::Reported
                } else {
                    Release::NotHeld
                }
            }
            other => other,
        }
    }

    /// Every running task, stopped: its job's token is cancelled and it is
    /// no longer held (a drain out of time hands them back).
    pub fn stop_all_running(&mut self) -> Vec<LeaseRef> {
        std::mem::take(&mut self.running)
            .into_iter()
            .map(|(task, (attempt, dropped))| {
                dropped.cancel();
                LeaseRef { task, attempt }
            })
            .collect()
    }

    /// Every unstarted task, given back (for draining).
    pub fn release_all_unstarted(&mut self) -> Vec<LeaseRef> {
        let mut out: Vec<LeaseRef> = self
            .waiting
            .drain(..)
            .map(|w| LeaseRef {
                task: w.task,
                attempt: w.attempt,
            })
            .collect();
        let downloading: Vec<(TaskId, u32)> = self
            .downloading
            .iter()
            .map(|(t, d)| (*t, d.attempt))
            .collect();
        for (task, attempt) in downloading {
            if self.release(task, attempt) == Release::Later {
                out.push(LeaseRef { task, attempt });
            }
        }
        out
    }

    /// The leases this worker holds (for heartbeats): everything not given back.
    pub fn leases(&self) -> Vec<LeaseRef> {
        let downloading = self
            .downloading
            .iter()
            .filter(|(_, d)| matches!(d.body, Body::Collect(_)) || is_too_large(&d.body))
            .map(|(t, d)| LeaseRef {
                task: *t,
                attempt: d.attempt,
            });
        let waiting = self.waiting.iter().map(|w| LeaseRef {
            task: w.task,
            attempt: w.attempt,
        });
        let running = self
            .running
            .iter()
            .filter(|(_, (_, d))| !d.is_cancelled())
            .map(|(t, (a, _))| LeaseRef {
                task: *t,
                attempt: *a,
            });
        let reported = self.reported.iter().map(|(t, a)| LeaseRef {
            task: *t,
            attempt: *a,
        });
        downloading
            .chain(waiting)
            .chain(running)
            .chain(reported)
            .collect()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.downloading.is_empty()
            && self.waiting.is_empty()
            && self.running.is_empty()
            && self.reported.is_empty()
    }
}

fn is_too_large(b: &Body) -> bool {
    matches!(
        b,
        Body::Discard {
            too_large: true,
            ..
        }
    )
}

/// What became of a release or drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Removed; its slot is free now.
    Freed,
    /// Will be discarded when its download or run ends.
    Later,
    /// Was finished and reported; now forgotten (nothing to free: a
    /// reported task's slot was freed when it finished).
    Reported,
    /// Not held (finished already, or started, for a release).
    NotHeld,
}

/// A chunk that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk for task {0}, which is not being downloaded")]
    Unknown(TaskId),
    #[error(transparent)]
    Overrun(#[from] Overrun),
}

#[cfg(test)]
mod tests;
