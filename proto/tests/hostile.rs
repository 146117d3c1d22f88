//! Frames and bodies a hostile or broken peer may send.

use bytes::{BufMut, BytesMut};
use tessera_proto::{
    DecodeError, FrameReader, FrameWriter, Hello, Msg, ProtoError, Refusal, Role, conn::decode_msg,
    handshake::parse_hello, wire,
};
use tokio_util::codec::Decoder;

#[test]
fn a_nine_byte_frame_claiming_a_huge_vector_is_refused_not_allocated() {
    // Variant 0 (Submit), req 1, then a string length varint of u64::MAX/4 (~4 EiB).
    let mut body = vec![0x00, 0x01, 0xfd];
    body.extend_from_slice(&(64u64 << 30).to_le_bytes());
    let err = wire::decode_exact::<Msg>(&body).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::LimitExceeded { .. } | DecodeError::Truncated
        ),
        "got {err:?}"
    );
}

#[test]
fn an_unknown_message_type_is_a_typed_error() {
    let err = decode_msg(BytesMut::from(&[0x7f][..])).unwrap_err();
    assert_eq!(err, DecodeError::UnknownVariant { found: 0x7f });
    // The first unknown index is exactly one past the last known variant.
    let last = wire::encode(&Msg::HangingUp { silent_ms: 1 }).unwrap();
    assert_eq!(u32::from(last[0]) + 1, tessera_proto::message::MSG_VARIANTS);
    let err = decode_msg(BytesMut::from(&[last[0] + 1][..])).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownVariant {
            found: u32::from(last[0]) + 1
        }
    );
}

#[test]
fn trailing_bytes_after_a_control_message_are_refused() {
    let mut frame = BytesMut::from(&wire::encode(&Msg::Ready { credits: 1 }).unwrap()[..]);
    frame.put_u8(0);
    assert_eq!(
        decode_msg(frame).unwrap_err(),
        DecodeError::TrailingBytes { extra: 1 }
    );
}

#[test]
fn a_chunk_payload_is_a_slice_of_the_frame() {
    let mut frame = BytesMut::from(&wire::encode(&Msg::Chunk { stream: 3 }).unwrap()[..]);
    frame.extend_from_slice(b"pixels");
    let start = frame.as_ptr() as usize;
    let inc = decode_msg(frame).unwrap();
    assert_eq!(inc.msg, Msg::Chunk { stream: 3 });
    assert_eq!(&inc.payload[..], b"pixels");
    assert_eq!(
        inc.payload.as_ptr() as usize,
        start + 2,
        "payload was copied"
    );
}

#[test]
fn a_length_prefix_over_the_maximum_is_refused_before_buffering() {
    let mut codec = tessera_proto::frame::FrameCodec::new(1024);
    let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    match codec.decode(&mut src) {
        Err(ProtoError::FrameTooLarge { len, max }) => {
            assert_eq!(len, u32::MAX as usize);
            assert_eq!(max, 1024);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[test]
fn hello_checks_magic_then_version() {
    assert_eq!(parse_hello(b"GET / HTTP/1.1\r\n"), Err(Refusal::BadMagic));
    assert_eq!(parse_hello(b""), Err(Refusal::BadMagic));
    let mut future = Hello::new(Role::Client, "c");
    future.version = tessera_proto::PROTOCOL_VERSION + 1;
    let bytes = wire::encode(&future).unwrap();
    assert_eq!(
        parse_hello(&bytes),
        Err(Refusal::VersionMismatch {
            master: tessera_proto::PROTOCOL_VERSION,
            peer: tessera_proto::PROTOCOL_VERSION + 1
        })
    );
    let msg = Refusal::VersionMismatch { master: 1, peer: 9 }.to_string();
    assert!(
        msg.contains("version 1") && msg.contains("version 9"),
        "{msg}"
    );
    let ok = wire::encode(&Hello::new(Role::Worker, "w")).unwrap();
    assert_eq!(parse_hello(&ok).unwrap().role, Role::Worker);
    let long = wire::encode(&Hello::new(Role::Worker, "w".repeat(500))).unwrap();
    assert!(matches!(parse_hello(&long), Err(Refusal::Malformed(_))));
}

#[tokio::test]
async fn frames_round_trip_over_a_real_stream() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut w = FrameWriter::new(a, tessera_proto::DEFAULT_MAX_FRAME);
    let mut r = FrameReader::new(b, tessera_proto::DEFAULT_MAX_FRAME);
    let data = bytes::Bytes::from((0..2_500_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let sender = tokio::spawn(async move {
        w.send(&Msg::Submit {
            req: 1,
            name: "x".into(),
            len: data.len() as u64,
            checksum: 1,
            key: 2,
            submitter: 0,
        })
        .await
        .unwrap();
        w.send_stream(1, &data).await.unwrap();
        data
    });
    let first = r.recv().await.unwrap();
    assert_eq!(
        first.msg,
        Msg::Submit {
            req: 1,
            name: "x".into(),
            len: 2_500_000,
            checksum: 1,
            key: 2,
            submitter: 0,
        }
    );
    let mut got = Vec::new();
    let mut chunks = 0;
    while got.len() < 2_500_000 {
        let inc = r.recv().await.unwrap();
        assert_eq!(inc.msg, Msg::Chunk { stream: 1 });
        assert!(inc.payload.len() <= tessera_proto::MAX_CHUNK);
        got.extend_from_slice(&inc.payload);
        chunks += 1;
    }
    assert_eq!(chunks, 3);
    assert_eq!(got, sender.await.unwrap().to_vec());
}

#[test]
fn the_chunk_tag_is_the_first_byte_of_every_chunk_frame() {
    for stream in [0, 1, 300, u64::MAX] {
        let header = wire::encode(&Msg::Chunk { stream }).unwrap();
        assert_eq!(header[0], tessera_proto::message::CHUNK_TAG);
    }
}

/// Only a chunk may be longer than the control-frame limit; anything else is
/// refused from its prefix and type byte, before its body is buffered.
#[test]
fn a_control_message_over_its_limit_is_refused_before_buffering() {
    use tessera_proto::{FrameLimits, frame::FrameCodec};
    let limits = FrameLimits {
        max_frame: 10_000,
        max_control: 100,
    };
    let mut codec = FrameCodec::with_limits(limits);
    // The prefix alone is not enough to tell: wait for the type byte.
    let mut src = BytesMut::from(&5000u32.to_be_bytes()[..]);
    assert!(codec.decode(&mut src).unwrap().is_none());
    src.put_u8(0); // Submit
    match codec.decode(&mut src) {
        Err(ProtoError::MessageTooLarge {
            len: 5000,
            max: 100,
        }) => {}
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    // A chunk of the same size passes.
    let mut codec = FrameCodec::with_limits(limits);
    let mut src = BytesMut::from(&5000u32.to_be_bytes()[..]);
    src.put_u8(tessera_proto::message::CHUNK_TAG);
    src.extend_from_slice(&[7; 4999]);
    assert_eq!(codec.decode(&mut src).unwrap().unwrap().len(), 5000);
    // A small control message passes.
    let mut src = BytesMut::from(&[0, 0, 0, 2, 7, 1][..]);
    assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], &[7, 1]);
    assert_eq!(
        ProtoError::MessageTooLarge {
            len: 5000,
            max: 100
        }
        .to_string(),
        "message of 5000 bytes is over the 100-byte limit for messages other than chunks"
    );
}

#[test]
fn limits_change_between_frames() {
    use tessera_proto::{FrameLimits, frame::FrameCodec};
    let mut codec = FrameCodec::with_limits(FrameLimits::HANDSHAKE);
    let mut src = BytesMut::from(&2000u32.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(ProtoError::FrameTooLarge {
            len: 2000,
            max: 1024
        })
    ));
    let mut codec = FrameCodec::with_limits(FrameLimits::HANDSHAKE);
    codec.set_limits(FrameLimits::default());
    let mut src = BytesMut::from(&2000u32.to_be_bytes()[..]);
    src.put_u8(tessera_proto::message::CHUNK_TAG);
    src.extend_from_slice(&[0; 1999]);
    assert_eq!(codec.decode(&mut src).unwrap().unwrap().len(), 2000);
}
