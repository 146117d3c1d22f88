//! How fast image bytes cross the wire layer: a 256 MiB stream sent as
//! chunks through `FrameWriter` and reassembled by `FrameReader` + `Collector`
//! over loopback TCP, in the clear and through the Noise record layer
//! (AES-256-GCM), next to a plain memcpy of the same size. The encrypted
//! figure's `gb_per_cpu_s` is bytes per second of CPU time of both ends.
//!
//! `cargo bench -p tessera-benches --bench wire`

use std::time::Instant;

use bytes::Bytes;
use std::sync::Arc;
use tessera_benches::{cpu_seconds, figure, machine, repeat};

use tessera_proto::{
    ClusterKey, FrameReader, FrameWriter, Msg, noise,
    secure::{Keys, MAX_RECORD_PLAINTEXT, SecureRead, SecureWrite},
    stream::Collector,
};

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
    // The AEAD alone (snow on ring, AES-256-GCM), one full record at a time.
    {
        let (k, _) = keys();
        let plain = vec![7u8; MAX_RECORD_PLAINTEXT];
        let mut out = vec![0u8; MAX_RECORD_PLAINTEXT + 16];
        let n = size / plain.len();
        let start = Instant::now();
        for i in 0..n {
            k.write_message(i as u64, &plain, &mut out)
                .expect("a full record seals");
        }
        let secs = start.elapsed().as_secs_f64();
        figure(
            "wire",
            "aead_only",
            &[("gb_per_s", (n * plain.len()) as f64 / secs / 1e9)],
        );
    }
    // The record layer alone on one core: seal into memory, then open.
    let (seal, open) = rt.block_on(records_in_memory(&data))?;
    figure(
        "wire",
        "records_in_memory",
        &[
            ("mib", mib as f64),
            ("seal_gb_per_s", size as f64 / seal / 1e9),
            ("open_gb_per_s", size as f64 / open / 1e9),
        ],
    );
    for encrypted in [false, true] {
        let (secs, cpu) = rt.block_on(stream(data.clone(), encrypted))?;
        figure(
            "wire",
            if encrypted {
                "loopback_stream_encrypted"
            } else {
                "loopback_stream"
            },
            &[
                ("mib", mib as f64),
                ("gb_per_s", size as f64 / secs / 1e9),
                // Both ends' CPU: bytes per second of CPU time.
                ("gb_per_cpu_s", size as f64 / cpu / 1e9),
                ("cpu_cores_busy", cpu / secs),
            ],
        );
    }
    let (n, secs, cpu) = rt.block_on(handshakes(repeat(2000)))?;
    figure(
        "wire",
        "handshakes",
        &[
            ("connections", n as f64),
            ("per_s", n as f64 / secs),
            ("cpu_us_each", cpu / n as f64 * 1e6),
        ],
    );
    Ok(())
}

/// `n` connections opened one after another over loopback, each through
/// the whole handshake (`dial` against `accept`) and one message each way.
/// Returns `n`, the wall and the CPU (both ends) seconds.
async fn handshakes(n: usize) -> anyhow::Result<(usize, f64, f64)> {
    use std::time::Duration;

    use tessera_proto::{
        Role, Welcome,
        accept::{AcceptOptions, accept},
        dial::{DialOptions, dial},
        frame::FrameLimits,
        net::Tcp,
    };
    let key = ClusterKey::generate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let master_key = key.clone();
    let master = tokio::spawn(async move {
        let welcome = Welcome::new("bench", Duration::from_secs(1), Duration::from_secs(10));
        let options = AcceptOptions {
            timeout: Duration::from_secs(10),
            limits: FrameLimits::default(),
        };
        for _ in 0..n {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let (r, w) = socket.into_split();
            let (r, w) = (FrameReader::new(r, 1 << 20), FrameWriter::new(w, 1 << 20));
            let mut a = accept(r, w, &master_key, welcome.clone(), options, "bench").await?;
            let ping = a.reader.recv().await?;
            let Msg::Ping { seq } = ping.msg else {
                anyhow::bail!("unexpected {ping:?}")
            };
            a.writer.send(&Msg::Pong { seq }).await?;
        }
        anyhow::Ok(())
    });
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for seq in 0..n as u64 {
        let mut d = dial(
            &Tcp::default(),
            &addr,
            Role::Client,
            "bench",
            &key,
            DialOptions::default(),
        )
        .await?;
        d.writer.send(&Msg::Ping { seq }).await?;
        let pong = d.reader.recv().await?;
        anyhow::ensure!(pong.msg == Msg::Pong { seq }, "unexpected {pong:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    master.await??;
    Ok((n, secs, cpu))
}

/// Sends `data` as one chunked stream over loopback TCP and reassembles
/// it, in the clear or through the Noise record layer (keys from an
/// in-memory handshake). Returns the wall and CPU (both ends) seconds.
async fn stream(data: Bytes, encrypted: bool) -> anyhow::Result<(f64, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (send_keys, recv_keys) = keys();
    let sent = data.clone();
    let sender = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let io: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if encrypted {
            Box::new(SecureWrite::new(socket, send_keys))
        } else {
            Box::new(socket)
        };
        let mut w = FrameWriter::new(io, tessera_proto::DEFAULT_MAX_FRAME);
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
    let io: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if encrypted {
        Box::new(SecureRead::new(
            socket,
            recv_keys,
            "bench",
            Default::default(),
        ))
    } else {
        Box::new(socket)
    };
    let mut r = FrameReader::new(io, tessera_proto::DEFAULT_MAX_FRAME);
    let cpu0 = cpu_seconds();
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
    let cpu = cpu_seconds() - cpu0;
    sender.await??;
    anyhow::ensure!(got == data, "stream corrupted");
    Ok((secs, cpu))
}

/// Seconds to seal `data` into records in memory, and to open them again.
async fn records_in_memory(data: &Bytes) -> anyhow::Result<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (send_keys, recv_keys) = keys();
    // Pre-faulted buffers, so the figures are the record layer, not page faults.
    let mut sink = vec![1u8; data.len() + data.len() / 64];
    sink.clear();
    let mut w = SecureWrite::new(sink, send_keys);
    let start = Instant::now();
    w.write_all(data).await?;
    w.flush().await?;
    let seal = start.elapsed().as_secs_f64();
    let sealed = std::mem::take(w.get_mut());
    let mut r = SecureRead::new(&sealed[..], recv_keys, "bench", Default::default());
    let mut opened = vec![1u8; data.len()];
    let start = Instant::now();
    r.read_exact(&mut opened).await?;
    let open = start.elapsed().as_secs_f64();
    anyhow::ensure!(opened[..] == data[..], "records corrupted");
    Ok((seal, open))
}

/// Both directions' keys of one connection (the dialer's, the master's).
fn keys() -> (Keys, Keys) {
    let (i, r) = noise::handshake_in_memory(&ClusterKey::generate(), b"bench")
        .expect("a handshake under one key");
    (Arc::new(i), Arc::new(r))
}
