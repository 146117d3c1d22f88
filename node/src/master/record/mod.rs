//! The master's durable record of task events: the source of truth its
//! state is rebuilt from after a crash.
//!
//! * [`row`]: a task's durable current state.
//! * [`store`]: the storage seam ([`store::TaskStore`]) and its redb implementation.
//! * [`journal`]: group commit on a dedicated thread.

pub mod journal;
pub mod row;
pub mod store;

pub use journal::Journal;
pub use row::{RowState, Submitter, TaskRow};
pub use store::{Entry, Loaded, RedbStore, RowChange, StoreError, TaskStore};
