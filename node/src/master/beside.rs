//! Work a connection's reader hands off so that it can go on reading: a
//! ledger step that waits for the disk (an fsync, the record's commit),
//! then its answer to the peer. A reader that awaited such a step itself
//! would stop reading the connection for as long as the disk takes, and
//! with it the peer's heartbeats and next uploads.
//!
//! Bounded: past `max` steps at once the reader waits for one to finish
//! (back-pressure on that one connection, never an unbounded pile). When
//! the connection ends, the steps still running finish on their own: what
//! they make durable stays so, and an answer to a closed connection is
//! simply not sent. A connection whose end itself changes the state (a
//! worker's: its leases are lost) waits for them first ([`Beside::finish`]),
//! so that what the peer sent before it went is decided before its going.

use std::future::Future;

use tokio::task::JoinSet;

/// The steps one connection's reader handed off.
#[derive(Debug)]
pub struct Beside {
    running: JoinSet<()>,
    max: usize,
}

impl Beside {
    /// At most `max` (at least 1) steps at once.
    pub fn new(max: usize) -> Self {
        Beside {
            running: JoinSet::new(),
            max: max.max(1),
        }
    }

    /// Runs `step` beside the reader; waits first while `max` are running.
    pub async fn run(&mut self, step: impl Future<Output = ()> + Send + 'static) {
        while self.running.try_join_next().is_some() {}
        while self.running.len() >= self.max {
            let _ = self.running.join_next().await;
        }
        self.running.spawn(step);
    }

    /// Waits for every step to finish.
    pub async fn finish(mut self) {
        while self.running.join_next().await.is_some() {}
    }

    /// How many steps are running.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.running.len()
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        // A JoinSet aborts its tasks when dropped; these must finish.
        self.running.detach_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn steps_run_beside_at_most_max_at_once_and_outlive_the_connection() {
        let gate = Arc::new(Semaphore::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let step = || {
            let (gate, done) = (gate.clone(), done.clone());
            async move {
                gate.acquire().await.unwrap().forget();
                done.fetch_add(1, Ordering::SeqCst);
            }
        };
        let mut beside = Beside::new(2);
        // Two held steps do not hold the caller up.
        beside.run(step()).await;
        beside.run(step()).await;
        assert_eq!(beside.len(), 2);
        // A third waits until one of them ends.
        let mut third = Box::pin(beside.run(step()));
        assert!(
            futures_poll_once(third.as_mut()).await.is_none(),
            "a third step started past the limit"
        );
        gate.add_permits(1);
        third.await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        // Dropped (the connection ended): the running steps still finish.
        drop(beside);
        gate.add_permits(2);
        for _ in 0..100 {
            if done.load(Ordering::SeqCst) == 3 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("steps were aborted with their connection");
    }

    /// Polls `f` once: its output, if it is ready.
    async fn futures_poll_once<F: Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
