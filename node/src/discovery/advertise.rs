//! [`Advertisement`]: a master's DNS-SD record on mDNS, withdrawn on shutdown.
//!
//! The record is `<master id>._tessera._tcp.local.` on host `<master id>.local.`
//! (both unique per master process, so a restarted master never conflicts with
//! its predecessor's lingering record), with TXT `cluster`, `version` and `id`,
//! and the port actually bound. Addresses:
//!
//! * listening on `0.0.0.0`: every IPv4 address of the host, kept current by
//!   mdns-sd (`enable_addr_auto`), announced over IPv4;
//! * listening on `[::]` (dual-stack): every address, IPv4 and IPv6;
//! * listening on one address: that address only, on its interface only.

use std::{fmt, net::SocketAddr, time::Duration};

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use tracing::{debug, info};

use super::{DiscoveryError, SERVICE_TYPE, TXT_CLUSTER, TXT_ID, TXT_VERSION, check_cluster};

/// How long a graceful stop waits for the daemon to confirm each step.
const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// A registered master. [`Advertisement::stop`] withdraws it (goodbye
/// packets: peers drop it within about a second); dropping it does the same
/// without waiting for confirmation.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
    stopped: bool,
}

impl fmt::Debug for Advertisement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Advertisement")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

impl Advertisement {
    /// Registers the master `master_id` of `cluster` listening on `listen`
    /// (the address actually bound, with its real port).
    pub fn start(
        cluster: &str,
        master_id: &str,
        listen: SocketAddr,
    ) -> Result<Advertisement, DiscoveryError> {
        let info = service_info(cluster, master_id, listen)?;
        let fullname = info.get_fullname().to_string();
        let daemon = ServiceDaemon::new()?;
        if !listen.ip().is_unspecified() {
            // Not even joining multicast groups on the other interfaces.
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(listen.ip()))?;
        }
        daemon.register(info)?;
        info!(name = %fullname, cluster, %listen, "advertising on mDNS");
        Ok(Advertisement {
            daemon,
            fullname,
            stopped: false,
        })
    }

    /// The DNS-SD instance name registered.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the record and stops the daemon, waiting at most about a
    /// second for each.
    pub async fn stop(mut self) {
        self.stopped = true;
        match self.daemon.unregister(&self.fullname) {
            Ok(status) => match tokio::time::timeout(STOP_DEADLINE, status.recv_async()).await {
                Ok(Ok(s)) => debug!(name = %self.fullname, "mDNS record withdrawn: {s:?}"),
                _ => debug!(name = %self.fullname, "mDNS daemon did not confirm the withdrawal"),
            },
            Err(e) => debug!("cannot withdraw the mDNS record: {e}"),
        }
        if let Ok(status) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(STOP_DEADLINE, status.recv_async()).await;
        }
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        if !self.stopped {
            // Queued to the daemon thread, which sends the goodbye and exits.
            let _ = self.daemon.unregister(&self.fullname);
            let _ = self.daemon.shutdown();
        }
    }
}

/// The record for a master; see the module documentation for the addresses.
pub fn service_info(
    cluster: &str,
    master_id: &str,
    listen: SocketAddr,
) -> Result<ServiceInfo, DiscoveryError> {
    check_cluster(cluster)?;
    let version = tessera_proto::PROTOCOL_VERSION.to_string();
    let props = [
        (TXT_CLUSTER, cluster),
        (TXT_VERSION, version.as_str()),
        (TXT_ID, master_id),
    ];
    let host = format!("{master_id}.local.");
    let ip = listen.ip();
    let mut info = if ip.is_unspecified() {
        ServiceInfo::new(
            SERVICE_TYPE,
            master_id,
            &host,
            (),
            listen.port(),
            &props[..],
        )?
        .enable_addr_auto()
    } else {
        ServiceInfo::new(
            SERVICE_TYPE,
            master_id,
            &host,
            ip,
            listen.port(),
            &props[..],
        )?
    };
    if ip.is_unspecified() && ip.is_ipv4() {
        info.set_interfaces(vec![IfKind::IPv4]);
    } else if !ip.is_unspecified() {
        info.set_interfaces(vec![IfKind::Addr(ip)]);
    }
    // Names are unique per process (the master id has the pid and a random
    // part): probing for conflicts would only delay the announcement.
    info.set_requires_probe(false);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::MasterRecord;

    #[test]
    fn the_record_carries_cluster_version_id_and_the_bound_port() {
        let info = service_info(
            "lab",
            "master-7-0a0b0c0d",
            "198.18.0.1:40123".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            info.get_fullname(),
            "master-7-0a0b0c0d._tessera._tcp.local."
        );
        assert_eq!(info.get_hostname(), "master-7-0a0b0c0d.local.");
        assert!(!info.is_addr_auto());
        let r = MasterRecord::from_resolved(&info.as_resolved_service()).unwrap();
        assert_eq!(r.cluster, "lab");
        assert_eq!(r.id, "master-7-0a0b0c0d");
        assert_eq!(r.version, Some(tessera_proto::PROTOCOL_VERSION));
        assert_eq!(r.addrs, vec!["198.18.0.1:40123".parse().unwrap()]);
    }

    #[test]
    fn listening_on_every_interface_advertises_their_addresses() {
        for any in ["0.0.0.0:7878", "[::]:7878"] {
            let info = service_info("lab", "m", any.parse().unwrap()).unwrap();
            assert!(info.is_addr_auto(), "{any}");
            assert_eq!(info.get_port(), 7878);
        }
    }

    #[test]
    fn a_bad_cluster_name_is_refused() {
        let e = service_info("a b", "m", "0.0.0.0:1".parse().unwrap()).unwrap_err();
        assert!(matches!(e, DiscoveryError::BadCluster { .. }), "{e}");
    }
}
