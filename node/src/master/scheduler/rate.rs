//! Recent throughput: completions counted in one-second buckets over the
//! last minute, on the scheduler's injected clock. Bounded: at most
//! [`KEEP_SECS`] + 1 buckets, whatever the rate.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// How many whole seconds of history are kept (the live view's graph).
pub const KEEP_SECS: u64 = 60;

/// The window rates are computed over.
pub const WINDOW_SECS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// Seconds since `origin`.
    sec: u64,
    images: u32,
    bytes: u64,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// The instant second 0 starts at: the first completion.
    origin: Option<Instant>,
    buckets: VecDeque<Bucket>,
}

/// Completions within the rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// How much time the window covers (up to [`WINDOW_SECS`]; less while the
    /// history is younger than that).
    pub span: Duration,
    pub images: u64,
    pub bytes: u64,
}

impl Recent {
    fn second(&self, now: Instant) -> Option<u64> {
        self.origin
            .map(|o| now.saturating_duration_since(o).as_secs())
    }

    /// A task with `bytes` of input completed at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        let origin = *self.origin.get_or_insert(now);
        let sec = now.saturating_duration_since(origin).as_secs();
        match self.buckets.back_mut() {
            Some(b) if b.sec == sec => {
                b.images = b.images.saturating_add(1);
                b.bytes = b.bytes.saturating_add(bytes);
            }
            _ => self.buckets.push_back(Bucket {
                sec,
                images: 1,
                bytes,
            }),
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.sec + KEEP_SECS < sec)
        {
            self.buckets.pop_front();
        }
    }

    /// Completions in the last [`WINDOW_SECS`] seconds up to `now` (the
    /// current, partial second included).
    pub fn window(&self, now: Instant) -> Window {
        let (Some(origin), Some(cur)) = (self.origin, self.second(now)) else {
            return Window::default();
        };
        let first = cur.saturating_sub(WINDOW_SECS - 1);
        let start = origin + Duration::from_secs(first);
        let mut w = Window {
            span: now.saturating_duration_since(start),
            ..Window::default()
        };
        for b in self
            .buckets
            .iter()
            .filter(|b| b.sec >= first && b.sec <= cur)
        {
            w.images += u64::from(b.images);
            w.bytes += b.bytes;
        }
        w
    }

    /// Completions in each of the last [`KEEP_SECS`] whole seconds before
    /// the current one, oldest first; empty before the first completion.
    pub fn per_second(&self, now: Instant) -> Vec<u32> {
        let Some(cur) = self.second(now) else {
            return Vec::new();
        };
        let first = cur.saturating_sub(KEEP_SECS);
        (first..cur)
            .map(|s| {
                self.buckets
                    .iter()
                    .find(|b| b.sec == s)
                    .map_or(0, |b| b.images)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn nothing_recorded_means_no_rate_and_no_history() {
        let r = Recent::default();
        let now = Instant::now();
        assert_eq!(r.window(now), Window::default());
        assert!(r.per_second(now).is_empty());
    }

    #[test]
    fn the_window_covers_the_last_ten_seconds_and_the_graph_whole_seconds() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        r.record(t0, 100);
        r.record(t0 + secs(0.5), 100);
        r.record(t0 + secs(3.2), 50);
        r.record(t0 + secs(12.1), 10);
        let now = t0 + secs(12.5);
        // Seconds 3..=12 are in the window: the one at 3.2 and the one at 12.1.
        let w = r.window(now);
        assert_eq!((w.images, w.bytes), (2, 60));
        assert_eq!(w.span, secs(9.5));
        let graph = r.per_second(now);
        assert_eq!(graph.len(), 12, "seconds 0..12, the current one excluded");
        assert_eq!(&graph[..4], &[2, 0, 0, 1]);
        assert_eq!(graph.iter().sum::<u32>(), 3);
    }

    #[test]
    fn history_is_bounded_to_the_last_minute() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        for s in 0..500 {
            r.record(t0 + Duration::from_secs(s), 1);
        }
        assert!(r.buckets.len() as u64 <= KEEP_SECS + 1);
        let now = t0 + Duration::from_secs(500);
        assert_eq!(r.per_second(now), vec![1; KEEP_SECS as usize]);
        assert_eq!(r.window(now).images, WINDOW_SECS - 1);
    }

    #[test]
    fn the_oldest_second_the_graph_shows_is_kept_and_an_older_one_goes() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        r.record(t0, 1);
        // Second 60: the graph shows seconds 0..=59, second 0 included.
        r.record(t0 + secs(60.5), 1);
        let graph = r.per_second(t0 + secs(60.5));
        assert_eq!(graph.len(), KEEP_SECS as usize);
        assert_eq!(graph[0], 1, "second 0 is still on the graph");
        // Second 61: second 0 is off the graph, and gone from memory.
        r.record(t0 + secs(61.2), 1);
        let kept: Vec<u64> = r.buckets.iter().map(|b| b.sec).collect();
        assert_eq!(kept, vec![60, 61]);
    }

    #[test]
    fn a_young_history_gives_a_short_window() {
        let t0 = Instant::now();
        let mut r = Recent::default();
        r.record(t0, 1);
        let w = r.window(t0 + secs(2.0));
        assert_eq!(w.span, secs(2.0));
        assert_eq!(w.images, 1);
    }
}
