//! A raw connection to the master, driven byte by byte: writing bytes and
//! frames, the handshake's first steps, and the refusals, errors and
//! service every test expects.

use tessera_client::ErrorCode;
use tessera_proto::{ClusterKey, Hello, HelloReply, Msg, Refusal, Role, TaskId, noise, wire};
use tessera_tests::inproc::{Cluster, Raw, until_closed};
use tokio::io::AsyncWriteExt;

use crate::T;

/// Writes raw bytes (anything, framed or not) on the connection.
pub(crate) async fn send_raw(w: &mut Raw, bytes: &[u8]) {
    let stream = w.1.get_mut();
    stream.write_all(bytes).await.unwrap();
    // After the handshake the stream seals what it was given on a flush.
    stream.flush().await.unwrap();
}

/// A frame of `body` with its length prefix.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Expects the master's handshake reply `want`, then the connection closed.
pub(crate) async fn expect_refused_and_closed(conn: &mut Raw, want: Refusal) {
    assert_eq!(
        conn.0.recv_hello_reply(T).await.unwrap(),
        HelloReply::Refused(want)
    );
    assert_eq!(
        until_closed(&mut conn.0, T).await,
        0,
        "nothing after a refusal"
    );
}

/// Expects the next message to be `Error{req, code, message}`.
pub(crate) async fn expect_error(conn: &mut Raw, req: Option<u64>, code: ErrorCode, message: &str) {
    let got = conn.0.recv_within(T).await.unwrap().msg;
    let want = Msg::Error {
        req,
        code,
        message: message.into(),
    };
    assert_eq!(got, want);
}

/// The connection is still served: a status request is answered.
pub(crate) async fn expect_still_served(conn: &mut Raw) {
    conn.1
        .send(&Msg::Status {
            req: 99,
            task: TaskId(424242),
        })
        .await
        .unwrap();
    expect_error(
        conn,
        Some(99),
        ErrorCode::NotFound,
        "no task 424242 on this master; check the id (as `tessera submit` printed it) and that this is the master it was submitted to",
    )
    .await;
}

/// A `Hello` sent: the master waits for the peer's Noise message.
pub(crate) async fn hello_sent(c: &Cluster) -> (Raw, Vec<u8>) {
    let mut conn = c.tcp().await;
    let hello = wire::encode(&Hello::new(Role::Client, "hostile")).unwrap();
    conn.1.send_raw(hello.clone()).await.unwrap();
    (conn, hello)
}

/// The Noise message that follows `hello`, made with `key`.
pub(crate) fn first_message(key: &ClusterKey, hello: &[u8]) -> Vec<u8> {
    let mut first = vec![0; noise::FIRST_MESSAGE_LEN];
    noise::initiator(key, hello)
        .write_message(&[], &mut first)
        .unwrap();
    first
}
