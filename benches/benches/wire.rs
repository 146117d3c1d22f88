//! How fast image bytes cross the wire layer: a 256 MiB stream sent as
//! chunks through `FrameWriter` and reassembled by `FrameReader` + `Collector`
//! over loopback TCP, next to a plain memcpy of the same size.
//!
//! `cargo bench -p tessera-benches --bench wire`

use std::time::Instant;

use bytes::Bytes;
use tessera_benches::{figure, machine, repeat};
use tessera_proto::{FrameReader, FrameWriter, Msg, stream::Collector};

fn main() -> anyhow::Result<()> {
    machine("wire");
    let mib = repeat(256);
    let size = mib * 1024 * 1024;
    let data = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());

    // Pre-faulted destination, so the figure is the copy, not page faults.
    let mut copy = vec![1u8; size];
    let start = Instant::now();
    copy.copy_from_slice(&data);
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(&copy);
    figure(
        "wire",
        "memcpy",
        &[("mib", mib as f64), ("gb_per_s", size as f64 / secs / 1e9)],
    );

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sent = data.clone();
        let sender = tokio::spawn(async move {
            let (socket, _) = listener.accept().await?;
            let mut w = FrameWriter::new(socket, tessera_proto::DEFAULT_MAX_FRAME);
            w.feed(&Msg::Submit {
                req: 1,
                name: "x".into(),
                len: sent.len() as u64,
                checksum: 0,
                key: 0,
                submitter: 0,
            })
            .await?;
            w.send_stream(1, &sent).await?;
            anyhow::Ok(())
        });
        let socket = tokio::net::TcpStream::connect(addr).await?;
        let mut r = FrameReader::new(socket, tessera_proto::DEFAULT_MAX_FRAME);
        let start = Instant::now();
        let first = r.recv().await?;
        let Msg::Submit { len, .. } = first.msg else {
            anyhow::bail!("unexpected {first:?}")
        };
        let mut c = Collector::new(len);
        let got = loop {
            let inc = r.recv().await?;
            if let Some(all) = c.push(inc.payload)? {
                break all;
            }
        };
        let secs = start.elapsed().as_secs_f64();
        sender.await??;
        anyhow::ensure!(got == data, "stream corrupted");
        figure(
            "wire",
            "loopback_stream",
            &[("mib", mib as f64), ("gb_per_s", size as f64 / secs / 1e9)],
        );
        Ok(())
    })
}
