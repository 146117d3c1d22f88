//! Waiting for the one live master of a cluster in what mDNS shows.
//!
//! The browsing side keeps a [`Table`] of records in a `watch` channel; [`find`]
//! reads it, and whenever there are candidates for our cluster it
//!
//! 1. lets answers settle: it decides only once the current browse has run for
//!    `settle`, so that a second master of the same cluster, answering a few
//!    milliseconds later, is noticed instead of silently losing the race;
//! 2. probes each candidate with a TCP connect (records of killed masters
//!    linger for minutes and are skipped);
//! 3. returns the one live master, or [`DiscoveryError::Duplicate`] naming two.
//!
//! With no live candidate it asks for a fresh query (`on_miss`) and waits for
//! the table to change, rechecking now and then, until its deadline.

use std::{collections::BTreeMap, time::Duration};

use futures::future::join_all;
use tokio::{sync::watch, time::Instant};

use super::{
    DiscoveryError, Found, How, MasterRecord,
    choose::{Decision, decide, select},
    probe::Probe,
};

/// What the browsing side has seen.
#[derive(Debug, Clone)]
pub struct Table {
    /// When the current browse (query) started.
    pub since: Instant,
    /// Records by DNS-SD full name.
    pub records: BTreeMap<String, MasterRecord>,
}

impl Table {
    pub fn new(since: Instant) -> Self {
        Table {
            since,
            records: BTreeMap::new(),
        }
    }
}

/// How long a browse runs before its answers are taken as complete. A
/// responder multicasts a record at most once a second (RFC 6762 §6), so a
/// master that just answered someone else's query skips ours and answers only
/// the browse's second query, sent after one second: 1.3 s covers that and
/// the responders' random delay of up to 120 ms.
pub const SETTLE: Duration = Duration::from_millis(1300);

/// Which master to look for, and the pacing.
#[derive(Debug, Clone)]
pub struct FindParams {
    pub cluster: String,
    /// The protocol version we speak; masters advertising another are ignored.
    pub version: u16,
    /// How long a browse runs before its answers are taken as complete.
    pub settle: Duration,
    /// Pause between probes while candidates exist but none answers.
    pub recheck: Duration,
}

impl FindParams {
    pub fn new(cluster: impl Into<String>) -> Self {
        FindParams {
            cluster: cluster.into(),
            version: tessera_proto::PROTOCOL_VERSION,
            settle: SETTLE,
            recheck: Duration::from_secs(1),
        }
    }
}

/// Waits up to `within` for the one live master of `params.cluster` in `table`.
pub async fn find(
    table: &mut watch::Receiver<Table>,
    params: &FindParams,
    probe: &impl Probe,
    within: Duration,
    on_miss: impl Fn(),
) -> Result<Found, DiscoveryError> {
    let deadline = Instant::now() + within;
    loop {
        let (sel, since) = {
            let t = table.borrow_and_update();
            (
                select(t.records.values(), &params.cluster, params.version),
                t.since,
            )
        };
        let mut seen = sel.seen;
        let now = Instant::now();
        let mut wake = deadline;
        if sel.candidates.is_empty() {
            on_miss();
        } else if now < since + params.settle && now < deadline {
            wake = wake.min(since + params.settle);
        } else {
            let live = join_all(sel.candidates.iter().map(|c| async move {
                let addr = probe.reachable(&c.addrs).await?;
                let mut live = c.clone();
                // The address that answered goes first.
                live.addrs.retain(|a| *a != addr);
                live.addrs.insert(0, addr);
                Some(live)
            }))
            .await;
            match decide(live.into_iter().flatten().collect()) {
                Decision::One(r) => return Ok(found(r)),
                Decision::Duplicate(a, b) => {
                    return Err(DiscoveryError::Duplicate {
                        cluster: params.cluster.clone(),
                        first: Box::new(a),
                        second: Box::new(b),
                    });
                }
                Decision::NoneLive => {
                    seen.not_answering = sel.candidates.iter().map(|c| c.to_string()).collect();
                    on_miss();
                    wake = wake.min(Instant::now() + params.recheck);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(DiscoveryError::NotFound {
                cluster: params.cluster.clone(),
                waited: within,
                seen,
            });
        }
        tokio::select! {
            changed = table.changed() => changed.map_err(|_| DiscoveryError::Stopped)?,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn found(r: MasterRecord) -> Found {
    Found {
        addrs: r.addrs.iter().map(|a| a.to_string()).collect(),
        how: How::Mdns {
            id: r.id,
            cluster: r.cluster,
        },
    }
}

#[cfg(test)]
#[path = "find_tests.rs"]
mod tests;
