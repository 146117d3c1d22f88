//! Why an image could not be processed.

use thiserror::Error;

/// A per-image failure. The message is meant for people: it names the
/// problem precisely (which chunk, which field, which limit).
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The input is an image, but not in a format we process.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// The input is not a well-formed image (or not an image at all).
    #[error("{0}")]
    Corrupt(String),
    /// The input, its dimensions or its decoded size exceed the [`Limits`].
    ///
    /// [`Limits`]: crate::Limits
    #[error("image too large: {0}")]
    TooLarge(String),
    /// A bug in this crate (including a caught panic), not a property of the input.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kind of a [`ProcessError`], without its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// See [`ProcessError::UnsupportedFormat`].
    Unsupported,
    /// See [`ProcessError::Corrupt`].
    Corrupt,
    /// See [`ProcessError::TooLarge`].
    TooLarge,
    /// See [`ProcessError::Internal`].
    Internal,
}

impl ProcessError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnsupportedFormat(_) => ErrorKind::Unsupported,
            Self::Corrupt(_) => ErrorKind::Corrupt,
            Self::TooLarge(_) => ErrorKind::TooLarge,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into())
    }

    /// Maps an error of the `png` decoder, raised during `phase`, by its
    /// variant.
    ///
    /// The `png` crate keeps the details of malformed input private
    /// (`DecodingError::Format` wraps an opaque type with no accessor), so
    /// for that variant its own message is the most precise description
    /// available and is passed through after a prefix that says where the
    /// problem is. The frequent problems (bad CRC, truncation, invalid
    /// header, missing chunks) are caught earlier with our own messages.
    pub(crate) fn from_decoding(err: png::DecodingError, phase: DecodePhase) -> Self {
        match err {
            png::DecodingError::Format(format) => {
                let detail = format.to_string();
                let (prefix, _) = phase.describe();
                Self::Corrupt(format!("{prefix}: {}", detail.trim_end_matches('.')))
            }
            png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                let (_, doing) = phase.describe();
                Self::Corrupt(format!("truncated file: the input ends while {doing}"))
            }
            png::DecodingError::IoError(io) => {
                let (_, doing) = phase.describe();
                Self::Internal(format!("reading from memory failed while {doing}: {io}"))
            }
            png::DecodingError::LimitsExceeded => {
                let (_, doing) = phase.describe();
                Self::TooLarge(format!(
                    "the PNG decoder needs more memory than max_decoded_bytes leaves it while {doing}"
                ))
            }
            png::DecodingError::Parameter(param) => {
                let (_, doing) = phase.describe();
                Self::Internal(format!("PNG decoder misuse while {doing}: {param}"))
            }
        }
    }

    /// Maps an error of the `png` encoder. Our encoder input is always
    /// well-formed, so any failure is ours.
    pub(crate) fn from_encoding(err: png::EncodingError) -> Self {
        Self::Internal(format!("PNG encoding failed: {err}"))
    }
}

/// Which part of a PNG the decoder was working on when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodePhase {
    /// The chunks before the first image data (`read_info`).
    Metadata,
    /// The image data of a frame.
    ImageData,
    /// The chunks after the last frame, up to IEND.
    Trailer,
}

impl DecodePhase {
    /// The prefix for messages about malformed data, and what was being done.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::Metadata => (
                "invalid PNG metadata",
                "reading the chunks before the image data",
            ),
            Self::ImageData => ("corrupt image data", "decoding the image data"),
            Self::Trailer => (
                "invalid PNG after the image data",
                "reading the chunks after the image data",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prefixes() {
        assert_eq!(
            ProcessError::UnsupportedFormat("JPEG (only PNG is supported)".into()).to_string(),
            "unsupported format: JPEG (only PNG is supported)"
        );
        assert_eq!(
            ProcessError::corrupt("CRC mismatch in IHDR chunk").to_string(),
            "CRC mismatch in IHDR chunk"
        );
        assert_eq!(
            ProcessError::TooLarge("x".into()).to_string(),
            "image too large: x"
        );
        assert_eq!(
            ProcessError::Internal("x".into()).to_string(),
            "internal error: x"
        );
    }

    #[test]
    fn kinds_mirror_variants() {
        assert_eq!(
            ProcessError::UnsupportedFormat(String::new()).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(ProcessError::corrupt("").kind(), ErrorKind::Corrupt);
        assert_eq!(
            ProcessError::TooLarge(String::new()).kind(),
            ErrorKind::TooLarge
        );
        assert_eq!(
            ProcessError::Internal(String::new()).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn decoder_errors_map_by_variant() {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let err =
            ProcessError::from_decoding(png::DecodingError::IoError(eof), DecodePhase::ImageData);
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert_eq!(
            err.to_string(),
            "truncated file: the input ends while decoding the image data"
        );
        let err =
            ProcessError::from_decoding(png::DecodingError::LimitsExceeded, DecodePhase::Metadata);
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let other = std::io::Error::other("boom");
        let err =
            ProcessError::from_decoding(png::DecodingError::IoError(other), DecodePhase::Trailer);
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
}
