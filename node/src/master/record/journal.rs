//! Group commit: changes are queued without blocking (under the scheduler's
//! lock, so the record keeps the order the scheduler made them in) and one
//! thread writes everything queued so far in one transaction. Durable
//! changes (a submission, a result) make that transaction fsync and are
//! answered only then; lease bookkeeping rides along without an fsync of its
//! own (after a crash, leased tasks are queued again anyway).
//!
//! On a seeded thread (a simulation, `tessera_proto::determinism`), there
//! is no writer thread: each change is written when it is queued, on the
//! caller's thread, so a run does not depend on when another thread ran.
//!
//! The queue needs no bound of its own: every durable change is awaited by
//! the connection that made it (bounded by the connection limits), and lease
//! changes are made at most once per hand-out.

use std::{
    path::PathBuf,
    sync::{Arc, Condvar, Mutex},
    thread,
};

use tessera_proto::{EventEntry, TaskId};
use tokio::sync::oneshot;
use tracing::error;

use super::{
    feed::Feed,
    row::TaskRow,
    store::{Entry, StoreError, TaskStore},
};
use crate::master::disk::Disk;

type Reply = oneshot::Sender<Result<(), StoreError>>;

#[derive(Debug)]
enum Job {
    Write {
        entries: Vec<Entry>,
        next_task: u64,
        durable: bool,
        reply: Option<Reply>,
    },
    History {
        task: TaskId,
        reply: oneshot::Sender<Result<Vec<EventEntry>, StoreError>>,
    },
    Row {
        task: TaskId,
        reply: oneshot::Sender<Result<Option<TaskRow>, StoreError>>,
    },
}

/// A read, answered after the writes queued before it.
#[derive(Debug)]
enum Read {
    History(TaskId, oneshot::Sender<Result<Vec<EventEntry>, StoreError>>),
    Row(TaskId, oneshot::Sender<Result<Option<TaskRow>, StoreError>>),
}

#[derive(Debug, Default)]
struct Queue {
    jobs: Vec<Job>,
    closed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Journal {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// The store, written in `push`, on a seeded thread.
    inline: Option<Mutex<Inline>>,
    feed: Feed,
}

/// What the writer thread owns, owned by the journal instead.
struct Inline {
    store: Box<dyn TaskStore>,
    sync: SyncDirs,
    feed: Feed,
}

/// The directories whose renames a durable batch first makes durable, on
/// the disk the image files are on.
#[derive(Debug, Clone)]
pub struct SyncDirs {
    dirs: Vec<PathBuf>,
    disk: Arc<dyn Disk>,
}

impl SyncDirs {
    fn sync(&self) -> Result<(), StoreError> {
        for dir in &self.dirs {
            self.disk
                .sync_dir(dir)
                .map_err(|e| StoreError::Io(format!("cannot flush {}: {e}", dir.display())))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline")
    }
}

impl Journal {
    /// Starts the writer thread over `store`. With `group_commit` off, every
    /// change gets its own transaction (for measuring what grouping buys).
    ///
    /// With `sync_dirs`, every durable batch first fsyncs those directories:
    /// the image files renamed into them since the last batch (their data is
    /// fsynced by whoever wrote them, in parallel) become durable together,
    /// so a batch of N submissions costs one fsync per directory and one
    /// commit, not N of each.
    pub fn start(
        store: impl TaskStore,
        group_commit: bool,
        sync_dirs: Vec<PathBuf>,
        disk: Arc<dyn Disk>,
    ) -> Self {
        let sync = SyncDirs {
            dirs: sync_dirs,
            disk,
        };
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let feed = Feed::default();
        if tessera_proto::determinism::is_seeded() {
            return Journal {
                queue,
                thread: Mutex::new(None),
                inline: Some(Mutex::new(Inline {
                    store: Box::new(store),
                    sync,
                    feed: feed.clone(),
                })),
                feed,
            };
        }
        let q = queue.clone();
        let written = feed.clone();
        let handle = thread::Builder::new()
            .name("tessera-journal".into())
            .spawn(move || run(store, &q, group_commit, &sync, &written))
            .expect("spawn the journal thread");
        Journal {
            queue,
            thread: Mutex::new(Some(handle)),
            inline: None,
            feed,
        }
    }

    /// The events written from now on (see [`Feed`]).
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    fn push(&self, job: Job) {
        let (lock, cv) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            // Shutting down: answer at once.
            match job {
                Job::Write { reply: Some(r), .. } => {
                    let _ = r.send(Err(StoreError::Io("the master is shutting down".into())));
                }
                Job::History { reply, .. } => {
                    let _ = reply.send(Err(StoreError::Io("the master is shutting down".into())));
                }
                Job::Row { reply, .. } => {
                    let _ = reply.send(Err(StoreError::Io("the master is shutting down".into())));
                }
                Job::Write { reply: None, .. } => {}
            }
            return;
        }
        if let Some(inline) = &self.inline {
            drop(q);
            let mut w = inline.lock().unwrap_or_else(|e| e.into_inner());
            let Inline { store, sync, feed } = &mut *w;
            write_grouped(&mut **store, vec![job], sync, feed);
            return;
        }
        // The journal thread waits only on an empty queue: wake it for the
        // first job (a notify is a futex syscall even with no waiter).
        let was_empty = q.jobs.is_empty();
        q.jobs.push(job);
        if was_empty {
            cv.notify_one();
        }
    }

    /// Queues `entries`; the receiver resolves once they are written (and,
    /// with `durable`, on disk).
    pub fn write(
        &self,
        entries: Vec<Entry>,
        next_task: u64,
        durable: bool,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.push(Job::Write {
            entries,
            next_task,
            durable,
            reply: Some(tx),
        });
        rx
    }

    /// Queues `entries` without waiting for them.
    pub fn write_behind(&self, entries: Vec<Entry>, next_task: u64) {
        if !entries.is_empty() {
            self.push(Job::Write {
                entries,
                next_task,
                durable: false,
                reply: None,
            });
        }
    }

    /// A task's events, read after every change queued before this call.
    pub async fn history(&self, task: TaskId) -> Result<Vec<EventEntry>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Job::History { task, reply: tx });
        rx.await
            .map_err(|_| StoreError::Io("the journal stopped".into()))?
    }

    /// A task's current-state row, read after every change queued before
    /// this call.
    pub async fn row(&self, task: TaskId) -> Result<Option<TaskRow>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.push(Job::Row { task, reply: tx });
        rx.await
            .map_err(|_| StoreError::Io("the journal stopped".into()))?
    }

    /// Writes what is queued, then stops the thread.
    pub fn close(&self) {
        {
            let (lock, cv) = &*self.queue;
            lock.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            cv.notify_one();
        }
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(
    mut store: impl TaskStore,
    queue: &(Mutex<Queue>, Condvar),
    group_commit: bool,
    sync: &SyncDirs,
    feed: &Feed,
) {
    let (lock, cv) = queue;
    loop {
        let (jobs, closed) = {
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            while q.jobs.is_empty() && !q.closed {
                q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut q.jobs), q.closed)
        };
        if group_commit {
            write_grouped(&mut store, jobs, sync, feed);
        } else {
            for job in jobs {
                write_grouped(&mut store, vec![job], sync, feed);
            }
        }
        if closed
            && lock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .jobs
                .is_empty()
        {
            return;
        }
    }
}

/// Writes every write job in one transaction (fsynced if any is durable),
/// answers them, tells the feed, then answers the reads in order.
fn write_grouped(
    store: &mut (impl TaskStore + ?Sized),
    jobs: Vec<Job>,
    sync: &SyncDirs,
    feed: &Feed,
) {
    let mut entries = Vec::new();
    let mut next_task = 0;
    let mut durable = false;
    let mut replies = Vec::new();
    let mut reads = Vec::new();
    for job in jobs {
        match job {
            Job::Write {
                entries: e,
                next_task: n,
                durable: d,
                reply,
            } => {
                entries.extend(e);
                next_task = next_task.max(n);
                durable |= d;
                replies.extend(reply);
            }
            Job::History { task, reply } => reads.push(Read::History(task, reply)),
            Job::Row { task, reply } => reads.push(Read::Row(task, reply)),
        }
    }
    if !entries.is_empty() || !replies.is_empty() {
        let synced = if durable { sync.sync() } else { Ok(()) };
        let result = synced.and_then(|()| store.apply(&entries, next_task, durable));
        match &result {
            Ok(()) => feed.publish(&entries),
            Err(e) => error!("cannot write the task record: {e}"),
        }
        for r in replies {
            let _ = r.send(result.clone());
        }
    }
    for read in reads {
        match read {
            Read::History(task, reply) => {
                let _ = reply.send(store.history(task));
            }
            Read::Row(task, reply) => {
                let _ = reply.send(store.row(task));
            }
        }
    }
}
