//! Is a master behind a record alive, and one of ours? A record says
//! neither: records of killed masters linger, and anyone on the LAN can
//! advertise a master under our cluster's name. [`KeyProbe`] (what workers
//! and clients use) counts only a master that completes the handshake with
//! our cluster key; [`TcpProbe`] only checks that something listens.

use std::{
    collections::BTreeSet,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tessera_proto::{
    ClusterKey, Role,
    dial::{DialError, DialOptions, dial},
    net::Tcp,
};
use tokio::net::TcpStream;
use tracing::{debug, warn};

/// Checks which address of a master accepts a connection.
pub trait Probe: Send + Sync {
    /// The first of `addrs` (in order) that accepts a connection, if any.
    fn reachable<'a>(
        &'a self,
        addrs: &'a [SocketAddr],
    ) -> impl Future<Output = Option<SocketAddr>> + Send + 'a;
}

/// Opens (and at once closes) a TCP connection, each attempt with a deadline.
/// A refused or unreachable address fails at once; a silent one costs `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct TcpProbe {
    pub timeout: Duration,
}

impl Default for TcpProbe {
    fn default() -> Self {
        TcpProbe {
            timeout: Duration::from_secs(1),
        }
    }
}

impl Probe for TcpProbe {
    async fn reachable<'a>(&'a self, addrs: &'a [SocketAddr]) -> Option<SocketAddr> {
        for addr in addrs {
            match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => return Some(*addr),
                Ok(Err(e)) => tracing::debug!(%addr, "probe: {e}"),
                Err(_) => tracing::debug!(%addr, "probe: no answer within {:?}", self.timeout),
            }
        }
        None
    }
}

/// Completes the handshake with `key` at each address (as a client, which
/// the master keeps no state for), so only a master that proves it holds
/// the cluster key counts. One that fails the proof is ignored: another
/// cluster under the same name, or a spoofed advert (logged once per
/// address).
#[derive(Debug, Clone)]
pub struct KeyProbe {
    key: ClusterKey,
    timeout: Duration,
    /// Addresses already reported as failing the key check.
    reported: Arc<Mutex<BTreeSet<SocketAddr>>>,
}

impl KeyProbe {
    pub fn new(key: ClusterKey) -> Self {
        KeyProbe {
            key,
            timeout: Duration::from_secs(2),
            reported: Arc::default(),
        }
    }
}

impl Probe for KeyProbe {
    async fn reachable<'a>(&'a self, addrs: &'a [SocketAddr]) -> Option<SocketAddr> {
        let options = DialOptions {
            connect_timeout: self.timeout,
            handshake_timeout: self.timeout,
            ..DialOptions::default()
        };
        for addr in addrs {
            let to = addr.to_string();
            match dial(
                &Tcp::default(),
                &to,
                Role::Client,
                "probe",
                &self.key,
                options,
            )
            .await
            {
                Ok(_) => return Some(*addr),
                Err(e @ (DialError::Unauthenticated { .. } | DialError::Refused(_))) => {
                    let first = self
                        .reported
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(*addr);
                    if first {
                        warn!(%addr, "ignoring a master advertised under this cluster's name: {e}");
                    }
                }
                Err(e) => debug!(%addr, "probe: {e}"),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_address_is_reachable_and_a_closed_one_is_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let probe = TcpProbe::default();
        assert_eq!(probe.reachable(&[closed, open]).await, Some(open));
        assert_eq!(probe.reachable(&[closed]).await, None);
    }
}
