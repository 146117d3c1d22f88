//! [`find`] against a table fed by hand and a fake probe: no network, paused clock.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::*;

/// Addresses listed here are "alive".
#[derive(Debug, Default, Clone)]
struct FakeProbe(Arc<Mutex<HashSet<SocketAddr>>>);

impl FakeProbe {
    fn with(addrs: &[&str]) -> Self {
        let p = FakeProbe::default();
        for a in addrs {
            p.0.lock().unwrap().insert(a.parse().unwrap());
        }
        p
    }
}

impl Probe for FakeProbe {
    async fn reachable<'a>(&'a self, addrs: &'a [SocketAddr]) -> Option<SocketAddr> {
        let live = self.0.lock().unwrap().clone();
        addrs.iter().copied().find(|a| live.contains(a))
    }
}

fn rec(id: &str, cluster: &str, addrs: &[&str]) -> MasterRecord {
    MasterRecord::new(
        format!("{id}._tessera._tcp.local."),
        id,
        cluster,
        Some(tessera_proto::PROTOCOL_VERSION),
        addrs.iter().map(|a| a.parse().unwrap()),
    )
}

/// A table whose browse started long enough ago to be settled.
fn table(records: &[MasterRecord]) -> (watch::Sender<Table>, watch::Receiver<Table>) {
    let mut t = Table::new(Instant::now() - Duration::from_secs(10));
    for r in records {
        t.records.insert(r.fullname.clone(), r.clone());
    }
    watch::channel(t)
}

fn params(cluster: &str) -> FindParams {
    FindParams::new(cluster)
}

const WITHIN: Duration = Duration::from_secs(5);

/// Looks for a master of "lab" where no address answers.
async fn find_nothing_alive(rx: &mut watch::Receiver<Table>) -> DiscoveryError {
    find(rx, &params("lab"), &FakeProbe::default(), WITHIN, || {})
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn the_live_master_of_the_cluster_is_found_with_the_answering_address_first() {
    let m = rec("m1", "lab", &["198.18.0.1:7000", "[fe80::1%2]:7000"]);
    let (_tx, mut rx) = table(&[m, rec("other", "render", &["198.18.0.2:7000"])]);
    let probe = FakeProbe::with(&["[fe80::1%2]:7000", "198.18.0.2:7000"]);
    let f = find(&mut rx, &params("lab"), &probe, WITHIN, || {})
        .await
        .unwrap();
    assert_eq!(f.addrs, ["[fe80::1%2]:7000", "198.18.0.1:7000"]);
    assert_eq!(
        f.how,
        How::Mdns {
            id: "m1".into(),
            cluster: "lab".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_masters_lingering_record_is_skipped_and_the_restarted_one_found() {
    // The killed master's record is still there; the restarted master (new id,
    // new port) shows up a little later.
    let dead = rec("m-old", "lab", &["198.18.0.1:7000"]);
    let (tx, mut rx) = table(std::slice::from_ref(&dead));
    let probe = FakeProbe::with(&["198.18.0.1:7001"]);
    let misses = Arc::new(AtomicUsize::new(0));
    let m = misses.clone();
    let finding = tokio::spawn(async move {
        find(&mut rx, &params("lab"), &probe, WITHIN, move || {
            m.fetch_add(1, Ordering::Relaxed);
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!finding.is_finished(), "a dead master must not be returned");
    assert!(
        misses.load(Ordering::Relaxed) >= 1,
        "no live master: a fresh query must be asked for"
    );
    let new = rec("m-new", "lab", &["198.18.0.1:7001"]);
    tx.send_modify(|t| {
        t.records.insert(new.fullname.clone(), new.clone());
    });
    let f = finding.await.unwrap().unwrap();
    assert_eq!(f.addrs, ["198.18.0.1:7001"]);
    assert!(f.to_string().starts_with("m-new at"), "{f}");
}

#[tokio::test(start_paused = true)]
async fn two_live_masters_of_one_cluster_are_reported_naming_both() {
    let a = rec("m-a", "lab", &["198.18.0.1:7000"]);
    let b = rec("m-b", "lab", &["198.18.0.2:7000"]);
    let (_tx, mut rx) = table(&[a, b]);
    let probe = FakeProbe::with(&["198.18.0.1:7000", "198.18.0.2:7000"]);
    let e = find(&mut rx, &params("lab"), &probe, WITHIN, || {})
        .await
        .unwrap_err();
    assert!(matches!(e, DiscoveryError::Duplicate { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("m-a at 198.18.0.1:7000") && text.contains("m-b at 198.18.0.2:7000"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_master_answering_during_the_settle_time_is_not_missed() {
    // The browse just started: the first answer is in, the second comes 100 ms later.
    let a = rec("m-a", "lab", &["198.18.0.1:7000"]);
    let b = rec("m-b", "lab", &["198.18.0.2:7000"]);
    let mut t = Table::new(Instant::now());
    t.records.insert(a.fullname.clone(), a);
    let (tx, mut rx) = watch::channel(t);
    let probe = FakeProbe::with(&["198.18.0.1:7000", "198.18.0.2:7000"]);
    let finding =
        tokio::spawn(async move { find(&mut rx, &params("lab"), &probe, WITHIN, || {}).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send_modify(|t| {
        t.records.insert(b.fullname.clone(), b.clone());
    });
    let e = finding.await.unwrap().unwrap_err();
    assert!(matches!(e, DiscoveryError::Duplicate { .. }), "{e}");
}

#[tokio::test(start_paused = true)]
async fn only_other_clusters_and_versions_means_not_found_saying_what_was_seen() {
    let mut old = rec("m-old", "lab", &["198.18.0.3:7000"]);
    old.version = Some(tessera_proto::PROTOCOL_VERSION + 1);
    let (_tx, mut rx) = table(&[rec("m-r", "render", &["198.18.0.2:7000"]), old]);
    let probe = FakeProbe::with(&["198.18.0.2:7000", "198.18.0.3:7000"]);
    let start = Instant::now();
    let e = find(&mut rx, &params("lab"), &probe, WITHIN, || {})
        .await
        .unwrap_err();
    assert!(start.elapsed() >= WITHIN, "gave up before the deadline");
    assert!(matches!(e, DiscoveryError::NotFound { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("cluster \"lab\""), "{text}");
    assert!(text.contains("masters of other clusters: render"), "{text}");
    assert!(text.contains("m-old speaks protocol version"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_master_that_never_answers_is_named_when_giving_up() {
    let (_tx, mut rx) = table(&[rec("m-dead", "lab", &["198.18.0.1:7000"])]);
    let e = find_nothing_alive(&mut rx).await;
    let text = e.to_string();
    assert!(
        text.contains("advertised but not answering: m-dead at 198.18.0.1:7000"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_table_ends_the_search() {
    let (tx, mut rx) = table(&[]);
    drop(tx);
    let e = find_nothing_alive(&mut rx).await;
    assert!(matches!(e, DiscoveryError::Stopped), "{e}");
}
