//! Is a master behind a record alive? A TCP connect says so; the record does not.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::net::TcpStream;

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
