//! The Noise handshake end to end over real sockets: the master's side
//! (`accept`) against the peer's (`dial`), with matching and differing
//! keys, and peers and masters that cheat.

use std::time::Duration;

use bytes::Bytes;
use tessera_proto::{
    ClusterKey, FrameLimits, FrameReader, FrameWriter, Hello, HelloReply, Msg, ProtoError, Refusal,
    Role,
    accept::{AcceptError, AcceptOptions, Accepted, accept},
    dial::{DialError, DialOptions, dial},
    net::Tcp,
    noise, wire,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

mod common;
use common::welcome;

fn options(timeout: Duration) -> AcceptOptions {
    AcceptOptions {
        timeout,
        limits: FrameLimits::default(),
    }
}

type Raw = (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
);
type Master = Accepted<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>;

/// A master on 127.0.0.1:0 that runs `accept` once with `key` and returns its result.
async fn one_master(
    key: ClusterKey,
    timeout: Duration,
) -> (String, tokio::task::JoinHandle<Result<Master, AcceptError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (reader, writer) = accept_one(&listener).await;
        accept(reader, writer, &key, welcome(), options(timeout), "peer").await
    });
    (addr, task)
}

const T: Duration = Duration::from_secs(10);

/// A `Hello` frame of `role` and the Noise handshake begun after it with
/// `key`: the state, and the first message to send.
fn begin(key: &ClusterKey, role: Role) -> (Vec<u8>, snow::HandshakeState, Vec<u8>) {
    let hello = wire::encode(&Hello::new(role, "c")).unwrap();
    let mut noise = noise::initiator(key, &hello);
    let mut first = vec![0; noise::FIRST_MESSAGE_LEN];
    noise.write_message(&[], &mut first).unwrap();
    (hello, noise, first)
}

async fn dial_with(
    addr: &str,
    role: Role,
    key: &ClusterKey,
) -> Result<tessera_proto::dial::Dialed, DialError> {
    dial(
        &Tcp::default(),
        addr,
        role,
        "w1",
        key,
        DialOptions::default(),
    )
    .await
}

/// Welcomed, and frames (a control message and a stream of 200 KiB that
/// spans several records) cross both ways.
#[tokio::test]
async fn the_same_key_on_both_sides_is_welcomed_and_frames_cross_encrypted() {
    let key = ClusterKey::generate();
    let (addr, master) = one_master(key.clone(), T).await;
    let mut dialed = dial_with(&addr, Role::Worker, &key).await.unwrap();
    assert_eq!(dialed.welcome, welcome());
    let mut m = master.await.unwrap().unwrap();
    assert_eq!(
        (m.hello.role, m.hello.node_id.as_str()),
        (Role::Worker, "w1")
    );
    let data: Bytes = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    dialed.writer.send(&Msg::Ping { seq: 7 }).await.unwrap();
    dialed.writer.send_stream(3, &data).await.unwrap();
    assert_eq!(m.reader.recv().await.unwrap().msg, Msg::Ping { seq: 7 });
    let mut got = Vec::new();
    while got.len() < data.len() {
        let chunk = m.reader.recv().await.unwrap();
        assert_eq!(chunk.msg, Msg::Chunk { stream: 3 });
        got.extend_from_slice(&chunk.payload);
    }
    assert_eq!(got, data);
    m.writer.send(&Msg::Pong { seq: 7 }).await.unwrap();
    assert_eq!(
        dialed.reader.recv().await.unwrap().msg,
        Msg::Pong { seq: 7 }
    );
}

#[tokio::test]
async fn different_keys_fail_on_both_sides_with_errors_that_name_the_key() {
    let (addr, master) = one_master(ClusterKey::generate(), T).await;
    let ours = ClusterKey::generate();
    let err = dial_with(&addr, Role::Client, &ours).await.unwrap_err();
    assert!(
        matches!(err, DialError::Unauthenticated { .. }) && err.is_wrong_key(),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{addr} did not prove it holds this cluster's key (our key's fingerprint is {}): it is a master of another cluster or not a tessera master, or the key file is not a copy of the master's cluster.key",
            ours.fingerprint()
        )
    );
    let err = master.await.unwrap().unwrap_err();
    assert!(
        matches!(err, AcceptError::Refused(Refusal::Unauthorized)),
        "{err:?}"
    );
    assert!(err.is_wrong_key());
}

/// The `Hello` is the handshake's prologue: a peer (or a man in the middle)
/// that changes it after the Noise message was made is refused.
#[tokio::test]
async fn a_hello_changed_after_the_noise_message_was_made_is_refused() {
    let key = ClusterKey::generate();
    let (addr, master) = one_master(key.clone(), T).await;
    let (mut r, mut w) = connect(&addr).await;
    let (_, _, first) = begin(&key, Role::Client);
    // The role is changed in transit.
    w.send_hello(&Hello::new(Role::Worker, "c")).await.unwrap();
    w.send_raw(first).await.unwrap();
    assert_eq!(
        r.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(Refusal::Unauthorized)
    );
    assert!(matches!(r.next_frame().await, Err(ProtoError::Closed)));
    assert!(master.await.unwrap().unwrap_err().is_wrong_key());
}

/// A first message captured from another connection and replayed is
/// answered (the master cannot tell), but the replayer cannot make the
/// confirmation record: the handshake fails, as tampering when it sends
/// anything and by the deadline when it sends nothing. Never accepted.
#[tokio::test]
async fn a_replayed_handshake_is_never_accepted() {
    let key = ClusterKey::generate();
    let (hello, _, first) = begin(&key, Role::Worker);
    for made_up_record in [true, false] {
        let (addr, master) = one_master(key.clone(), Duration::from_millis(500)).await;
        let (mut r, mut w) = connect(&addr).await;
        w.send_raw(hello.clone()).await.unwrap();
        w.send_raw(first.clone()).await.unwrap();
        assert!(matches!(
            r.recv_hello_reply(T).await.unwrap(),
            HelloReply::Accept(_)
        ));
        if made_up_record {
            let raw = w.get_mut();
            raw.write_all(&[0, 40]).await.unwrap();
            raw.write_all(&[0x5a; 40]).await.unwrap();
        }
        let err = master.await.unwrap().unwrap_err();
        if made_up_record {
            assert!(
                matches!(err, AcceptError::Proto(ProtoError::Tampered(_))),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(
                    err,
                    AcceptError::Refused(Refusal::Timeout { after_ms: 500 })
                ),
                "{err:?}"
            );
        }
    }
}

/// A peer that completes the Noise handshake but sends something else
/// than the confirmation first is not accepted.
#[tokio::test]
async fn a_first_record_that_is_not_the_confirmation_is_refused() {
    let key = ClusterKey::generate();
    let (addr, master) = one_master(key.clone(), T).await;
    let (mut r, mut w) = connect(&addr).await;
    let (hello, mut noise, first) = begin(&key, Role::Client);
    w.send_raw(hello).await.unwrap();
    w.send_raw(first).await.unwrap();
    let HelloReply::Accept(answer) = r.recv_hello_reply(T).await.unwrap() else {
        panic!("expected Accept")
    };
    noise.read_message(&answer, &mut [0u8; 512]).unwrap();
    let keys = std::sync::Arc::new(noise::transport(noise).unwrap());
    let mut secure = FrameWriter::new(
        tessera_proto::secure::SecureWrite::new(w.into_inner(), keys),
        1 << 20,
    );
    secure.send(&Msg::Ping { seq: 1 }).await.unwrap();
    let err = master.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed handshake: expected the handshake confirmation as the first encrypted frame"
    );
}

/// The peer's first message must be exactly a Noise `-> psk, e`.
#[tokio::test]
async fn a_first_message_of_the_wrong_length_is_refused_as_malformed() {
    let (addr, master) = one_master(ClusterKey::generate(), T).await;
    let (mut r, mut w) = connect(&addr).await;
    w.send_hello(&Hello::new(Role::Client, "c")).await.unwrap();
    w.send_raw(vec![1; 10]).await.unwrap();
    let want = Refusal::Malformed(
        "expected the 48-byte Noise handshake message after the Hello, got 10 bytes".into(),
    );
    assert_eq!(
        r.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(want.clone())
    );
    let err = master.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, AcceptError::Refused(r) if *r == want),
        "{err:?}"
    );
}

/// A spoofed master (e.g. advertised over mDNS) that cannot decrypt our
/// message either refuses us or answers with bytes that do not decrypt:
/// both are typed wrong-key errors a caller can skip on.
#[tokio::test]
async fn a_spoofed_master_fails_the_dial_with_a_wrong_key_error() {
    for spoof in ["made-up answer", "refuses"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fake = tokio::spawn(async move {
            let (mut r, mut w) = accept_one(&listener).await;
            r.next_frame().await.unwrap();
            r.next_frame().await.unwrap();
            let reply = match spoof {
                "made-up answer" => HelloReply::Accept(vec![0x42; 80]),
                _ => HelloReply::Refused(Refusal::Unauthorized),
            };
            w.send_hello_reply(&reply).await.unwrap();
            // What the dialer sends next, if anything.
            r.next_frame().await.ok().map(|f| f.to_vec())
        });
        let err = dial_with(&addr, Role::Worker, &ClusterKey::generate())
            .await
            .unwrap_err();
        assert!(err.is_wrong_key(), "{spoof}: {err:?}");
        assert!(matches!(err, DialError::Unauthenticated { .. }), "{err:?}");
        assert_eq!(fake.await.unwrap(), None, "the dialer left without a word");
    }
}

#[tokio::test(start_paused = true)]
async fn a_handshake_not_finished_in_time_is_refused_with_timeout() {
    let (peer, master_end) = tokio::io::duplex(4096);
    let (mr, mw) = tokio::io::split(master_end);
    let reader = FrameReader::new(mr, 1 << 20);
    let writer = FrameWriter::new(mw, 1 << 20);
    let (pr, mut pw) = tokio::io::split(peer);
    // Half a frame, then silence.
    pw.write_all(&[0, 0, 0, 40, b'T']).await.unwrap();
    let err = accept(
        reader,
        writer,
        &ClusterKey::generate(),
        welcome(),
        options(Duration::from_secs(3)),
        "peer",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            AcceptError::Refused(Refusal::Timeout { after_ms: 3000 })
        ),
        "{err:?}"
    );
    let mut pr = FrameReader::new(pr, 1 << 20);
    assert_eq!(
        pr.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(Refusal::Timeout { after_ms: 3000 })
    );
    assert_eq!(
        Refusal::Timeout { after_ms: 3000 }.to_string(),
        "the handshake was not completed within 3000 ms"
    );
}

#[tokio::test]
async fn a_handshake_frame_over_1_kib_is_refused_from_its_prefix() {
    let (peer, master_end) = tokio::io::duplex(4096);
    let (mr, mw) = tokio::io::split(master_end);
    // The master's reader starts with big limits: accept must tighten them.
    let reader = FrameReader::new(mr, 1 << 20);
    let writer = FrameWriter::new(mw, 1 << 20);
    let (pr, mut pw) = tokio::io::split(peer);
    pw.write_all(&1025u32.to_be_bytes()).await.unwrap();
    let err = accept(
        reader,
        writer,
        &ClusterKey::generate(),
        welcome(),
        options(T),
        "peer",
    )
    .await
    .unwrap_err();
    let want =
        Refusal::Malformed("handshake frame of 1025 bytes is over the 1024-byte limit".into());
    assert!(
        matches!(&err, AcceptError::Refused(r) if *r == want),
        "{err:?}"
    );
    let mut pr = FrameReader::new(pr, 1 << 20);
    assert_eq!(
        pr.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(want)
    );
}

fn frames(socket: TcpStream) -> Raw {
    let (r, w) = socket.into_split();
    (FrameReader::new(r, 1 << 20), FrameWriter::new(w, 1 << 20))
}

async fn connect(addr: &str) -> Raw {
    frames(TcpStream::connect(addr).await.unwrap())
}

async fn accept_one(listener: &TcpListener) -> Raw {
    frames(listener.accept().await.unwrap().0)
}
