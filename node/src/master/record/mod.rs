//! The master's durable record of task events: the source of truth its
//! state is rebuilt from after a crash.
//!
//! * [`row`]: a task's durable current state.
//! * [`store`]: the storage seam ([`store::TaskStore`]) and its redb implementation.
//! * [`mem`]: the same seam in memory (the reference, and a store tests can
//!   slow down or fail); `conformance.rs` runs one suite against both.
//! * [`journal`]: group commit on a dedicated thread.
//! * [`feed`]: the events written, for live views.

#[cfg(test)]
mod conformance;
pub mod feed;
pub mod journal;
pub mod mem;
pub mod row;
pub mod store;

pub use journal::Journal;
pub use mem::MemStore;
pub use row::{RowState, Submitter, TaskRow};
pub use store::{Entry, Loaded, RedbStore, RowChange, StoreError, TaskStore};
