//! Framing: a 4-byte big-endian length, then the body.
//!
//! A body is a bincode-encoded header ([`crate::Msg`], or the handshake types)
//! followed, for [`crate::Msg::Chunk`] only, by raw payload bytes. Decoding
//! splits the payload off the frame buffer without copying it.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::{MAX_CHUNK, error::ProtoError, message::CHUNK_TAG, wire};

/// Default maximum frame: one full chunk plus room for its header.
pub const DEFAULT_MAX_FRAME: usize = MAX_CHUNK + 4096;

/// Default maximum for a frame that is not a chunk (every control message):
/// the same as the decoder's header limit.
pub const DEFAULT_MAX_CONTROL_FRAME: usize = wire::HEADER_DECODE_LIMIT;

/// Maximum frame during the handshake, before the peer has proved it holds
/// the cluster key: every handshake frame fits in far less.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// The size limits a connection's frames are decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame of any kind (a chunk and its header).
    pub max_frame: usize,
    /// Largest frame that is not a [`crate::Msg::Chunk`]; refused from its
    /// length prefix and first body byte, before the body is buffered.
    pub max_control: usize,
}

impl FrameLimits {
    /// Before authentication: [`HANDSHAKE_MAX_FRAME`] for every frame.
    pub const HANDSHAKE: FrameLimits = FrameLimits {
        max_frame: HANDSHAKE_MAX_FRAME,
        max_control: HANDSHAKE_MAX_FRAME,
    };

    /// One limit for every kind of frame.
    pub fn uniform(max_frame: usize) -> Self {
        FrameLimits {
            max_frame,
            max_control: max_frame,
        }
    }
}

impl Default for FrameLimits {
    /// After authentication: [`DEFAULT_MAX_FRAME`] and [`DEFAULT_MAX_CONTROL_FRAME`].
    fn default() -> Self {
        FrameLimits {
            max_frame: DEFAULT_MAX_FRAME,
            max_control: DEFAULT_MAX_CONTROL_FRAME,
        }
    }
}

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
/// raised before any of the frame is buffered. A frame that is not a chunk
/// has its own, smaller maximum ([`FrameLimits::max_control`]), checked from
/// the prefix and the first body byte (the message type).
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max_frame: usize,
    max_control: usize,
    /// Length of the frame `inner` is in the middle of (it has consumed the
    /// prefix), so the next bytes in the buffer are body, not a prefix.
    in_frame: Option<usize>,
}

impl FrameCodec {
    /// One limit for every kind of frame.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec::with_limits(FrameLimits::uniform(max_frame))
    }

    pub fn with_limits(limits: FrameLimits) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(LEN_PREFIX)
            .big_endian()
            .max_frame_length(limits.max_frame)
            .new_codec();
        FrameCodec {
            inner,
            max_frame: limits.max_frame,
            max_control: limits.max_control.min(limits.max_frame),
            in_frame: None,
        }
    }

    /// Changes the limits for the frames after the current one (e.g. once
    /// the handshake is over).
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.inner.set_max_frame_length(limits.max_frame);
        self.max_frame = limits.max_frame;
        self.max_control = limits.max_control.min(limits.max_frame);
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    pub fn max_control(&self) -> usize {
        self.max_control
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
            if len > self.max_control {
                // Only a chunk may be this long: look at its type byte.
                match src.get(LEN_PREFIX) {
                    None => return Ok(None),
                    Some(&tag) if tag == CHUNK_TAG => {}
                    Some(_) => {
                        return Err(ProtoError::MessageTooLarge {
                            len,
                            max: self.max_control,
                        });
                    }
                }
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
        encode_head(&item.header, item.payload.len(), self.max_frame, dst)?;
        dst.extend_from_slice(&item.payload);
        Ok(())
    }
}

/// Appends a frame's length prefix and `header` to `dst`, for a frame whose
/// body is `header` followed by `payload_len` bytes of payload (which the
/// caller writes next, here or straight from its own buffer); refuses a
/// frame over `max_frame`. The one place the frame layout is written.
pub fn encode_head(
    header: &[u8],
    payload_len: usize,
    max_frame: usize,
    dst: &mut BytesMut,
) -> Result<(), ProtoError> {
    let len = header.len() + payload_len;
    if len > max_frame {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    dst.reserve(LEN_PREFIX + header.len());
    dst.put_u32(len as u32);
    dst.extend_from_slice(header);
    Ok(())
}
