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

use crate::chunks::{PngWriter, chunks_of};
use crate::decode::{self, Reader};
use crate::encode::{Format, ImageData, encode_frame};
use crate::header::Header;
use crate::metadata::{Rewrite, rewrite};
use crate::swap::{SampleLayout, swap_rb_in_place};
use crate::{Compression, Engine, ProcessError};

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
    engine: &Engine<'_>,
) -> Result<Vec<u8>, ProcessError> {
    let layout = SampleLayout::new(
        usize::from(header.bit_depth as u8) / 8,
        header.color_type.samples(),
    )
    .ok_or_else(|| ProcessError::Internal(format!("not a truecolour header: {header:?}")))?;

    let mut buffer = engine.buffers.take(frame_bytes)?;

    // Each frame as a standalone PNG, in file order.
    let mut encoded = Vec::new();
    let format = Format {
        color_type: header.color_type,
        bit_depth: header.bit_depth,
    };
    decode::for_each_frame(reader, &mut buffer, |frame| {
        swap_rb_in_place(frame.pixels, layout);
        encoded.push(encode_frame(
            frame.pixels,
            frame.width,
            frame.height,
            format,
            compression,
            engine.parallelism,
        )?);
        Ok(())
    })?;
    splice(input, header, &encoded, true)
}

/// Builds the output: the input's chunks, with each run of image data
/// chunks (the IDATs, then each frame's fdATs) replaced by the image data
/// of the next encoded frame.
///
/// [`decode::open`] has checked that there is one frame per run. With
/// `deinterlace` (frames encoded from pixels, which the encoder writes
/// non-interlaced) the IHDR's interlace method is cleared; the filtered
/// path keeps the source's interlaced data, and its IHDR.
pub(crate) fn splice(
    input: &[u8],
    header: &Header,
    frames: &[ImageData],
    deinterlace: bool,
) -> Result<Vec<u8>, ProcessError> {
    let mismatch = || ProcessError::Internal("frames and image data runs disagree".into());
    // The input's other chunks plus the new image data, at most.
    let image_data: usize = frames.iter().map(ImageData::len).sum();
    let mut out = PngWriter::with_capacity(input.len() + image_data);
    let mut frames = frames.iter();
    let mut sequence = ApngSequence::default();
    let mut previous: Option<ChunkType> = None;
    for chunk in chunks_of(input) {
        match chunk.kind {
            chunk::IHDR if header.interlaced && deinterlace => {
                let mut data = chunk.data.to_vec();
                data[12] = 0; // interlace method: none
                out.write(chunk::IHDR, &data);
            }
            kind if is_image_data(kind) => {
                // Only the first chunk of a run writes; the rest of the run
                // is already contained in the re-encoded stream.
                if previous != Some(kind) {
                    let frame = frames.next().ok_or_else(mismatch)?;
                    write_image_data(&mut out, kind, frame, &mut sequence);
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
    match frames.next() {
        Some(_) => Err(mismatch()),
        None => Ok(out.finish()),
    }
}

fn is_image_data(kind: ChunkType) -> bool {
    kind == chunk::IDAT || kind == chunk::fdAT
}

/// Writes the image data of an encoded frame: as IDAT chunks (a PNG's
/// IDAT chunks as they are, CRCs included; a stream in pieces as one chunk
/// per piece), or, for an animation frame, its zlib stream as fdAT chunks
/// that each start with the next APNG sequence number.
fn write_image_data(
    out: &mut PngWriter,
    kind: ChunkType,
    encoded: &ImageData,
    sequence: &mut ApngSequence,
) {
    let stream: Vec<u8> = match encoded {
        ImageData::Png(png) => {
            let idats = chunks_of(png).filter(|c| c.kind == chunk::IDAT);
            if kind == chunk::IDAT {
                idats.for_each(|idat| out.copy(&idat));
                return;
            }
            idats.flat_map(|c| c.data).copied().collect()
        }
        ImageData::Pieces(pieces) => {
            if kind == chunk::IDAT {
                for piece in pieces {
                    for part in piece.chunks(MAX_CHUNK_DATA) {
                        out.write(chunk::IDAT, part);
                    }
                }
                return;
            }
            pieces.concat()
        }
    };
    for part in stream.chunks(MAX_CHUNK_DATA) {
        out.write_with_prefix(chunk::fdAT, &sequence.next().to_be_bytes(), part);
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
