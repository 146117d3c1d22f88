//! Full decoding with the `png` crate: raw samples (no transformations,
//! 16-bit stays big-endian), every frame of an animated PNG, and the chunks
//! after the image data, so that nothing in the file escapes validation.

use std::io::Cursor;

use crate::ProcessError;
use crate::error::DecodePhase;
use crate::stream::StreamInfo;

/// A `png` reader positioned at the first frame's image data.
pub(crate) type Reader<'a> = png::Reader<Cursor<&'a [u8]>>;

/// Opens a validated datastream for decoding with the allocation budget
/// `limits`, and checks that the frames announced by acTL / fcTL match the
/// runs of image data chunks in the file, so that no frame data escapes
/// decoding.
///
/// The zlib Adler-32 checksums are verified (the `png` default skips
/// them). Chunk CRCs are not re-checked here: [`validate_stream`] has
/// already verified every one of them.
///
/// [`validate_stream`]: crate::stream::validate_stream
pub(crate) fn open<'a>(
    input: &'a [u8],
    stream: &StreamInfo,
    limits: png::Limits,
) -> Result<Reader<'a>, ProcessError> {
    let mut options = png::DecodeOptions::default();
    options.set_ignore_adler32(false);
    options.set_ignore_crc(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(input), options);
    decoder.set_limits(limits);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let reader = decoder
        .read_info()
        .map_err(|e| ProcessError::from_decoding(e, DecodePhase::Metadata))?;

    let frames = frame_count(reader.info());
    if frames != stream.image_data_runs {
        return Err(ProcessError::corrupt(format!(
            "invalid animation: the file holds {} runs of image data (IDAT, fdAT) \
             but acTL and fcTL describe {frames} frame{}",
            stream.image_data_runs,
            if frames == 1 { "" } else { "s" }
        )));
    }
    Ok(reader)
}

/// Decodes every row of every frame without keeping them, then reads the
/// rest of the file. Needs memory for a row, not for an image.
pub(crate) fn validate(mut reader: Reader<'_>) -> Result<(), ProcessError> {
    let decoding = |e| ProcessError::from_decoding(e, DecodePhase::ImageData);
    for index in 0..frame_count(reader.info()) {
        if index > 0 {
            reader.next_frame_info().map_err(decoding)?;
        }
        while reader.next_row().map_err(decoding)?.is_some() {}
    }
    finish(reader)
}

/// A decoded frame: packed rows of raw samples.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) pixels: &'a mut [u8],
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Decodes every frame into `buffer` (which must hold a full-size image)
/// and hands each to `visit`, then reads the rest of the file.
pub(crate) fn for_each_frame(
    mut reader: Reader<'_>,
    buffer: &mut [u8],
    mut visit: impl FnMut(Frame<'_>) -> Result<(), ProcessError>,
) -> Result<(), ProcessError> {
    for _ in 0..frame_count(reader.info()) {
        let out = reader
            .next_frame(buffer)
            .map_err(|e| ProcessError::from_decoding(e, DecodePhase::ImageData))?;
        visit(Frame {
            pixels: &mut buffer[..out.buffer_size()],
            width: out.width,
            height: out.height,
        })?;
    }
    finish(reader)
}

/// The number of frames the decoder will produce: the default image, plus
/// the animation frames that are not the default image.
fn frame_count(info: &png::Info<'_>) -> u64 {
    match &info.animation_control {
        None => 1,
        Some(animation) => {
            // Without an fcTL before IDAT the default image is not part of
            // the animation and comes on top of `num_frames`.
            u64::from(animation.num_frames) + u64::from(info.frame_control.is_none())
        }
    }
}

/// Reads and validates everything after the last frame, up to IEND.
fn finish(mut reader: Reader<'_>) -> Result<(), ProcessError> {
    reader
        .finish()
        .map_err(|e| ProcessError::from_decoding(e, DecodePhase::Trailer))
}
