//! Idle connections: when a connection last moved a byte either way, and a
//! watchdog that closes it after `idle_timeout` of silence.
//!
//! A connection is idle when nothing was read from it and nothing written to
//! it for the whole timeout, and nothing holds it open: a client's parked
//! `Wait` holds its connection (the client is waiting on us, not idle), and
//! ends its hold with a reply. Workers heartbeat, so a live worker is never idle.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// One connection's last activity.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte moved.
    last_ms: AtomicU64,
    holds: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            holds: AtomicUsize::new(0),
        })
    }

    /// Something happened on the connection now.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last activity.
    pub fn idle_for(&self) -> Duration {
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(last)
    }

    /// Keeps the connection from counting as idle until the guard is dropped.
    pub fn hold(self: &Arc<Self>) -> Hold {
        self.holds.fetch_add(1, Ordering::Relaxed);
        Hold(self.clone())
    }

    pub fn is_held(&self) -> bool {
        self.holds.load(Ordering::Relaxed) > 0
    }
}

/// See [`Activity::hold`]. Dropping it counts as activity.
#[derive(Debug)]
pub struct Hold(Arc<Activity>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.touch();
        self.0.holds.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Cancels `token` once the connection has been idle for `timeout`; returns
/// early if the token is cancelled for another reason.
pub async fn watch(activity: Arc<Activity>, timeout: Duration, token: CancellationToken) {
    loop {
        let idle_for = activity.idle_for();
        let pause = if activity.is_held() {
            timeout
        } else if idle_for >= timeout {
            tracing::debug!("closing a connection idle for {idle_for:?}");
            token.cancel();
            return;
        } else {
            timeout - idle_for
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = token.cancelled() => return,
        }
    }
}

/// A socket half that records its reads and writes in an [`Activity`].
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.activity.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_cut_after_the_timeout_unless_held() {
        let t = Duration::from_secs(60);
        let activity = Activity::new();
        let token = CancellationToken::new();
        let watchdog = tokio::spawn(watch(activity.clone(), t, token.clone()));
        tokio::time::sleep(Duration::from_secs(50)).await;
        activity.touch();
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!token.is_cancelled(), "activity at 50 s moved the deadline");
        let hold = activity.hold();
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!token.is_cancelled(), "a held connection is not idle");
        drop(hold);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(!token.is_cancelled(), "the hold's end counts as activity");
        tokio::time::sleep(Duration::from_secs(62)).await;
        assert!(token.is_cancelled());
        watchdog.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_count_as_activity() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, b) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut a = Tracked::new(a, activity.clone());
        let mut b = Tracked::new(b, Activity::new());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(activity.idle_for() >= Duration::from_secs(5));
        a.write_all(b"x").await.unwrap();
        assert!(activity.idle_for() < Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        b.write_all(b"y").await.unwrap();
        let mut buf = [0u8; 1];
        a.read_exact(&mut buf).await.unwrap();
        assert!(activity.idle_for() < Duration::from_secs(1));
    }
}
