//! Truecolour PNGs (RGB and RGBA, 8 and 16 bit): decode, swap red and blue
//! in the samples, re-encode, and splice the new image data into the
//! original chunk stream.
//!
//! Only the image data is produced by the encoder. Every other chunk comes
//! from the input, in its original order: copied byte for byte, or with red
//! and blue swapped where it holds colour values of the image (tRNS colour
//! key, bKGD, sBIT, PLTE, sPLT; see [`crate::metadata`]). So gAMA, cHRM,
//! sRGB, iCCP, pHYs, text, eXIf and unknown safe-to-copy chunks all survive.
//!
//! Interlaced (Adam7) inputs are re-encoded **non-interlaced**: the `png`
//! encoder cannot write interlaced data. The IHDR interlace byte is cleared
//! accordingly; the decoded pixels are identical.
//!
//! Animated PNGs are supported: every frame is swapped and re-encoded, and
//! the APNG sequence numbers of fcTL/fdAT are renumbered because a frame may
//! now occupy a different number of fdAT chunks.

use png::chunk::{self, ChunkType};

use crate::chunks::{PngWriter, validate_stream, validated_chunks};
use crate::decode::{self, Frame, Reader};
use crate::header::Header;
use crate::metadata::{Rewrite, rewrite};
use crate::swap::{SampleLayout, swap_rb_in_place};
use crate::{Compression, ProcessError};

/// Largest chunk we write; the specification allows up to 2^31-1 bytes.
const MAX_CHUNK_DATA: usize = 1 << 30;

/// Decodes every frame of a truecolour PNG, swaps red and blue, and returns
/// the re-encoded file.
pub(crate) fn reencode(
    input: &[u8],
    reader: Reader<'_>,
    header: &Header,
    frame_bytes: usize,
    compression: Compression,
) -> Result<Vec<u8>, ProcessError> {
    let layout = SampleLayout::new(
        usize::from(header.bit_depth as u8) / 8,
        header.color_type.samples(),
    )
    .ok_or_else(|| ProcessError::Internal(format!("not a truecolour header: {header:?}")))?;

    let mut buffer = Vec::new();
    buffer.try_reserve_exact(frame_bytes).map_err(|_| {
        ProcessError::TooLarge(format!("could not allocate {frame_bytes} bytes for the pixels"))
    })?;
    buffer.resize(frame_bytes, 0);

    // The zlib stream of each frame, in file order.
    let mut streams = Vec::new();
    decode::for_each_frame(reader, &mut buffer, |frame| {
        swap_rb_in_place(frame.pixels, layout);
        streams.push(encode_frame(&frame, header, compression)?);
        Ok(())
    })?;
    splice(input, header, streams)
}

/// Encodes one frame with the `png` encoder (same colour type and bit
/// depth, non-interlaced) and returns its zlib stream.
fn encode_frame(
    frame: &Frame<'_>,
    header: &Header,
    compression: Compression,
) -> Result<Vec<u8>, ProcessError> {
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, frame.width, frame.height);
    encoder.set_color(header.color_type);
    encoder.set_depth(header.bit_depth);
    let (deflate, filter) = compression.png_settings();
    encoder.set_deflate_compression(deflate);
    encoder.set_filter(filter);
    let mut writer = encoder
        .write_header()
        .map_err(ProcessError::from_encoding)?;
    writer
        .write_image_data(frame.pixels)
        .map_err(ProcessError::from_encoding)?;
    writer.finish().map_err(ProcessError::from_encoding)?;

    validate_stream(&encoded)
        .map_err(|e| ProcessError::Internal(format!("the png encoder wrote a bad file: {e}")))?;
    Ok(validated_chunks(&encoded)
        .filter(|c| c.kind == chunk::IDAT)
        .flat_map(|c| c.data)
        .copied()
        .collect())
}

/// Builds the output: the input's chunks, with each run of image data
/// chunks (the IDATs, then each frame's fdATs) replaced by the next stream.
fn splice(input: &[u8], header: &Header, streams: Vec<Vec<u8>>) -> Result<Vec<u8>, ProcessError> {
    let mut previous: Option<ChunkType> = None;
    let runs = validated_chunks(input)
        .filter(|c| {
            let starts_run = is_image_data(c.kind) && previous != Some(c.kind);
            previous = Some(c.kind);
            starts_run
        })
        .count();
    if runs != streams.len() {
        return Err(ProcessError::corrupt(format!(
            "inconsistent animation: {runs} image data sequences, but acTL/fcTL describe {} frames",
            streams.len()
        )));
    }

    let mut out = PngWriter::with_capacity(input.len());
    let mut streams = streams.into_iter();
    let mut sequence = ApngSequence::default();
    let mut previous: Option<ChunkType> = None;
    for chunk in validated_chunks(input) {
        match chunk.kind {
            chunk::IHDR if header.interlaced => {
                let mut data = chunk.data.to_vec();
                data[12] = 0; // interlace method: none
                out.write(chunk::IHDR, &data);
            }
            kind if is_image_data(kind) => {
                // Only the first chunk of a run writes; the rest of the run
                // is already contained in the re-encoded stream.
                if previous != Some(kind) {
                    let stream = streams.next().unwrap_or_default();
                    write_image_data(&mut out, kind, &stream, &mut sequence);
                }
            }
            chunk::fcTL => {
                let mut data = chunk.data.to_vec();
                data[..4].copy_from_slice(&sequence.next().to_be_bytes());
                out.write(chunk::fcTL, &data);
            }
            _ => match rewrite(&chunk, header.color_type) {
                Rewrite::Copy => out.copy(&chunk),
                Rewrite::Replace(data) => out.write(chunk.kind, &data),
                Rewrite::Drop => {}
            },
        }
        previous = Some(chunk.kind);
    }
    Ok(out.finish())
}

fn is_image_data(kind: ChunkType) -> bool {
    kind == chunk::IDAT || kind == chunk::fdAT
}

/// Writes one frame's zlib stream as IDAT chunks, or as fdAT chunks that
/// each start with the next APNG sequence number.
fn write_image_data(
    out: &mut PngWriter,
    kind: ChunkType,
    stream: &[u8],
    sequence: &mut ApngSequence,
) {
    for part in stream.chunks(MAX_CHUNK_DATA) {
        if kind == chunk::fdAT {
            out.write_with_prefix(kind, &sequence.next().to_be_bytes(), part);
        } else {
            out.write(kind, part);
        }
    }
}

/// The shared fcTL/fdAT sequence counter of an APNG, starting at 0.
#[derive(Debug, Default)]
struct ApngSequence(u32);

impl ApngSequence {
    fn next(&mut self) -> u32 {
        let current = self.0;
        self.0 = self.0.wrapping_add(1);
        current
    }
}
