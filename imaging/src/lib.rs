//! tessera-imaging: the CPU side of a task, with no runtime and no I/O.
//!
//! [`process`] validates the whole input, swaps red and blue and returns an
//! image of the same format, size, colour type and bit depth, whose pixels
//! are exactly the input's with red and blue exchanged. It is called from a
//! rayon pool thread; the swap itself fans out over bands of pixels with
//! rayon on that same pool.
//!
//! How each PNG colour type is handled (see [`Path`]):
//!
//! * grayscale, grayscale + alpha: nothing to swap; the input is fully
//!   decoded to validate it and returned verbatim;
//! * indexed: the palette is swapped, the pixel data is copied untouched;
//! * RGB, RGBA (8 and 16 bit), still, with `fast` (the default), up to
//!   16 MiB of image data: red and blue are exchanged in the *filtered*
//!   rows and the image data recompressed, without unfiltering
//!   ([`Path::FilteredSwap`]; `filtered_swap.rs` proves it exact). The
//!   source's filters and interlacing are kept. The whole file is validated
//!   as on the full path below, the zlib stream's Adler-32 included;
//! * RGB, RGBA otherwise (animated, `default`, `best`, larger frames):
//!   decoded, swapped in place, re-encoded with the same colour type and
//!   bit depth. Interlaced inputs come out non-interlaced (the pixels are
//!   identical). Frames of more than 16 MiB of pixels are encoded in
//!   parallel bands on the current rayon pool ([`encode_png`]); decode
//!   buffers are reused from a bounded process-wide cache.
//!
//! In every case the other chunks are kept in their order, byte for byte
//! unless they hold colour values that must follow the swap (PLTE, the tRNS
//! colour key, bKGD, sBIT, sPLT). The one exception follows the PNG
//! specification's rule for editors: when critical data changed, unknown
//! chunks that are not safe to copy are dropped.
//!
//! ```
//! use tessera_imaging::{Options, Path, process};
//!
//! let png = std::fs::read(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/data/pngsuite/basn2c08.png"
//! ))?;
//! let output = process(&png, &Options::default())?;
//! assert_eq!((output.width, output.height), (32, 32));
//! assert_eq!(output.path, Path::FilteredSwap);
//!
//! let err = process(b"GIF89a...", &Options::default()).unwrap_err();
//! assert_eq!(err.to_string(), "unsupported format: GIF (only PNG is supported)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adler;
mod buffers;
mod chunks;
mod crc;
mod decode;
mod deflate_piece;
mod detect;
mod encode;
mod encode_parallel;
mod error;
mod filter;
mod filtered_swap;
mod header;
mod limits;
mod metadata;
mod png_filtered;
use png_filtered::Filtered;
mod png_palette;
mod png_rgb;
mod stream;
mod swap;

#[cfg(test)]
mod encode_tests;
#[cfg(test)]
mod filtered_swap_tests;
#[cfg(test)]
mod png_filtered_tests;
#[cfg(test)]
mod reuse_tests;
/// The integration tests' helpers (corpus, independent decoding), shared
/// with the unit tests.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_common;

use std::panic::{self, AssertUnwindSafe};

use buffers::BufferCache;
use encode::Parallelism;

pub use encode::encode_png;
pub use error::{ErrorKind, ProcessError};
pub use filtered_swap::{FilteredError, filtered_len, swap_rb_in_filtered_rows};
pub use limits::Limits;
pub use swap::{SampleLayout, swap_rb_in_place, swap_rb_sequential};

/// How hard the encoder works when pixel data has to be re-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Fastest: `fdeflate` with adaptive filtering (the `png` crate's
    /// `Fast`). On the Kodak photos adaptive filtering costs about 20% more
    /// encode time than the Up filter alone and gives 9% smaller files
    /// (1.2% smaller than Paeth alone); see `benches/README.md`.
    #[default]
    Fast,
    /// zlib level 6 with adaptive filtering (the `png` crate's `Balanced`).
    Default,
    /// zlib level 9 with adaptive filtering (the `png` crate's `High`).
    Best,
}

impl Compression {
    /// The `png` encoder settings for this level.
    fn png_settings(self) -> (png::DeflateCompression, png::Filter) {
        match self {
            Self::Fast => (
                png::DeflateCompression::FdeflateUltraFast,
                png::Filter::Adaptive,
            ),
            Self::Default => (png::DeflateCompression::Level(6), png::Filter::Adaptive),
            Self::Best => (png::DeflateCompression::Level(9), png::Filter::Adaptive),
        }
    }
}

/// Options for [`process`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Resource limits, checked before decoding.
    pub limits: Limits,
    /// Encoder effort, used when pixel data is re-encoded.
    pub compression: Compression,
}

/// An image file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Portable Network Graphics (including APNG).
    Png,
}

/// How the output was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Nothing to swap (grayscale): the input bytes, after full validation.
    Unchanged,
    /// Indexed colour: the palette was swapped; pixel data copied untouched.
    PaletteSwapped,
    /// Truecolour: the pixels were decoded, swapped and re-encoded.
    Reencoded,
    /// Truecolour, still, `fast`: red and blue exchanged in the filtered
    /// rows and the image data recompressed, keeping the source's filters
    /// and interlacing; validated as fully as [`Path::Reencoded`].
    FilteredSwap,
}

/// The processed image.
#[derive(Debug)]
pub struct Output {
    /// The encoded output image.
    pub bytes: Vec<u8>,
    /// Its format (always the input's).
    pub format: Format,
    /// Width in pixels (the input's).
    pub width: u32,
    /// Height in pixels (the input's).
    pub height: u32,
    /// How the output was produced.
    pub path: Path,
}

/// Validates `input` completely, swaps red and blue, and encodes the result
/// in the input's format, size, colour type and bit depth.
///
/// Every chunk's CRC, the zlib checksums and every frame's image data are
/// checked, also when the output reuses the input's bytes.
///
/// # Errors
///
/// * [`ProcessError::UnsupportedFormat`]: another image format (JPEG, GIF, ...);
/// * [`ProcessError::Corrupt`]: not an image, or a damaged or invalid PNG;
/// * [`ProcessError::TooLarge`]: over `opts.limits`. The input size and the
///   dimensions and decoded size declared by the header are checked before
///   decoding starts, and the decoding side (our pixel buffer plus the `png`
///   decoder's working memory) never holds more than `max_decoded_bytes`;
/// * [`ProcessError::Internal`]: a bug here. Never panics: a panic inside is
///   caught and returned as this error.
pub fn process(input: &[u8], opts: &Options) -> Result<Output, ProcessError> {
    opts.limits.check_input(input.len())?;
    let format = detect::detect(input)?;
    guarded(|| match format {
        Format::Png => process_png(input, opts, &Engine::DEFAULT),
    })
}

/// [`process`] without the filtered path: every truecolour image decoded,
/// swapped and re-encoded, as before it existed. For benchmarks that
/// compare the two; not part of the interface.
#[doc(hidden)]
pub fn process_full_path(input: &[u8], opts: &Options) -> Result<Output, ProcessError> {
    opts.limits.check_input(input.len())?;
    let format = detect::detect(input)?;
    guarded(|| match format {
        Format::Png => process_png(input, opts, &Engine::FULL_PATH),
    })
}

/// How the work of [`process`] is carried out: when frames are encoded in
/// parallel, and where decode buffers come from. Tests vary both.
#[derive(Debug)]
pub(crate) struct Engine<'a> {
    pub(crate) parallelism: Parallelism,
    pub(crate) buffers: &'a BufferCache,
    /// Whether a still truecolour image may take the filtered path
    /// ([`png_filtered`]); tests of the full path turn it off.
    pub(crate) filtered: bool,
}

impl Engine<'static> {
    const DEFAULT: Self = Self {
        parallelism: Parallelism::DEFAULT,
        buffers: &buffers::GLOBAL,
        filtered: true,
    };
    /// [`Engine::DEFAULT`] without the filtered path: decode, swap, encode.
    pub(crate) const FULL_PATH: Self = Self {
        filtered: false,
        ..Self::DEFAULT
    };
}

/// Runs `work`, turning a panic into [`ProcessError::Internal`]: the last
/// line of defence, so that one bad image can never take a worker down.
fn guarded<T>(work: impl FnOnce() -> Result<T, ProcessError>) -> Result<T, ProcessError> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(ProcessError::Internal(format!(
            "panic while processing the image: {}",
            panic_message(payload.as_ref())
        )))
    })
}

/// The PNG pipeline: framing and CRCs, header and limits, full decode, then
/// the colour-type specific swap.
fn process_png(input: &[u8], opts: &Options, engine: &Engine<'_>) -> Result<Output, ProcessError> {
    let stream = stream::validate_stream(input)?;
    let header = stream.header;
    let limits = &opts.limits;
    limits.check_header(&header)?;

    let (bytes, path) = match header.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            decode::validate(decode::open(input, &stream, limits.decoder_limits(0))?)?;
            check_image_data(input, &header)?;
            (input.to_vec(), Path::Unchanged)
        }
        png::ColorType::Indexed => {
            decode::validate(decode::open(input, &stream, limits.decoder_limits(0))?)?;
            check_image_data(input, &header)?;
            (png_palette::swap_palette(input), Path::PaletteSwapped)
        }
        png::ColorType::Rgb | png::ColorType::Rgba => {
            let filtered = match engine.filtered {
                true => png_filtered::reencode_filtered(
                    input,
                    &header,
                    opts.compression,
                    engine.parallelism,
                    limits.max_decoded_bytes,
                ),
                false => Filtered::NotHere,
            };
            if let Filtered::Done(bytes) = filtered {
                return Ok(output(bytes, &header, Path::FilteredSwap));
            }
            // check_header bounded the frame size by max_decoded_bytes.
            let frame_bytes = header.frame_bytes();
            let size = usize::try_from(frame_bytes).map_err(|_| {
                ProcessError::TooLarge(format!("{frame_bytes} bytes do not fit in memory"))
            })?;
            let reader = decode::open(input, &stream, limits.decoder_limits(frame_bytes))?;
            let bytes = png_rgb::reencode(input, reader, &header, size, opts.compression, engine)
                .and_then(|bytes| match filtered {
                // The full path's message when it finds the problem
                // too; the filtered path's when only it does.
                Filtered::Broken(why) => {
                    Err(ProcessError::corrupt(format!("damaged image data: {why}")))
                }
                // Not read to its end by the filtered path: read it here.
                _ => check_image_data(input, &header).map(|()| bytes),
            })?;
            (bytes, Path::Reencoded)
        }
    };
    Ok(output(bytes, &header, path))
}

/// [`png_filtered::check_image_data`], its reason worded as the filtered
/// path words it.
fn check_image_data(input: &[u8], header: &header::Header) -> Result<(), ProcessError> {
    png_filtered::check_image_data(input, header)
        .map_err(|why| ProcessError::corrupt(format!("damaged image data: {why}")))
}

fn output(bytes: Vec<u8>, header: &header::Header, path: Path) -> Output {
    Output {
        bytes,
        format: Format::Png,
        width: header.width,
        height: header.height,
        path,
    }
}

/// The message of a caught panic, if it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_internal_errors() {
        let err = guarded::<()>(|| panic!("boom {}", 42)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            "internal error: panic while processing the image: boom 42"
        );
        let err = guarded::<()>(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(err.to_string().ends_with("(no message)"));
        assert_eq!(guarded(|| Ok(5)).unwrap(), 5);
    }

    #[test]
    fn compression_levels_map_to_png_settings() {
        assert!(matches!(
            Compression::Fast.png_settings().0,
            png::DeflateCompression::FdeflateUltraFast
        ));
        assert!(matches!(
            Compression::Best.png_settings().0,
            png::DeflateCompression::Level(9)
        ));
        assert_eq!(Compression::default(), Compression::Fast);
    }
}
