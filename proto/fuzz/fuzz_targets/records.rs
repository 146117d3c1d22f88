//! Arbitrary bytes as a connection's records after the handshake: the
//! record reader must never panic and never yield plaintext from bytes
//! that were not sealed under the connection's keys.
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tessera_proto::{ClusterKey, noise, secure::SecureRead};
use tokio::io::AsyncReadExt;

fuzz_target!(|data: &[u8]| {
    let key = ClusterKey::from_bytes([3; 32]);
    let keys = Arc::new(noise::handshake_in_memory(&key, b"h").unwrap().1);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let got = rt.block_on(async {
        let mut r = SecureRead::new(data, keys, "fuzz", BytesMut::new());
        let mut got = Vec::new();
        let _ = r.read_to_end(&mut got).await;
        got
    });
    assert!(got.is_empty(), "plaintext from forged records");
});
