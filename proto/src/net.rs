//! The network seam: every tessera connection is opened by a [`Dialer`] and
//! accepted from a [`Listener`], and carried as a [`Connection`] of two boxed
//! halves. Real nodes use TCP ([`Tcp`], and tokio's `TcpListener`); a
//! simulation supplies its own (simulated TCP), and the same master, worker
//! and client code runs over either.

use std::{fmt::Debug, future::Future, io, net::SocketAddr, pin::Pin};

use tokio::io::{AsyncRead, AsyncWrite};

/// The reading half of a connection.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A future a seam's method returns.
pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// An open connection, split so that one task reads while another writes.
pub struct Connection {
    pub read: ReadHalf,
    pub write: WriteHalf,
    /// The other end's address.
    pub peer: SocketAddr,
}

impl Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Opens connections to `host:port` addresses.
pub trait Dialer: Send + Sync + Debug {
    fn connect<'a>(&'a self, addr: &'a str) -> NetFuture<'a, Connection>;
}

/// Accepts connections.
pub trait Listener: Send + 'static {
    fn accept(&mut self) -> NetFuture<'_, Connection>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// TCP with Nagle's algorithm off (frames are written whole and flushed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp {
    /// The socket's send buffer, when not left to the kernel's autotuning
    /// (which lets megabytes queue ahead of a small control frame).
    pub send_buffer: Option<usize>,
}

impl Tcp {
    /// Splits an open TCP stream into a [`Connection`].
    pub fn connection(stream: tokio::net::TcpStream, send_buffer: Option<usize>) -> Connection {
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = send_buffer
            && let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes)
        {
            tracing::debug!("cannot set the connection's send buffer: {e}");
        }
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (read, write) = stream.into_split();
        Connection {
            read: Box::new(read),
            write: Box::new(write),
            peer,
        }
    }
}

impl Dialer for Tcp {
    fn connect<'a>(&'a self, addr: &'a str) -> NetFuture<'a, Connection> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            Ok(Tcp::connection(stream, self.send_buffer))
        })
    }
}

impl Listener for tokio::net::TcpListener {
    fn accept(&mut self) -> NetFuture<'_, Connection> {
        Box::pin(async move {
            let (stream, _) = tokio::net::TcpListener::accept(self).await?;
            Ok(Tcp::connection(stream, None))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}
