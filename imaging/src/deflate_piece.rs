//! Compressing one piece of a zlib stream on its own: raw deflate data that
//! ends on a byte boundary and is not the final block, so that pieces
//! compressed independently (in parallel) can simply be concatenated. A
//! [`Joiner`] then puts the zlib header in front, ends the stream and
//! appends the combined Adler-32.
//!
//! * `Fast` uses `fdeflate`, like the `png` crate's fastest setting.
//!   `fdeflate::Compressor` always writes a complete zlib stream of one
//!   final block, so the piece is cut out of it: the 2-byte header and the
//!   4-byte Adler-32 trailer are dropped, the block's BFINAL bit is
//!   cleared, and a sync-flush marker (an empty stored block) is appended.
//!   The marker has to start at the bit right after the end-of-block code,
//!   and `fdeflate` pads that last byte with zero bits: fdeflate's
//!   end-of-block code ends in a 1 bit, so the padding is the run of
//!   leading zeros of the last byte. Where there are at least 3 of them
//!   they already are the stored block's header. This rests on details of
//!   `fdeflate`'s output, so [`fdeflate_pieces_work`] checks it once per
//!   process by decoding a joined stream; if it ever failed, `Fast` would
//!   use `miniz_oxide` at level 1 instead.
//! * The zlib levels use `miniz_oxide` (the `png` crate's `flate2` backend)
//!   on raw deflate with a sync flush, its supported way of doing this.
//!
//! A piece that would come out larger than the data itself is stored
//! instead, as `png` does for the whole image.

use std::sync::OnceLock;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};

use crate::ProcessError;
use crate::adler::{adler32, combine};

/// How pieces are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deflater {
    /// `fdeflate`'s single fixed-table pass.
    Fast,
    /// `miniz_oxide` at this zlib level (1 to 9).
    Level(u8),
}

/// One compressed piece.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Raw deflate blocks, none final, ending on a byte boundary.
    pub(crate) bytes: Vec<u8>,
    /// Adler-32 of the uncompressed data.
    pub(crate) adler: u32,
    /// Length of the uncompressed data.
    pub(crate) len: u64,
}

/// The sync-flush marker: an empty, non-final stored block, once its 3
/// header bits are written (LEN = 0, NLEN = 0xFFFF).
const EMPTY_STORED_BLOCK: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The end of the stream: an empty final stored block.
const FINAL_EMPTY_BLOCK: [u8; 5] = [0x01, 0x00, 0x00, 0xff, 0xff];

/// Largest stored block.
const MAX_STORED: usize = 65_535;

/// Compresses `data` as a piece.
pub(crate) fn compress_piece(data: &[u8], deflater: Deflater) -> Result<Piece, ProcessError> {
    let (bytes, adler) = match deflater {
        Deflater::Fast if fdeflate_pieces_work() => fdeflate_piece(data)?,
        Deflater::Fast => (miniz_piece(data, 1)?, adler32(data)),
        Deflater::Level(level) => (miniz_piece(data, level)?, adler32(data)),
    };
    let bytes = if bytes.len() > stored_size(data.len()) {
        stored_piece(data)
    } else {
        bytes
    };
    Ok(Piece {
        bytes,
        adler,
        len: data.len() as u64,
    })
}

/// `data` cut out of `fdeflate`'s zlib stream and made a non-final piece,
/// with the Adler-32 of `data` from the stream's trailer.
fn fdeflate_piece(data: &[u8]) -> Result<(Vec<u8>, u32), ProcessError> {
    let io = |e: std::io::Error| ProcessError::Internal(format!("fdeflate failed: {e}"));
    let mut compressor =
        fdeflate::Compressor::new(Vec::with_capacity(room_for(data.len()))).map_err(io)?;
    compressor.write_data(data).map_err(io)?;
    let mut stream = compressor.finish().map_err(io)?;

    // Header (2 bytes), at least one byte of block data, Adler-32 (4 bytes).
    let shape = || ProcessError::Internal("fdeflate wrote an unexpected stream".into());
    if stream.len() < 7 || stream[2] & 1 == 0 {
        return Err(shape());
    }
    let trailer = stream.split_off(stream.len() - 4);
    let adler = u32::from_be_bytes(trailer.try_into().map_err(|_| shape())?);
    stream.drain(..2);
    stream[0] &= !1; // BFINAL: not the last block any more.
    let padding = stream.last().ok_or_else(shape)?.leading_zeros();
    if padding < 3 {
        // The stored block's header needs a byte of its own.
        stream.push(0);
    }
    stream.extend_from_slice(&EMPTY_STORED_BLOCK);
    Ok((stream, adler))
}

/// `data` compressed by `miniz_oxide` at `level` as raw deflate ending
/// with a sync flush.
fn miniz_piece(data: &[u8], level: u8) -> Result<Vec<u8>, ProcessError> {
    let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
    let mut compressor = CompressorOxide::new(flags);
    let mut out = Vec::with_capacity(room_for(data.len()));
    let (status, consumed) = compress_to_output(&mut compressor, data, TDEFLFlush::Sync, |b| {
        out.extend_from_slice(b);
        true
    });
    if status != TDEFLStatus::Okay || consumed != data.len() {
        return Err(ProcessError::Internal(format!(
            "deflate stopped with {status:?} after {consumed} of {} bytes",
            data.len()
        )));
    }
    Ok(out)
}

/// Output capacity for compressing `len` bytes: enough for the stored
/// size, so the buffer never grows (capacity that is never written costs
/// no memory).
fn room_for(len: usize) -> usize {
    stored_size(len) + 128
}

/// Size of `len` bytes as non-final stored blocks.
fn stored_size(len: usize) -> usize {
    len + 5 * len.div_ceil(MAX_STORED).max(1)
}

/// `data` as non-final stored blocks.
fn stored_piece(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_size(data.len()));
    if data.is_empty() {
        out.push(0);
        out.extend_from_slice(&EMPTY_STORED_BLOCK);
    }
    for block in data.chunks(MAX_STORED) {
        let len = block.len() as u16;
        out.push(0); // BFINAL = 0, BTYPE = stored, then padding
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// Puts pieces together into one zlib stream.
#[derive(Debug)]
pub(crate) struct Joiner {
    adler: u32,
}

impl Joiner {
    pub(crate) fn new() -> Self {
        Self { adler: 1 }
    }

    /// The zlib header (deflate, 32 KiB window) announcing `deflater`'s
    /// effort; the check bits make the 16-bit value a multiple of 31.
    pub(crate) fn header(deflater: Deflater) -> [u8; 2] {
        let level = match deflater {
            Deflater::Fast | Deflater::Level(0..=1) => 0,
            Deflater::Level(2..=5) => 1,
            Deflater::Level(6) => 2,
            Deflater::Level(_) => 3,
        };
        let flags: u16 = level << 6;
        let check = (31 - ((0x78 << 8) | flags) % 31) % 31;
        [0x78, (flags | check) as u8]
    }

    /// Takes `piece` into the checksum; its bytes go into the stream as they
    /// are, in this order.
    pub(crate) fn add(&mut self, piece: &Piece) {
        self.adler = combine(self.adler, piece.adler, piece.len);
    }

    /// What ends the stream after the last piece: an empty final block and
    /// the Adler-32 of everything.
    pub(crate) fn trailer(&self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[..5].copy_from_slice(&FINAL_EMPTY_BLOCK);
        out[5..].copy_from_slice(&self.adler.to_be_bytes());
        out
    }
}

/// Joins `pieces` of `data` into a zlib stream (for tests and the check).
fn join(pieces: &[Piece], deflater: Deflater) -> Vec<u8> {
    let mut joiner = Joiner::new();
    let mut out = Joiner::header(deflater).to_vec();
    for piece in pieces {
        joiner.add(piece);
        out.extend_from_slice(&piece.bytes);
    }
    out.extend_from_slice(&joiner.trailer());
    out
}

/// Whether [`fdeflate_piece`]'s reading of `fdeflate`'s output holds:
/// decided once per process by joining pieces that end with every amount of
/// padding and decoding the result with `miniz_oxide`.
pub(crate) fn fdeflate_pieces_work() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        // Lengths 0..16 of varied bytes end the block at varied bit offsets.
        let inputs: Vec<Vec<u8>> = (0..16)
            .map(|n| (0..n * 7).map(|i| (i * 37 % 13) as u8).collect())
            .collect();
        let mut pieces = Vec::new();
        for data in &inputs {
            match fdeflate_piece(data) {
                Ok((bytes, adler)) if adler == adler32(data) => pieces.push(Piece {
                    bytes,
                    adler,
                    len: data.len() as u64,
                }),
                _ => return false,
            }
        }
        let stream = join(&pieces, Deflater::Fast);
        miniz_oxide::inflate::decompress_to_vec_zlib(&stream).ok() == Some(inputs.concat())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        miniz_oxide::inflate::decompress_to_vec_zlib(stream).expect("a valid zlib stream")
    }

    fn sample(len: usize, seed: u32) -> Vec<u8> {
        // Filtered-image-like: mostly small values, some runs of zeros.
        (0..len as u32)
            .map(|i| {
                let h = i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24;
                if h < 40 { 0 } else { (h % 9) as u8 }
            })
            .collect()
    }

    #[test]
    fn the_fdeflate_reading_holds() {
        assert!(fdeflate_pieces_work());
    }

    #[test]
    fn pieces_join_into_one_stream_for_every_deflater() {
        for deflater in [
            Deflater::Fast,
            Deflater::Level(1),
            Deflater::Level(6),
            Deflater::Level(9),
        ] {
            let parts: Vec<Vec<u8>> = [0, 1, 2, 3, 100, 5000, 70_000, 131_072]
                .iter()
                .enumerate()
                .map(|(i, &len)| sample(len, i as u32))
                .collect();
            let pieces: Vec<Piece> = parts
                .iter()
                .map(|p| compress_piece(p, deflater).unwrap())
                .collect();
            let stream = join(&pieces, deflater);
            assert_eq!(inflate(&stream), parts.concat(), "{deflater:?}");
            assert!(
                stream.len() < parts.concat().len() * 3 / 4,
                "{deflater:?} compresses"
            );
        }
    }

    #[test]
    fn every_fdeflate_padding_is_handled() {
        // Pieces ending at each bit offset, joined pairwise with a second
        // piece, so that a wrong marker would corrupt what follows.
        for len in 0..64 {
            let first = sample(len, 3);
            let second = sample(50, 4);
            let pieces = [
                compress_piece(&first, Deflater::Fast).unwrap(),
                compress_piece(&second, Deflater::Fast).unwrap(),
            ];
            let stream = join(&pieces, Deflater::Fast);
            assert_eq!(inflate(&stream), [first, second].concat(), "length {len}");
        }
    }

    #[test]
    fn incompressible_data_is_stored() {
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let piece = compress_piece(&noise, Deflater::Fast).unwrap();
        assert_eq!(piece.bytes.len(), stored_size(noise.len()));
        let stream = join(&[piece], Deflater::Fast);
        assert_eq!(inflate(&stream), noise);
    }

    #[test]
    fn headers_pass_the_zlib_check() {
        for deflater in [Deflater::Fast, Deflater::Level(6), Deflater::Level(9)] {
            let [cmf, flg] = Joiner::header(deflater);
            assert_eq!((u16::from(cmf) << 8 | u16::from(flg)) % 31, 0);
            assert_eq!(cmf, 0x78);
        }
        assert_eq!(Joiner::header(Deflater::Fast), [0x78, 0x01]);
        assert_eq!(Joiner::header(Deflater::Level(6)), [0x78, 0x9c]);
        assert_eq!(Joiner::header(Deflater::Level(9)), [0x78, 0xda]);
    }
}
