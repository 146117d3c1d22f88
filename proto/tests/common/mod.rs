//! Shared by the handshake tests.

use std::time::Duration;

use tessera_proto::Welcome;

/// The `Welcome` the test masters send.
pub fn welcome() -> Welcome {
    Welcome::new("m", Duration::from_secs(1), Duration::from_secs(10))
}
