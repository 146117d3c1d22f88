//! The network seam over turmoil's simulated TCP: the real master, worker
//! and client code runs on simulated hosts, with time and the network
//! under the simulation's control.

use std::{io, net::SocketAddr};

use tessera_proto::net::{Connection, Dialer, Listener, NetFuture};

/// Dials simulated hosts by name (`master:7878`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimDialer;

fn connection(stream: turmoil::net::TcpStream) -> io::Result<Connection> {
    let peer = stream.peer_addr()?;
    let (read, write) = stream.into_split();
    Ok(Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
    })
}

impl Dialer for SimDialer {
    fn connect<'a>(&'a self, addr: &'a str) -> NetFuture<'a, Connection> {
        Box::pin(async move { connection(turmoil::net::TcpStream::connect(addr).await?) })
    }
}

/// A simulated host's listening socket.
pub struct SimListener(pub turmoil::net::TcpListener);

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimListener({:?})", self.0.local_addr().ok())
    }
}

impl SimListener {
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        Ok(SimListener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl Listener for SimListener {
    fn accept(&mut self) -> NetFuture<'_, Connection> {
        Box::pin(async move {
            let (stream, _) = self.0.accept().await?;
            connection(stream)
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
