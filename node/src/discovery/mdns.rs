//! [`MdnsDiscovery`]: the [`Discovery`] of workers and clients without `--master`.

use std::time::Duration;

use futures::future::BoxFuture;
use tessera_proto::ClusterKey;

use super::{
    Discovery, DiscoveryError, Found,
    browse::{BrowseOptions, Browser},
    check_cluster,
    find::{FindParams, find},
    probe::{KeyProbe, Probe},
};

/// Browses mDNS for the masters of one cluster and finds the live one that
/// holds the cluster key (`probe`: [`KeyProbe`]).
#[derive(Debug)]
pub struct MdnsDiscovery<P = KeyProbe> {
    browser: Browser,
    params: FindParams,
    probe: P,
}

impl MdnsDiscovery {
    /// Starts browsing for the masters of `cluster` that hold `key`. Needs
    /// a tokio runtime.
    pub fn start(cluster: &str, key: &ClusterKey) -> Result<Self, DiscoveryError> {
        Self::with_options(
            FindParams::new(cluster),
            BrowseOptions::default(),
            KeyProbe::new(key.clone()),
        )
    }
}

impl<P: Probe> MdnsDiscovery<P> {
    pub fn with_options(
        params: FindParams,
        browse: BrowseOptions,
        probe: P,
    ) -> Result<Self, DiscoveryError> {
        check_cluster(&params.cluster)?;
        Ok(MdnsDiscovery {
            browser: Browser::start(browse)?,
            params,
            probe,
        })
    }
}

impl<P> MdnsDiscovery<P> {
    /// The browse underneath, e.g. to list every master seen.
    pub fn browser(&self) -> &Browser {
        &self.browser
    }
}

impl<P: Probe + std::fmt::Debug> Discovery for MdnsDiscovery<P> {
    fn find(&self, within: Duration) -> BoxFuture<'_, Result<Found, DiscoveryError>> {
        Box::pin(async move {
            let _searching = self.browser.searching();
            let mut table = self.browser.subscribe();
            find(&mut table, &self.params, &self.probe, within, || {
                self.browser.want_requery()
            })
            .await
        })
    }
}
