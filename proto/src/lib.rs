//! tessera's wire protocol.
//!
//! * [`frame`]: 4-byte big-endian length-prefixed frames with a maximum size.
//! * [`wire`]: the only module that knows bincode; every decode has a byte limit.
//! * [`handshake`]: the first frames (`Hello`, the Noise handshake) and their answers.
//! * [`key`]: the cluster key (load, create with mode 0600, fingerprint, the Noise PSK).
//! * [`noise`]: the Noise protocol (NNpsk0, X25519, AES-256-GCM, SHA-256) and its keys.
//! * [`secure`]: the encrypted record layer under the frames after the handshake.
//! * [`accept`]: the master's side of the handshake, with a deadline.
//! * [`message`]: every message after the handshake ([`Msg`]).
//! * [`task`]: task ids, states and failure kinds.
//! * [`cluster`]: the live view of a cluster (`tessera cluster`, `tessera top`).
//! * [`conn`]: the typed frame reader over any async byte stream.
//! * [`frame_writer`]: the typed frame writer; a chunk's payload is written from its own buffer.
//! * [`net`]: the network seam (dialer, listener, connection; TCP by default).
//! * [`dial`]: connect to a master and handshake, with deadlines.
//! * [`mod@checksum`]: the end-to-end checksum and the default idempotency key.
//! * [`outgoing`]: a connection's writer that sends control messages ahead of (and between the chunks of) uploads.
//! * [`stream`]: reassembly of chunked byte streams with a declared length.
//! * [`liveness`]: telling a silent (hung or cut off) peer from a quiet one.

pub mod accept;
pub mod backoff;
pub mod checksum;
pub mod cluster;
pub mod conn;
pub mod determinism;
pub mod dial;
pub mod error;
pub mod frame;
pub mod frame_writer;
pub mod handshake;
pub mod key;
pub mod liveness;
pub mod message;
pub mod net;
pub mod noise;
pub mod outgoing;
pub mod secure;
pub mod stream;
pub mod task;
pub mod wire;

pub use checksum::{Checksummer, SubmissionKeyer, checksum, submission_key};
pub use cluster::{ClusterInfo, TaskCounts, Throughput, WorkerInfo};
pub use conn::{FrameReader, Incoming};
pub use error::{DecodeError, ProtoError};
pub use frame::{DEFAULT_MAX_CONTROL_FRAME, DEFAULT_MAX_FRAME, FrameLimits, HANDSHAKE_MAX_FRAME};
pub use frame_writer::FrameWriter;
pub use handshake::{Hello, HelloReply, Refusal, Role, Welcome};
pub use key::{ClusterKey, KEY_FILE_ENV, KEY_FILE_NAME, KeyError};
pub use liveness::Liveness;
pub use message::{ANONYMOUS_SUBMITTER, ErrorCode, LeaseRef, MAX_CHUNK, Msg, StreamId};
pub use task::{EventEntry, FailureKind, TaskEvent, TaskId, TaskInfo, TaskState};

/// The first four bytes of every connection's first frame.
pub const MAGIC: [u8; 4] = *b"TSRA";

/// Bumped on every change to [`Msg`] or the frame layout.
pub const PROTOCOL_VERSION: u16 = 10;
