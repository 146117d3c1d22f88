//! Encoding one large frame on many threads, as multithreaded PNG encoders
//! do: the rows are cut into bands; each band is filtered and compressed on
//! its own, in parallel on the current rayon pool, into a piece of raw
//! deflate data that ends on a byte boundary ([`crate::deflate_piece`]);
//! the pieces, in order, behind a zlib header and followed by an empty
//! final block and the combined Adler-32, are one valid zlib stream.
//!
//! Filtering needs nothing from other bands: the first row of a band is
//! filtered against the last row of the previous band, which is right there
//! in the frame (it is the *unfiltered* row that PNG filters refer to), so
//! every row gets exactly the filter the adaptive heuristic picks for it.
//! Compression starts afresh in each band (a new block, an empty window),
//! which costs a few dozen bytes per band.

use rayon::prelude::*;

use crate::ProcessError;
use crate::deflate_piece::{Deflater, Joiner, Piece, compress_piece};
use crate::filter::filter_adaptive;

/// Filters and compresses the rows of `pixels` (each `row_bytes` long, of
/// pixels of `bpp` bytes) in bands of about `band_bytes`, in parallel.
/// Returns the zlib stream in pieces, one per band: the first starts with
/// the zlib header, the last ends with the end of the stream.
pub(crate) fn encode_bands(
    pixels: &[u8],
    row_bytes: usize,
    bpp: usize,
    deflater: Deflater,
    band_bytes: usize,
) -> Result<Vec<Vec<u8>>, ProcessError> {
    let rows = pixels.len() / row_bytes.max(1);
    let band_rows = (band_bytes / row_bytes.max(1)).max(1);
    let bands = rows.div_ceil(band_rows);
    let pieces: Vec<Piece> = (0..bands)
        .into_par_iter()
        .with_max_len(1)
        .map(|band| {
            let first = band * band_rows;
            let last = (first + band_rows).min(rows);
            // Each pool thread keeps its scratch buffer for the filtered
            // rows (about a band), so bands do not fault in fresh pages.
            let mut filtered = SCRATCH.take();
            filter_rows(pixels, row_bytes, bpp, first..last, &mut filtered);
            let piece = compress_piece(&filtered, deflater);
            SCRATCH.set(filtered);
            piece
        })
        .collect::<Result<_, _>>()?;
    Ok(zlib_stream(pieces, deflater))
}

/// `pieces`, in order, as one zlib stream in pieces: the first starts with
/// the zlib header, the last ends with the end of the stream and the
/// combined Adler-32 (also used by the filtered path's bands).
pub(crate) fn zlib_stream(pieces: Vec<Piece>, deflater: Deflater) -> Vec<Vec<u8>> {
    let mut joiner = Joiner::new();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        joiner.add(&piece);
        out.push(piece.bytes);
    }
    let header = Joiner::header(deflater);
    match out.first_mut() {
        Some(first) => drop(first.splice(0..0, header)),
        None => out.push(header.to_vec()),
    }
    out.last_mut()
        .expect("at least the header")
        .extend_from_slice(&joiner.trailer());
    out
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Writes the filtered rows `rows` of `pixels` into `out`: each row's
/// filter type byte, then its filtered bytes. Compiled for the CPU's best
/// SIMD level.
fn filter_rows(
    pixels: &[u8],
    row_bytes: usize,
    bpp: usize,
    rows: std::ops::Range<usize>,
    out: &mut Vec<u8>,
) {
    let zeros;
    let mut previous = match rows.start {
        0 => {
            zeros = vec![0u8; row_bytes];
            &zeros[..]
        }
        row => &pixels[(row - 1) * row_bytes..row * row_bytes],
    };
    // Every byte is written below; resizing only sets the length.
    out.resize(rows.len() * (row_bytes + 1), 0);
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (row, filtered) in rows.zip(out.chunks_exact_mut(row_bytes + 1)) {
                let current = &pixels[row * row_bytes..(row + 1) * row_bytes];
                let (kind, data) = filtered.split_at_mut(1);
                kind[0] = filter_adaptive(bpp, previous, current, data) as u8;
                previous = current;
            }
        },
    );
}
