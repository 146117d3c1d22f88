//! The faults the simulation injects, how long they are drawn for, and the
//! power cut that leaves a host's link faults in force.

use std::time::Duration;

use crate::harness::MASTER;

/// Faults are injected until then (most batches end long before); then
/// every fault is undone, and the batch must end within [`CALM`].
///
/// Under unbroken faults a batch is only slowed, not stopped (seeds 4207,
/// 6572, 9236 and 9945 still decided 0.3-0.6 tasks a second after 900 s of
/// a fault every 0.55 s, the master crashing every 8 s); a cluster that
/// never ends a batch once the faults stop is a liveness bug.
pub(crate) const FAULTS_UNTIL: Duration = Duration::from_secs(600);
pub(crate) const CALM: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// The host's process (a worker's, or the master's) crashes: it stops
    /// at once and its kernel closes its connections (a reset where data
    /// was unread); it is started again later (the master on its data
    /// directory, with what its record had made durable).
    Crash,
    /// The host (a worker, or the master) loses power: as `Crash`, but its
    /// connections vanish without a word; its peers learn of it by silence.
    PowerCut,
    /// The link between the host (a worker or a client) and the master is
    /// cut both ways.
    Partition,
    /// The master's messages to the host are lost; the host's still arrive.
    OneWay,
    /// Messages between the host and the master are held back, then
    /// delivered in a burst.
    Hold,
    /// The link between the host and the master fails now and then, at
    /// random, with this chance per message and tick (each failure breaks
    /// the connections over it: simulated TCP does not resend).
    Flaky(f64),
    /// The master's disk is full: it can store neither a new image nor a
    /// result (`ENOSPC`), nor commit to its record, until room is made.
    DiskFull,
}

/// Crashes `host` as a power cut does: its software stops, and its
/// connections vanish without a FIN or a reset (what was on its links is
/// lost; its peers learn of it by silence). The link faults in force on its
/// links (`undo`: each names the end that is not the master) hold again
/// afterwards.
pub(crate) fn power_cut(
    sim: &mut turmoil::Sim<'_>,
    host: &str,
    peers: &[String],
    undo: &[(Duration, String, Fault)],
) {
    let in_force = |peer: &str| {
        let end = if host == MASTER { peer } else { host };
        undo.iter()
            .find(|(_, h, f)| {
                h == end && !matches!(f, Fault::Crash | Fault::PowerCut | Fault::DiskFull)
            })
            .map(|(_, _, f)| *f)
    };
    for peer in peers {
        sim.set_link_fail_rate(host, peer.as_str(), 0.0);
        sim.partition(host, peer.as_str());
    }
    sim.crash(host);
    for peer in peers {
        sim.repair(host, peer.as_str());
        let end = if host == MASTER { peer.as_str() } else { host };
        match in_force(peer) {
            None | Some(Fault::Crash | Fault::PowerCut | Fault::DiskFull) => {}
            Some(Fault::Partition) => sim.partition(end, MASTER),
            Some(Fault::OneWay) => sim.partition_oneway(MASTER, end),
            Some(Fault::Hold) => sim.hold(end, MASTER),
            Some(Fault::Flaky(rate)) => sim.set_link_fail_rate(end, MASTER, rate),
        }
    }
}
