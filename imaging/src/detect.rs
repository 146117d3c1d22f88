//! Recognising the input format from its first bytes.

use crate::{Format, ProcessError};

/// The PNG file signature.
pub(crate) const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

/// Image formats we recognise but do not process, by magic bytes at offset 0.
const OTHER_FORMATS: &[(&[u8], &str)] = &[
    (&[0xFF, 0xD8, 0xFF], "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\0", "TIFF"),
    (b"MM\0*", "TIFF"),
    (b"II+\0", "BigTIFF"),
    (b"MM\0+", "BigTIFF"),
    (b"qoif", "QOI"),
    (b"\x8AMNG\r\n\x1A\n", "MNG"),
    (b"\x8BJNG\r\n\x1A\n", "JNG"),
    (b"\0\0\0\x0CjP  \r\n\x87\n", "JPEG 2000"),
    (&[0xFF, 0x4F, 0xFF, 0x51], "JPEG 2000"),
    (b"\0\0\0\x0CJXL \r\n\x87\n", "JPEG XL"),
    (&[0xFF, 0x0A], "JPEG XL"),
    (b"8BPS", "PSD"),
    (b"farbfeld", "farbfeld"),
    (&[0x76, 0x2F, 0x31, 0x01], "OpenEXR"),
    (b"DDS ", "DDS"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (&[0, 0, 1, 0], "ICO"),
    (&[0, 0, 2, 0], "CUR"),
];

/// Classifies `input` by its magic bytes: PNG proceeds, other image formats
/// are [`ProcessError::UnsupportedFormat`], anything else is
/// [`ProcessError::Corrupt`] with a diagnosis of what is wrong.
pub(crate) fn detect(input: &[u8]) -> Result<Format, ProcessError> {
    if input.is_empty() {
        return Err(ProcessError::corrupt("empty input"));
    }
    if input.starts_with(&PNG_SIGNATURE) {
        return Ok(Format::Png);
    }
    if let Some(name) = other_format(input) {
        return Err(ProcessError::UnsupportedFormat(format!(
            "{name} (only PNG is supported)"
        )));
    }
    if PNG_SIGNATURE.starts_with(input) {
        return Err(ProcessError::corrupt(format!(
            "truncated file: only {} of the 8 PNG signature bytes",
            input.len()
        )));
    }
    Err(ProcessError::corrupt(match damaged_png_signature(input) {
        Some(how) => format!("not a PNG: bad signature ({how})"),
        None => "not a PNG: bad signature".to_owned(),
    }))
}

/// Names the non-PNG image format `input` starts with, if any.
fn other_format(input: &[u8]) -> Option<&'static str> {
    if let Some((_, name)) = OTHER_FORMATS
        .iter()
        .find(|(magic, _)| input.starts_with(magic))
    {
        return Some(name);
    }
    if input.len() >= 12 && input.starts_with(b"RIFF") && &input[8..12] == b"WEBP" {
        return Some("WebP");
    }
    // ISO base media file: a box size, then `ftyp` and the major brand.
    if input.len() >= 12 && &input[4..8] == b"ftyp" {
        return match &input[8..12] {
            b"avif" | b"avis" => Some("AVIF"),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                Some("HEIF")
            }
            _ => None,
        };
    }
    // A BMP starts with "BM" and the file size; the reserved words are zero.
    if input.len() >= 14 && input.starts_with(b"BM") && input[6..10] == [0; 4] {
        return Some("BMP");
    }
    // Netpbm: "P1".."P7" followed by whitespace.
    if input.len() >= 3
        && input[0] == b'P'
        && (b'1'..=b'7').contains(&input[1])
        && input[2].is_ascii_whitespace()
    {
        return Some("Netpbm");
    }
    None
}

/// Recognises the transfer accidents the PNG signature was designed to
/// detect, so the message can say what happened to the file.
fn damaged_png_signature(input: &[u8]) -> Option<&'static str> {
    const DAMAGE: &[(&[u8], &str)] = &[
        (
            b"\x89PNG\n\x1A\n",
            "CR LF line endings were converted to LF, e.g. by a text-mode transfer",
        ),
        (
            b"\x89PNG\r\r\n\x1A\r\n",
            "LF line endings were converted to CR LF, e.g. by a text-mode transfer",
        ),
        (
            b"\x89PNG\r\r\x1A\r",
            "line feeds were converted to carriage returns, e.g. by a text-mode transfer",
        ),
        (
            b"\x89PNG\n\n\x1A\n",
            "carriage returns were converted to line feeds, e.g. by a text-mode transfer",
        ),
        (
            b"\x09PNG\r\n\x1A\n",
            "the high bit of the first byte is clear, e.g. after a 7-bit transfer",
        ),
    ];
    DAMAGE
        .iter()
        .find(|(damaged, _)| input.starts_with(damaged))
        .map(|(_, how)| *how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn message(input: &[u8]) -> (ErrorKind, String) {
        let err = detect(input).unwrap_err();
        (err.kind(), err.to_string())
    }

    #[test]
    fn png_signature_is_accepted() {
        assert_eq!(detect(&PNG_SIGNATURE).unwrap(), Format::Png);
    }

    #[test]
    fn other_formats_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'], "JPEG"),
            (b"GIF89a\x01\x00", "GIF"),
            (b"RIFF\x10\0\0\0WEBPVP8 ", "WebP"),
            (b"II*\0\x08\0\0\0", "TIFF"),
            (b"qoif\0\0\0\x01", "QOI"),
            (b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0", "BMP"),
            (b"\0\0\0\x1CftypavifXXXX", "AVIF"),
            (b"P6\n3 2\n255\n", "Netpbm"),
            (b"\x8AMNG\r\n\x1A\n", "MNG"),
        ];
        for (input, name) in cases {
            let (kind, msg) = message(input);
            assert_eq!(kind, ErrorKind::Unsupported, "{name}");
            assert_eq!(
                msg,
                format!("unsupported format: {name} (only PNG is supported)")
            );
        }
    }

    #[test]
    fn empty_and_garbage_are_corrupt() {
        assert_eq!(message(b""), (ErrorKind::Corrupt, "empty input".into()));
        assert_eq!(
            message(b"hello, world"),
            (ErrorKind::Corrupt, "not a PNG: bad signature".into())
        );
        assert_eq!(
            message(&PNG_SIGNATURE[..5]),
            (
                ErrorKind::Corrupt,
                "truncated file: only 5 of the 8 PNG signature bytes".into()
            )
        );
    }

    #[test]
    fn damaged_signatures_are_diagnosed() {
        let (_, msg) = message(b"\x89PNG\n\x1A\n\0\0\0\x0DIHDR");
        assert!(
            msg.contains("CR LF line endings were converted to LF"),
            "{msg}"
        );
        let (_, msg) = message(b"\x09PNG\r\n\x1A\n\0\0\0\x0DIHDR");
        assert!(msg.contains("7-bit"), "{msg}");
    }
}
