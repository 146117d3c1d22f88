//! Exchanging red and blue in *filtered* scanlines, without unfiltering
//! (the groundwork of issue 18: inflate, exchange, deflate, keeping the
//! source's own filter choices).
//!
//! **Why it is exact.** A PNG filter turns each byte `x` of a row into
//! `x - p(a, b, c)` (mod 256), where `a` is the byte `bpp` positions to the
//! left (one whole pixel back, or 0), `b` the byte at the same position in
//! the row above, `c` the byte `bpp` to the left in the row above, and `p`
//! one of None (0), Sub (`a`), Up (`b`), Average (`(a + b) / 2`) or Paeth
//! (whichever of `a`, `b`, `c` is closest to `a + b - c`), chosen per row.
//! For RGB and RGBA samples of 8 or 16 bits, `bpp` is the size of a whole
//! pixel, so `x`, `a`, `b` and `c` are always at the same offset within
//! their pixels: the same byte of the same channel. Let `σ` be the
//! permutation of offsets within a pixel that exchanges red and blue (8
//! bit: 0↔2; 16 bit: 0↔4 and 1↔5, keeping each sample's byte order). The
//! filtered byte at offset `k` depends only on bytes at offset `k` (in this
//! pixel, the previous one, the one above and above-left), through a
//! function that does not depend on `k`. So applying `σ` to every pixel of
//! the raw rows and then filtering with the same filter types gives the
//! same bytes as filtering first and applying `σ` to every pixel of the
//! filtered rows: exchanging within the filtered data yields exactly the
//! filtered rows of the exchanged image, and unfiltering (the decoder's
//! inverse, which has the same structure) gives its pixels. Adam7
//! interlacing changes nothing: each pass is filtered as an image of its own
//! with the same `bpp`. The filter-type byte that starts each row is not
//! part of any pixel and stays.
//!
//! Tests: `filtered_swap_tests.rs` checks every filter type on every
//! layout, interlaced and not, exhaustively over small sizes and by
//! property over random filtered data, and the RGB/RGBA files of PngSuite
//! and the photos, each against an independent decode of the result.

use crate::swap::{SampleLayout, swap_rb_sequential};

/// The filtered data is not what the header says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilteredError {
    #[error("the image data holds {found} bytes, the header needs {expected}")]
    Length { expected: u64, found: u64 },
    #[error("row {row} of pass {pass} has the unknown filter type {filter}")]
    FilterType { pass: usize, row: u64, filter: u8 },
}

/// Adam7's passes: first column, first row, column step, row step.
const ADAM7: [(u64, u64, u64, u64); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

/// The passes' sizes in pixels (one pass for a non-interlaced image);
/// empty passes have no rows in the data.
pub(crate) fn passes(width: u32, height: u32, interlaced: bool) -> Vec<(u64, u64)> {
    let (w, h) = (u64::from(width), u64::from(height));
    if !interlaced {
        return vec![(w, h)];
    }
    let extent = |size: u64, start: u64, step: u64| {
        if size > start {
            (size - start).div_ceil(step)
        } else {
            0
        }
    };
    ADAM7
        .iter()
        .map(|&(x0, y0, dx, dy)| (extent(w, x0, dx), extent(h, y0, dy)))
        .collect()
}

/// The length of the filtered (inflated) data of an image: per row, one
/// filter-type byte and the row's pixels.
pub fn filtered_len(width: u32, height: u32, layout: SampleLayout, interlaced: bool) -> u64 {
    image_data_len(
        width,
        height,
        8 * layout.bytes_per_pixel() as u64,
        interlaced,
    )
}

/// The length of the filtered (inflated) data of any image whose pixels
/// take `bits_per_pixel`: per row, one filter-type byte and the row's
/// pixels, rounded up to whole bytes.
pub fn image_data_len(width: u32, height: u32, bits_per_pixel: u64, interlaced: bool) -> u64 {
    passes(width, height, interlaced)
        .iter()
        .filter(|(w, h)| *w > 0 && *h > 0)
        .map(|(w, h)| h * (1 + (w * bits_per_pixel).div_ceil(8)))
        .sum()
}

/// Exchanges red and blue in the filtered scanlines `data` (the inflated
/// IDAT stream) of a `width` x `height` RGB or RGBA image with samples of
/// `layout`, checking the length and every row's filter type on the way.
/// See the module docs for why the result is the exchanged image's
/// filtered data.
pub fn swap_rb_in_filtered_rows(
    data: &mut [u8],
    width: u32,
    height: u32,
    layout: SampleLayout,
    interlaced: bool,
) -> Result<(), FilteredError> {
    let expected = filtered_len(width, height, layout, interlaced);
    if data.len() as u64 != expected {
        return Err(FilteredError::Length {
            expected,
            found: data.len() as u64,
        });
    }
    let bpp = layout.bytes_per_pixel();
    let mut rest = data;
    for (pass, (w, h)) in passes(width, height, interlaced).into_iter().enumerate() {
        if w == 0 || h == 0 {
            continue;
        }
        let row_len = 1 + w as usize * bpp;
        for row in 0..h {
            let (line, tail) = std::mem::take(&mut rest).split_at_mut(row_len);
            rest = tail;
            if line[0] > 4 {
                return Err(FilteredError::FilterType {
                    pass,
                    row,
                    filter: line[0],
                });
            }
            // A row's bytes after its filter type are whole pixels: the
            // SIMD kernel of the unfiltered path applies as is.
            swap_rb_sequential(&mut line[1..], layout);
        }
    }
    Ok(())
}
