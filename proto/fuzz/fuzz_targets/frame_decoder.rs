//! Arbitrary bytes through the frame decoder, fed in two pieces: frames stay
//! within the limits (only chunks over the control limit), errors are typed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tessera_proto::{FrameLimits, ProtoError, frame::FrameCodec, message::CHUNK_TAG};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let limits = FrameLimits {
        max_frame: 4096,
        max_control: 512,
    };
    let mut codec = FrameCodec::with_limits(limits);
    let cut = usize::from(cut).min(data.len());
    let mut src = BytesMut::from(&data[..cut]);
    let mut rest = &data[cut..];
    loop {
        match codec.decode(&mut src) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= limits.max_frame);
                if frame.len() > limits.max_control {
                    assert_eq!(frame[0], CHUNK_TAG);
                }
                let _ = tessera_proto::conn::decode_msg(frame);
            }
            Ok(None) if rest.is_empty() => return,
            Ok(None) => {
                src.extend_from_slice(rest);
                rest = &[];
            }
            Err(
                ProtoError::FrameTooLarge { len, max } | ProtoError::MessageTooLarge { len, max },
            ) => {
                assert!(len > max);
                return;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
});
