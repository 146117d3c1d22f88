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
//!
//! [`SecureRead`] is in `read.rs`, [`SecureWrite`] in `write.rs`.

mod read;
#[cfg(test)]
mod tests;
mod write;

use std::{io, sync::Arc};

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    FrameReader, FrameWriter,
    frame::FrameLimits,
    noise::{MAX_MESSAGE, TAG_LEN},
};

pub use read::SecureRead;
pub use write::SecureWrite;

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
