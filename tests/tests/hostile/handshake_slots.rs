//! Peers that hold on to handshake slots: a slowloris, 2,000 idle
//! connections from one address, an address that owes a failure delay.

use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_proto::net::WriteHalf;
use tessera_proto::{Hello, HelloReply, Refusal, Role, wire};
use tessera_tests::inproc::{Cluster, until_closed};
use tokio::io::AsyncWriteExt;

use crate::{
    T,
    raw::{expect_refused_and_closed, first_message, framed, hello_sent, send_raw},
};

/// Slowloris: a peer that trickles one byte a second is cut off by the
/// handshake deadline, whether it trickles its Hello or its proof.
#[tokio::test]
async fn a_slowloris_is_cut_off_by_the_handshake_deadline() {
    let deadline = Duration::from_millis(1500);
    let c = Cluster::start_with(1, |m| m.handshake_timeout = deadline, |_| {}).await;
    let hello = wire::encode(&Hello::new(Role::Client, "slow")).unwrap();
    let trickle = |bytes: Vec<u8>, mut w: tessera_proto::FrameWriter<WriteHalf>| {
        tokio::spawn(async move {
            for b in bytes {
                if w.get_mut().write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Trickling the Hello.
    let started = Instant::now();
    let (mut r1, w1) = c.tcp().await;
    let t1 = trickle(framed(&hello), w1);
    // Trickling the Noise message, after a prompt Hello.
    let ((mut r2, w2), hello_frame) = hello_sent(&c).await;
    let t2 = trickle(framed(&first_message(&c.key, &hello_frame)), w2);
    let after_ms = deadline.as_millis() as u32;
    for r in [&mut r1, &mut r2] {
        assert_eq!(
            r.recv_hello_reply(T).await.unwrap(),
            HelloReply::Refused(Refusal::Timeout { after_ms })
        );
        assert_eq!(until_closed(r, T).await, 0);
    }
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(5),
        "cut off after {took:?}"
    );
    t1.abort();
    t2.abort();
    c.assert_serving(true).await;
}

/// The idle connections of the test below.
const IDLE_CONNECTIONS: usize = 2000;

/// Raises this process's soft limit of open files (1,024 on many systems)
/// towards its hard limit, so it holds `IDLE_CONNECTIONS` connections at two
/// descriptors each (ours and the in-process master's) and room for the
/// other tests of this binary. Fails, never scales down, if the hard limit is
/// too low.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let want = (2 * IDLE_CONNECTIONS + 1024) as u64;
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= want,
        "this test opens {IDLE_CONNECTIONS} connections and needs {want} open files; \
         the hard limit is {hard} (raise it: ulimit -Hn {want})"
    );
    if limit.current.is_some_and(|soft| soft < want) {
        let raised = rustix::process::Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).expect("raise the soft limit of open files");
    }
}

/// 2,000 connections from one address that never say a word: past that
/// address's share of handshakes they are refused with Busy at once, the
/// rest are closed at the handshake deadline; meanwhile a client from
/// another address gets in (one address cannot take every handshake
/// slot), and the master serves normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_from_one_address_leave_room_for_others() {
    raise_fd_limit();
    let n = IDLE_CONNECTIONS;
    let pool = n / 2;
    let share = 100;
    let deadline = Duration::from_secs(3);
    let c = Cluster::start_with(
        1,
        |m| {
            m.max_unauthenticated = pool;
            m.max_unauthenticated_per_address = share;
            m.max_connections = n + 64;
            m.handshake_timeout = deadline;
            // These all count as failures of their address: keep the delay
            // it owes short.
            m.failure_delays.max = Duration::from_millis(100);
        },
        |_| {},
    )
    .await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let started = Instant::now();
    let mut replies = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (mut r, w) = c.tcp_from(attacker).await;
        replies.spawn(async move {
            let reply = r.recv_hello_reply(T).await;
            let at = started.elapsed();
            let skipped = until_closed(&mut r, T).await;
            drop(w);
            (reply.unwrap(), at, skipped)
        });
    }
    // While they hold their address's whole share, a client from another
    // address (127.0.0.1) is let in, before their deadline.
    let client = Client::connect(&c.addr, &c.key).await.unwrap();
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    drop(client);
    let (mut busy, mut timed_out) = (0, 0);
    while let Some(joined) = replies.join_next().await {
        let (reply, at, skipped) = joined.unwrap();
        assert_eq!(skipped, 0);
        match reply {
            HelloReply::Refused(Refusal::Busy { limit: l }) => {
                assert_eq!(l as usize, share);
                assert!(at < deadline, "Busy is answered at once, not after {at:?}");
                busy += 1;
            }
            HelloReply::Refused(Refusal::Timeout { after_ms }) => {
                assert_eq!(after_ms, 3000);
                assert!(at >= deadline, "timed out early, after {at:?}");
                timed_out += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((busy, timed_out), (n - share, share));
    c.assert_serving(true).await;
}

/// An address that owes a failure delay waits it out without a slot of the
/// shared handshake pool: with a pool of one, a client from another address
/// gets in while a delayed connection waits.
#[tokio::test]
async fn a_delayed_address_holds_no_handshake_slot_while_it_waits() {
    // No worker: nothing else handshakes meanwhile.
    let c = Cluster::start_with(
        0,
        |m| {
            m.max_unauthenticated = 1;
            m.failure_delays.free = 0;
            m.failure_delays.base = Duration::from_secs(20);
            m.failure_delays.max = Duration::from_secs(20);
        },
        |_| {},
    )
    .await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    // One failure: the attacker's address now owes 20 s per connection.
    let mut failed = c.tcp_from(attacker).await;
    send_raw(&mut failed, b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n").await;
    expect_refused_and_closed(&mut failed, Refusal::BadMagic).await;
    // Its next connection waits out the delay...
    let (mut waiting, _w) = c.tcp_from(attacker).await;
    // ... and a client from 127.0.0.1 is let in meanwhile, not refused Busy.
    let began = Instant::now();
    let client = Client::connect(&c.addr, &c.key).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    drop(client);
    // The delayed connection has still not been answered.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), waiting.recv_hello_reply(T))
            .await
            .is_err()
    );
}
