//! Finding the master of a cluster on the LAN.
//!
//! Workers and clients ask a [`Discovery`] for the master to dial, each time
//! they (re)connect. Two implementations sit behind it:
//!
//! * [`StaticAddr`]: the address given with `--master` / `TESSERA_MASTER`;
//!   no multicast at all.
//! * [`MdnsDiscovery`]: browses DNS-SD over mDNS for `_tessera._tcp.local.`
//!   and picks the one live master of its cluster ([`find`] has the rules).
//!
//! Masters announce themselves with an [`Advertisement`]. An mDNS record is a
//! hint, never a sign of life: a killed master's record lingers for about two
//! minutes, so every candidate is checked with a TCP connect ([`probe`]) and
//! the connection itself is what tells a worker its master is gone.

pub mod advertise;
pub mod browse;
pub mod choose;
mod error;
pub mod find;
pub mod mdns;
pub mod probe;
pub mod record;

use std::{fmt, time::Duration};

use futures::future::BoxFuture;

pub use self::{
    advertise::Advertisement,
    error::{DiscoveryError, Sightings},
    mdns::MdnsDiscovery,
    record::MasterRecord,
};

/// The DNS-SD service type every master registers.
pub const SERVICE_TYPE: &str = "_tessera._tcp.local.";

/// The cluster a node belongs to when `--cluster` is not given.
pub const DEFAULT_CLUSTER: &str = "default";

/// TXT keys of a master's record.
pub const TXT_CLUSTER: &str = "cluster";
pub const TXT_VERSION: &str = "version";
pub const TXT_ID: &str = "id";

/// Where a node gets the address of its master from.
pub trait Discovery: Send + Sync + fmt::Debug {
    /// The master to dial now, waiting for it at most `within`. Called again on
    /// every reconnect, so the answer may change (a master restarted elsewhere).
    fn find(&self, within: Duration) -> BoxFuture<'_, Result<Found, DiscoveryError>>;
}

/// A master to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Addresses to try in order (`host:port`); one that fails is skipped.
    pub addrs: Vec<String>,
    pub how: How,
}

/// How a master was found, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// A fixed address; `source` says where it came from (e.g. `--master`).
    Static { source: String },
    /// Seen on mDNS: the master's id and cluster.
    Mdns { id: String, cluster: String },
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.how {
            How::Static { source } => write!(f, "{} (from {source})", self.addrs.join(", ")),
            How::Mdns { id, cluster } => write!(
                f,
                "{id} at {} (found by mDNS, cluster {cluster:?})",
                self.addrs.join(", ")
            ),
        }
    }
}

/// A fixed address: `--master` or `TESSERA_MASTER`. Never touches multicast.
#[derive(Debug, Clone)]
pub struct StaticAddr {
    addr: String,
    source: String,
}

impl StaticAddr {
    /// `addr` is `host:port`; `source` names where it came from, for logs.
    pub fn new(addr: impl Into<String>, source: impl Into<String>) -> Self {
        StaticAddr {
            addr: addr.into(),
            source: source.into(),
        }
    }
}

impl Discovery for StaticAddr {
    fn find(&self, _within: Duration) -> BoxFuture<'_, Result<Found, DiscoveryError>> {
        let found = Found {
            addrs: vec![self.addr.clone()],
            how: How::Static {
                source: self.source.clone(),
            },
        };
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Longest cluster name: it must fit a DNS label with the rest of the record.
pub const MAX_CLUSTER_LEN: usize = 40;

/// Checks a `--cluster` name: 1 to 40 ASCII letters, digits, `-` or `_`.
pub fn check_cluster(name: &str) -> Result<(), DiscoveryError> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_CLUSTER_LEN {
        "it is longer than 40 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        "only ASCII letters, digits, '-' and '_' are allowed"
    } else {
        return Ok(());
    };
    Err(DiscoveryError::BadCluster {
        name: name.to_string(),
        why,
    })
}

/// A `clap` value parser for `--cluster`.
pub fn parse_cluster(name: &str) -> Result<String, String> {
    check_cluster(name)
        .map(|()| name.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod loopback_tests;
#[cfg(test)]
mod worker_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_static_address_is_found_as_given_without_waiting() {
        let d = StaticAddr::new("192.0.2.7:7878", "--master");
        let found = d.find(Duration::ZERO).await.unwrap();
        assert_eq!(found.addrs, vec!["192.0.2.7:7878".to_string()]);
        assert_eq!(found.to_string(), "192.0.2.7:7878 (from --master)");
    }

    #[test]
    fn cluster_names_are_checked() {
        for ok in ["default", "lab-2", "render_farm", "A1"] {
            assert!(check_cluster(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "dot.ted", "é", &"x".repeat(41)] {
            let e = check_cluster(bad).unwrap_err();
            assert!(matches!(e, DiscoveryError::BadCluster { .. }), "{bad}: {e}");
        }
    }
}
