//! [`MdnsDiscovery`]: the [`Discovery`] of workers and clients without `--master`.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{
    Discovery, DiscoveryError, Found,
    browse::{BrowseOptions, Browser},
    check_cluster,
    find::{FindParams, find},
    probe::TcpProbe,
};

/// Browses mDNS for the masters of one cluster and finds the live one.
#[derive(Debug)]
pub struct MdnsDiscovery {
    browser: Browser,
    params: FindParams,
    probe: TcpProbe,
}

impl MdnsDiscovery {
    /// Starts browsing for the masters of `cluster`. Needs a tokio runtime.
    pub fn start(cluster: &str) -> Result<Self, DiscoveryError> {
        Self::with_options(FindParams::new(cluster), BrowseOptions::default())
    }

    pub fn with_options(params: FindParams, browse: BrowseOptions) -> Result<Self, DiscoveryError> {
        check_cluster(&params.cluster)?;
        Ok(MdnsDiscovery {
            browser: Browser::start(browse)?,
            params,
            probe: TcpProbe::default(),
        })
    }
}

impl MdnsDiscovery {
    /// The browse underneath, e.g. to list every master seen.
    pub fn browser(&self) -> &Browser {
        &self.browser
    }
}

impl Discovery for MdnsDiscovery {
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
