//! PNG chunks: reading their framing (length, type, data, CRC) without
//! copying, and writing a new datastream chunk by chunk.
//!
//! This is deliberately independent of the `png` decoder: it gives precise
//! messages for damaged files, and it lets us rewrite individual chunks
//! while copying every other chunk byte for byte.

use png::chunk::{self, ChunkType};

use crate::ProcessError;
use crate::crc::chunk_crc;
use crate::detect::PNG_SIGNATURE;

/// The largest chunk length the PNG specification allows (2^31 - 1).
const MAX_CHUNK_LEN: u32 = i32::MAX as u32;

/// One chunk, borrowed from the datastream it was read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk<'a> {
    /// The four-letter chunk type.
    pub(crate) kind: ChunkType,
    /// The chunk data, without length, type and CRC.
    pub(crate) data: &'a [u8],
    /// The whole chunk as stored: length, type, data and CRC.
    pub(crate) raw: &'a [u8],
    /// Where the chunk starts in the datastream.
    pub(crate) offset: usize,
}

impl Chunk<'_> {
    /// Checks the stored CRC against the type and data.
    pub(crate) fn verify_crc(&self) -> Result<(), ProcessError> {
        let stored = &self.raw[self.raw.len() - 4..];
        if stored != chunk_crc(self.kind.0, self.data).to_be_bytes() {
            return Err(ProcessError::corrupt(format!(
                "CRC mismatch in {} chunk",
                type_name(self.kind)
            )));
        }
        Ok(())
    }
}

/// The chunks of a datastream whose framing is known to be sound (one that
/// [`validate_stream`] accepted, or one the `png` encoder wrote), in order
/// from IHDR to IEND. Stops early at malformed framing instead of failing.
///
/// [`validate_stream`]: crate::stream::validate_stream
pub(crate) fn chunks_of(png: &[u8]) -> impl Iterator<Item = Chunk<'_>> {
    Chunks::starting_at(png, PNG_SIGNATURE.len()).map_while(Result::ok)
}

/// Iterates over the chunks from byte `pos` up to and including IEND,
/// checking their framing (not their CRC). Stops after the first error.
#[derive(Debug)]
pub(crate) struct Chunks<'a> {
    png: &'a [u8],
    /// Where the next chunk starts.
    pos: usize,
    done: bool,
}

impl<'a> Chunks<'a> {
    pub(crate) fn starting_at(png: &'a [u8], pos: usize) -> Self {
        debug_assert!(png.starts_with(&PNG_SIGNATURE));
        Self {
            png,
            pos,
            done: false,
        }
    }
}

impl Chunks<'_> {
    /// Where the next chunk would start: after IEND, the end of the datastream.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = read_chunk(self.png, self.pos);
        match &result {
            Ok(chunk) => {
                self.pos += chunk.raw.len();
                self.done = chunk.kind == chunk::IEND;
            }
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

/// Reads the framing of the chunk starting at byte `pos` of `png`.
pub(crate) fn read_chunk(png: &[u8], pos: usize) -> Result<Chunk<'_>, ProcessError> {
    let rest = png.get(pos..).unwrap_or_default();
    if rest.is_empty() {
        return Err(ProcessError::corrupt("truncated file: missing IEND chunk"));
    }
    let Some((header, body)) = rest.split_first_chunk::<8>() else {
        return Err(ProcessError::corrupt(format!(
            "truncated file: the chunk header at byte {pos} has only {} of 8 bytes",
            rest.len()
        )));
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind = ChunkType([header[4], header[5], header[6], header[7]]);
    if !kind.0.iter().all(u8::is_ascii_alphabetic) {
        return Err(ProcessError::corrupt(format!(
            "invalid chunk type {} at byte {pos}",
            type_name(kind)
        )));
    }
    if len > MAX_CHUNK_LEN {
        return Err(ProcessError::corrupt(format!(
            "invalid length {len} of the {} chunk at byte {pos} (the maximum is 2^31-1)",
            type_name(kind)
        )));
    }
    let len = len as usize;
    if body.len() < len {
        return Err(ProcessError::corrupt(format!(
            "truncated {} chunk: the file ends after {} of its {len} data bytes",
            type_name(kind),
            body.len()
        )));
    }
    if body.len() < len + 4 {
        return Err(ProcessError::corrupt(format!(
            "truncated {} chunk: the file ends inside its CRC",
            type_name(kind)
        )));
    }
    Ok(Chunk {
        kind,
        data: &body[..len],
        raw: &rest[..8 + len + 4],
        offset: pos,
    })
}

/// A chunk type for messages: its letters, or its bytes in hex if they are
/// not all printable.
pub(crate) fn type_name(kind: ChunkType) -> String {
    if kind.0.iter().all(u8::is_ascii_graphic) {
        kind.0.iter().map(|&b| char::from(b)).collect()
    } else {
        let hex: Vec<String> = kind.0.iter().map(|b| format!("{b:02X}")).collect();
        format!("0x{}", hex.concat())
    }
}

/// Builds a PNG datastream chunk by chunk.
#[derive(Debug)]
pub(crate) struct PngWriter {
    out: Vec<u8>,
}

impl PngWriter {
    /// Starts a datastream (writes the signature), reserving `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(PNG_SIGNATURE.len()));
        out.extend_from_slice(&PNG_SIGNATURE);
        Self { out }
    }

    /// Copies a chunk byte for byte.
    pub(crate) fn copy(&mut self, chunk: &Chunk<'_>) {
        self.out.extend_from_slice(chunk.raw);
    }

    /// Writes a chunk, computing its CRC. `data` must be at most 2^31-1 bytes.
    pub(crate) fn write(&mut self, kind: ChunkType, data: &[u8]) {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&len| len <= MAX_CHUNK_LEN)
            .expect("chunk data longer than 2^31-1 bytes");
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&kind.0);
        self.out.extend_from_slice(data);
        self.out
            .extend_from_slice(&chunk_crc(kind.0, data).to_be_bytes());
    }

    /// Writes a chunk of `kind` whose data is `prefix` followed by `data`.
    pub(crate) fn write_with_prefix(&mut self, kind: ChunkType, prefix: &[u8], data: &[u8]) {
        let mut joined = Vec::with_capacity(prefix.len() + data.len());
        joined.extend_from_slice(prefix);
        joined.extend_from_slice(data);
        self.write(kind, &joined);
    }

    /// The finished datastream.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const IHDR_1X1_GRAY: [u8; 13] = [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0];
    /// zlib stream of one row: filter byte 0, pixel 0.
    pub(crate) const IDAT_1X1: [u8; 10] = [0x78, 0x01, 0x63, 0x60, 0, 0, 0, 0x02, 0, 0x01];

    /// A datastream made of these chunks.
    pub(crate) fn png(chunks: &[(ChunkType, &[u8])]) -> Vec<u8> {
        let mut w = PngWriter::with_capacity(64);
        for (kind, data) in chunks {
            w.write(*kind, data);
        }
        w.finish()
    }

    /// A minimal well-formed datastream: IHDR (1x1 gray), one IDAT, IEND.
    pub(crate) fn tiny_png() -> Vec<u8> {
        png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ])
    }

    fn framing_error(png: &[u8]) -> String {
        let results: Vec<_> = Chunks::starting_at(png, PNG_SIGNATURE.len()).collect();
        match results.last() {
            Some(Err(e)) => e.to_string(),
            other => panic!("no error: {other:?}"),
        }
    }

    #[test]
    fn iterates_over_a_well_formed_stream() {
        let png = tiny_png();
        let chunks: Vec<Chunk<'_>> = chunks_of(&png).collect();
        let kinds: Vec<String> = chunks.iter().map(|c| type_name(c.kind)).collect();
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_eq!(chunks[1].offset, 33);
        assert_eq!(chunks[1].data, IDAT_1X1);
        let total: usize = chunks.iter().map(|c| c.raw.len()).sum();
        assert_eq!(total + 8, png.len());
        assert!(chunks.iter().all(|c| c.verify_crc().is_ok()));
    }

    #[test]
    fn copy_round_trips() {
        let png = tiny_png();
        let mut w = PngWriter::with_capacity(png.len());
        for chunk in chunks_of(&png) {
            w.copy(&chunk);
        }
        assert_eq!(w.finish(), png);
    }

    #[test]
    fn every_truncation_is_reported_as_such() {
        let png = tiny_png();
        for len in 8..png.len() {
            let msg = framing_error(&png[..len]);
            assert!(msg.starts_with("truncated"), "at {len}: {msg}");
        }
        assert_eq!(
            framing_error(&png[..53]),
            "truncated IDAT chunk: the file ends inside its CRC"
        );
        assert_eq!(
            framing_error(&png[..45]),
            "truncated IDAT chunk: the file ends after 4 of its 10 data bytes"
        );
    }

    #[test]
    fn bad_crc_names_the_chunk() {
        for (offset, kind) in [(29, "IHDR"), (51, "IDAT"), (63, "IEND")] {
            let mut png = tiny_png();
            png[offset] ^= 1;
            let bad = chunks_of(&png).find_map(|c| c.verify_crc().err());
            assert_eq!(
                bad.unwrap().to_string(),
                format!("CRC mismatch in {kind} chunk")
            );
        }
    }

    #[test]
    fn invalid_framing() {
        let mut bad_type = tiny_png();
        bad_type[38] = b'0';
        assert_eq!(
            framing_error(&bad_type),
            "invalid chunk type I0AT at byte 33"
        );

        let mut bad_len = tiny_png();
        bad_len[33] = 0x80;
        assert_eq!(
            framing_error(&bad_len),
            "invalid length 2147483658 of the IDAT chunk at byte 33 (the maximum is 2^31-1)"
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name(chunk::IDAT), "IDAT");
        assert_eq!(type_name(ChunkType([0x52, 0, 0x79, 0])), "0x52007900");
    }
}
