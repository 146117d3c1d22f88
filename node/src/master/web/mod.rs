//! The master's web page (`--http`): upload images, watch them and the
//! cluster live, download the results, from a browser.
//!
//! * this file: the listener, the accept loop (a bounded number of
//!   connections, a deadline on every request head) and the routes;
//! * `auth.rs`: the token, its cookie, and the checks against cross-site
//!   requests; every route but `/health` needs the cookie;
//! * `page.rs`: the page itself, embedded in the binary (`page/`);
//! * `upload.rs`: an image streamed in, through the ledger like any
//!   client's submission;
//! * `download.rs`: one result, or every done result of a batch as a zip
//!   (`zip_stream.rs`);
//! * `control.rs`: cancel a task or a batch, a task's history;
//! * `uploads.rs`: the tasks submitted through the page, by batch;
//! * `live.rs`: once a second, what the page shows (cluster, queue,
//!   throughput, the page's tasks, the task stream), pushed to each open
//!   page by server-sent events; `task_stream.rs` builds the task stream
//!   from the record's feed.

mod auth;
mod control;
mod download;
mod live;
mod page;
mod refusal;
mod task_stream;
mod upload;
mod uploads;
mod zip_stream;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Ctx;

pub use auth::Token;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a browser has to send a request's head (also between requests on a
/// kept-alive connection).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Longest wait for the next part of an upload's body.
pub const BODY_IDLE_DEADLINE: Duration = Duration::from_secs(30);

/// A bound `--http` listener and the token that opens the page.
#[derive(Debug, Clone)]
pub struct WebConfig {
    listener: Arc<std::net::TcpListener>,
    addr: SocketAddr,
    token: Token,
}

/// `--http` could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the web page on {addr}: {source}")]
pub struct WebBindError {
    addr: SocketAddr,
    source: std::io::Error,
}

impl WebConfig {
    /// Binds `addr`; the page opens with `token`.
    pub fn bind(addr: SocketAddr, token: Token) -> Result<WebConfig, WebBindError> {
        let bind = || {
            let listener = std::net::TcpListener::bind(addr)?;
            let addr = listener.local_addr()?;
            Ok((listener, addr))
        };
        let (listener, addr) = bind().map_err(|source| WebBindError { addr, source })?;
        Ok(WebConfig {
            listener: Arc::new(listener),
            addr,
            token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open: the page's URL with its token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token.as_str())
    }
}

/// What every request handler shares.
#[derive(Debug)]
struct Web {
    ctx: Arc<Ctx>,
    token: Token,
    uploads: uploads::Uploads,
    /// Uploads being received at once (the binary protocol's
    /// `max_uploads_per_client`: the page is one client).
    upload_slots: Semaphore,
    live: live::Live,
    shutdown: CancellationToken,
}

type Shared = Arc<Web>;

fn routes(web: Shared) -> Router {
    let open = Router::new().route("/health", get(|| async { "ok\n" }));
    let guarded = Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/upload", post(upload::upload))
        .route("/api/events", get(live::events))
        .route("/api/tasks/{task}/result", get(download::result))
        .route("/api/tasks/{task}/history", get(control::history))
        .route("/api/tasks/{task}/cancel", post(control::cancel_task))
        .route("/api/batches/{batch}/zip", get(download::zip))
        .route("/api/batches/{batch}/cancel", post(control::cancel_batch))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            auth::guard,
        ));
    open.merge(guarded).with_state(web)
}

/// Serves the page until `shutdown`.
pub async fn serve(config: WebConfig, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let listener = match crate::master::metrics::http::tokio_listener(&config.listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot serve the web page on {}: {e}", config.addr);
            return;
        }
    };
    let web = Arc::new(Web {
        upload_slots: Semaphore::new(ctx.config.max_uploads_per_client),
        uploads: uploads::Uploads::default(),
        live: live::Live::default(),
        token: config.token.clone(),
        ctx,
        shutdown: shutdown.clone(),
    });
    info!(addr = %config.addr, "serving the web page at http://{}/", config.addr);
    tokio::spawn(live::run(web.clone()));
    let app = routes(web);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!("web accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "web connection refused: {MAX_CONNECTIONS} already open");
            continue; // dropped: closed at once
        };
        let _ = socket.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_DEADLINE)
                .serve_connection(TokioIo::new(socket), service);
            tokio::select! {
                served = conn => if let Err(e) = served {
                    debug!(%peer, "web connection: {e}");
                },
                () = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
}
