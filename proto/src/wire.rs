//! The one place that knows about bincode.
//!
//! Every message body is encoded with bincode 2's standard configuration
//! (variable-length integers, little-endian) and *always* decoded with a byte
//! limit, so a frame that claims a huge vector is refused instead of aborting
//! the process on allocation.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::DecodeError;

/// Upper bound on the memory one decoded message header may claim.
/// Headers are small (names, reasons, ids); image bytes never go through bincode.
pub const HEADER_DECODE_LIMIT: usize = 64 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<HEADER_DECODE_LIMIT>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<HEADER_DECODE_LIMIT>()
}

/// Appends the encoding of `value` to `dst`.
pub fn encode_into<T: Serialize>(value: &T, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
    let bytes =
        bincode::serde::encode_to_vec(value, config()).map_err(|e| EncodeError(e.to_string()))?;
    if bytes.len() > HEADER_DECODE_LIMIT {
        return Err(EncodeError(format!(
            "header of {} bytes is over the {HEADER_DECODE_LIMIT}-byte limit",
            bytes.len()
        )));
    }
    dst.extend_from_slice(&bytes);
    Ok(())
}

/// Encodes `value` into a fresh buffer.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut v = Vec::new();
    encode_into(value, &mut v)?;
    Ok(v)
}

/// Decodes one value from the front of `src`, returning it and the number of
/// bytes it used.
pub fn decode_prefix<T: DeserializeOwned>(src: &[u8]) -> Result<(T, usize), DecodeError> {
    bincode::serde::decode_from_slice(src, config()).map_err(classify)
}

/// Decodes one value that must use all of `src`.
pub fn decode_exact<T: DeserializeOwned>(src: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = decode_prefix(src)?;
    if used != src.len() {
        return Err(DecodeError::TrailingBytes {
            extra: src.len() - used,
        });
    }
    Ok(value)
}

/// Decodes an enum of `variants` variants that must use all of `src`. An
/// unknown variant is typed from the leading varint (serde reports it only
/// as text).
pub fn decode_enum_exact<T: DeserializeOwned>(src: &[u8], variants: u32) -> Result<T, DecodeError> {
    let (variant, _) = decode_prefix::<u32>(src)?;
    if variant >= variants {
        return Err(DecodeError::UnknownVariant { found: variant });
    }
    decode_exact(src)
}

fn classify(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedVariant { found, .. } => DecodeError::UnknownVariant { found },
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded => DecodeError::LimitExceeded {
            limit: HEADER_DECODE_LIMIT,
        },
        other => DecodeError::Malformed(other.to_string()),
    }
}

/// A message could not be encoded (a bug on the sending side, e.g. a value
/// over the header limit).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(pub String);
