//! Shared by the handshake tests.

use tessera_proto::Welcome;

/// The `Welcome` the test masters send.
pub fn welcome() -> Welcome {
    Welcome {
        version: tessera_proto::PROTOCOL_VERSION,
        master_id: "m".into(),
        heartbeat_interval_ms: 1000,
        lease_timeout_ms: 10_000,
    }
}
