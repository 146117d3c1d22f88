//! The IHDR chunk: image size, colour type, bit depth and interlacing,
//! parsed and validated before anything is decoded or allocated.

use png::{BitDepth, ColorType};

use crate::ProcessError;

/// The largest width or height the PNG specification allows (2^31 - 1).
const MAX_DIMENSION: u32 = i32::MAX as u32;

/// The validated contents of an IHDR chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) color_type: ColorType,
    pub(crate) bit_depth: BitDepth,
    pub(crate) interlaced: bool,
}

impl Header {
    /// Parses and validates IHDR chunk data, with a message naming the
    /// offending field.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, ProcessError> {
        let invalid = |what: String| ProcessError::corrupt(format!("invalid IHDR: {what}"));
        let Ok(
            &[
                w0,
                w1,
                w2,
                w3,
                h0,
                h1,
                h2,
                h3,
                depth,
                color,
                compression,
                filter,
                interlace,
            ],
        ) = <&[u8; 13]>::try_from(data)
        else {
            return Err(invalid(format!(
                "the chunk has {} bytes instead of 13",
                data.len()
            )));
        };
        let width = u32::from_be_bytes([w0, w1, w2, w3]);
        let height = u32::from_be_bytes([h0, h1, h2, h3]);
        for (name, value) in [("width", width), ("height", height)] {
            if value == 0 || value > MAX_DIMENSION {
                return Err(invalid(format!("{name} {value} is outside 1..=2^31-1")));
            }
        }
        let color_type = ColorType::from_u8(color)
            .ok_or_else(|| invalid(format!("colour type {color} is not defined")))?;
        let bit_depth = BitDepth::from_u8(depth)
            .filter(|&d| allowed_depths(color_type).contains(&d))
            .ok_or_else(|| {
                invalid(format!(
                    "bit depth {depth} is not allowed for {} (allowed: {})",
                    color_name(color_type),
                    allowed_depths(color_type)
                        .iter()
                        .map(|&d| (d as u8).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if compression != 0 {
            return Err(invalid(format!(
                "compression method {compression} is not defined"
            )));
        }
        if filter != 0 {
            return Err(invalid(format!("filter method {filter} is not defined")));
        }
        let interlaced = match interlace {
            0 => false,
            1 => true,
            other => {
                return Err(invalid(format!("interlace method {other} is not defined")));
            }
        };
        Ok(Self {
            width,
            height,
            color_type,
            bit_depth,
            interlaced,
        })
    }

    /// Bytes of one decoded (unfiltered, deinterlaced) row.
    pub(crate) fn row_bytes(&self) -> u64 {
        let bits = u64::from(self.width)
            * self.color_type.samples() as u64
            * u64::from(self.bit_depth as u8);
        bits.div_ceil(8)
    }

    /// Bytes of the whole decoded image (one frame).
    pub(crate) fn frame_bytes(&self) -> u64 {
        // At most (2^31 * 64 / 8) * 2^31 = 2^65: compute in u128, saturate.
        let bytes = u128::from(self.row_bytes()) * u128::from(self.height);
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// The bit depths the PNG specification allows for a colour type.
fn allowed_depths(color_type: ColorType) -> &'static [BitDepth] {
    use BitDepth::*;
    match color_type {
        ColorType::Grayscale => &[One, Two, Four, Eight, Sixteen],
        ColorType::Indexed => &[One, Two, Four, Eight],
        ColorType::Rgb | ColorType::GrayscaleAlpha | ColorType::Rgba => &[Eight, Sixteen],
    }
}

/// The name of a colour type for messages.
pub(crate) fn color_name(color_type: ColorType) -> &'static str {
    match color_type {
        ColorType::Grayscale => "grayscale",
        ColorType::Rgb => "RGB",
        ColorType::Indexed => "indexed colour",
        ColorType::GrayscaleAlpha => "grayscale with alpha",
        ColorType::Rgba => "RGBA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ihdr(width: u32, height: u32, depth: u8, color: u8, interlace: u8) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&width.to_be_bytes());
        data.extend_from_slice(&height.to_be_bytes());
        data.extend_from_slice(&[depth, color, 0, 0, interlace]);
        data
    }

    fn error(data: &[u8]) -> String {
        Header::parse(data).unwrap_err().to_string()
    }

    #[test]
    fn parses_valid_headers() {
        let h = Header::parse(&ihdr(768, 512, 8, 2, 0)).unwrap();
        assert_eq!((h.width, h.height), (768, 512));
        assert_eq!(h.color_type, ColorType::Rgb);
        assert_eq!(h.bit_depth, BitDepth::Eight);
        assert!(!h.interlaced);
        assert_eq!(h.row_bytes(), 768 * 3);
        assert_eq!(h.frame_bytes(), 768 * 3 * 512);

        let h = Header::parse(&ihdr(3, 1, 1, 0, 1)).unwrap();
        assert!(h.interlaced);
        assert_eq!(h.row_bytes(), 1, "3 one-bit pixels round up to one byte");

        let h = Header::parse(&ihdr(5, 2, 16, 6, 0)).unwrap();
        assert_eq!(h.row_bytes(), 5 * 8);
    }

    #[test]
    fn frame_bytes_saturates_instead_of_overflowing() {
        let h = Header::parse(&ihdr(MAX_DIMENSION, MAX_DIMENSION, 16, 6, 0)).unwrap();
        assert_eq!(h.frame_bytes(), u64::MAX);
    }

    #[test]
    fn invalid_fields_are_named() {
        assert_eq!(
            error(&[0; 12]),
            "invalid IHDR: the chunk has 12 bytes instead of 13"
        );
        assert_eq!(
            error(&ihdr(0, 1, 8, 0, 0)),
            "invalid IHDR: width 0 is outside 1..=2^31-1"
        );
        assert_eq!(
            error(&ihdr(1, 1 << 31, 8, 0, 0)),
            "invalid IHDR: height 2147483648 is outside 1..=2^31-1"
        );
        assert_eq!(
            error(&ihdr(1, 1, 8, 1, 0)),
            "invalid IHDR: colour type 1 is not defined"
        );
        assert_eq!(
            error(&ihdr(1, 1, 3, 2, 0)),
            "invalid IHDR: bit depth 3 is not allowed for RGB (allowed: 8, 16)"
        );
        assert_eq!(
            error(&ihdr(1, 1, 16, 3, 0)),
            "invalid IHDR: bit depth 16 is not allowed for indexed colour (allowed: 1, 2, 4, 8)"
        );
        assert_eq!(
            error(&ihdr(1, 1, 8, 0, 2)),
            "invalid IHDR: interlace method 2 is not defined"
        );
    }
}
