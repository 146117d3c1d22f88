//! The master's whole side of the handshake against a peer that sends
//! arbitrary bytes and closes: it must end (typed) and never welcome.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tessera_proto::{
    ClusterKey, FrameLimits, FrameReader, FrameWriter, Welcome,
    accept::{AcceptOptions, accept},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let data = data.to_vec();
    let result = rt.block_on(async move {
        let (mut peer, master_end) = tokio::io::duplex(1 << 16);
        let (mr, mw) = tokio::io::split(master_end);
        let reader = FrameReader::new(mr, 1 << 20);
        let writer = FrameWriter::new(mw, 1 << 20);
        let feed = tokio::spawn(async move {
            let _ = peer.write_all(&data).await;
            let _ = peer.shutdown().await;
            let mut sink = Vec::new();
            let _ = peer.read_to_end(&mut sink).await;
        });
        let welcome = Welcome::new("m", Duration::from_secs(1), Duration::from_secs(10));
        let options = AcceptOptions {
            timeout: Duration::from_secs(10),
            limits: FrameLimits::default(),
        };
        let key = ClusterKey::from_bytes([3; 32]);
        let result = accept(reader, writer, &key, welcome, options, "fuzz").await;
        let _ = feed.await;
        result
    });
    assert!(result.is_err(), "welcomed a peer without the key");
});
