//! Property tests: arbitrary bytes fed to every decoder a peer can reach
//! (frames, messages, the handshake's frames and the master's whole side of
//! the handshake). None may panic, allocate beyond its limits, or let an
//! unauthenticated peer in.

use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use tessera_proto::{
    ClusterKey, FrameLimits, FrameReader, FrameWriter, Hello, ProtoError, Role,
    accept::{AcceptOptions, accept},
    conn::decode_msg,
    frame::FrameCodec,
    handshake::{check_first_message, parse_hello},
    noise,
    secure::SecureRead,
    wire,
};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Decoder;

mod common;
use common::welcome;

/// Runs the master's side of the handshake against a peer that sends
/// `bytes` and then closes its side.
fn accept_bytes(bytes: Vec<u8>) -> Result<Hello, tessera_proto::accept::AcceptError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let (mut peer, master_end) = tokio::io::duplex(1 << 16);
        let (mr, mw) = tokio::io::split(master_end);
        let reader = FrameReader::new(mr, 1 << 20);
        let writer = FrameWriter::new(mw, 1 << 20);
        let feed = tokio::spawn(async move {
            let _ = peer.write_all(&bytes).await;
            let _ = peer.shutdown().await;
            // Keep reading what the master says so it never blocks.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut sink).await;
        });
        let options = AcceptOptions {
            timeout: Duration::from_secs(10),
            limits: FrameLimits::default(),
        };
        let key = ClusterKey::from_bytes([3; 32]);
        let result = accept(reader, writer, &key, welcome(), options, "peer").await;
        let result = result.map(|accepted| accepted.hello);
        let _ = feed.await;
        result
    })
}

/// A well-formed `Hello` frame (prefix included).
fn hello_frame() -> Vec<u8> {
    let body = wire::encode(&Hello::new(Role::Client, "p")).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any byte stream cut anywhere: the codec yields frames within the
    /// limits or a typed error, never a panic or an oversized frame.
    #[test]
    fn the_frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096) {
        let limits = FrameLimits { max_frame: 2048, max_control: 256 };
        let mut codec = FrameCodec::with_limits(limits);
        let cut = cut.min(bytes.len());
        let mut src = BytesMut::from(&bytes[..cut]);
        let mut rest = &bytes[cut..];
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    prop_assert!(frame.len() <= limits.max_frame);
                    if frame.len() > limits.max_control {
                        prop_assert_eq!(frame[0], tessera_proto::message::CHUNK_TAG);
                    }
                }
                Ok(None) if rest.is_empty() => break,
                Ok(None) => {
                    src.extend_from_slice(rest);
                    rest = &[];
                }
                Err(ProtoError::FrameTooLarge { len, max }) => {
                    prop_assert!(len > max);
                    break;
                }
                Err(ProtoError::MessageTooLarge { len, max }) => {
                    prop_assert!(len > max);
                    break;
                }
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }

    /// Any frame body: a message, or a typed decode error.
    #[test]
    fn the_message_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_msg(BytesMut::from(&bytes[..]));
    }

    /// Small varint-heavy bodies reach deep into the message types.
    #[test]
    fn the_message_decoder_never_panics_on_small_structured_bodies(
        variant in 0u8..24,
        rest in proptest::collection::vec(prop_oneof![Just(0xfbu8), Just(0xfc), Just(0xfd), Just(0xff), any::<u8>()], 0..24),
    ) {
        let mut body = vec![variant];
        body.extend_from_slice(&rest);
        let _ = decode_msg(BytesMut::from(&body[..]));
    }

    #[test]
    fn the_handshake_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_hello(&bytes);
        let _ = check_first_message(&bytes);
        let mut with_magic = b"TSRA".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_hello(&with_magic);
    }

    /// Whatever a peer without the key sends, the master never welcomes it.
    #[test]
    fn the_master_never_welcomes_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(accept_bytes(bytes).is_err());
    }

    /// A valid `Hello` followed by anything (a forged Noise message) is never welcomed.
    #[test]
    fn the_master_never_welcomes_a_forged_answer(answer in proptest::collection::vec(any::<u8>(), 0..80), prefixed in any::<bool>()) {
        let mut bytes = hello_frame();
        if prefixed {
            bytes.extend_from_slice(&(answer.len() as u32).to_be_bytes());
        }
        bytes.extend_from_slice(&answer);
        prop_assert!(accept_bytes(bytes).is_err());
    }

    /// Bytes that were not sealed under the connection's keys yield no
    /// plaintext: the record reader ends with an error (or a clean end on
    /// no input), never with data, and never panics.
    #[test]
    fn the_record_reader_yields_nothing_from_forged_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        let keys = std::sync::Arc::new(transport_keys());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (got, end) = rt.block_on(async {
            let mut r = SecureRead::new(&bytes[..], keys, "fuzz", BytesMut::new());
            let mut got = Vec::new();
            let end = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got).await;
            (got, end)
        });
        prop_assert!(got.is_empty());
        prop_assert_eq!(end.is_ok(), bytes.is_empty());
    }
}

/// The master's keys after an in-memory handshake under a fixed key.
fn transport_keys() -> snow::StatelessTransportState {
    let key = ClusterKey::from_bytes([3; 32]);
    noise::handshake_in_memory(&key, b"h").unwrap().1
}
