//! Arbitrary bytes through every handshake decoder (both sides').
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_proto::{HelloReply, handshake, wire};

fuzz_target!(|data: &[u8]| {
    let _ = handshake::parse_hello(data);
    let _ = handshake::check_first_message(data);
    let _ = wire::decode_exact::<HelloReply>(data);
});
