//! Framing: a 4-byte big-endian length, then the body.
//!
//! A body is a bincode-encoded header ([`crate::Msg`], or the handshake types)
//! followed, for [`crate::Msg::Chunk`] only, by raw payload bytes. Decoding
//! splits the payload off the frame buffer without copying it.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::{MAX_CHUNK, error::ProtoError, wire};

/// Default maximum frame: one full chunk plus room for its header.
pub const DEFAULT_MAX_FRAME: usize = MAX_CHUNK + 4096;

const LEN_PREFIX: usize = 4;

/// An outgoing frame: an encoded header and an optional payload.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub header: Vec<u8>,
    pub payload: Bytes,
}

impl OutFrame {
    /// A frame whose body is just `value`'s encoding.
    pub fn message<T: serde::Serialize>(value: &T) -> Result<Self, wire::EncodeError> {
        Ok(OutFrame {
            header: wire::encode(value)?,
            payload: Bytes::new(),
        })
    }
}

/// Length-delimited frames with an explicit maximum, decoded by
/// [`LengthDelimitedCodec`]; an oversized length prefix is a typed error
/// raised before any of the frame is buffered.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max_frame: usize,
    /// Length of the frame `inner` is in the middle of (it has consumed the
    /// prefix), so the next bytes in the buffer are body, not a prefix.
    in_frame: Option<usize>,
}

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(LEN_PREFIX)
            .big_endian()
            .max_frame_length(max_frame)
            .new_codec();
        FrameCodec {
            inner,
            max_frame,
            in_frame: None,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, ProtoError> {
        if self.in_frame.is_none() && src.len() >= LEN_PREFIX {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            if len > self.max_frame {
                return Err(ProtoError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            self.in_frame = Some(len);
        }
        let frame = self.inner.decode(src)?;
        if frame.is_some() {
            self.in_frame = None;
        }
        Ok(frame)
    }
}

impl Encoder<OutFrame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: OutFrame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        let len = item.header.len() + item.payload.len();
        if len > self.max_frame {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        dst.reserve(LEN_PREFIX + len);
        dst.put_u32(len as u32);
        dst.extend_from_slice(&item.header);
        dst.extend_from_slice(&item.payload);
        Ok(())
    }
}
