//! Encoding the image data of one truecolour frame (RGB or RGBA, 8 or 16
//! bit, non-interlaced): its rows filtered and compressed into a zlib
//! stream.
//!
//! Frames of up to [`Parallelism::min_bytes`] of pixels are encoded by the
//! `png` crate on the calling thread: a worker already processes one image
//! per thread, so splitting small images would only add overhead. Larger
//! frames are cut into bands of rows that are filtered and compressed in
//! parallel on the current rayon pool ([`crate::encode_parallel`]), so that
//! one large image is not held to one core.

use png::{BitDepth, ColorType};

use crate::chunks::PngWriter;
use crate::deflate_piece::Deflater;
use crate::{Compression, ProcessError, SampleLayout, encode_parallel};

/// When and how finely frames are encoded in parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parallelism {
    /// Frames with more bytes of pixels than this are encoded in parallel.
    pub(crate) min_bytes: usize,
    /// Bytes of pixels per band (whole rows, at least one).
    pub(crate) band_bytes: usize,
}

impl Parallelism {
    /// 16 MiB (a 4K RGB frame is 24 MiB, a 1080p one 6 MiB) and bands of
    /// 1 MiB: each band costs about 60 bytes of output (a block header and a
    /// flush marker) and, at the zlib levels, restarts the 32 KiB window.
    pub(crate) const DEFAULT: Self = Self {
        min_bytes: 16 << 20,
        band_bytes: 1 << 20,
    };
}

/// The encoded image data of a frame.
#[derive(Debug)]
pub(crate) enum ImageData {
    /// A standalone PNG from the `png` encoder; its IDAT chunks hold the data.
    Png(Vec<u8>),
    /// A zlib stream in pieces, each to become an image data chunk of its own.
    Pieces(Vec<Vec<u8>>),
}

impl ImageData {
    /// Bytes held (an upper bound of the image data chunks written).
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Png(png) => png.len(),
            Self::Pieces(pieces) => pieces.iter().map(|p| p.len() + 12).sum(),
        }
    }
}

/// The pixel format of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) color_type: ColorType,
    pub(crate) bit_depth: BitDepth,
}

impl Format {
    fn of(layout: SampleLayout) -> Self {
        let color_type = match layout.samples_per_pixel() {
            3 => ColorType::Rgb,
            _ => ColorType::Rgba,
        };
        let bit_depth = match layout.bytes_per_sample() {
            1 => BitDepth::Eight,
            _ => BitDepth::Sixteen,
        };
        Self {
            color_type,
            bit_depth,
        }
    }

    /// Bytes per pixel (truecolour formats have whole bytes).
    fn bytes_per_pixel(self) -> usize {
        self.color_type.samples() * (self.bit_depth as usize) / 8
    }
}

/// Encodes `pixels`, packed rows of a `width` x `height` frame in `format`.
pub(crate) fn encode_frame(
    pixels: &[u8],
    width: u32,
    height: u32,
    format: Format,
    compression: Compression,
    parallelism: Parallelism,
) -> Result<ImageData, ProcessError> {
    let row_bytes = width as usize * format.bytes_per_pixel();
    if pixels.len() != row_bytes * height as usize {
        return Err(ProcessError::Internal(format!(
            "{} bytes of pixels for a {width}x{height} {format:?} frame",
            pixels.len()
        )));
    }
    if pixels.len() > parallelism.min_bytes {
        let pieces = encode_parallel::encode_bands(
            pixels,
            row_bytes,
            format.bytes_per_pixel(),
            deflater(compression),
            parallelism.band_bytes,
        )?;
        Ok(ImageData::Pieces(pieces))
    } else {
        encode_with_png(pixels, width, height, format, compression).map(ImageData::Png)
    }
}

/// The deflate settings matching the `png` encoder's for `compression`.
fn deflater(compression: Compression) -> Deflater {
    match compression.png_settings().0 {
        png::DeflateCompression::Level(level) => Deflater::Level(level),
        _ => Deflater::Fast,
    }
}

/// Encodes with the `png` crate on this thread, as a standalone PNG.
fn encode_with_png(
    pixels: &[u8],
    width: u32,
    height: u32,
    format: Format,
    compression: Compression,
) -> Result<Vec<u8>, ProcessError> {
    // Room for the stored size: the buffer never grows and copies (capacity
    // that is never written costs no memory).
    let mut encoded = Vec::with_capacity(pixels.len() + pixels.len() / 8 + 1024);
    let mut encoder = png::Encoder::new(&mut encoded, width, height);
    encoder.set_color(format.color_type);
    encoder.set_depth(format.bit_depth);
    let (deflate, filter) = compression.png_settings();
    encoder.set_deflate_compression(deflate);
    encoder.set_filter(filter);
    let mut writer = encoder
        .write_header()
        .map_err(ProcessError::from_encoding)?;
    writer
        .write_image_data(pixels)
        .map_err(ProcessError::from_encoding)?;
    writer.finish().map_err(ProcessError::from_encoding)?;
    Ok(encoded)
}

/// Encodes packed `pixels` of a `width` x `height` image in `layout` as a
/// complete, minimal PNG (IHDR, image data, IEND), exactly as
/// [`process`](crate::process) encodes a re-encoded image's pixels: with
/// the `png` crate on this thread for small images, in parallel bands on
/// the current rayon pool for large ones.
///
/// # Errors
///
/// [`ProcessError::Internal`] if `pixels` does not hold exactly `height`
/// rows of `width` pixels, or the encoder fails.
pub fn encode_png(
    pixels: &[u8],
    width: u32,
    height: u32,
    layout: SampleLayout,
    compression: Compression,
) -> Result<Vec<u8>, ProcessError> {
    encode_png_with(
        pixels,
        width,
        height,
        layout,
        compression,
        Parallelism::DEFAULT,
    )
}

/// [`encode_png`] with explicit parallelism (tests use small bands).
pub(crate) fn encode_png_with(
    pixels: &[u8],
    width: u32,
    height: u32,
    layout: SampleLayout,
    compression: Compression,
    parallelism: Parallelism,
) -> Result<Vec<u8>, ProcessError> {
    let format = Format::of(layout);
    match encode_frame(pixels, width, height, format, compression, parallelism)? {
        ImageData::Png(png) => Ok(png),
        ImageData::Pieces(pieces) => {
            let size = pieces.iter().map(|p| p.len() + 12).sum::<usize>() + 64;
            let mut out = PngWriter::with_capacity(size);
            let mut ihdr = [0u8; 13];
            ihdr[..4].copy_from_slice(&width.to_be_bytes());
            ihdr[4..8].copy_from_slice(&height.to_be_bytes());
            ihdr[8] = format.bit_depth as u8;
            ihdr[9] = format.color_type as u8;
            out.write(png::chunk::IHDR, &ihdr);
            for piece in &pieces {
                out.write(png::chunk::IDAT, piece);
            }
            out.write(png::chunk::IEND, &[]);
            Ok(out.finish())
        }
    }
}
