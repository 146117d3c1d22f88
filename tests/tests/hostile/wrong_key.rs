//! The wrong cluster key: refused on both sides, and an address that keeps
//! failing is answered ever later.

use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_node::worker::{self, WorkerConfig};
use tessera_proto::{ClusterKey, HelloReply, Refusal};
use tessera_tests::inproc::Cluster;
use tokio_util::sync::CancellationToken;

use crate::{
    T,
    raw::{expect_refused_and_closed, first_message, hello_sent},
};

#[tokio::test]
async fn the_wrong_key_fails_on_both_sides_and_repeated_failures_are_slowed_down() {
    let c = Cluster::start(1).await;
    let other = ClusterKey::generate();
    // A client: the master cannot prove it holds the client's key.
    let err = Client::connect(&c.addr, &other).await.unwrap_err();
    assert!(err.is_wrong_key(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} did not prove it holds this cluster's key (our key's fingerprint is {}): it is a master of another cluster or not a tessera master, or --key-file / TESSERA_KEY_FILE is not a copy of the master's cluster.key",
            c.addr,
            other.fingerprint()
        )
    );
    // A worker gives up at once: retrying cannot fix a key.
    let mut wc = WorkerConfig::new(c.addr.clone(), other.clone());
    wc.threads = 1;
    let err = tokio::time::timeout(T, worker::run(wc, CancellationToken::new()))
        .await
        .expect("the worker stops by itself")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("did not prove it holds this cluster's key")
    );
    // A raw peer with the other key: refused by name.
    let (mut conn, hello) = hello_sent(&c).await;
    conn.1
        .send_raw(first_message(&other, &hello))
        .await
        .unwrap();
    expect_refused_and_closed(&mut conn, Refusal::Unauthorized).await;
    // Three failures so far are free; each further one doubles the delay
    // before this address is answered (100 ms, 200 ms, ...).
    for _ in 0..2 {
        let _ = Client::connect(&c.addr, &other).await.unwrap_err();
    }
    let started = Instant::now();
    let (mut conn, hello) = hello_sent(&c).await;
    conn.1
        .send_raw(first_message(&c.key, &hello))
        .await
        .unwrap();
    let reply = conn.0.recv_hello_reply(T).await.unwrap();
    assert!(matches!(reply, HelloReply::Accept(_)), "{reply:?}");
    let waited = started.elapsed();
    // At least four failures are recorded by now (the last may still be in
    // flight on the master's side).
    assert!(
        waited >= Duration::from_millis(100),
        "answered after {waited:?}"
    );
    // The right key still gets in (after its delay), and is served.
    c.assert_serving(true).await;
}
