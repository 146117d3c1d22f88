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
//! * RGB, RGBA (8 and 16 bit): decoded, swapped in place, re-encoded with
//!   the same colour type and bit depth. Interlaced inputs come out
//!   non-interlaced (the pixels are identical).
//!
//! In every case all other chunks are kept, byte for byte unless they hold
//! colour values that must follow the swap (see the `metadata` module).

mod chunks;
mod crc;
mod decode;
mod detect;
mod error;
mod header;
mod limits;
mod metadata;
mod png_palette;
mod png_rgb;
mod swap;

use std::panic::{self, AssertUnwindSafe};

pub use error::{ErrorKind, ProcessError};
pub use limits::Limits;
pub use swap::{SampleLayout, swap_rb_in_place};

/// How hard the encoder works when pixel data has to be re-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Fastest: `fdeflate` with the Up filter. Larger files.
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
            Self::Fast => (png::DeflateCompression::FdeflateUltraFast, png::Filter::Up),
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
/// Never panics: a panic inside is caught and returned as
/// [`ProcessError::Internal`]. Never allocates beyond `opts.limits`: the
/// input size and the dimensions and decoded size declared by the header
/// are checked before decoding starts.
pub fn process(input: &[u8], opts: &Options) -> Result<Output, ProcessError> {
    opts.limits.check_input(input.len())?;
    let format = detect::detect(input)?;
    panic::catch_unwind(AssertUnwindSafe(|| match format {
        Format::Png => process_png(input, opts),
    }))
    .unwrap_or_else(|payload| {
        Err(ProcessError::Internal(format!(
            "panic while processing the image: {}",
            panic_message(payload.as_ref())
        )))
    })
}

/// The PNG pipeline: framing and CRCs, header and limits, full decode, then
/// the colour-type specific swap.
fn process_png(input: &[u8], opts: &Options) -> Result<Output, ProcessError> {
    let header = chunks::validate_stream(input)?;
    let limits = &opts.limits;
    limits.check_header(&header)?;

    let (bytes, path) = match header.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            decode::validate(decode::open(input, limits.decoder_limits(0))?)?;
            (input.to_vec(), Path::Unchanged)
        }
        png::ColorType::Indexed => {
            decode::validate(decode::open(input, limits.decoder_limits(0))?)?;
            let bytes = png_palette::swap_palette(input);
            (bytes, Path::PaletteSwapped)
        }
        png::ColorType::Rgb | png::ColorType::Rgba => {
            // check_header bounded the frame size by max_decoded_bytes.
            let frame_bytes = header.frame_bytes();
            let size = usize::try_from(frame_bytes).map_err(|_| {
                ProcessError::TooLarge(format!("{frame_bytes} bytes do not fit in memory"))
            })?;
            let reader = decode::open(input, limits.decoder_limits(frame_bytes))?;
            let bytes = png_rgb::reencode(input, reader, &header, size, opts.compression)?;
            (bytes, Path::Reencoded)
        }
    };
    Ok(Output {
        bytes,
        format: Format::Png,
        width: header.width,
        height: header.height,
        path,
    })
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
