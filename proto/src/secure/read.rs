//! [`SecureRead`]: decrypts records into plaintext, and fails for good at
//! the first record that does not authenticate.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::{Keys, LEN_PREFIX, Tampered, open_record};

/// Decrypts records into plaintext.
pub struct SecureRead<R> {
    inner: R,
    keys: Keys,
    peer: String,
    /// The next record's number.
    counter: u64,
    /// Ciphertext read but not yet a whole record.
    pub(super) sealed: BytesMut,
    /// Plaintext of the last record, not yet read.
    pub(super) open: BytesMut,
    /// Set once a record failed: every later read fails the same way.
    failed: Option<Tampered>,
}

impl<R> std::fmt::Debug for SecureRead<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureRead")
            .field("peer", &self.peer)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<R> SecureRead<R> {
    /// `already` holds bytes read past the handshake (the start of the
    /// first records).
    pub fn new(inner: R, keys: Keys, peer: impl Into<String>, already: BytesMut) -> Self {
        SecureRead {
            inner,
            keys,
            peer: peer.into(),
            counter: 0,
            sealed: already,
            open: BytesMut::new(),
            failed: None,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The length of the record at the front of `sealed`, if it is all
    /// there.
    fn whole_record(&self) -> Option<usize> {
        if self.sealed.len() < LEN_PREFIX {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.sealed[0], self.sealed[1]]));
        (self.sealed.len() >= LEN_PREFIX + len).then_some(len)
    }

    /// Opens the whole record (`len` bytes) at the front of `sealed` into
    /// `out` (at least `len` bytes: the AEAD writes the tag there too) and
    /// returns its plaintext's length. On failure nothing in `out` counts
    /// as read, and every later read fails the same way.
    fn open_front(&mut self, len: usize, out: &mut [u8]) -> io::Result<usize> {
        self.sealed.advance(LEN_PREFIX);
        let record = self.sealed.split_to(len);
        match open_record(&self.keys, self.counter, &record, out) {
            Some(n) => {
                self.counter += 1;
                Ok(n)
            }
            None => {
                let tampered = Tampered {
                    peer: self.peer.clone(),
                    record: self.counter,
                };
                tracing::warn!("{tampered}");
                self.failed = Some(tampered.clone());
                Err(io::Error::new(io::ErrorKind::InvalidData, tampered))
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SecureRead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(t) = &this.failed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, t.clone())));
        }
        while this.open.is_empty() {
            if let Some(len) = this.whole_record() {
                if buf.remaining() >= len {
                    // Room for the whole record: open it straight into the
                    // reader's buffer, without a copy through `open`.
                    let n = this.open_front(len, buf.initialize_unfilled_to(len))?;
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                this.open.resize(len, 0);
                let mut open = std::mem::take(&mut this.open);
                let opened = this.open_front(len, &mut open);
                this.open = open;
                match opened {
                    Ok(n) => this.open.truncate(n),
                    Err(e) => {
                        this.open.clear();
                        return Poll::Ready(Err(e));
                    }
                }
                continue;
            }
            // Read more ciphertext: room for the rest of this record (at
            // least 4 KiB), so an idle connection holds little.
            let need = match this.sealed.len() {
                n if n >= LEN_PREFIX => {
                    LEN_PREFIX + usize::from(u16::from_be_bytes([this.sealed[0], this.sealed[1]]))
                        - n
                }
                n => LEN_PREFIX - n,
            };
            this.sealed.reserve(need.max(4096));
            let before = this.sealed.len();
            let read = ready!(poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.sealed
            ))?;
            if read == 0 {
                if before == 0 {
                    return Poll::Ready(Ok(())); // a clean end between records
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} closed the connection in the middle of a record",
                        this.peer
                    ),
                )));
            }
        }
        let n = buf.remaining().min(this.open.len());
        buf.put_slice(&this.open.split_to(n));
        Poll::Ready(Ok(()))
    }
}
