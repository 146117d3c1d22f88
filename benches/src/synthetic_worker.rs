//! The synthetic task mode of the load benchmark: a worker that speaks the
//! real worker protocol over a real TCP connection (handshake with the
//! cluster key, `Capacity`, `Ready` credits, `Started`, `Done` with the
//! result streamed back, heartbeats listing its leases) but does no image
//! work: it returns each input as its result the moment the input has
//! arrived. The master cannot tell it from a real worker with infinitely
//! fast threads, so what is measured is the master alone: scheduling,
//! leases, the task record, the files and the network.
//!
//! Each worker measures its **lease latency**: from granting a credit (a
//! `Ready`) to receiving the `Assign` that used it, credits being used in
//! the order they were granted. With work queued, that is how long a worker
//! that asked waits for the master.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use tessera_proto::{
    ClusterKey, LeaseRef, Msg, ProtoError, Role, TaskId,
    dial::{DialOptions, Dialed, dial},
    net::Tcp,
};
use tokio::sync::{Barrier, watch};

/// What one synthetic worker did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Results the master acknowledged (`Accepted`).
    pub accepted: u64,
    /// Lease latencies, in microseconds.
    pub lease_latency_us: Vec<u32>,
}

/// A task being received or returned.
struct Held {
    attempt: u32,
    len: u64,
    data: BytesMut,
    /// The whole input arrived and its result was sent.
    returned: bool,
}

/// Where a synthetic worker connects and how it starts and stops.
#[derive(Debug, Clone)]
pub struct Setup {
    pub addr: String,
    pub key: ClusterKey,
    /// Tasks held at once (threads plus prefetch, for a real worker).
    pub credits: u32,
    /// Every worker connects, then waits here before asking for work, so
    /// that connecting is not timed.
    pub start: Arc<Barrier>,
    /// Results acknowledged by the master, over all workers.
    pub accepted: Arc<AtomicU64>,
    /// Turns true when the workers are to stop.
    pub stop: watch::Receiver<bool>,
}

/// Connects as a worker named `name` and works until `setup.stop` turns
/// true, returning each input as its result at once.
pub async fn run(setup: Setup, name: String) -> anyhow::Result<WorkerReport> {
    let Setup {
        addr,
        key,
        credits,
        start,
        accepted,
        mut stop,
    } = setup;
    let dialed = dial(
        &Tcp::default(),
        &addr,
        Role::Worker,
        &name,
        &key,
        DialOptions::default(),
    )
    .await;
    // Reach the barrier even when dialing failed, so the others are not stuck.
    start.wait().await;
    let Dialed {
        mut reader,
        mut writer,
        welcome,
    } = dialed?;
    let mut heartbeat = tokio::time::interval(Duration::from_millis(u64::from(
        welcome.heartbeat_interval_ms.max(10),
    )));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = WorkerReport::default();
    let mut granted: VecDeque<Instant> = VecDeque::new();
    let mut held: HashMap<TaskId, Held> = HashMap::new();
    writer
        .feed(&Msg::Capacity {
            threads: credits,
            synthetic: true,
        })
        .await?;
    writer.send(&Msg::Ready { credits }).await?;
    let now = Instant::now();
    granted.extend(std::iter::repeat_n(now, credits as usize));
    loop {
        tokio::select! {
            next = reader.recv() => {
                let incoming = next?;
                match incoming.msg {
                    Msg::Assign { task, attempt, len, .. } => {
                        if let Some(asked) = granted.pop_front() {
                            let us = asked.elapsed().as_micros().min(u128::from(u32::MAX));
                            report.lease_latency_us.push(us as u32);
                        }
                        held.insert(task, Held { attempt, len, data: BytesMut::new(), returned: false });
                        if len == 0 {
                            give_back(&mut writer, &mut held, task).await?;
                        }
                    }
                    Msg::Chunk { stream } => {
                        let task = TaskId(stream);
                        let Some(h) = held.get_mut(&task) else { continue };
                        h.data.extend_from_slice(&incoming.payload);
                        if h.data.len() as u64 >= h.len {
                            give_back(&mut writer, &mut held, task).await?;
                        }
                    }
                    Msg::Accepted { task } => {
                        if held.remove(&task).is_some() {
                            report.accepted += 1;
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        writer.send(&Msg::Ready { credits: 1 }).await?;
                        granted.push_back(Instant::now());
                    }
                    Msg::Release { task, attempt } => {
                        // Stealing: give back a task whose input is still arriving.
                        if held.get(&task).is_some_and(|h| !h.returned) {
                            held.remove(&task);
                            writer.send(&Msg::Released { task, attempt }).await?;
                            writer.send(&Msg::Ready { credits: 1 }).await?;
                            granted.push_back(Instant::now());
                        } else {
                            writer.send(&Msg::Released { task, attempt }).await?;
                        }
                    }
                    Msg::Drop { task, .. } if held.remove(&task).is_some() => {
                        writer.send(&Msg::Ready { credits: 1 }).await?;
                        granted.push_back(Instant::now());
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                let leases = held
                    .iter()
                    .map(|(&task, h)| LeaseRef { task, attempt: h.attempt })
                    .collect();
                writer.send(&Msg::Heartbeat { leases }).await?;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(report);
                }
            }
        }
    }
}

/// Returns a task's input as its result: `Started`, `Done` and the bytes.
async fn give_back<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut tessera_proto::FrameWriter<W>,
    held: &mut HashMap<TaskId, Held>,
    task: TaskId,
) -> Result<(), ProtoError> {
    let Some(h) = held.get_mut(&task) else {
        return Ok(());
    };
    h.returned = true;
    let data: Bytes = std::mem::take(&mut h.data).freeze();
    let attempt = h.attempt;
    writer.feed(&Msg::Started { task, attempt }).await?;
    writer
        .feed(&Msg::Done {
            task,
            attempt,
            len: data.len() as u64,
            checksum: tessera_proto::checksum(&data),
        })
        .await?;
    if data.is_empty() {
        writer.flush().await
    } else {
        writer.send_stream(task.0, &data).await
    }
}
