//! Answers Prometheus scrapes: `GET /metrics` (HTTP/1.x) gets the text
//! format, with the gauges set from the live view first. One request per
//! connection (`Connection: close`), a bounded request head, a deadline,
//! and a bounded number of connections at once. Also runs the recorder's
//! upkeep (draining histogram samples) every few seconds, so memory stays
//! bounded when nobody scrapes.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Exporter, set_gauges};
use crate::master::Ctx;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a scraper has to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A tokio listener on a copy of the bound `listener` (the master binds
/// its HTTP listeners at start, before the runtime serves them).
pub(crate) fn tokio_listener(listener: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    let l = listener.try_clone()?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// Serves scrapes until `shutdown`.
pub async fn serve(exporter: Exporter, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let listener = match tokio_listener(&exporter.listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot serve metrics on {}: {e}", exporter.addr);
            return;
        }
    };
    info!(addr = %exporter.addr, "serving metrics at http://{}/metrics", exporter.addr);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        continue; // dropped: closed at once
                    };
                    let (exporter, ctx) = (exporter.clone(), ctx.clone());
                    tokio::spawn(async move {
                        if let Err(e) = answer(socket, &exporter, &ctx).await {
                            debug!("metrics request: {e}");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = upkeep.tick() => exporter.handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

/// The request line of a request head: method and path.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    (version.starts_with("HTTP/1.") && parts.next().is_none()).then_some((method, path))
}

/// What to answer: status line, content type, body.
fn respond(method: &str, path: &str, render: impl FnOnce() -> String) -> (&'static str, String) {
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", render()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "not found; the metrics are at /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "only GET /metrics\n".into()),
    }
}

async fn answer(mut socket: TcpStream, exporter: &Exporter, ctx: &Ctx) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(READ_DEADLINE, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = socket.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Err(std::io::Error::other("incomplete or oversized request"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::Error::other("request not sent in time")),
    }
    let (status, body) = match request_line(&head) {
        Some((method, path)) => {
            let head_only = method == "HEAD";
            let (status, body) = respond(method, path, || {
                set_gauges(&ctx.state.snapshot(&ctx.config.master_id));
                exporter.handle.render()
            });
            (status, if head_only { String::new() } else { body })
        }
        None => ("400 Bad Request", "not an HTTP/1 request\n".into()),
    };
    let content_type = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_is_method_path_and_an_http1_version() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(request_line(head), Some(("GET", "/metrics")));
        assert_eq!(request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_line(b"GET /metrics HTTP/2\r\n\r\n"), None);
        assert_eq!(request_line(b"\xff\xfe\r\n\r\n"), None);
    }

    #[test]
    fn only_get_metrics_renders() {
        let render = || "text".to_string();
        assert_eq!(
            respond("GET", "/metrics", render),
            ("200 OK", "text".into())
        );
        assert_eq!(respond("GET", "/metrics?x=1", render).0, "200 OK");
        assert_eq!(respond("GET", "/", render).0, "404 Not Found");
        assert_eq!(
            respond("POST", "/metrics", render).0,
            "405 Method Not Allowed"
        );
    }
}
