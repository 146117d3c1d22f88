//! Why no master could be chosen, typed by what the caller should do.

use std::{collections::BTreeSet, fmt, time::Duration};

use super::MasterRecord;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Nothing usable answered in time: wait and look again, or pass `--master`.
    #[error(
        "no master of cluster {cluster:?} found by mDNS within {waited:?}{seen}; start one with `tessera-node master --cluster {cluster}`, or give its address with --master or TESSERA_MASTER"
    )]
    NotFound {
        cluster: String,
        waited: Duration,
        /// What was seen that did not qualify, for the message.
        seen: Sightings,
    },
    /// Two live masters claim the same cluster: a person has to fix that.
    #[error(
        "two masters advertise cluster {cluster:?}: {first} and {second}; stop one of them, or give them different --cluster names"
    )]
    Duplicate {
        cluster: String,
        first: Box<MasterRecord>,
        second: Box<MasterRecord>,
    },
    #[error("invalid cluster name {name:?}: {why}")]
    BadCluster { name: String, why: &'static str },
    /// The mDNS daemon could not start or refused a request.
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// The browsing task is gone (the daemon stopped).
    #[error("mDNS browsing stopped")]
    Stopped,
}

/// Masters that were seen but did not qualify, so that "not found" can say why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sightings {
    /// Clusters other than ours that have masters.
    pub other_clusters: BTreeSet<String>,
    /// Masters of our cluster speaking another protocol version: (id, version).
    pub other_versions: Vec<(String, Option<u16>)>,
    /// Masters of our cluster whose record is there but which did not accept a
    /// connection (typically killed; the record lingers for minutes).
    pub not_answering: Vec<String>,
}

impl fmt::Display for Sightings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.not_answering.is_empty() {
            write!(
                f,
                " (advertised but not answering: {})",
                self.not_answering.join("; ")
            )?;
        }
        if !self.other_versions.is_empty() {
            let list: Vec<String> = self
                .other_versions
                .iter()
                .map(|(id, v)| match v {
                    Some(v) => format!("{id} speaks protocol version {v}"),
                    None => format!("{id} gives no protocol version"),
                })
                .collect();
            write!(
                f,
                " (ignored: {}; this node speaks version {})",
                list.join("; "),
                tessera_proto::PROTOCOL_VERSION
            )?;
        }
        if !self.other_clusters.is_empty() {
            let list: Vec<&str> = self.other_clusters.iter().map(String::as_str).collect();
            write!(f, " (masters of other clusters: {})", list.join(", "))?;
        }
        Ok(())
    }
}
