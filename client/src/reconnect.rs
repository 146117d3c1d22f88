//! A connection that comes back: operations that fail because the master
//! went away (restart, crash, network) are retried on a new connection, with
//! jittered exponential backoff, for up to `max_outage`. Operations must be
//! safe to repeat: submissions carry an idempotency key, and waits, fetches
//! and confirmations are naturally repeatable.
//!
//! Where to reconnect is asked of a [`Resolve`] before every reconnection,
//! so a master that came back on another address is reached. This library
//! finds nothing itself ([`FixedAddr`] is the address it was given); the
//! `tessera` command line supplies one over mDNS discovery.

use std::{
    fmt::Debug,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tessera_proto::{ClusterKey, backoff::Backoff};
use tokio::{sync::Semaphore, time::Instant};
use tracing::{info, warn};

use crate::{Client, ClientConfig, ClientError, error::Retry};

/// The addresses a [`Resolve`] gives, in the order to try them.
pub type Resolved<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, ClientError>> + Send + 'a>>;

/// Where the master is now, asked before every reconnection.
pub trait Resolve: Send + Sync + Debug {
    /// The addresses to try, in order; [`ClientError::NotFound`] if there is
    /// no master to be seen now (it may come back).
    fn resolve(&self) -> Resolved<'_>;
}

/// A master at a fixed address: it cannot move, so a reconnection tries
/// that address again.
#[derive(Debug, Clone)]
pub struct FixedAddr(pub String);

impl Resolve for FixedAddr {
    fn resolve(&self) -> Resolved<'_> {
        let addr = self.0.clone();
        Box::pin(async move { Ok(vec![addr]) })
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Reconnecting {
    /// The address of the connection made last.
    addr: Mutex<String>,
    resolver: Box<dyn Resolve>,
    key: ClusterKey,
    config: ClientConfig,
    current: Mutex<Option<Arc<Client>>>,
    /// One reconnection at a time.
    connecting: Semaphore,
    max_outage: Duration,
    /// The current outage has been reported (once, however many operations
    /// it interrupts); cleared by a reconnection.
    reported: AtomicBool,
    /// The master's disk refusing data has been reported (once, however
    /// many operations it refuses); cleared when a refused one succeeds.
    storage_reported: AtomicBool,
}

impl Reconnecting {
    /// Connects now (failing at once if the master is not there), and later
    /// reconnects for up to `max_outage` per outage.
    pub async fn connect(
        addr: &str,
        key: &ClusterKey,
        config: ClientConfig,
        max_outage: Duration,
    ) -> Result<Self, ClientError> {
        let client = Client::connect_with(addr, key, config.clone()).await?;
        Ok(Reconnecting {
            addr: Mutex::new(addr.to_string()),
            resolver: Box::new(FixedAddr(addr.to_string())),
            key: key.clone(),
            config,
            current: Mutex::new(Some(Arc::new(client))),
            connecting: Semaphore::new(1),
            max_outage,
            reported: AtomicBool::new(false),
            storage_reported: AtomicBool::new(false),
        })
    }

    /// Reconnects where `resolver` says the master is then, instead of at
    /// the first connection's address.
    pub fn with_resolver(mut self, resolver: Box<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The address of the master's last connection.
    pub fn addr(&self) -> String {
        self.addr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn cached(&self) -> Option<Arc<Client>> {
        let g = self.current.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().filter(|c| c.is_connected()).cloned()
    }

    /// A live connection, connecting if needed.
    async fn client(&self) -> Result<Arc<Client>, ClientError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _permit = self.connecting.acquire().await.expect("never closed");
        // Someone else may have reconnected while we waited.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let (addr, client) = self.connect_resolved().await?;
        let client = Arc::new(client);
        info!(master = %addr, "reconnected to the master");
        self.reported.store(false, Ordering::Relaxed);
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = addr;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    /// Connects to the first address the resolver gives that accepts.
    async fn connect_resolved(&self) -> Result<(String, Client), ClientError> {
        let mut unreachable = None;
        for addr in self.resolver.resolve().await? {
            match Client::connect_with(&addr, &self.key, self.config.clone()).await {
                Ok(c) => return Ok((addr, c)),
                // Another address of the same master may work; a refusal will not.
                Err(e @ ClientError::Connect { .. }) => unreachable = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(unreachable.unwrap_or_else(|| ClientError::NotFound("no address given".into())))
    }

    /// Runs `op` on a live connection, retrying as [`ClientError::retry`]
    /// says: on a new connection while the master is unreachable, for up to
    /// `max_outage`; on the same one, after a pause, while the master
    /// answers that it cannot do it now (`Busy`, for as long as it says so;
    /// `Storage`, its disk refusing the data, for up to `max_outage`).
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut outage: Option<Instant> = None;
        let mut refused: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut later = Backoff::new(Duration::from_millis(20), Duration::from_secs(2));
        loop {
            let result = match self.client().await {
                Ok(c) => op(c).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(v) => {
                    if refused.is_some() {
                        self.storage_reported.store(false, Ordering::Relaxed);
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            match e.retry() {
                Retry::Reconnect => {
                    let since = *outage.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.max_outage {
                        return Err(e);
                    }
                    if !self.reported.swap(true, Ordering::Relaxed) {
                        warn!(
                            "lost the master ({e}); retrying for up to {:?}",
                            self.max_outage
                        );
                    }
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Retry::Later { bounded } => {
                    if bounded {
                        let since = *refused.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.max_outage {
                            return Err(e);
                        }
                        if !self.storage_reported.swap(true, Ordering::Relaxed) {
                            warn!("{e}; retrying for up to {:?}", self.max_outage);
                        }
                    }
                    tokio::time::sleep(later.next_pause()).await;
                }
                Retry::Never => return Err(e),
            }
        }
    }
}
