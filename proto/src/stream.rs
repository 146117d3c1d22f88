//! Reassembly of a chunked byte stream whose total length was announced.

use bytes::{Bytes, BytesMut};

/// A chunk would take the stream past its announced length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream overrun: {received} bytes received, {announced} announced")]
pub struct Overrun {
    pub announced: u64,
    pub received: u64,
}

/// Counts the bytes of a stream against its announced length.
#[derive(Debug, Clone)]
pub struct Progress {
    announced: u64,
    received: u64,
}

impl Progress {
    pub fn new(announced: u64) -> Self {
        Progress {
            announced,
            received: 0,
        }
    }

    /// Accounts for `n` more bytes; `Ok(true)` when the stream is complete.
    pub fn add(&mut self, n: usize) -> Result<bool, Overrun> {
        let received = self.received.saturating_add(n as u64);
        if received > self.announced {
            return Err(Overrun {
                announced: self.announced,
                received,
            });
        }
        self.received = received;
        Ok(self.is_complete())
    }

    pub fn is_complete(&self) -> bool {
        self.received == self.announced
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn announced(&self) -> u64 {
        self.announced
    }
}

/// Collects a stream in memory. A stream that arrives as one chunk is kept as
/// that chunk (no copy); otherwise the chunks are appended into one buffer
/// allocated once at the announced size.
#[derive(Debug)]
pub struct Collector {
    progress: Progress,
    single: Option<Bytes>,
    buf: BytesMut,
}

impl Collector {
    /// `announced` must already be checked against the receiver's size limit.
    pub fn new(announced: u64) -> Self {
        Collector {
            progress: Progress::new(announced),
            single: None,
            buf: BytesMut::new(),
        }
    }

    /// Adds a chunk; returns the whole stream once complete.
    pub fn push(&mut self, chunk: Bytes) -> Result<Option<Bytes>, Overrun> {
        let complete = self.progress.add(chunk.len())?;
        if self.single.is_none() && self.buf.is_empty() && complete {
            return Ok(Some(chunk));
        }
        if let Some(first) = self.single.take() {
            self.buf.reserve(self.progress.announced() as usize);
            self.buf.extend_from_slice(&first);
        }
        if self.buf.is_empty() && self.single.is_none() && !complete {
            self.single = Some(chunk);
            return Ok(None);
        }
        self.buf.extend_from_slice(&chunk);
        Ok(complete.then(|| std::mem::take(&mut self.buf).freeze()))
    }

    pub fn is_complete(&self) -> bool {
        self.progress.is_complete()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_chunk_is_not_copied() {
        let data = Bytes::from(vec![1u8, 2, 3]);
        let mut c = Collector::new(3);
        let out = c.push(data.clone()).unwrap().unwrap();
        assert_eq!(out.as_ptr(), data.as_ptr());
    }

    #[test]
    fn chunks_reassemble_in_order() {
        let mut c = Collector::new(6);
        assert_eq!(c.push(Bytes::from_static(b"ab")).unwrap(), None);
        assert_eq!(c.push(Bytes::from_static(b"cd")).unwrap(), None);
        assert_eq!(
            c.push(Bytes::from_static(b"ef")).unwrap().unwrap(),
            Bytes::from_static(b"abcdef")
        );
    }

    #[test]
    fn overrun_is_refused() {
        let mut c = Collector::new(3);
        assert_eq!(c.push(Bytes::from_static(b"ab")).unwrap(), None);
        assert_eq!(
            c.push(Bytes::from_static(b"cd")).unwrap_err(),
            Overrun {
                announced: 3,
                received: 4
            }
        );
    }

    #[test]
    fn empty_stream_is_complete_at_once() {
        assert!(Collector::new(0).is_complete());
    }
}
