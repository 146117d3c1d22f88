//! [`SecureWrite`]: seals bytes into records, a record at most
//! [`MAX_RECORD_PLAINTEXT`] bytes of plaintext.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use super::{Keys, LEN_PREFIX, MAX_RECORD_PLAINTEXT, OVERHEAD, seal_record};

/// Encrypts bytes into records.
pub struct SecureWrite<W> {
    inner: W,
    keys: Keys,
    counter: u64,
    /// Plaintext not yet sealed (at most one record's).
    pub(super) plain: Vec<u8>,
    /// Sealed records not yet written to `inner`.
    sealed: BytesMut,
}

impl<W> std::fmt::Debug for SecureWrite<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureWrite")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<W> SecureWrite<W> {
    pub fn new(inner: W, keys: Keys) -> Self {
        SecureWrite {
            inner,
            keys,
            counter: 0,
            // Grows to a record's worth only on a connection that sends
            // that much at once.
            plain: Vec::new(),
            sealed: BytesMut::new(),
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Seals the buffered plaintext into one record.
    fn seal(&mut self) -> io::Result<()> {
        if self.plain.is_empty() {
            return Ok(());
        }
        seal_into(&self.keys, &mut self.counter, &self.plain, &mut self.sealed)?;
        self.plain.clear();
        Ok(())
    }
}

/// Appends record `counter` of `plain` (its length prefix and ciphertext)
/// to `sealed`, and counts it.
fn seal_into(
    keys: &Keys,
    counter: &mut u64,
    plain: &[u8],
    sealed: &mut BytesMut,
) -> io::Result<()> {
    let len = plain.len() + OVERHEAD;
    let start = sealed.len();
    sealed.resize(start + LEN_PREFIX + len, 0);
    sealed[start..start + LEN_PREFIX].copy_from_slice(&(len as u16).to_be_bytes());
    let n = seal_record(keys, *counter, plain, &mut sealed[start + LEN_PREFIX..])?;
    debug_assert_eq!(n, len);
    *counter += 1;
    Ok(())
}

impl<W: AsyncWrite + Unpin> SecureWrite<W> {
    /// Writes sealed records out until none is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.sealed.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.sealed))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sealed.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SecureWrite<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.plain.len() == MAX_RECORD_PLAINTEXT {
            this.seal()?;
        }
        // Bounded: at most one sealed record waits while we take more.
        ready!(this.poll_drain(cx))?;
        if this.plain.is_empty() && buf.len() >= MAX_RECORD_PLAINTEXT {
            // A whole record's worth: seal it straight from `buf`, without
            // a copy through `plain` (the same record as through it).
            seal_into(
                &this.keys,
                &mut this.counter,
                &buf[..MAX_RECORD_PLAINTEXT],
                &mut this.sealed,
            )?;
            return Poll::Ready(Ok(MAX_RECORD_PLAINTEXT));
        }
        let n = buf.len().min(MAX_RECORD_PLAINTEXT - this.plain.len());
        this.plain.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.seal()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
