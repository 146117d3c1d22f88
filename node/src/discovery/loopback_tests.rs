//! Real mDNS on this machine's loopback interface: registration, browse,
//! duplicate detection and withdrawal, with the daemons kept off every other
//! interface. (The LAN case, across network namespaces, is in
//! `tests/tests/lan.rs`.)

use std::time::Duration;

use mdns_sd::IfKind;
use tokio::net::TcpListener;

use super::{
    Advertisement, Discovery, DiscoveryError, How, MdnsDiscovery,
    browse::BrowseOptions,
    find::{FindParams, Table},
    probe::{KeyProbe, TcpProbe},
};

fn loopback() -> BrowseOptions {
    BrowseOptions {
        interfaces: Some(vec![IfKind::LoopbackV4]),
        ..BrowseOptions::default()
    }
}

/// Bare listeners stand for masters here: a TCP connect is the check.
fn on_loopback(cluster: &str) -> MdnsDiscovery<TcpProbe> {
    MdnsDiscovery::with_options(FindParams::new(cluster), loopback(), TcpProbe::default()).unwrap()
}

async fn master(cluster: &str, id: &str) -> (TcpListener, Advertisement) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let advert = Advertisement::start(cluster, id, addr).unwrap();
    (listener, advert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_on_loopback_is_found_then_a_second_is_named_and_a_stopped_one_forgotten() {
    let pid = std::process::id();
    let cluster = format!("loopback-{pid}");
    let (first_listener, first) = master(&cluster, &format!("master-lo-{pid}-a")).await;
    let discovery = on_loopback(&cluster);
    let found = discovery.find(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        found.addrs[0],
        first_listener.local_addr().unwrap().to_string()
    );
    assert!(
        matches!(found.how, How::Mdns { ref id, .. } if id == first.fullname().split('.').next().unwrap())
    );

    // A second live master of the same cluster: named, not chosen silently.
    let (_second_listener, second) = master(&cluster, &format!("master-lo-{pid}-b")).await;
    let e = match on_loopback(&cluster).find(Duration::from_secs(10)).await {
        Ok(f) => panic!("two live masters, yet found one: {f}"),
        Err(e) => e,
    };
    assert!(matches!(e, DiscoveryError::Duplicate { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("master-lo-{pid}-a at 127.0.0.1:"))
            && text.contains(&format!("master-lo-{pid}-b at 127.0.0.1:")),
        "{text}"
    );

    // A graceful stop withdraws the record: browsers drop it within seconds,
    // long before its two-minute lifetime.
    let mut table = discovery.browser().subscribe();
    let has = |t: &Table, name: &str| t.records.contains_key(name);
    let gone = first.fullname().to_string();
    tokio::time::timeout(
        Duration::from_secs(5),
        table.wait_for(|t| has(t, second.fullname())),
    )
    .await
    .expect("the second master seen")
    .unwrap();
    first.stop().await;
    tokio::time::timeout(Duration::from_secs(5), table.wait_for(|t| !has(t, &gone)))
        .await
        .expect("a stopped master's record must be withdrawn within 5 s")
        .unwrap();
    second.stop().await;
}

/// A rogue master advertising our cluster's name under another key is
/// ignored; the master that holds our key is found, the rogue does not make
/// the choice a duplicate. Real masters, real mDNS on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_the_key_is_ignored_and_the_one_with_it_found() {
    use tessera_proto::ClusterKey;

    use crate::master::{self, MasterConfig};

    let pid = std::process::id();
    let cluster = format!("rogue-{pid}");
    let key = ClusterKey::generate();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let start = |dir: &std::path::Path, key: ClusterKey, id: String| {
        let mut config = MasterConfig::new(dir.to_path_buf());
        config.key = key;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(master::run(listener, config, shutdown.clone()));
        (addr, Advertisement::start(&cluster, &id, addr).unwrap())
    };
    let (rogue, _rogue_advert) = start(
        dirs.0.path(),
        ClusterKey::generate(),
        format!("rogue-{pid}"),
    );
    let (ours, _our_advert) = start(dirs.1.path(), key.clone(), format!("ours-{pid}"));
    let discovery =
        MdnsDiscovery::with_options(FindParams::new(&cluster), loopback(), KeyProbe::new(key))
            .unwrap();
    let found = discovery.find(Duration::from_secs(20)).await.unwrap();
    assert_eq!(found.addrs[0], ours.to_string(), "not the rogue at {rogue}");
}
