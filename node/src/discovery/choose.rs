//! Choosing the master of a cluster from what mDNS shows: plain functions, no I/O.
//!
//! [`select`] keeps the records of our cluster that speak our protocol version
//! and notes the rest (other clusters never mix with ours). The caller checks
//! which candidates answer a connection, then [`decide`] picks the one live
//! master, or reports two of them, naming both, instead of choosing silently.

use super::{MasterRecord, Sightings};

/// The records that could be our master, and what else was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub candidates: Vec<MasterRecord>,
    pub seen: Sightings,
}

/// Splits `records` into candidates (cluster `cluster`, protocol `version`,
/// at least one address) and sightings of everything else.
pub fn select<'a>(
    records: impl IntoIterator<Item = &'a MasterRecord>,
    cluster: &str,
    version: u16,
) -> Selection {
    let mut sel = Selection::default();
    for r in records {
        if r.cluster != cluster {
            sel.seen.other_clusters.insert(r.cluster.clone());
        } else if r.version != Some(version) {
            sel.seen.other_versions.push((r.id.clone(), r.version));
        } else if !r.addrs.is_empty() {
            sel.candidates.push(r.clone());
        }
    }
    sel.candidates.sort_by(|a, b| a.id.cmp(&b.id));
    sel
}

/// The outcome of choosing among the live candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// None of them accepted a connection.
    NoneLive,
    One(MasterRecord),
    /// Two different masters (by id) are alive for one cluster.
    Duplicate(MasterRecord, MasterRecord),
}

/// Decides among the candidates that accepted a connection, each with the
/// address that answered first in `addrs`. Records with the same id are one
/// master (re-registered, or seen on two interfaces); so are records that
/// answered at the same address, since only one process listens there: a
/// master killed without a goodbye leaves its record for minutes, and when
/// it comes back on the same port the new record and the stale one both
/// answer, from the one live master.
pub fn decide(mut live: Vec<MasterRecord>) -> Decision {
    live.sort_by(|a, b| a.id.cmp(&b.id));
    live.dedup_by(|a, b| a.id == b.id);
    let mut answering = std::collections::BTreeSet::new();
    live.retain(|r| r.addrs.first().is_none_or(|a| answering.insert(*a)));
    let mut it = live.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Decision::NoneLive,
        (Some(one), None) => Decision::One(one),
        (Some(a), Some(b)) => Decision::Duplicate(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, cluster: &str, version: Option<u16>, addr: &str) -> MasterRecord {
        MasterRecord::new(
            format!("{id}._tessera._tcp.local."),
            id,
            cluster,
            version,
            [addr.parse().unwrap()],
        )
    }

    #[test]
    fn the_master_of_our_cluster_is_chosen_and_other_clusters_are_ignored() {
        let ours = rec("m-ours", "lab", Some(1), "198.18.0.1:7878");
        let theirs = rec("m-theirs", "render", Some(1), "198.18.0.2:7878");
        let default = rec("m-default", "default", Some(1), "198.18.0.3:7878");
        let sel = select([&theirs, &ours, &default], "lab", 1);
        assert_eq!(sel.candidates, vec![ours.clone()]);
        assert_eq!(
            sel.seen.other_clusters.iter().collect::<Vec<_>>(),
            ["default", "render"]
        );
        assert_eq!(decide(sel.candidates), Decision::One(ours));
    }

    #[test]
    fn a_cluster_with_only_other_clusters_around_has_no_candidate() {
        let theirs = rec("m-theirs", "render", Some(1), "198.18.0.2:7878");
        let sel = select([&theirs], "lab", 1);
        assert!(sel.candidates.is_empty());
        assert_eq!(decide(sel.candidates), Decision::NoneLive);
    }

    #[test]
    fn masters_of_another_protocol_version_are_not_candidates_but_are_reported() {
        let old = rec("m-old", "lab", Some(0), "198.18.0.1:7878");
        let garbled = rec("m-garbled", "lab", None, "198.18.0.2:7878");
        let sel = select([&old, &garbled], "lab", 1);
        assert!(sel.candidates.is_empty());
        assert_eq!(
            sel.seen.other_versions,
            vec![
                ("m-old".to_string(), Some(0)),
                ("m-garbled".to_string(), None)
            ]
        );
        let text = sel.seen.to_string();
        assert!(text.contains("m-old speaks protocol version 0"), "{text}");
        assert!(
            text.contains("m-garbled gives no protocol version"),
            "{text}"
        );
    }

    #[test]
    fn two_live_masters_of_one_cluster_are_a_duplicate_naming_both() {
        let a = rec("m-a", "lab", Some(1), "198.18.0.1:7878");
        let b = rec("m-b", "lab", Some(1), "198.18.0.2:7979");
        let sel = select([&b, &a], "lab", 1);
        assert_eq!(sel.candidates.len(), 2);
        let Decision::Duplicate(first, second) = decide(sel.candidates) else {
            panic!("two masters must not be chosen between silently");
        };
        assert_eq!((first.id.as_str(), second.id.as_str()), ("m-a", "m-b"));
        let err = crate::discovery::DiscoveryError::Duplicate {
            cluster: "lab".into(),
            first: Box::new(first),
            second: Box::new(second),
        };
        let text = err.to_string();
        assert!(
            text.contains("m-a at 198.18.0.1:7878") && text.contains("m-b at 198.18.0.2:7979"),
            "{text}"
        );
    }

    #[test]
    fn one_master_seen_twice_under_the_same_id_is_not_a_duplicate() {
        let a = rec("m-a", "lab", Some(1), "198.18.0.1:7878");
        let mut again = a.clone();
        again.fullname = "m-a (2)._tessera._tcp.local.".into();
        assert_eq!(decide(vec![a.clone(), again]), Decision::One(a));
    }

    #[test]
    fn a_stale_record_answering_at_the_live_masters_address_is_not_a_duplicate() {
        // A master SIGKILLed and started again on its port: its old record
        // lingers, and the probe reaches the new master through both.
        let stale = rec("m-1", "lab", Some(1), "198.18.0.1:7878");
        let restarted = rec("m-2", "lab", Some(1), "198.18.0.1:7878");
        assert_eq!(
            decide(vec![restarted.clone(), stale.clone()]),
            Decision::One(stale.clone())
        );
        // Two masters answering at two addresses are still two.
        let elsewhere = rec("m-3", "lab", Some(1), "198.18.0.2:7878");
        assert!(matches!(
            decide(vec![restarted, elsewhere, stale]),
            Decision::Duplicate(..)
        ));
    }

    #[test]
    fn a_record_without_addresses_is_not_a_candidate() {
        let mut a = rec("m-a", "lab", Some(1), "198.18.0.1:7878");
        a.addrs.clear();
        assert!(select([&a], "lab", 1).candidates.is_empty());
    }
}
