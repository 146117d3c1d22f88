//! The feed: every event the journal has written, in the order written,
//! for live views (the web page's task stream). An event reaches the feed
//! only after its transaction is written (and, for a durable change, after
//! its fsync), so a view never shows what the record does not hold.
//!
//! Bounded: a subscriber that falls more than [`CAPACITY`] events behind
//! loses the oldest and is told how many (`RecvError::Lagged`); the journal
//! never waits for a subscriber, and with none it clones nothing.

use tessera_proto::{EventEntry, TaskId};
use tokio::sync::broadcast;

use super::store::Entry;

/// Events a subscriber may fall behind by.
pub const CAPACITY: usize = 4096;

/// One written event.
pub type Written = (TaskId, EventEntry);

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Feed(broadcast::Sender<Written>);

impl Default for Feed {
    fn default() -> Self {
        Feed(broadcast::channel(CAPACITY).0)
    }
}

impl Feed {
    /// The events written from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Written> {
        self.0.subscribe()
    }

    /// Called by the journal once `entries` are written.
    pub(super) fn publish(&self, entries: &[Entry]) {
        if self.0.receiver_count() == 0 {
            return;
        }
        for e in entries {
            if let Some(event) = &e.event {
                let _ = self.0.send((e.task, event.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_proto::TaskEvent;

    use super::*;
    use crate::master::record::RowChange;

    #[test]
    fn subscribers_get_written_events_in_order_and_a_laggard_is_told() {
        let feed = Feed::default();
        let entry = |task: u64, at_ms: u64| Entry {
            task: TaskId(task),
            event: Some(EventEntry {
                at_ms,
                event: TaskEvent::Fetched,
            }),
            row: RowChange::Delete,
        };
        // Nobody listening: nothing kept.
        feed.publish(&[entry(1, 1)]);
        let mut rx = feed.subscribe();
        feed.publish(&[
            entry(2, 2),
            Entry {
                task: TaskId(3),
                event: None,
                row: RowChange::Delete,
            },
            entry(4, 4),
        ]);
        assert_eq!(rx.try_recv().unwrap().0, TaskId(2));
        assert_eq!(rx.try_recv().unwrap().0, TaskId(4));
        assert!(rx.try_recv().is_err());
        let many: Vec<Entry> = (0..CAPACITY as u64 + 10).map(|i| entry(i, i)).collect();
        feed.publish(&many);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
        assert_eq!(rx.try_recv().unwrap().0, TaskId(10));
    }
}
