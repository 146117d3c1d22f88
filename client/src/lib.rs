//! tessera's client library: connect to a master, submit images, wait for
//! them (pushed, no polling), fetch results, or run a whole batch.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_client::ClientError> {
//! // A copy of the master's cluster.key (see the README's "Security" section).
//! let key = tessera_client::ClusterKey::load("cluster.key".as_ref()).unwrap();
//! let client = tessera_client::Client::connect("127.0.0.1:7878", &key).await?;
//! let task = client.submit("cat.png", std::fs::read("cat.png").unwrap().into()).await?;
//! let info = client.wait(task).await?;
//! let swapped = client.fetch(task).await?;
//! # Ok(()) }
//! ```

pub mod batch;
mod buffers;
mod client;
mod error;
pub mod files;
mod reconnect;
mod replies;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod cluster_view;
#[cfg(feature = "cli")]
pub mod locate;
#[cfg(feature = "cli")]
pub mod progress;
#[cfg(feature = "cli")]
pub mod table;
#[cfg(feature = "cli")]
pub mod top;

pub use client::{Client, ClientConfig};
pub use error::{ClientError, Retry};
pub use reconnect::{FixedAddr, Reconnecting, Resolve, Resolved};
pub use tessera_proto::{
    ClusterInfo, ClusterKey, ErrorCode, FailureKind, TaskId, TaskInfo, TaskState,
};
