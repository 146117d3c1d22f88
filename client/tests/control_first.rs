//! A client's requests never wait behind its uploads: with a large
//! submission being sent to a master that reads slowly, a request made
//! meanwhile (a `Status` here; a `Fetch`, `Wait` or `Ping` goes the same
//! way) reaches the master between the submission's chunks, not after them.
//! Before, a `Fetch` queued behind every upload in flight (16 of 4 MiB on a
//! gigabit link: half a second), which stalled results on a LAN.
//!
//! A fake master on real loopback TCP: the master's side of the
//! authenticated handshake (`tessera_proto::accept`), a small receive
//! buffer, and a reader the test drives by hand.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, ClientConfig};
use tessera_proto::{
    ClusterKey, FrameReader, FrameWriter, MAX_CHUNK, Msg, TaskId, Welcome,
    accept::{AcceptOptions, accept},
    frame::FrameLimits,
};
use tokio::net::TcpSocket;

const DEADLINE: Duration = Duration::from_secs(10);
/// Far more than the socket buffers between the two ends can hold (a few
/// MiB on loopback), so the client's writer is still inside the first
/// upload when the request is made.
const UPLOAD_BYTES: usize = 24 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_between_the_chunks_of_an_upload_in_progress() {
    let key = ClusterKey::from_bytes([5; 32]);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4).unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    let connecting = tokio::spawn({
        let key = key.clone();
        async move { Client::connect_with(&addr, &key, ClientConfig::default()).await }
    });
    let (socket, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("the client connects")
        .unwrap();
    let (read, write) = socket.into_split();
    let max = tessera_proto::DEFAULT_MAX_FRAME;
    let options = AcceptOptions {
        timeout: DEADLINE,
        limits: FrameLimits {
            max_frame: max,
            max_control: tessera_proto::DEFAULT_MAX_CONTROL_FRAME,
        },
    };
    let welcome = Welcome::new(
        "slow-master",
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let accepted = accept(
        FrameReader::new(read, max),
        FrameWriter::new(write, max),
        &key,
        welcome,
        options,
        "client",
    )
    .await
    .unwrap();
    let (mut reader, _writer) = (accepted.reader, accepted.writer);
    let client = Arc::new(connecting.await.unwrap().unwrap());

    // Two uploads: the master answers neither, so they stay in flight.
    let mut submits = Vec::new();
    for i in 0..2u8 {
        let client = client.clone();
        submits.push(tokio::spawn(async move {
            let _ = client
                .submit(&format!("big-{i}.png"), Bytes::from(vec![i; UPLOAD_BYTES]))
                .await;
        }));
    }
    // The first upload has begun: its header is here, and the master reads
    // nothing more until the request is made.
    let first = reader.recv_within(DEADLINE).await.unwrap();
    let Msg::Submit { req: first_req, .. } = first.msg else {
        panic!("expected a Submit first, got {:?}", first.msg);
    };
    let status = tokio::spawn({
        let client = client.clone();
        async move { client.status(TaskId(424_242)).await }
    });

    // Now read on: the Status must come before the first upload's last
    // chunk (before the fix it came after both uploads).
    let mut first_upload_bytes = 0usize;
    let mut other_upload_started = false;
    loop {
        let incoming = reader.recv_within(DEADLINE).await.unwrap();
        match incoming.msg {
            Msg::Status { task, .. } => {
                assert_eq!(task, TaskId(424_242));
                break;
            }
            Msg::Chunk { stream } if stream == first_req => {
                first_upload_bytes += incoming.payload.len();
            }
            Msg::Chunk { .. } | Msg::Submit { .. } => other_upload_started = true,
            // The client's keepalive, while its calls wait.
            Msg::Ping { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        first_upload_bytes < UPLOAD_BYTES && !other_upload_started,
        "the request waited behind uploads: {first_upload_bytes} of the first upload's \
         {UPLOAD_BYTES} bytes (chunks of at most {MAX_CHUNK}) had arrived before it, \
         other upload started: {other_upload_started}"
    );
    status.abort();
    for s in submits {
        s.abort();
    }
}
