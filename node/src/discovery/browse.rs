//! [`Browser`]: an mDNS daemon browsing for masters, and the task that keeps
//! its view ([`Table`]) current.
//!
//! mdns-sd's daemon thread blocks when a browse channel is full, so the task
//! drains it continuously. While some search lacks a live master it restarts
//! the browse every `requery` (a fresh query, and the daemon's cache replayed
//! into a cleared table), instead of relying on the daemon's query backoff.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use mdns_sd::{IfKind, Receiver, ServiceDaemon, ServiceEvent};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{DiscoveryError, MasterRecord, SERVICE_TYPE, find::Table};

/// Pacing and scope of the browse.
#[derive(Debug, Clone)]
pub struct BrowseOptions {
    /// Shortest time between two restarts of the browse, which happen only
    /// while a search is missing a live master.
    pub requery: Duration,
    /// Interfaces to browse on; `None`: all of them.
    pub interfaces: Option<Vec<IfKind>>,
}

impl Default for BrowseOptions {
    fn default() -> Self {
        BrowseOptions {
            requery: Duration::from_secs(2),
            interfaces: None,
        }
    }
}

/// A running browse for `_tessera._tcp.local.`. Dropping it stops the task and
/// shuts the daemon down.
pub struct Browser {
    daemon: ServiceDaemon,
    table: watch::Receiver<Table>,
    hungry: Arc<Hungry>,
    stop: CancellationToken,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("records", &self.table.borrow().records.len())
            .finish_non_exhaustive()
    }
}

/// Searches under way, and whether one of them missed since the last query.
#[derive(Debug, Default)]
struct Hungry {
    searching: AtomicUsize,
    missed: AtomicBool,
    wake: Notify,
}

/// Counts as a search under way while it lives; see [`Browser::searching`].
#[derive(Debug)]
pub struct Searching(Arc<Hungry>);

impl Drop for Searching {
    fn drop(&mut self) {
        self.0.searching.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Browser {
    /// Starts the daemon and the browse. Needs a tokio runtime.
    pub fn start(options: BrowseOptions) -> Result<Browser, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        if let Some(interfaces) = options.interfaces.clone() {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(interfaces)?;
        }
        let events = daemon.browse(SERVICE_TYPE)?;
        let (tx, table) = watch::channel(Table::new(Instant::now()));
        let hungry = Arc::new(Hungry::default());
        let stop = CancellationToken::new();
        tokio::spawn(drain(
            daemon.clone(),
            events,
            tx,
            hungry.clone(),
            options,
            stop.clone(),
        ));
        Ok(Browser {
            daemon,
            table,
            hungry,
            stop,
        })
    }

    /// A view of the table that can wait for changes.
    pub fn subscribe(&self) -> watch::Receiver<Table> {
        self.table.clone()
    }

    /// Every master seen right now.
    pub fn snapshot(&self) -> Vec<MasterRecord> {
        self.table.borrow().records.values().cloned().collect()
    }

    /// Marks a search under way until the guard is dropped. Only while one
    /// is, a miss ([`Browser::want_requery`]) restarts the browse.
    pub fn searching(&self) -> Searching {
        self.hungry.searching.fetch_add(1, Ordering::Relaxed);
        Searching(self.hungry.clone())
    }

    /// Asks for a fresh query soon: a search found no live master.
    pub fn want_requery(&self) {
        self.hungry.missed.store(true, Ordering::Relaxed);
        self.hungry.wake.notify_one();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The task first, so that it does not take the closing channel for a
        // failure; then the daemon (this only queues a command).
        self.stop.cancel();
        let _ = self.daemon.shutdown();
    }
}

async fn drain(
    daemon: ServiceDaemon,
    mut events: Receiver<ServiceEvent>,
    table: watch::Sender<Table>,
    hungry: Arc<Hungry>,
    options: BrowseOptions,
    stop: CancellationToken,
) {
    let mut last_query = Instant::now();
    let mut tick = tokio::time::interval(options.requery);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            event = events.recv_async() => {
                match event {
                    Ok(event) => apply(&table, event),
                    Err(_) => {
                        // The daemon dropped our channel; browse again unless it is gone.
                        warn!("mDNS browse channel closed; browsing again");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(options.requery) => {}
                        }
                        match restart(&daemon, &table) {
                            Some(e) => events = e,
                            None => return,
                        }
                        last_query = Instant::now();
                    }
                }
                false
            }
            () = hungry.wake.notified() => true,
            _ = tick.tick() => true,
        };
        if due
            && last_query.elapsed() >= options.requery
            && hungry.searching.load(Ordering::Relaxed) > 0
            && hungry.missed.swap(false, Ordering::Relaxed)
        {
            debug!("no live master known: querying again");
            match restart(&daemon, &table) {
                Some(e) => events = e,
                None => return,
            }
            last_query = Instant::now();
        }
    }
}

/// Restarts the browse: the table is cleared and refilled from the daemon's
/// cache (and the answers to the new query). `None` when the daemon is gone.
fn restart(daemon: &ServiceDaemon, table: &watch::Sender<Table>) -> Option<Receiver<ServiceEvent>> {
    let _ = daemon.stop_browse(SERVICE_TYPE);
    match daemon.browse(SERVICE_TYPE) {
        Ok(events) => {
            table.send_replace(Table::new(Instant::now()));
            Some(events)
        }
        Err(e) => {
            debug!("mDNS browse stopped: {e}");
            None
        }
    }
}

fn apply(table: &watch::Sender<Table>, event: ServiceEvent) {
    match event {
        ServiceEvent::ServiceResolved(svc) => match MasterRecord::from_resolved(&svc) {
            Some(r) => {
                debug!(master = %r, cluster = %r.cluster, version = ?r.version, "mDNS: master seen");
                table.send_if_modified(|t| {
                    let old = t.records.insert(r.fullname.clone(), r.clone());
                    old.as_ref() != Some(&r)
                });
            }
            None => debug!(name = %svc.fullname, "mDNS: not a tessera master (no cluster)"),
        },
        ServiceEvent::ServiceRemoved(_, fullname) => {
            debug!(name = %fullname, "mDNS: master gone");
            table.send_if_modified(|t| t.records.remove(&fullname).is_some());
        }
        _ => {}
    }
}
