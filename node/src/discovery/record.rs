//! [`MasterRecord`]: what one master's mDNS record says, in our own terms.

use std::{
    fmt,
    net::{IpAddr, SocketAddr, SocketAddrV6},
};

use mdns_sd::{ResolvedService, ScopedIp};

use super::{TXT_CLUSTER, TXT_ID, TXT_VERSION};

/// One master as seen on mDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRecord {
    /// The DNS-SD instance's full name: the key of a record.
    pub fullname: String,
    /// The master's id (TXT `id`), as it also says in its handshake.
    pub id: String,
    /// TXT `cluster`.
    pub cluster: String,
    /// TXT `version`: the protocol version it speaks; `None` if missing or garbled.
    pub version: Option<u16>,
    /// Where it listens, in the order to try them: IPv4, then IPv6 (link-local
    /// ones with the scope of the interface they were seen on).
    pub addrs: Vec<SocketAddr>,
}

impl MasterRecord {
    /// A record from its parts; `addrs` are put in dialing order.
    pub fn new(
        fullname: impl Into<String>,
        id: impl Into<String>,
        cluster: impl Into<String>,
        version: Option<u16>,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Self {
        MasterRecord {
            fullname: fullname.into(),
            id: id.into(),
            cluster: cluster.into(),
            version,
            addrs: dial_order(addrs),
        }
    }

    /// Reads a resolved service. `None` when it is not a tessera master's
    /// record (no `cluster` in its TXT).
    pub fn from_resolved(svc: &ResolvedService) -> Option<Self> {
        let cluster = svc.get_property_val_str(TXT_CLUSTER)?;
        let id = svc
            .get_property_val_str(TXT_ID)
            .map(str::to_string)
            .unwrap_or_else(|| instance_label(&svc.fullname));
        let version = svc
            .get_property_val_str(TXT_VERSION)
            .and_then(|v| v.parse().ok());
        let port = svc.get_port();
        let addrs = svc.get_addresses().iter().map(|ip| match ip {
            ScopedIp::V6(v6) => socket_addr(IpAddr::V6(*v6.addr()), v6.scope_id().index, port),
            other => socket_addr(other.to_ip_addr(), 0, port),
        });
        Some(MasterRecord::new(
            svc.fullname.clone(),
            id,
            cluster,
            version,
            addrs,
        ))
    }
}

impl fmt::Display for MasterRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at ", self.id)?;
        if self.addrs.is_empty() {
            return write!(f, "no address");
        }
        for (i, a) in self.addrs.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// The socket address to dial for `ip`: an IPv6 link-local address needs the
/// index of the interface it was seen on (`scope`), or it cannot be routed.
pub fn socket_addr(ip: IpAddr, scope: u32, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
        }
        ip => SocketAddr::new(ip, port),
    }
}

/// Sorts and dedups addresses: IPv4 first, then routable IPv6, then
/// link-local IPv6. A loopback address is kept only when it is the only kind
/// there is: a record that also has LAN addresses came from another host,
/// where "127.0.0.1" would be some other program.
fn dial_order(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = addrs.into_iter().collect();
    if v.iter().any(|a| !a.ip().is_loopback()) {
        v.retain(|a| !a.ip().is_loopback());
    }
    let rank = |a: &SocketAddr| match a {
        SocketAddr::V4(_) => 0,
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => 2,
        SocketAddr::V6(_) => 1,
    };
    v.sort_by_key(|a| (rank(a), *a));
    v.dedup();
    v
}

/// The instance label of a DNS-SD full name (`label._tessera._tcp.local.`).
fn instance_label(fullname: &str) -> String {
    fullname
        .strip_suffix(super::SERVICE_TYPE)
        .map(|s| s.trim_end_matches('.'))
        .unwrap_or(fullname)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn link_local_ipv6_keeps_its_scope_and_prints_it() {
        let a = socket_addr("fe80::1".parse().unwrap(), 3, 7878);
        assert_eq!(a.to_string(), "[fe80::1%3]:7878");
        // ... and the printed form parses back to the same address, so it can
        // travel as a string to `dial`.
        assert_eq!(a.to_string().parse::<SocketAddr>().unwrap(), a);
        // A routable address carries no scope.
        let g = socket_addr("2001:db8::1".parse().unwrap(), 3, 7878);
        assert_eq!(g.to_string(), "[2001:db8::1]:7878");
    }

    #[test]
    fn addresses_are_tried_ipv4_first_then_ipv6_then_link_local() {
        let r = MasterRecord::new(
            "m._tessera._tcp.local.",
            "m",
            "default",
            Some(1),
            [
                sa("[fe80::1%2]:7"),
                sa("[2001:db8::1]:7"),
                sa("198.18.0.1:7"),
                sa("198.18.0.1:7"),
            ],
        );
        assert_eq!(
            r.addrs,
            vec![
                sa("198.18.0.1:7"),
                sa("[2001:db8::1]:7"),
                sa("[fe80::1%2]:7")
            ]
        );
        assert_eq!(
            r.to_string(),
            "m at 198.18.0.1:7, [2001:db8::1]:7, [fe80::1%2]:7"
        );
    }

    #[test]
    fn loopback_is_dropped_when_the_record_has_lan_addresses() {
        let r = MasterRecord::new(
            "m",
            "m",
            "c",
            Some(1),
            [sa("127.0.0.1:7"), sa("198.18.0.1:7")],
        );
        assert_eq!(r.addrs, vec![sa("198.18.0.1:7")]);
        let local = MasterRecord::new("m", "m", "c", Some(1), [sa("127.0.0.1:7")]);
        assert_eq!(local.addrs, vec![sa("127.0.0.1:7")]);
    }

    #[test]
    fn a_resolved_service_becomes_a_record_with_its_txt_fields() {
        let info = mdns_sd::ServiceInfo::new(
            super::super::SERVICE_TYPE,
            "master-1-abc",
            "master-1-abc.local.",
            "198.18.0.1",
            7878,
            &[("cluster", "lab"), ("version", "1"), ("id", "master-1-abc")][..],
        )
        .unwrap();
        let r = MasterRecord::from_resolved(&info.as_resolved_service()).unwrap();
        assert_eq!(r.id, "master-1-abc");
        assert_eq!(r.cluster, "lab");
        assert_eq!(r.version, Some(1));
        assert_eq!(r.addrs, vec![sa("198.18.0.1:7878")]);
        assert_eq!(r.fullname, "master-1-abc._tessera._tcp.local.");
    }

    #[test]
    fn a_record_without_a_cluster_is_not_a_master_and_a_bad_version_is_none() {
        let other = mdns_sd::ServiceInfo::new(
            super::super::SERVICE_TYPE,
            "x",
            "x.local.",
            "198.18.0.9",
            1,
            &[("version", "1")][..],
        )
        .unwrap();
        assert!(MasterRecord::from_resolved(&other.as_resolved_service()).is_none());
        let garbled = mdns_sd::ServiceInfo::new(
            super::super::SERVICE_TYPE,
            "y",
            "y.local.",
            "198.18.0.9",
            1,
            &[("cluster", "c"), ("version", "one")][..],
        )
        .unwrap();
        let r = MasterRecord::from_resolved(&garbled.as_resolved_service()).unwrap();
        assert_eq!(r.version, None);
        assert_eq!(r.id, "y", "the instance name stands in for a missing id");
    }
}
