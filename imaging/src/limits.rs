//! Resource limits, enforced from the input size and the image header
//! before anything large is allocated.

use crate::ProcessError;
use crate::header::Header;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Upper bounds on what one call to [`process`](crate::process) may consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_input_bytes: u64,
    /// Largest accepted image width, in pixels.
    pub max_width: u32,
    /// Largest accepted image height, in pixels.
    pub max_height: u32,
    /// Largest decoded image, in bytes (raw samples of one frame, as declared
    /// by the header). This also caps the decoder's working memory: the
    /// `png` decoder gets whatever this budget leaves after our own pixel
    /// buffer, so the decoding side never holds more than this in total.
    pub max_decoded_bytes: u64,
}

impl Default for Limits {
    /// 256 MiB of input, 32768 x 32768 pixels, 1 GiB decoded.
    fn default() -> Self {
        Self {
            max_input_bytes: 256 * MIB,
            max_width: 32768,
            max_height: 32768,
            max_decoded_bytes: GIB,
        }
    }
}

impl Limits {
    /// Rejects an input of `len` bytes if it is over `max_input_bytes`.
    pub(crate) fn check_input(&self, len: usize) -> Result<(), ProcessError> {
        let len = len as u64;
        if len > self.max_input_bytes {
            return Err(ProcessError::TooLarge(format!(
                "the input has {len} bytes ({}), the limit is {}",
                human_bytes(len),
                human_bytes(self.max_input_bytes)
            )));
        }
        Ok(())
    }

    /// Rejects an image whose header declares dimensions or a decoded size
    /// over the limits. Called before decoding starts.
    pub(crate) fn check_header(&self, header: &Header) -> Result<(), ProcessError> {
        if header.width > self.max_width || header.height > self.max_height {
            return Err(ProcessError::TooLarge(format!(
                "{}x{} pixels exceeds the {}x{} limit",
                header.width, header.height, self.max_width, self.max_height
            )));
        }
        let decoded = header.frame_bytes();
        if decoded > self.max_decoded_bytes {
            return Err(ProcessError::TooLarge(format!(
                "decoding {}x{} pixels needs {decoded} bytes ({}), the limit is {}",
                header.width,
                header.height,
                human_bytes(decoded),
                human_bytes(self.max_decoded_bytes)
            )));
        }
        Ok(())
    }

    /// The `png` decoder's allocation budget when we hold `allocated` bytes
    /// of pixel buffer ourselves.
    pub(crate) fn decoder_limits(&self, allocated: u64) -> png::Limits {
        let remaining = self.max_decoded_bytes.saturating_sub(allocated);
        png::Limits {
            bytes: usize::try_from(remaining).unwrap_or(usize::MAX),
        }
    }
}

/// `n` bytes in binary units with one decimal, e.g. "1.5 GiB".
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn header(width: u32, height: u32) -> Header {
        Header {
            width,
            height,
            color_type: png::ColorType::Rgba,
            bit_depth: png::BitDepth::Eight,
            interlaced: false,
        }
    }

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(l.max_input_bytes, 256 << 20);
        assert_eq!((l.max_width, l.max_height), (32768, 32768));
        assert_eq!(l.max_decoded_bytes, 1 << 30);
    }

    #[test]
    fn input_limit_is_inclusive() {
        let l = Limits {
            max_input_bytes: 10,
            ..Limits::default()
        };
        assert!(l.check_input(10).is_ok());
        let err = l.check_input(11).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert_eq!(
            err.to_string(),
            "image too large: the input has 11 bytes (11 B), the limit is 10 B"
        );
    }

    #[test]
    fn dimensions_and_decoded_size() {
        let l = Limits::default();
        assert!(l.check_header(&header(16384, 16384)).is_ok()); // exactly 1 GiB
        let err = l.check_header(&header(100_000, 100_000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image too large: 100000x100000 pixels exceeds the 32768x32768 limit"
        );
        let err = l.check_header(&header(16384, 16385)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image too large: decoding 16384x16385 pixels needs 1073807360 bytes (1.0 GiB), \
             the limit is 1.0 GiB"
        );
    }

    #[test]
    fn decoder_budget_is_what_remains() {
        let l = Limits {
            max_decoded_bytes: 1000,
            ..Limits::default()
        };
        assert_eq!(l.decoder_limits(400).bytes, 600);
        assert_eq!(l.decoder_limits(4000).bytes, 0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(256 << 20), "256.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
