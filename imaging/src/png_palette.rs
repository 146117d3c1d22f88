//! Indexed-colour PNGs: swap red and blue in the palette, not in the pixels.
//!
//! The pixel data are palette indices, so the image data chunks (IDAT and
//! APNG fdAT) are copied untouched and every frame keeps its exact
//! encoding, bit depth and interlacing. Only the chunks holding colour
//! values change (PLTE, sBIT, sPLT; see [`crate::metadata`]); tRNS (alpha
//! per index), bKGD (an index), hIST and everything else are copied byte
//! for byte.

use crate::chunks::{PngWriter, chunks_of};
use crate::metadata::{Rewrite, rewrite};

/// Rewrites the chunk stream of a validated indexed-colour PNG.
pub(crate) fn swap_palette(input: &[u8]) -> Vec<u8> {
    let mut out = PngWriter::with_capacity(input.len());
    for chunk in chunks_of(input) {
        match rewrite(&chunk, png::ColorType::Indexed) {
            Rewrite::Copy => out.copy(&chunk),
            Rewrite::Replace(data) => out.write(chunk.kind, &data),
            Rewrite::Drop => {}
        }
    }
    out.finish()
}
