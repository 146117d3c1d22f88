//! Arbitrary frame bodies through the message decoder.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tessera_proto::{Msg, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(incoming) = tessera_proto::conn::decode_msg(BytesMut::from(data)) {
        // What decodes encodes, and decodes back to the same message.
        let header = wire::encode(&incoming.msg).expect("encodes");
        let back: Msg = wire::decode_exact(&header).expect("decodes");
        assert_eq!(back, incoming.msg);
    }
});
