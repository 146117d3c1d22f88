//! Reusing large pixel buffers across images.
//!
//! A fresh buffer costs a page fault per 4 KiB page when it is first
//! written: for an 8K RGBA frame (133 MB) that is about 100 ms, a sixth of
//! its decode. The allocator does not keep such buffers (they are mapped
//! and unmapped with each image), so the decode buffers are kept here
//! instead: a process-wide cache of at most [`BufferCache::GLOBAL_BYTES`],
//! shared by every thread.
//!
//! A buffer taken from the cache still holds an earlier image's bytes. The
//! decoder writes every byte of the frame before anything reads it (a
//! frame that fails to decode is an error and produces no output), so
//! nothing of an earlier image can reach an output; the tests check this
//! with buffers full of a marker.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use crate::ProcessError;

/// Buffers smaller than this are left to the allocator.
const MIN_CACHED_BYTES: usize = 1 << 20;

/// A bounded set of spare buffers.
#[derive(Debug)]
pub(crate) struct BufferCache {
    spare: Mutex<Vec<Vec<u8>>>,
    max_bytes: usize,
    /// How many buffers were handed out again.
    #[cfg(test)]
    reused: std::sync::atomic::AtomicUsize,
}

/// The cache used by [`process`](crate::process).
pub(crate) static GLOBAL: BufferCache = BufferCache::new(BufferCache::GLOBAL_BYTES);

impl BufferCache {
    /// The global cache's bound: 512 MiB, three 8K RGBA frames.
    pub(crate) const GLOBAL_BYTES: usize = 512 << 20;

    /// An empty cache that keeps at most `max_bytes` of spare buffers.
    pub(crate) const fn new(max_bytes: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            max_bytes,
            #[cfg(test)]
            reused: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn spare(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The list is valid whatever a panicking holder was doing.
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of exactly `len` bytes: the smallest spare one that is large
    /// enough, or a new one. Its contents are unspecified (see the module
    /// documentation). It goes back to the cache when dropped.
    pub(crate) fn take(&self, len: usize) -> Result<PixelBuffer<'_>, ProcessError> {
        let spare = {
            let mut spare = self.spare();
            let best = spare
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| spare.swap_remove(i))
        };
        let mut buffer = match spare {
            Some(buffer) => {
                #[cfg(test)]
                self.reused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                buffer
            }
            None => {
                let mut buffer = Vec::new();
                buffer.try_reserve_exact(len).map_err(|_| {
                    ProcessError::TooLarge(format!("could not allocate {len} bytes for the pixels"))
                })?;
                buffer
            }
        };
        // Only bytes never written before are zeroed (the new ones).
        buffer.resize(len, 0);
        Ok(PixelBuffer {
            buffer,
            cache: self,
        })
    }

    /// Keeps `buffer` for later if it is worth it and fits, dropping the
    /// smallest spare buffers to stay within the bound.
    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() < MIN_CACHED_BYTES || buffer.capacity() > self.max_bytes {
            return;
        }
        let mut spare = self.spare();
        spare.push(buffer);
        spare.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        while spare.iter().map(Vec::capacity).sum::<usize>() > self.max_bytes {
            spare.pop();
        }
    }

    /// How many buffers were handed out again.
    #[cfg(test)]
    pub(crate) fn reused(&self) -> usize {
        self.reused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes held in spare buffers.
    #[cfg(test)]
    pub(crate) fn spare_bytes(&self) -> usize {
        self.spare().iter().map(Vec::capacity).sum()
    }
}

/// A buffer from a [`BufferCache`], returned to it on drop.
#[derive(Debug)]
pub(crate) struct PixelBuffer<'a> {
    buffer: Vec<u8>,
    cache: &'a BufferCache,
}

impl Deref for PixelBuffer<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buffer
    }
}

impl DerefMut for PixelBuffer<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buffer
    }
}

impl Drop for PixelBuffer<'_> {
    fn drop(&mut self) {
        self.cache.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn buffers_are_reused_smallest_fit_first() {
        let cache = BufferCache::new(64 * MIB);
        let (big, small) = (cache.take(8 * MIB).unwrap(), cache.take(2 * MIB).unwrap());
        let (big_at, small_at) = (big.as_ptr(), small.as_ptr());
        drop((big, small));
        assert_eq!(cache.spare_bytes(), 10 * MIB);

        let fits_small = cache.take(MIB + 1).unwrap();
        assert_eq!(fits_small.as_ptr(), small_at);
        assert_eq!(fits_small.len(), MIB + 1);
        let needs_big = cache.take(3 * MIB).unwrap();
        assert_eq!(needs_big.as_ptr(), big_at);
        assert_eq!(cache.spare_bytes(), 0);
        let fresh = cache.take(16 * MIB).unwrap();
        assert_eq!(fresh.len(), 16 * MIB);
    }

    #[test]
    fn the_bound_holds_and_small_buffers_are_not_kept() {
        let cache = BufferCache::new(10 * MIB);
        let buffers: Vec<_> = [4, 4, 4, 11]
            .iter()
            .map(|&m| cache.take(m * MIB).unwrap())
            .collect();
        drop(buffers);
        // 11 MiB is over the bound; of the three 4 MiB, two fit.
        assert_eq!(cache.spare_bytes(), 8 * MIB);
        drop(cache.take(1000).unwrap());
        assert_eq!(cache.spare_bytes(), 8 * MIB);
    }

    #[test]
    fn a_reused_buffer_is_grown_to_the_asked_length() {
        let cache = BufferCache::new(10 * MIB);
        let mut first = cache.take(2 * MIB).unwrap();
        first.fill(0xab);
        drop(first);
        let mut second = cache.take(MIB).unwrap();
        assert_eq!(second.len(), MIB);
        second.fill(0xcd);
        drop(second);
        // Capacity 2 MiB, length was cut to 1 MiB: growing zero-fills.
        let third = cache.take(2 * MIB).unwrap();
        assert_eq!(third.len(), 2 * MIB);
        assert!(third[MIB..].iter().all(|&b| b == 0));
    }
}
