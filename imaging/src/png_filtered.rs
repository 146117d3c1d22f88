//! The fast path for still truecolour PNGs (issue 18): inflate the image
//! data, exchange red and blue in the *filtered* rows
//! ([`crate::filtered_swap`], which proves why that is exact), deflate.
//! No unfiltering, no filter search: the output keeps the source's own
//! filter choices and its interlacing, and decodes to exactly the pixels
//! the full path (decode, swap, encode) produces.
//!
//! **Validation is the full path's.** The whole file goes through the
//! `png` crate's own streaming decoder, the one its `Reader` is built on,
//! with the same options: every chunk after the image data is parsed, the
//! zlib stream is inflated with its Adler-32 checked, and the amount of
//! data and every row's filter type are checked here. This path only
//! *accepts*; it never words an error. Whenever anything is off, or the
//! image is not one it takes (animated, `default` or `best` compression, a
//! frame the full path encodes in parallel bands), it answers `None` and
//! the caller takes the full path, which accepts or rejects the file with
//! its usual message. `png_filtered_tests.rs` checks, over every file of
//! the corpus (the corrupt ones included), that both paths agree on
//! accepting it and on its pixels.

use png::{Decoded, StreamingDecoder, UnfilterRegion, chunk};

use crate::Compression;
use crate::deflate_piece::{Deflater, Piece, compress_piece};
use crate::encode::{ImageData, Parallelism};
use crate::encode_parallel::zlib_stream;
use crate::filtered_swap::{filtered_len, image_data_len, swap_rb_in_filtered_rows};
use crate::header::Header;
use crate::png_rgb::splice;
use crate::swap::SampleLayout;

/// What the filtered path made of a file.
#[derive(Debug)]
pub(crate) enum Filtered {
    /// The re-encoded file.
    Done(Vec<u8>),
    /// Not a file for this path (animated, not `fast`, a large frame, more
    /// image data than the header needs): the full path decides.
    NotHere,
    /// Something is wrong with the file. The full path words the error;
    /// should it accept the file, the problem is one only this path
    /// checks (the `png` reader stops at the image's last byte and never
    /// reads the zlib stream's Adler-32), and this is the error.
    Broken(String),
}

/// The filtered path for a file that `validate_stream` accepted.
pub(crate) fn reencode_filtered(
    input: &[u8],
    header: &Header,
    compression: Compression,
    parallelism: Parallelism,
    max_decoded_bytes: u64,
) -> Filtered {
    if compression != Compression::Fast {
        return Filtered::NotHere;
    }
    let Some(layout) = SampleLayout::new(
        usize::from(header.bit_depth as u8) / 8,
        header.color_type.samples(),
    ) else {
        return Filtered::NotHere;
    };
    let len = filtered_len(header.width, header.height, layout, header.interlaced);
    // The image data must fit the decoding budget (a file that does not
    // gets the full path's verdict). Large frames go in bands of whole
    // rows, which an interlaced image does not have (its passes): the full
    // path takes those.
    let banded = len > parallelism.min_bytes as u64;
    let fits = len.saturating_add(EXTRA_ROOM as u64) <= max_decoded_bytes;
    let Some(len) = usize::try_from(len)
        .ok()
        .filter(|_| fits && !(banded && header.interlaced))
    else {
        return Filtered::NotHere;
    };
    let image_data = match banded {
        false => whole(input, header, layout, len),
        true => in_bands(input, header, layout, len, parallelism.band_bytes),
    };
    match image_data.and_then(|data| {
        splice(input, header, &[data], false).map_err(|e| Filtered::Broken(e.to_string()))
    }) {
        Ok(bytes) => Filtered::Done(bytes),
        Err(not_done) => not_done,
    }
}

/// The full path's check of what its `png` reader does not read: the image
/// data's zlib stream to its end, Adler-32 included, keeping only a
/// window of it. `Err` with the reason when it is broken (the caller words
/// it "damaged image data"); `Ok` also when this cannot tell (an animated
/// file, whose frames are separate streams, or a stream with more data
/// than the rows need, which the `png` crate accepts): the full path's own
/// checks stand then.
pub(crate) fn check_image_data(input: &[u8], header: &Header) -> Result<(), String> {
    let bits = u64::from(header.bit_depth as u8) * u64::from(header.color_type.samples() as u8);
    let len = image_data_len(header.width, header.height, bits, header.interlaced);
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    const UNIT: usize = 256 << 10;
    let mut buffer = Vec::new();
    match inflate_rows(
        input,
        len,
        UNIT,
        2 * UNIT + (256 << 10),
        &mut buffer,
        |_| Ok(()),
    ) {
        Ok(()) | Err(Filtered::NotHere) | Err(Filtered::Done(_)) => Ok(()),
        Err(Filtered::Broken(why)) => Err(why),
    }
}

/// A frame of up to `Parallelism::min_bytes` on this thread: the whole
/// image data in one buffer, exchanged in place, compressed at once.
fn whole(
    input: &[u8],
    header: &Header,
    layout: SampleLayout,
    len: usize,
) -> Result<ImageData, Filtered> {
    SCRATCH.with_borrow_mut(|buffer| {
        let mut zlib = None;
        inflate_rows(input, len, len, len + EXTRA_ROOM, buffer, |rows| {
            swap_rb_in_filtered_rows(rows, header.width, header.height, layout, header.interlaced)
                .map_err(|e| Filtered::Broken(e.to_string()))?;
            zlib = Some(fdeflate::compress_to_vec(rows));
            Ok(())
        })?;
        let zlib = zlib.ok_or_else(|| Filtered::Broken("no image data".into()))?;
        Ok(ImageData::Pieces(vec![zlib]))
    })
}

/// A larger frame (non-interlaced): as inflating completes each band of
/// about `band_bytes` of rows, the band is exchanged and compressed on the
/// current rayon pool while inflating goes on, so the image takes little
/// more than its inflating; only a window of the data is held here.
fn in_bands(
    input: &[u8],
    header: &Header,
    layout: SampleLayout,
    len: usize,
    band_bytes: usize,
) -> Result<ImageData, Filtered> {
    let row = 1 + header.width as usize * layout.bytes_per_pixel();
    let band_rows = (band_bytes / row).max(1);
    let band = band_rows * row;
    let pieces = std::sync::Mutex::new(Vec::new());
    let mut buffer = Vec::new();
    let inflated = rayon::scope(|scope| {
        let mut index = 0;
        // A band and the decoder's look-back and growth fit twice over.
        let window = 2 * band + (256 << 10);
        inflate_rows(input, len, band, window, &mut buffer, |rows| {
            let mut rows = rows.to_vec();
            let (pieces, i) = (&pieces, index);
            index += 1;
            scope.spawn(move |_| {
                let height = (rows.len() / row) as u32;
                let piece =
                    swap_rb_in_filtered_rows(&mut rows, header.width, height, layout, false)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            compress_piece(&rows, Deflater::Fast).map_err(|e| e.to_string())
                        });
                pieces
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, piece));
            });
            Ok(())
        })
    });
    inflated?;
    let mut pieces = pieces.into_inner().unwrap_or_else(|e| e.into_inner());
    pieces.sort_by_key(|(i, _)| *i);
    let pieces = pieces
        .into_iter()
        .map(|(_, piece)| piece)
        .collect::<Result<Vec<Piece>, String>>()
        .map_err(Filtered::Broken)?;
    Ok(ImageData::Pieces(zlib_stream(pieces, Deflater::Fast)))
}

/// See [`inflate_rows`].
const EXTRA_ROOM: usize = 64 << 10;

thread_local! {
    /// Each thread keeps its buffer for a small image's inflated data, so
    /// images do not fault in fresh pages.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs the `png` crate's streaming decoder over the whole of `input`, as
/// the full path's reader does (Adler-32 checked; chunk CRCs were checked
/// by `validate_stream`), and hands the `len` bytes of inflated image data
/// to `take` in consecutive pieces of `unit` bytes (the last may be
/// shorter), each as soon as it is complete, to be changed in place.
/// `buffer` is used as a window of `window` bytes (at least `unit` plus the
/// decoder's look-back and growth; `len + EXTRA_ROOM` holds it all).
///
/// The pieces come before the end of the file is checked: their work is
/// wasted when the answer is not `Ok`. `NotHere` if the file is animated
/// or its sound zlib stream holds more than `len` bytes; `Broken` if it
/// holds fewer, or the decoder finds anything wrong up to and including
/// IEND (a damaged zlib stream among it), or `take` does.
fn inflate_rows(
    input: &[u8],
    len: usize,
    unit: usize,
    window: usize,
    buffer: &mut Vec<u8>,
    mut take: impl FnMut(&mut [u8]) -> Result<(), Filtered>,
) -> Result<(), Filtered> {
    let mut options = png::DecodeOptions::default();
    options.set_ignore_adler32(false);
    options.set_ignore_crc(true);
    let mut decoder = StreamingDecoder::new_with_options(options);
    buffer.clear();
    buffer.resize(window, 0);
    let mut region = UnfilterRegion::default();
    // `base`: where the window starts in the data; `handed`: how much of
    // the data `take` has had.
    let (mut base, mut handed) = (0usize, 0usize);
    let (mut rest, mut flushed, mut idle) = (input, false, 0);
    loop {
        let before = region.filled;
        let (consumed, decoded) = decoder
            .update(rest, Some(&mut region.as_buf(buffer)))
            .map_err(|e| Filtered::Broken(e.to_string()))?;
        rest = &rest[consumed..];
        // Room beyond what the header needs, so that the decoder reads the
        // zlib stream to its end (Adler-32 included) even when it holds a
        // little more data than the rows; a stream that goes past it is
        // left to the full path.
        if base + region.filled >= len + EXTRA_ROOM {
            return Err(Filtered::NotHere);
        }
        // Whole units the decoder will not touch again go to `take`.
        while handed + unit <= (base + region.available).min(len) {
            take(&mut buffer[handed - base..handed - base + unit])?;
            handed += unit;
        }
        match decoded {
            Decoded::ChunkComplete(chunk::IEND) => break,
            Decoded::ImageDataFlushed => flushed = true,
            _ => {}
        }
        // Slide the window past what was handed over (never past what the
        // decoder may still look back at).
        let spent = (handed - base).min(region.available);
        if region.filled + (64 << 10) > buffer.len() && spent > 0 {
            buffer.copy_within(spent..region.filled, 0);
            region.available -= spent;
            region.filled -= spent;
            base += spent;
        }
        if consumed == 0 && region.filled == before {
            idle += 1;
            if idle > 2 || rest.is_empty() {
                return Err(Filtered::Broken("the file ends before IEND".into()));
            }
        } else {
            idle = 0;
        }
    }
    if decoder
        .info()
        .is_none_or(|info| info.animation_control.is_some())
    {
        return Err(Filtered::NotHere);
    }
    let inflated = base + region.filled;
    // Sound, with data beyond the rows (the full path accepts it as the
    // `png` crate does).
    if flushed && inflated > len {
        return Err(Filtered::NotHere);
    }
    if !flushed || inflated != len {
        return Err(Filtered::Broken(format!(
            "the image data holds {inflated} bytes, the header needs {len}"
        )));
    }
    if handed < len {
        take(&mut buffer[handed - base..len - base])?;
    }
    Ok(())
}
