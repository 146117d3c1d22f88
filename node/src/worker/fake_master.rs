//! A fake master for the worker's tests: the master's side of the
//! authenticated handshake on a real loopback socket, and nothing else, so
//! a test can script exactly what the master sends and how fast it reads.

use std::time::Duration;

use tessera_proto::{
    ClusterKey, FrameReader, FrameWriter, Hello, Msg, Welcome,
    accept::{AcceptOptions, accept},
    frame::FrameLimits,
    secure::{SecureReader, SecureWriter},
};
use tokio::net::{
    TcpListener,
    tcp::{OwnedReadHalf, OwnedWriteHalf},
};

/// How long the fake master waits for the worker at each step.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The master's side of one worker connection; dropping it closes it.
pub type Conn = (SecureReader<OwnedReadHalf>, SecureWriter<OwnedWriteHalf>);

/// Accepts one worker on `listener`, completes its handshake under `key`
/// with `welcome`, checks that it announces its capacity and asks for work,
/// and returns the connection with the worker's `Hello` and those two
/// messages (`Capacity`, `Ready`).
pub async fn accept_worker(
    listener: &TcpListener,
    key: &ClusterKey,
    welcome: Welcome,
) -> (Conn, Hello, [Msg; 2]) {
    let (socket, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("the worker connects")
        .unwrap();
    let (read, write) = socket.into_split();
    let max = tessera_proto::DEFAULT_MAX_FRAME;
    let reader = FrameReader::new(read, max);
    let writer = FrameWriter::new(write, max);
    let options = AcceptOptions {
        timeout: DEADLINE,
        limits: FrameLimits {
            max_frame: max,
            max_control: tessera_proto::DEFAULT_MAX_CONTROL_FRAME,
        },
    };
    let accepted = accept(reader, writer, key, welcome, options, "worker")
        .await
        .unwrap();
    let (hello, mut reader, writer) = (accepted.hello, accepted.reader, accepted.writer);
    let capacity = reader.recv_within(DEADLINE).await.unwrap().msg;
    assert!(matches!(capacity, Msg::Capacity { .. }), "{capacity:?}");
    let ready = reader.recv_within(DEADLINE).await.unwrap().msg;
    assert!(matches!(ready, Msg::Ready { .. }), "{ready:?}");
    ((reader, writer), hello, [capacity, ready])
}
