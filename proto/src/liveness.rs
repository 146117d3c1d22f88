//! Is the peer at the other end of a connection still alive? A process that
//! hangs (SIGSTOP, a deadlock) or a network that is cut without a reset keeps
//! a TCP connection open forever; only silence gives it away. A side that is
//! waiting on its peer records every sign of life here and gives up after a
//! limit of silence; meanwhile it sends [`crate::Msg::Ping`] so that a live
//! but quiet peer answers.
//!
//! Signs of life: a frame received from the peer, or a data chunk the peer
//! took from us (a long upload gets no answer until its end, but a peer that
//! stops reading stops taking chunks once the socket buffers are full).
//! Small control frames we send do not count: the kernel queues them even
//! for a peer that is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// See the module docs. Shared (behind an `Arc`) by a connection's reader,
/// its writer and whoever watches it.
#[derive(Debug)]
pub struct Liveness {
    base: Instant,
    /// Milliseconds after `base` of the last frame received.
    heard: AtomicU64,
    /// Milliseconds after `base` of the last data chunk the peer took.
    took: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// Starts the clock: the peer counts as just heard.
    pub fn new() -> Self {
        Liveness {
            base: Instant::now(),
            heard: AtomicU64::new(0),
            took: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// A frame arrived from the peer (also: start a fresh wait on it).
    pub fn heard(&self) {
        self.heard.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// The peer took a data chunk from us.
    pub fn took_data(&self) {
        self.took.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since a frame arrived.
    pub fn since_heard(&self) -> Duration {
        let last = self.heard.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// How long since any sign of life.
    pub fn silence(&self) -> Duration {
        let last = self
            .heard
            .load(Ordering::Relaxed)
            .max(self.took.load(Ordering::Relaxed));
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Resolves with the silence once it has lasted `limit`; never while the
    /// peer keeps showing signs of life.
    ///
    /// Checks at least every quarter of `limit`. A check that comes much
    /// later than it should means this process was not running (stopped,
    /// or starved of CPU): it could not have heard anything meanwhile, so
    /// the peer gets a fresh `limit` rather than the blame.
    pub async fn silent_for(&self, limit: Duration) -> Duration {
        let step = limit / 4;
        loop {
            let silence = self.silence();
            if silence >= limit {
                return silence;
            }
            let nap = (limit - silence).min(step);
            let before = Instant::now();
            tokio::time::sleep(nap).await;
            if before.elapsed() > nap + step {
                self.heard();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_is_time_since_the_last_sign_of_life() {
        let l = Liveness::new();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(l.silence(), Duration::from_secs(3));
        l.took_data();
        assert_eq!(l.silence(), Duration::ZERO);
        assert_eq!(
            l.since_heard(),
            Duration::from_secs(3),
            "data taken is not hearing"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        l.heard();
        assert_eq!(l.since_heard(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_for_waits_out_every_sign_of_life() {
        let l = std::sync::Arc::new(Liveness::new());
        let start = Instant::now();
        let watcher = tokio::spawn({
            let l = l.clone();
            async move { l.silent_for(Duration::from_secs(10)).await }
        });
        // Signs of life at 6 s and 12 s push the end out to 22 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        l.heard();
        tokio::time::sleep(Duration::from_secs(6)).await;
        l.took_data();
        let silence = watcher.await.unwrap();
        assert!(silence >= Duration::from_secs(10), "{silence:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(22));
    }

    /// This process stopped (SIGSTOP) for longer than the limit: on waking
    /// it has not heard the peer, through no fault of the peer's.
    #[test]
    fn a_pause_of_this_process_is_not_the_peer_s_silence() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = Liveness::new();
            let limit = Duration::from_millis(400);
            let watch = l.silent_for(limit);
            tokio::pin!(watch);
            // Poll once so that the watchdog sleeps, then block the thread
            // (as a stopped process would be) well past the limit.
            assert!(futures_poll_once(watch.as_mut()).is_none());
            std::thread::sleep(Duration::from_millis(900));
            // Awake again: the watchdog must give the peer a fresh limit,
            // so it does not fire within the next half limit...
            let early = tokio::time::timeout(limit / 2, watch.as_mut()).await;
            assert!(early.is_err(), "fired right after a pause: {early:?}");
            // ...but still fires when the silence really lasts.
            let silence = watch.await;
            assert!(silence >= limit, "{silence:?}");
        });
    }

    /// Polls a future once.
    fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = f;
        match std::pin::Pin::new(&mut f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
