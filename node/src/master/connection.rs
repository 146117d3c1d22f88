//! One accepted connection, whatever its role: a delay for an address whose
//! handshakes keep failing, a place among the handshakes in progress (or a
//! typed `Busy`), the handshake, the idle watchdog, and the connection's one
//! writer (`tessera_proto::outgoing`: control first for a client, in order
//! for a worker) beside the role's own serving loop.

use std::{sync::Arc, time::Duration};

use tessera_proto::{
    FrameLimits, FrameReader, FrameWriter, HelloReply, Refusal, Role, Welcome,
    accept::{AcceptOptions, Accepted, accept},
    net::Connection,
    outgoing,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Ctx,
    activity::{self, Activity, Tracked},
    admission, client_conn, stored_file, worker_conn,
};

pub(super) async fn refuse_busy<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    limit: usize,
) {
    let reply = HelloReply::Refused(Refusal::Busy {
        limit: limit as u32,
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.send_hello_reply(&reply)).await;
}

pub(super) async fn serve(
    ctx: Arc<Ctx>,
    Connection { read, write, peer }: Connection,
    shutdown: CancellationToken,
    share: admission::Share,
) {
    let activity = Activity::new();
    let reader =
        FrameReader::with_limits(Tracked::new(read, activity.clone()), FrameLimits::HANDSHAKE);
    let mut writer = FrameWriter::new(Tracked::new(write, activity.clone()), ctx.config.max_frame);
    // An address whose handshakes keep failing waits before it is answered,
    // holding its own share of handshakes but no slot of the shared pool.
    let delay = ctx.failures.delay(peer.ip(), ctx.config.clock.now());
    if !delay.is_zero() {
        debug!(%peer, ?delay, "slowing down an address with failed handshakes");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
    let handshaking = match ctx.admission.handshake(share) {
        Ok(h) => h,
        Err(limit) => {
            debug!(%peer, limit, "refusing a connection: at the limit of handshakes");
            refuse_busy(&mut writer, limit).await;
            return;
        }
    };
    let welcome = Welcome::new(
        ctx.config.master_id.clone(),
        ctx.config.heartbeat_interval,
        ctx.config.scheduler.lease_timeout,
    );
    let options = AcceptOptions {
        timeout: ctx.config.handshake_timeout,
        limits: FrameLimits {
            max_frame: ctx.config.max_frame,
            max_control: ctx.config.max_control_frame,
        },
    };
    let peer_name = peer.to_string();
    let accepted = accept(
        reader,
        writer,
        &ctx.config.key,
        welcome,
        options,
        &peer_name,
    )
    .await;
    let Accepted {
        hello,
        reader,
        writer,
    } = match accepted {
        Ok(accepted) => {
            ctx.failures.succeeded(peer.ip());
            accepted
        }
        Err(e) => {
            ctx.failures.failed(peer.ip(), ctx.config.clock.now());
            match e {
                tessera_proto::accept::AcceptError::Proto(e) => {
                    debug!(%peer, "no handshake: {e}")
                }
                e => warn!(%peer, "handshake failed: {e}"),
            }
            return;
        }
    };
    drop(handshaking);
    // From here on, an idle connection is closed: the watchdog cancels the
    // connection's own token (and stops when the connection ends).
    let shutdown = shutdown.child_token();
    let _watchdog = shutdown.clone().drop_guard();
    tokio::spawn(activity::watch(
        activity.clone(),
        ctx.config.idle_timeout,
        shutdown.clone(),
    ));
    // One writer per connection (`tessera_proto::outgoing`): a client's
    // replies go ahead of its downloads; a worker's queue keeps its order.
    let writer_task = match hello.role {
        Role::Client => {
            debug!(%peer, node = %hello.node_id, "client connected");
            let capacity = CLIENT_QUEUE_CAPACITY;
            let (out, writer) = outgoing::outgoing(writer, capacity, capacity, None);
            let writer_task = tokio::spawn(log_writer_end(peer, writer));
            client_conn::serve(ctx, reader, out, shutdown, activity).await;
            writer_task
        }
        Role::Worker => {
            let capacity = worker_queue_capacity(ctx.config.scheduler.max_credits);
            let (out, writer) = outgoing::in_order(writer, capacity, None);
            let writer_task = tokio::spawn(log_writer_end(peer, writer));
            worker_conn::serve(ctx, hello.node_id, peer, reader, out, shutdown).await;
            writer_task
        }
    };
    let _ = writer_task.await;
}

/// Capacity of each of a client connection's outgoing queues (messages,
/// and stored files).
const CLIENT_QUEUE_CAPACITY: usize = 64;

/// Outgoing queue capacity for a worker connection with `max_credits`: at
/// most one assignment per credit plus one acknowledgement per result.
pub(crate) fn worker_queue_capacity(max_credits: u32) -> usize {
    2 * max_credits as usize + 16
}

/// Runs a connection's writer; how it ended is only worth a debug line
/// (the reader sees the same connection end and says why).
async fn log_writer_end(
    peer: std::net::SocketAddr,
    writer: impl std::future::Future<Output = Result<(), stored_file::SendFileError>>,
) {
    if let Err(e) = writer.await {
        debug!(%peer, "connection writer stopped: {e}");
    }
}
