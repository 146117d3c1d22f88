//! Opening a connection to a master: TCP connect and handshake, each with a deadline.

use std::time::Duration;

use tokio::net::{
    TcpStream,
    tcp::{OwnedReadHalf, OwnedWriteHalf},
};

use crate::{FrameReader, FrameWriter, Hello, HelloReply, ProtoError, Refusal, Role, Welcome};

/// An open, accepted connection.
#[derive(Debug)]
pub struct Dialed {
    pub reader: FrameReader<OwnedReadHalf>,
    pub writer: FrameWriter<OwnedWriteHalf>,
    pub welcome: Welcome,
}

/// Deadlines and limits for [`dial`].
#[derive(Debug, Clone, Copy)]
pub struct DialOptions {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_frame: usize,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_frame: crate::DEFAULT_MAX_FRAME,
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Nothing answered at that address in time: retry later or check the address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The master answered and refused us.
    #[error("master refused the connection: {0}")]
    Refused(Refusal),
    /// The connection broke during the handshake.
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

/// Connects to `addr` (`host:port`) and completes the handshake as `role`.
pub async fn dial(
    addr: &str,
    role: Role,
    node_id: &str,
    options: DialOptions,
) -> Result<Dialed, DialError> {
    let connect_err = |source| DialError::Connect {
        addr: addr.to_string(),
        source,
    };
    let socket = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
    let _ = socket.set_nodelay(true);
    let (read, write) = socket.into_split();
    let mut reader = FrameReader::new(read, options.max_frame);
    let mut writer = FrameWriter::new(write, options.max_frame);
    writer.send_hello(&Hello::new(role, node_id)).await?;
    match reader.recv_hello_reply(options.handshake_timeout).await? {
        HelloReply::Welcome(welcome) => Ok(Dialed {
            reader,
            writer,
            welcome,
        }),
        HelloReply::Refused(r) => Err(DialError::Refused(r)),
    }
}
