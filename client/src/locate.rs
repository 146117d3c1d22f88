//! Where the command line's master is: `--master` / `TESSERA_MASTER`, or the
//! one master of `--cluster` found by mDNS; and `tessera discover`.

use std::time::Duration;

use anyhow::Context;
use tessera_node::discovery::{
    Discovery, Found, MasterRecord, MdnsDiscovery, StaticAddr,
    browse::{BrowseOptions, Browser},
    find::SETTLE,
    probe::{Probe, TcpProbe},
};

use tessera_proto::ClusterKey;

use crate::{Client, ClientConfig, ClientError, Reconnecting, Resolve, Resolved};

/// How long a command waits for mDNS to show its master.
const FIND_WITHIN: Duration = Duration::from_secs(5);

/// Connects to `master` if given (no multicast at all), or else to the master
/// of `cluster` found by mDNS, trying each of its addresses in turn.
pub async fn connect(
    master: Option<&str>,
    cluster: &str,
    key: &ClusterKey,
) -> anyhow::Result<Client> {
    let found = match master {
        Some(addr) => StaticAddr::new(addr, "--master").find(FIND_WITHIN).await?,
        None => {
            let mdns = MdnsDiscovery::start(cluster, key).context("cannot start mDNS discovery")?;
            mdns.find(FIND_WITHIN).await?
        }
    };
    tracing::info!("master: {found}");
    connect_found(&found, key).await
}

/// Like [`connect`], but the connection comes back: operations retry on a
/// new connection for up to `max_outage`, to wherever the master is then:
/// found again by mDNS (a master restarted on another address or host is
/// picked up), or the `--master` address again (a fixed address cannot move).
pub async fn connect_reconnecting(
    master: Option<&str>,
    cluster: &str,
    key: &ClusterKey,
    max_outage: Duration,
) -> anyhow::Result<Reconnecting> {
    let discovery: Box<dyn Discovery> = match master {
        Some(addr) => Box::new(StaticAddr::new(addr, "--master")),
        None => {
            Box::new(MdnsDiscovery::start(cluster, key).context("cannot start mDNS discovery")?)
        }
    };
    let found = discovery.find(FIND_WITHIN).await?;
    tracing::info!("master: {found}");
    let mut failures: Vec<ClientError> = Vec::new();
    for addr in &found.addrs {
        match Reconnecting::connect(addr, key, ClientConfig::default(), max_outage).await {
            Ok(c) => return Ok(c.with_resolver(Box::new(Rediscover(discovery)))),
            Err(e @ ClientError::Connect { .. }) => failures.push(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(all_failed(&found, failures))
}

/// A reconnection's master, found again the way the first one was.
#[derive(Debug)]
struct Rediscover(Box<dyn Discovery>);

impl Resolve for Rediscover {
    fn resolve(&self) -> Resolved<'_> {
        Box::pin(async move {
            match self.0.find(FIND_WITHIN).await {
                Ok(found) => {
                    tracing::info!("master: {found}");
                    Ok(found.addrs)
                }
                Err(e) => Err(ClientError::NotFound(e.to_string())),
            }
        })
    }
}

/// Every address of `found` refused or timed out: the one error as it is,
/// or all of them under the master's name.
fn all_failed(found: &Found, mut failures: Vec<ClientError>) -> anyhow::Error {
    match failures.len() {
        1 => failures.remove(0).into(),
        _ => {
            let all: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("cannot connect to master {found}: {}", all.join("; "))
        }
    }
}

async fn connect_found(found: &Found, key: &ClusterKey) -> anyhow::Result<Client> {
    let mut failures: Vec<ClientError> = Vec::new();
    // One-shot commands (`submit`, then `fetch` in another process) share
    // no identity but the anonymous submitter.
    let config = ClientConfig {
        submitter: tessera_proto::ANONYMOUS_SUBMITTER,
        ..ClientConfig::default()
    };
    for addr in &found.addrs {
        match Client::connect_with(addr, key, config.clone()).await {
            Ok(c) => return Ok(c),
            // Another address of the same master may work; a refusal will not.
            Err(e @ ClientError::Connect { .. }) => failures.push(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(all_failed(found, failures))
}

/// `tessera discover`: browses for `wait` (at least [`SETTLE`]), then returns
/// every master seen, sorted by cluster and id, each with whether it accepts
/// connections (records of killed masters linger for minutes).
pub async fn discover(wait: Duration) -> anyhow::Result<Vec<(MasterRecord, bool)>> {
    let browser = Browser::start(BrowseOptions::default()).context("cannot start mDNS")?;
    tokio::time::sleep(wait.max(SETTLE)).await;
    let mut masters = browser.snapshot();
    masters.sort_by(|a, b| (&a.cluster, &a.id).cmp(&(&b.cluster, &b.id)));
    let up = probe_all(&TcpProbe::default(), &masters).await;
    Ok(masters.into_iter().zip(up).collect())
}

/// The table `tessera discover` prints: cluster, protocol version, master,
/// state, addresses.
pub fn render(masters: &[(MasterRecord, bool)]) -> String {
    let header = ["CLUSTER", "VERSION", "MASTER", "STATE", "ADDRESSES"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(masters.iter().map(|(m, up)| row(m, *up).to_vec()));
    crate::table::render(&rows)
}

/// Probes every master at once.
async fn probe_all(probe: &TcpProbe, masters: &[MasterRecord]) -> Vec<bool> {
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in masters.iter().enumerate() {
        let (probe, addrs) = (*probe, m.addrs.clone());
        set.spawn(async move { (i, probe.reachable(&addrs).await.is_some()) });
    }
    let mut up = vec![false; masters.len()];
    while let Some(Ok((i, ok))) = set.join_next().await {
        up[i] = ok;
    }
    up
}

fn row(m: &MasterRecord, up: bool) -> [String; 5] {
    let addrs: Vec<String> = m.addrs.iter().map(|a| a.to_string()).collect();
    [
        m.cluster.clone(),
        m.version.map_or("?".into(), |v| v.to_string()),
        m.id.clone(),
        if up { "up" } else { "not answering" }.into(),
        addrs.join(", "),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discover_table_has_a_column_per_field() {
        let m = MasterRecord::new(
            "m._tessera._tcp.local.",
            "master-1-ab",
            "lab",
            Some(1),
            [
                "198.18.0.1:7878".parse().unwrap(),
                "[fe80::1%2]:7878".parse().unwrap(),
            ],
        );
        let mut old = m.clone();
        old.id = "master-0-cd".into();
        old.version = None;
        let text = render(&[(m, true), (old, false)]);
        assert_eq!(
            text,
            "CLUSTER  VERSION  MASTER       STATE          ADDRESSES\n\
             lab      1        master-1-ab  up             198.18.0.1:7878, [fe80::1%2]:7878\n\
             lab      ?        master-0-cd  not answering  198.18.0.1:7878, [fe80::1%2]:7878\n"
        );
    }
}
