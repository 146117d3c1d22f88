//! The authenticated handshake end to end over real sockets: the master's
//! side (`accept`) against the peer's (`dial`), with matching and differing
//! keys, and peers and masters that cheat.

use std::time::Duration;

use tessera_proto::{
    Answer, Challenge, ClusterKey, FrameLimits, FrameReader, FrameWriter, Hello, HelloReply,
    ProtoError, Refusal, Role,
    accept::{AcceptError, AcceptOptions, accept},
    auth,
    dial::{DialError, DialOptions, dial},
    net::Tcp,
    wire,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
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

/// A master on 127.0.0.1:0 that runs `accept` once with `key` and returns its result.
async fn one_master(
    key: ClusterKey,
    timeout: Duration,
) -> (String, tokio::task::JoinHandle<Result<Hello, AcceptError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut reader, mut writer) = accept_one(&listener).await;
        accept(&mut reader, &mut writer, &key, welcome(), options(timeout)).await
    });
    (addr, task)
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_same_key_on_both_sides_is_welcomed() {
    let key = ClusterKey::generate();
    let (addr, master) = one_master(key.clone(), T).await;
    let dialed = dial(
        &Tcp::default(),
        &addr,
        Role::Worker,
        "w1",
        &key,
        DialOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(dialed.welcome, welcome());
    let hello = master.await.unwrap().unwrap();
    assert_eq!((hello.role, hello.node_id.as_str()), (Role::Worker, "w1"));
}

#[tokio::test]
async fn different_keys_fail_on_both_sides_with_errors_that_name_the_key() {
    let (addr, master) = one_master(ClusterKey::generate(), T).await;
    let ours = ClusterKey::generate();
    let err = dial(
        &Tcp::default(),
        &addr,
        Role::Client,
        "c",
        &ours,
        DialOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_wrong_key(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{addr} did not prove it holds this cluster's key (our key's fingerprint is {}): it is a master of another cluster or not a tessera master, or the key file is not a copy of the master's cluster.key",
            ours.fingerprint()
        )
    );
    // The peer checked the master first and said so before leaving.
    let err = master.await.unwrap().unwrap_err();
    assert!(matches!(err, AcceptError::PeerHasOtherKey), "{err:?}");
    assert!(err.is_wrong_key());
    assert_eq!(
        err.to_string(),
        "the peer holds a different cluster key (it could not verify the master's proof); give it a copy of this master's cluster.key"
    );
}

/// A peer that skips the check of the master's proof and answers with a
/// proof made with another key is refused by name.
#[tokio::test]
async fn a_peer_proof_under_another_key_is_refused_unauthorized() {
    let (addr, master) = one_master(ClusterKey::generate(), T).await;
    let (mut r, mut w) = connect(&addr).await;
    let hello = Hello::new(Role::Client, "intruder");
    w.send_hello(&hello).await.unwrap();
    let HelloReply::Challenge(c) = r.recv_hello_reply(T).await.unwrap() else {
        panic!("expected a challenge")
    };
    let proof = auth::peer_proof(
        &ClusterKey::generate(),
        Role::Client,
        &c.nonce,
        &hello.nonce,
    );
    w.send_answer(&Answer::Proof(proof)).await.unwrap();
    assert_eq!(
        r.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(Refusal::Unauthorized)
    );
    assert!(matches!(r.next_frame().await, Err(ProtoError::Closed)));
    let err = master.await.unwrap().unwrap_err();
    assert!(matches!(err, AcceptError::Refused(Refusal::Unauthorized)));
    assert_eq!(
        Refusal::Unauthorized.to_string(),
        "wrong cluster key: this peer could not prove it holds the master's cluster key; copy the master's cluster.key (in its data directory) and pass --key-file PATH or set TESSERA_KEY_FILE=PATH"
    );
}

/// Replaying the master's own proof, or a proof for another role, fails.
#[tokio::test]
async fn reflected_and_cross_role_proofs_are_refused() {
    let key = ClusterKey::generate();
    for cheat in 0..2 {
        let (addr, master) = one_master(key.clone(), T).await;
        let (mut r, mut w) = connect(&addr).await;
        let hello = Hello::new(Role::Worker, "w");
        w.send_hello(&hello).await.unwrap();
        let HelloReply::Challenge(c) = r.recv_hello_reply(T).await.unwrap() else {
            panic!("expected a challenge")
        };
        let proof = match cheat {
            0 => c.proof,
            _ => auth::peer_proof(&key, Role::Client, &c.nonce, &hello.nonce),
        };
        w.send_answer(&Answer::Proof(proof)).await.unwrap();
        assert_eq!(
            r.recv_hello_reply(T).await.unwrap(),
            HelloReply::Refused(Refusal::Unauthorized)
        );
        assert!(master.await.unwrap().unwrap_err().is_wrong_key());
    }
}

/// A spoofed master (e.g. advertised over mDNS) that cannot prove the key
/// is refused by `dial` with a typed error a caller can skip on.
#[tokio::test]
async fn a_spoofed_master_fails_the_dial_with_a_wrong_key_error() {
    for spoof in ["welcome at once", "random proof"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fake = tokio::spawn(async move {
            let (mut r, mut w) = accept_one(&listener).await;
            r.next_frame().await.unwrap();
            let reply = match spoof {
                "welcome at once" => HelloReply::Welcome(welcome()),
                _ => HelloReply::Challenge(Challenge {
                    nonce: auth::nonce(),
                    proof: auth::nonce(),
                }),
            };
            w.send_hello_reply(&reply).await.unwrap();
            // What the dialer sends next, if anything.
            r.next_frame().await.ok().map(|f| f.to_vec())
        });
        let err = dial(
            &Tcp::default(),
            &addr,
            Role::Worker,
            "w",
            &ClusterKey::generate(),
            DialOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, DialError::Unauthenticated { .. }) && err.is_wrong_key(),
            "{spoof}: {err:?}"
        );
        let next = fake.await.unwrap();
        if spoof == "random proof" {
            let answer: Answer = wire::decode_exact(&next.unwrap()).unwrap();
            assert_eq!(answer, Answer::MasterUnverified, "no proof for a spoof");
        } else {
            assert_eq!(next, None, "the dialer left without a word");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_handshake_not_finished_in_time_is_refused_with_timeout() {
    let (peer, master_end) = tokio::io::duplex(4096);
    let (mr, mw) = tokio::io::split(master_end);
    let mut reader = FrameReader::new(mr, 1 << 20);
    let mut writer = FrameWriter::new(mw, 1 << 20);
    let (pr, mut pw) = tokio::io::split(peer);
    // Half a frame, then silence.
    pw.write_all(&[0, 0, 0, 40, b'T']).await.unwrap();
    let err = accept(
        &mut reader,
        &mut writer,
        &ClusterKey::generate(),
        welcome(),
        options(Duration::from_secs(3)),
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
    let mut reader = FrameReader::new(mr, 1 << 20);
    let mut writer = FrameWriter::new(mw, 1 << 20);
    let (pr, mut pw) = tokio::io::split(peer);
    pw.write_all(&1025u32.to_be_bytes()).await.unwrap();
    let err = run_accept(&mut reader, &mut writer).await.unwrap_err();
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

async fn run_accept<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<Hello, AcceptError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    accept(
        reader,
        writer,
        &ClusterKey::generate(),
        welcome(),
        options(T),
    )
    .await
}

type Frames = (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
);

fn frames(socket: TcpStream) -> Frames {
    let (r, w) = socket.into_split();
    (FrameReader::new(r, 1 << 20), FrameWriter::new(w, 1 << 20))
}

async fn connect(addr: &str) -> Frames {
    frames(TcpStream::connect(addr).await.unwrap())
}

async fn accept_one(listener: &TcpListener) -> Frames {
    frames(listener.accept().await.unwrap().0)
}
