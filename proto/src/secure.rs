//! The record layer under the frames: after the handshake, every byte of a
//! connection travels in Noise transport messages ("records"), each a
//! 2-byte big-endian length and that many bytes of AES-256-GCM ciphertext
//! with its tag. Each direction numbers its records from 0 and the number is
//! the AEAD nonce, so a record that was modified, forged, replayed,
//! reordered or dropped fails to decrypt: the reader logs it, returns
//! [`Tampered`] and yields nothing more; no byte of a failed record (nor of
//! the frame it belongs to) reaches the frame decoder.
//!
//! [`SecureRead`] and [`SecureWrite`] are byte streams (`AsyncRead`,
//! `AsyncWrite`), so the frame codec above them is unchanged; a frame larger
//! than a record spans several.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BytesMut};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use crate::{
    FrameReader, FrameWriter,
    frame::FrameLimits,
    noise::{MAX_MESSAGE, TAG_LEN},
};

/// False only in a build with the benchmarks-only `unencrypted-records`
/// feature, whose records carry plaintext.
pub const ENCRYPTED: bool = !cfg!(feature = "unencrypted-records");

/// Bytes a record adds to its plaintext (the AEAD tag).
const OVERHEAD: usize = if cfg!(feature = "unencrypted-records") {
    0
} else {
    TAG_LEN
};

/// Largest plaintext in one record.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_MESSAGE - OVERHEAD;

/// Encrypts record `counter` from `plain` into `out` (exactly
/// `plain.len() + OVERHEAD` bytes).
fn seal_record(keys: &Keys, counter: u64, plain: &[u8], out: &mut [u8]) -> io::Result<usize> {
    if cfg!(feature = "unencrypted-records") {
        out[..plain.len()].copy_from_slice(plain);
        return Ok(plain.len());
    }
    keys.write_message(counter, plain, out)
        .map_err(|e| io::Error::other(format!("cannot seal a record: {e}")))
}

/// Decrypts and authenticates record `counter`; `None` if it fails.
fn open_record(keys: &Keys, counter: u64, record: &[u8], out: &mut [u8]) -> Option<usize> {
    if cfg!(feature = "unencrypted-records") {
        out[..record.len()].copy_from_slice(record);
        return Some(record.len());
    }
    keys.read_message(counter, record, out).ok()
}

const LEN_PREFIX: usize = 2;

/// A record failed authentication: the connection was tampered with (or
/// the peer is broken). The connection must be closed; it is, by the
/// reader refusing to read further.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "record {record} from {peer} failed authentication (modified, forged, replayed, reordered or dropped in transit): closing the connection"
)]
pub struct Tampered {
    /// The peer, for the log line.
    pub peer: String,
    /// The record's number in its direction.
    pub record: u64,
}

impl Tampered {
    /// The `Tampered` inside an I/O error, if that is what it is.
    pub fn from_io(e: &io::Error) -> Option<&Tampered> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Tampered>())
    }
}

/// A connection's keys, shared by its two halves.
pub type Keys = Arc<StatelessTransportState>;

/// Decrypts records into plaintext.
pub struct SecureRead<R> {
    inner: R,
    keys: Keys,
    peer: String,
    /// The next record's number.
    counter: u64,
    /// Ciphertext read but not yet a whole record.
    sealed: BytesMut,
    /// Plaintext of the last record, not yet read.
    open: BytesMut,
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

/// Encrypts bytes into records.
pub struct SecureWrite<W> {
    inner: W,
    keys: Keys,
    counter: u64,
    /// Plaintext not yet sealed (at most one record's).
    plain: Vec<u8>,
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

/// A connection's frames once the handshake is over.
pub type SecureReader<R> = FrameReader<SecureRead<R>>;
/// See [`SecureReader`].
pub type SecureWriter<W> = FrameWriter<SecureWrite<W>>;

/// The record streams under a connection whose handshake is over: the
/// reading side keeps the bytes the handshake's reader had read past its
/// last frame.
pub fn streams<R, W>(
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
    keys: StatelessTransportState,
    peer: impl Into<String>,
) -> (SecureRead<R>, SecureWrite<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let keys = Arc::new(keys);
    let (read, already) = reader.into_parts();
    (
        SecureRead::new(read, keys.clone(), peer, already),
        SecureWrite::new(writer.into_inner(), keys),
    )
}

/// Moves a connection from the handshake's cleartext frames to records
/// under `keys` ([`streams`]); the reader takes `limits`, the writer keeps
/// its frame limit.
pub fn upgrade<R, W>(
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
    keys: StatelessTransportState,
    peer: impl Into<String>,
    limits: FrameLimits,
) -> (SecureReader<R>, SecureWriter<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max_frame = writer.max_frame();
    let (read, write) = streams(reader, writer, keys, peer);
    (
        FrameReader::with_limits(read, limits),
        FrameWriter::new(write, max_frame),
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{ClusterKey, Msg, ProtoError, noise};

    /// Both sides' keys after an in-memory handshake.
    fn pair() -> (Keys, Keys) {
        let key = ClusterKey::from_bytes([3; 32]);
        let (i, r) = noise::handshake_in_memory(&key, b"hello").unwrap();
        (Arc::new(i), Arc::new(r))
    }

    /// The records `writes` become, each write flushed on its own.
    async fn sealed(keys: Keys, writes: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut w = SecureWrite::new(Vec::new(), keys);
        let mut records = Vec::new();
        for data in writes {
            w.write_all(data).await.unwrap();
            w.flush().await.unwrap();
            let all = std::mem::take(w.get_mut());
            let mut rest = &all[..];
            while !rest.is_empty() {
                let len = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                records.push(rest[..len].to_vec());
                rest = &rest[len..];
            }
        }
        records
    }

    async fn read_all(keys: Keys, wire: Vec<u8>) -> (Vec<u8>, io::Result<usize>) {
        let mut r = SecureRead::new(&wire[..], keys, "test peer", BytesMut::new());
        let mut out = Vec::new();
        let end = r.read_to_end(&mut out).await;
        (out, end)
    }

    #[tokio::test]
    async fn records_round_trip_and_a_large_write_is_split_at_the_noise_limit() {
        let (a, b) = pair();
        let big: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
        let records = sealed(a, &[b"small", &big]).await;
        assert_eq!(records.len(), 1 + big.len().div_ceil(MAX_RECORD_PLAINTEXT));
        assert!(records.iter().all(|r| r.len() <= 2 + MAX_MESSAGE));
        let (out, end) = read_all(b, records.concat()).await;
        end.unwrap();
        assert_eq!(out, [&b"small"[..], &big].concat());
    }

    /// A write of whole records is sealed straight from the caller's buffer;
    /// small writes go through `plain`. Both make the same records, and
    /// reading them into a buffer with room for a whole record (opened in
    /// place) or into a small one (through `open`) gives the same bytes.
    #[tokio::test]
    async fn whole_writes_and_pieces_make_the_same_records_and_big_and_small_reads_the_same_bytes()
    {
        let data: Vec<u8> = (0..3 * MAX_RECORD_PLAINTEXT + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let (a, b) = pair();
        let whole = sealed(a.clone(), &[&data]).await;
        let mut w = SecureWrite::new(Vec::new(), a);
        for piece in data.chunks(1000) {
            w.write_all(piece).await.unwrap();
        }
        w.flush().await.unwrap();
        let pieces = std::mem::take(w.get_mut());
        assert_eq!(whole.concat(), pieces, "the same records either way");

        let mut big = SecureRead::new(&pieces[..], b.clone(), "peer", BytesMut::new());
        let mut in_place = vec![0u8; data.len()];
        big.read_exact(&mut in_place).await.unwrap();
        assert_eq!(in_place, data);
        assert!(big.open.is_empty());
        let mut small = SecureRead::new(&pieces[..], b, "peer", BytesMut::new());
        let mut through = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            match small.read(&mut buf).await.unwrap() {
                0 => break,
                n => through.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(through, data);
    }

    #[tokio::test]
    async fn a_modified_replayed_reordered_or_dropped_record_ends_the_stream() {
        let (a, b) = pair();
        let records = sealed(a, &[b"one", b"two", b"three"]).await;
        let flipped = {
            let mut r = records.clone();
            r[1][5] ^= 1;
            r
        };
        let cases = [
            ("modified", flipped),
            ("replayed", vec![records[0].clone(), records[0].clone()]),
            ("reordered", vec![records[1].clone(), records[0].clone()]),
            ("dropped", vec![records[0].clone(), records[2].clone()]),
        ];
        for (what, wire) in cases {
            let wire = wire.concat();
            let mut r = SecureRead::new(&wire[..], b.clone(), "peer", BytesMut::new());
            let mut got = Vec::new();
            let err = loop {
                let mut buf = [0u8; 64];
                match r.read(&mut buf).await {
                    Ok(0) => panic!("{what}: read to the end without an error"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            let tampered = Tampered::from_io(&err).unwrap_or_else(|| panic!("{what}: {err}"));
            let at = if what == "reordered" { 0 } else { 1 };
            assert_eq!(tampered.record, at, "{what}");
            assert_eq!(got, if at == 0 { &b""[..] } else { b"one" }, "{what}");
            // And it stays failed.
            assert!(r.read(&mut [0u8; 8]).await.is_err(), "{what}");
            assert!(matches!(ProtoError::from(err), ProtoError::Tampered(_)));
        }
    }

    #[tokio::test]
    async fn a_frame_whose_second_record_fails_is_never_decoded() {
        let (a, b) = pair();
        let frame = {
            let mut w = crate::FrameWriter::new(SecureWrite::new(Vec::new(), a), 1 << 20);
            let big = bytes::Bytes::from(vec![9u8; 100_000]);
            w.send_stream(1, &big).await.unwrap();
            std::mem::take(w.get_mut().get_mut())
        };
        let mut wire = frame.clone();
        let last = wire.len() - 1;
        wire[last] ^= 0x80; // in the last record's tag
        let mut reader = crate::FrameReader::new(
            SecureRead::new(&wire[..], b.clone(), "peer", BytesMut::new()),
            1 << 20,
        );
        let first = reader.recv().await;
        assert!(matches!(first, Err(ProtoError::Tampered(_))), "{first:?}");
        let mut reader = crate::FrameReader::new(
            SecureRead::new(&frame[..], b, "peer", BytesMut::new()),
            1 << 20,
        );
        assert_eq!(reader.recv().await.unwrap().msg, Msg::Chunk { stream: 1 });
    }

    /// An idle connection (small control records) holds kilobytes, not a
    /// record's worth per direction: the master has up to 1,024 of them.
    #[tokio::test]
    async fn small_records_keep_the_buffers_small() {
        let (a, b) = pair();
        let mut w = SecureWrite::new(Vec::new(), a);
        w.write_all(b"heartbeat").await.unwrap();
        w.flush().await.unwrap();
        assert!(w.plain.capacity() < 1024, "{}", w.plain.capacity());
        let wire = std::mem::take(w.get_mut());
        let mut r = SecureRead::new(&wire[..], b, "peer", BytesMut::new());
        let mut got = [0u8; 9];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"heartbeat");
        assert!(r.sealed.capacity() <= 8192, "{}", r.sealed.capacity());
        assert!(r.open.capacity() <= 8192, "{}", r.open.capacity());
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_record_is_an_error_and_between_records_a_clean_end() {
        let (a, b) = pair();
        let wire = sealed(a, &[b"one", b"two"]).await.concat();
        let (out, end) = read_all(b.clone(), wire[..wire.len() - 3].to_vec()).await;
        assert_eq!(out, b"one");
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (out, end) = read_all(b, wire).await;
        assert_eq!((out, end.unwrap()), (b"onetwo".to_vec(), 6));
    }
}
