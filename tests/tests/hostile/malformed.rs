//! Malformed frames and valid frames at the wrong time, before and after
//! the handshake: garbage, huge length prefixes and vector claims, unknown
//! message types, messages out of order or from the wrong role.

use bytes::Bytes;
use tessera_client::ErrorCode;
use tessera_proto::{Hello, Msg, Refusal, Role, TaskId, wire};
use tessera_tests::inproc::{Cluster, until_closed};

use crate::{
    T,
    raw::{
        expect_error, expect_refused_and_closed, expect_still_served, first_message, framed,
        hello_sent, send_raw,
    },
};

#[tokio::test]
async fn garbage_bytes_instead_of_a_handshake_are_refused_and_closed() {
    let c = Cluster::start(1).await;
    // A well-formed frame whose body is not a Hello.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n").await;
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // Unframed garbage: its first four bytes ("GET ") read as a length of 1.1 GB.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let want = "handshake frame of 1195725856 bytes is over the 1024-byte limit";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_from_the_prefix_alone() {
    let c = Cluster::start(1).await;
    // Before the handshake: refused by name, closed.
    let mut conn = c.tcp().await;
    send_raw(&mut conn, &[0xff; 4]).await;
    let want = "handshake frame of 4294967295 bytes is over the 1024-byte limit";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    // After it, from a client or a worker: the stream cannot be trusted any
    // more, so the connection is closed (with nothing sent).
    for role in [Role::Client, Role::Worker] {
        let mut conn = c.authed(role).await;
        send_raw(&mut conn, &[0xff; 4]).await;
        assert_eq!(until_closed(&mut conn.0, T).await, 0, "{role}");
    }
    // A control message over its own limit (64 KiB) is refused from its
    // prefix and type byte alone, though a chunk that long would be fine.
    let mut conn = c.authed(Role::Client).await;
    let mut prefix = (100_000u32).to_be_bytes().to_vec();
    prefix.push(0); // Submit
    send_raw(&mut conn, &prefix).await;
    assert_eq!(until_closed(&mut conn.0, T).await, 0);
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_tiny_frame_claiming_a_64_gib_vector_is_refused_without_allocating() {
    let c = Cluster::start(1).await;
    let claim = (64u64 << 30).to_le_bytes();
    // After the handshake: Submit{req 1, name of 64 GiB}: a typed error,
    // and the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    let mut body = vec![0x00, 0x01, 0xfd];
    body.extend_from_slice(&claim);
    send_raw(&mut conn, &framed(&body)).await;
    let message = "message claims more than the 65536-byte header limit";
    expect_error(&mut conn, None, ErrorCode::Malformed, message).await;
    // From a worker, a Heartbeat claiming 64 Gi leases (the decoder reads
    // elements one by one, without reserving, and finds the frame's end).
    let mut worker = c.authed(Role::Worker).await;
    let mut body = vec![0x0e, 0xfd];
    body.extend_from_slice(&claim);
    send_raw(&mut worker, &framed(&body)).await;
    let truncated = "message is truncated";
    expect_error(&mut worker, None, ErrorCode::Malformed, truncated).await;
    expect_still_served(&mut conn).await;
    // In a Hello's node id: refused, closed.
    let mut conn = c.tcp().await;
    let mut body = b"TSRA".to_vec();
    body.extend_from_slice(&[tessera_proto::PROTOCOL_VERSION as u8, 0, 0xfd]);
    body.extend_from_slice(&claim);
    send_raw(&mut conn, &framed(&body)).await;
    let want = format!("malformed handshake: {message}");
    let refusal = Refusal::Malformed(message.into());
    assert_eq!(refusal.to_string(), want);
    expect_refused_and_closed(&mut conn, refusal).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn an_unknown_message_type_gets_a_typed_error() {
    let c = Cluster::start(1).await;
    // After the handshake: answered, the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    send_raw(&mut conn, &framed(&[0x7f])).await;
    let message = "unknown message type (variant 127)";
    expect_error(&mut conn, None, ErrorCode::UnknownMessage, message).await;
    expect_still_served(&mut conn).await;
    // In place of the Noise message: refused, closed.
    let (mut conn, _) = hello_sent(&c).await;
    send_raw(&mut conn, &framed(&[0x7f])).await;
    let want = "expected the 48-byte Noise handshake message after the Hello, got 1 bytes";
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want.into())).await;
    c.assert_serving(true).await;
}

#[tokio::test]
async fn a_valid_frame_at_the_wrong_time_is_refused() {
    let c = Cluster::start(1).await;
    // A message before the handshake: not a tessera Hello.
    let mut conn = c.tcp().await;
    let status = wire::encode(&Msg::Status {
        req: 1,
        task: TaskId(1),
    })
    .unwrap();
    send_raw(&mut conn, &framed(&status)).await;
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // A Noise message before the Hello.
    let mut conn = c.tcp().await;
    let first = first_message(&c.key, b"no hello");
    conn.1.send_raw(first).await.unwrap();
    expect_refused_and_closed(&mut conn, Refusal::BadMagic).await;
    // A second Hello instead of the Noise message.
    let (mut conn, hello_frame) = hello_sent(&c).await;
    conn.1.send_raw(hello_frame.clone()).await.unwrap();
    let want = format!(
        "expected the 48-byte Noise handshake message after the Hello, got {} bytes",
        hello_frame.len()
    );
    expect_refused_and_closed(&mut conn, Refusal::Malformed(want)).await;
    let hello = Hello::new(Role::Client, "hostile");

    // After the handshake, each answered with a typed error; the connection goes on.
    let mut conn = c.authed(Role::Client).await;
    conn.1.send(&Msg::Ready { credits: 5 }).await.unwrap();
    let message = "Ready is not a message a client may send";
    expect_error(&mut conn, None, ErrorCode::UnexpectedMessage, message).await;
    conn.1.send_hello(&hello).await.unwrap();
    let message = "unknown message type (variant 84)";
    expect_error(&mut conn, None, ErrorCode::UnknownMessage, message).await;
    conn.1
        .feed_chunk(77, Bytes::from_static(b"xx"))
        .await
        .unwrap();
    conn.1.flush().await.unwrap();
    let message = "chunk for stream 77, which has no submission in progress";
    expect_error(&mut conn, Some(77), ErrorCode::UnexpectedMessage, message).await;
    conn.1
        .send(&Msg::Submit {
            req: 1,
            name: "a".into(),
            len: 2,
            checksum: 0,
            key: 0,
            submitter: 0,
        })
        .await
        .unwrap();
    conn.1
        .feed_chunk(1, Bytes::from_static(b"xyz"))
        .await
        .unwrap();
    conn.1.flush().await.unwrap();
    let message = "stream overrun: 3 bytes received, 2 announced";
    expect_error(&mut conn, Some(1), ErrorCode::Malformed, message).await;
    expect_still_served(&mut conn).await;
    // A worker sending a client's request.
    let mut worker = c.authed(Role::Worker).await;
    worker
        .1
        .send(&Msg::Submit {
            req: 1,
            name: "a".into(),
            len: 0,
            checksum: 0,
            key: 0,
            submitter: 0,
        })
        .await
        .unwrap();
    let message = "Submit is not a message a worker may send";
    expect_error(&mut worker, None, ErrorCode::UnexpectedMessage, message).await;
    c.assert_serving(true).await;
}
