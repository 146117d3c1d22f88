//! The PNG chunk stream: reading it with strict framing checks (every CRC,
//! no truncation, IHDR first, IEND last) and writing a new one.
//!
//! This is deliberately independent of the `png` decoder: it gives precise
//! messages for damaged files, and it lets us rewrite individual chunks
//! while copying every other chunk byte for byte.

use png::chunk::{self, ChunkType};

use crate::ProcessError;
use crate::crc::chunk_crc;
use crate::detect::PNG_SIGNATURE;
use crate::header::Header;

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
    fn verify_crc(&self) -> Result<(), ProcessError> {
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

/// Checks the framing of a whole PNG datastream and returns its header.
///
/// Rejects, with a message naming the chunk and reporting the first problem
/// in file order: a first chunk that is not a valid IHDR, a bad CRC on any
/// chunk (critical or ancillary), a chunk cut short by the end of the input,
/// an invalid chunk length or type, IDAT chunks that are missing, empty or
/// not consecutive, a missing or non-empty IEND, and bytes after IEND.
/// Chunk contents other than IHDR are left to the `png` decoder.
///
/// This reads the input once and allocates nothing per chunk.
pub(crate) fn validate_stream(png: &[u8]) -> Result<Header, ProcessError> {
    if let Some(&[a, b, c, d]) = png.get(12..16) {
        let kind = ChunkType([a, b, c, d]);
        if kind != chunk::IHDR {
            return Err(ProcessError::corrupt(missing_ihdr(png, kind)));
        }
    }
    let ihdr = read_chunk(png, PNG_SIGNATURE.len())?;
    ihdr.verify_crc()?;
    let header = Header::parse(ihdr.data)?;

    let mut idat = IdatRun::NotSeen;
    let mut idat_bytes = 0usize;
    let mut chunks = Chunks::starting_at(png, PNG_SIGNATURE.len() + ihdr.raw.len());
    for chunk in &mut chunks {
        let chunk = chunk?;
        chunk.verify_crc()?;
        idat = match (idat, chunk.kind == chunk::IDAT) {
            (IdatRun::Ended { by, at }, true) => {
                return Err(ProcessError::corrupt(format!(
                    "IDAT chunks are not consecutive: the {} chunk at byte {at} interrupts them",
                    type_name(by)
                )));
            }
            (_, true) => IdatRun::Inside,
            (IdatRun::Inside, false) => IdatRun::Ended {
                by: chunk.kind,
                at: chunk.offset,
            },
            (state, false) => state,
        };
        if chunk.kind == chunk::IDAT {
            idat_bytes += chunk.data.len();
        }
        if chunk.kind == chunk::IEND && !chunk.data.is_empty() {
            return Err(ProcessError::corrupt(format!(
                "invalid IEND chunk: it must be empty, but its length is {}",
                chunk.data.len()
            )));
        }
    }
    if let Some(extra) = png.len().checked_sub(chunks.pos).filter(|&n| n > 0) {
        return Err(ProcessError::corrupt(format!(
            "{extra} unexpected byte{} after the IEND chunk",
            if extra == 1 { "" } else { "s" }
        )));
    }
    match idat {
        IdatRun::NotSeen => Err(ProcessError::corrupt(
            "missing IDAT: the file contains no image data",
        )),
        _ if idat_bytes == 0 => Err(ProcessError::corrupt(
            "missing image data: the IDAT chunks are empty",
        )),
        _ => Ok(header),
    }
}

/// The message for a datastream whose first chunk type, `kind`, is not IHDR.
fn missing_ihdr(png: &[u8], kind: ChunkType) -> String {
    // A damaged length field shifts "IHDR" away from byte 12; say so.
    let window = &png[..png.len().min(32)];
    match window.windows(4).position(|w| w == b"IHDR") {
        Some(at) => format!(
            "missing IHDR: the chunk header is damaged (the type IHDR is at byte {at}, not 12)"
        ),
        None => format!("missing IHDR: the first chunk is {}", type_name(kind)),
    }
}

/// Where we are relative to the (single) run of consecutive IDAT chunks.
#[derive(Clone, Copy, Debug)]
enum IdatRun {
    NotSeen,
    Inside,
    /// Ended by the chunk of type `by` at byte `at`.
    Ended { by: ChunkType, at: usize },
}

/// The chunks of a datastream that [`validate_stream`] accepted, in order,
/// from IHDR to IEND.
pub(crate) fn validated_chunks(png: &[u8]) -> impl Iterator<Item = Chunk<'_>> {
    Chunks::starting_at(png, PNG_SIGNATURE.len()).map_while(Result::ok)
}

/// Iterates over the chunks after the signature, up to and including IEND,
/// checking their framing (not their CRC). Stops after the first error.
#[derive(Debug)]
struct Chunks<'a> {
    png: &'a [u8],
    /// Where the next chunk starts.
    pos: usize,
    done: bool,
}

impl<'a> Chunks<'a> {
    fn starting_at(png: &'a [u8], pos: usize) -> Self {
        debug_assert!(png.starts_with(&PNG_SIGNATURE));
        Self {
            png,
            pos,
            done: false,
        }
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
fn read_chunk(png: &[u8], pos: usize) -> Result<Chunk<'_>, ProcessError> {
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
mod tests {
    use super::*;
    use crate::ErrorKind;

    const IHDR_1X1_GRAY: [u8; 13] = [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0];
    /// zlib stream of one row: filter byte 0, pixel 0.
    const IDAT_1X1: [u8; 10] = [0x78, 0x01, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01];

    /// A datastream made of these chunks.
    fn png(chunks: &[(ChunkType, &[u8])]) -> Vec<u8> {
        let mut w = PngWriter::with_capacity(64);
        for (kind, data) in chunks {
            w.write(*kind, data);
        }
        w.finish()
    }

    /// A minimal well-formed datastream: IHDR (1x1 gray), one IDAT, IEND.
    fn tiny_png() -> Vec<u8> {
        png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ])
    }

    fn error_of(png: &[u8]) -> String {
        let err = validate_stream(png).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        err.to_string()
    }

    #[test]
    fn reads_a_well_formed_stream() {
        let png = tiny_png();
        let header = validate_stream(&png).unwrap();
        assert_eq!((header.width, header.height), (1, 1));
        let chunks: Vec<Chunk<'_>> = validated_chunks(&png).collect();
        let kinds: Vec<String> = chunks.iter().map(|c| type_name(c.kind)).collect();
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_eq!(chunks[1].offset, 33);
        assert_eq!(chunks[1].data, IDAT_1X1);
        let total: usize = chunks.iter().map(|c| c.raw.len()).sum();
        assert_eq!(total + 8, png.len());
    }

    #[test]
    fn copy_round_trips() {
        let png = tiny_png();
        let mut w = PngWriter::with_capacity(png.len());
        for chunk in validated_chunks(&png) {
            w.copy(&chunk);
        }
        assert_eq!(w.finish(), png);
    }

    #[test]
    fn every_truncation_is_reported_as_such() {
        let png = tiny_png();
        for len in 8..png.len() {
            let msg = error_of(&png[..len]);
            assert!(msg.starts_with("truncated"), "at {len}: {msg}");
        }
    }

    #[test]
    fn bad_crc_names_the_chunk() {
        for (offset, kind) in [(29, "IHDR"), (51, "IDAT"), (63, "IEND")] {
            let mut png = tiny_png();
            png[offset] ^= 1;
            assert_eq!(error_of(&png), format!("CRC mismatch in {kind} chunk"));
        }
    }

    #[test]
    fn problems_are_reported_in_file_order() {
        // A bad IHDR comes before a truncated IDAT.
        let mut png = tiny_png();
        png[16..20].copy_from_slice(&[0; 4]);
        let fixed = png.len() - 12;
        let crc = chunk_crc(*b"IHDR", &png[16..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let msg = error_of(&png[..fixed]);
        assert_eq!(msg, "invalid IHDR: width 0 is outside 1..=2^31-1");
    }

    #[test]
    fn structural_errors() {
        let mut trailing = tiny_png();
        trailing.extend_from_slice(b"junk");
        assert_eq!(error_of(&trailing), "4 unexpected bytes after the IEND chunk");

        let no_idat = png(&[(chunk::IHDR, &IHDR_1X1_GRAY), (chunk::IEND, &[])]);
        assert_eq!(error_of(&no_idat), "missing IDAT: the file contains no image data");

        let empty_idat = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &[]),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(error_of(&empty_idat), "missing image data: the IDAT chunks are empty");

        let split_idat = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1[..4]),
            (chunk::tEXt, b"a\0b"),
            (chunk::IDAT, &IDAT_1X1[4..]),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&split_idat),
            "IDAT chunks are not consecutive: the tEXt chunk at byte 49 interrupts them"
        );

        let full_iend = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, b"x"),
        ]);
        assert_eq!(
            error_of(&full_iend),
            "invalid IEND chunk: it must be empty, but its length is 1"
        );

        let no_ihdr = png(&[(chunk::IDAT, &IDAT_1X1), (chunk::IEND, &[])]);
        assert_eq!(error_of(&no_ihdr), "missing IHDR: the first chunk is IDAT");

        let mut bad_type = tiny_png();
        bad_type[12] = 0;
        assert_eq!(error_of(&bad_type), "missing IHDR: the first chunk is 0x00484452");

        let shifted = [&tiny_png()[..8], &tiny_png()[11..]].concat();
        assert_eq!(
            error_of(&shifted),
            "missing IHDR: the chunk header is damaged (the type IHDR is at byte 9, not 12)"
        );

        let mut bad_type = tiny_png();
        bad_type[38] = b'0';
        assert_eq!(error_of(&bad_type), "invalid chunk type I0AT at byte 33");

        let mut bad_len = tiny_png();
        bad_len[8] = 0x80;
        assert!(error_of(&bad_len).starts_with("invalid length 2147483661 of the IHDR chunk"));
    }
}
