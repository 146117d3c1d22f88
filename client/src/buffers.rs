//! Input buffers a batch reuses from image to image. Reading each input
//! into a fresh buffer made the kernel fault in, and zero, every page of it
//! again (about two thirds of `tessera run`'s page faults, `perf` over the
//! `process_share` bench); a buffer whose submission is over is kept for
//! the next input instead. Bounded: at most [`MAX_KEPT_BYTES`] of capacity
//! is kept, past that a buffer is freed as before.

use std::sync::Mutex;

use bytes::Bytes;

/// The most buffer capacity kept between images.
pub const MAX_KEPT_BYTES: usize = 64 << 20;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Buffers {
    kept: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// A kept buffer (empty, with its capacity), or a new one.
    pub fn take(&self) -> Vec<u8> {
        self.kept.lock().unwrap().pop().unwrap_or_default()
    }

    /// Keeps `data`'s buffer for a later [`Self::take`], if nothing else
    /// holds it any more (a submission still queued on a connection keeps
    /// its bytes; then they are simply dropped) and there is room.
    pub fn give(&self, data: Bytes) {
        let Ok(mut buffer) = data.try_into_mut() else {
            return;
        };
        buffer.clear();
        let buffer = Vec::from(buffer);
        let mut kept = self.kept.lock().unwrap();
        let room = MAX_KEPT_BYTES - kept.iter().map(Vec::capacity).sum::<usize>();
        if buffer.capacity() > 0 && buffer.capacity() <= room {
            kept.push(buffer);
        }
    }

    #[cfg(test)]
    fn kept_capacity(&self) -> usize {
        self.kept.lock().unwrap().iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_nothing_else_holds_is_kept_and_taken_empty() {
        let buffers = Buffers::default();
        let data = Bytes::from(vec![9u8; 1000]);
        let at = data.as_ptr();
        buffers.give(data);
        let again = buffers.take();
        assert!(again.is_empty(), "a kept buffer comes back empty");
        assert_eq!(again.as_ptr(), at, "the same memory, not a new buffer");
        assert!(again.capacity() >= 1000);
    }

    #[test]
    fn a_buffer_still_held_elsewhere_is_not_kept() {
        let buffers = Buffers::default();
        let data = Bytes::from(vec![9u8; 1000]);
        let chunk = data.slice(0..100);
        buffers.give(data);
        assert_eq!(buffers.kept_capacity(), 0);
        assert_eq!(
            &chunk[..],
            &[9u8; 100][..],
            "the other holder's bytes are intact"
        );
    }

    #[test]
    fn no_more_than_the_limit_is_kept() {
        let buffers = Buffers::default();
        for _ in 0..5 {
            buffers.give(Bytes::from(vec![0u8; 20 << 20]));
        }
        assert_eq!(
            buffers.kept_capacity(),
            60 << 20,
            "three of 20 MiB fit in 64 MiB"
        );
    }
}
