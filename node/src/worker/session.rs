//! One connection from a worker to its master: handshake, grant credits,
//! receive assigned images, process them, stream results back.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_proto::{
    FailureKind, Msg, ProtoError, Refusal, Role, TaskId,
    dial::{DialError, DialOptions, Dialed, dial},
    stream::{Collector, Progress},
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{WorkerConfig, compute::Compute};

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Lost the master: reconnect with backoff.
    #[error("{0}")]
    Connection(#[from] ProtoError),
    /// Could not connect or handshake (a refusal included).
    #[error(transparent)]
    Dial(#[from] DialError),
}

impl SessionError {
    /// True when retrying cannot help: the master speaks another protocol.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SessionError::Dial(DialError::Refused(
                Refusal::VersionMismatch { .. } | Refusal::BadMagic
            ))
        )
    }
}

enum Out {
    Msg(Msg),
    Result {
        task: TaskId,
        attempt: u32,
        data: Bytes,
    },
}

struct Pending {
    attempt: u32,
    body: Body,
}

enum Body {
    Collect(Collector),
    /// Over the size limit: the chunks are counted and dropped.
    Discard(Progress),
}

/// Connects, handshakes, and works until the connection ends or `shutdown`.
/// Returns `Ok(())` only on shutdown.
pub async fn run(
    config: &WorkerConfig,
    compute: &Compute,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let addr = config.master.clone();
    let options = DialOptions {
        connect_timeout: config.connect_timeout,
        handshake_timeout: config.handshake_timeout,
        max_frame: tessera_proto::DEFAULT_MAX_FRAME,
    };
    let Dialed {
        mut reader,
        mut writer,
        welcome,
    } = dial(&addr, Role::Worker, &config.node_id, options).await?;
    info!(master = %addr, master_id = %welcome.master_id, threads = config.threads, "connected to master");

    let (out_tx, mut out_rx) = mpsc::channel::<Out>(config.threads + config.prefetch + 4);
    let writer_task = tokio::spawn(async move {
        while let Some(item) = out_rx.recv().await {
            match item {
                Out::Msg(m) => writer.send(&m).await?,
                Out::Result {
                    task,
                    attempt,
                    data,
                } => {
                    writer
                        .feed(&Msg::Done {
                            task,
                            attempt,
                            len: data.len() as u64,
                        })
                        .await?;
                    writer.send_stream(task.0, &data).await?;
                }
            }
        }
        Ok::<_, ProtoError>(())
    });
    let credits = (config.threads + config.prefetch) as u32;
    out_tx
        .send(Out::Msg(Msg::Ready { credits }))
        .await
        .map_err(|_| ProtoError::Closed)?;

    let running = Arc::new(Semaphore::new(config.threads));
    let mut jobs = JoinSet::new();
    let mut pending: HashMap<TaskId, Pending> = HashMap::new();
    let result = loop {
        let next = tokio::select! {
            next = reader.recv() => next,
            () = shutdown.cancelled() => break Ok(()),
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                if let Err(e) = done {
                    warn!("a task's job ended abnormally: {e}");
                }
                continue;
            }
        };
        let incoming = match next {
            Ok(i) => i,
            Err(ProtoError::Decode(e)) => {
                warn!("undecodable message from master: {e}");
                continue;
            }
            Err(e) => break Err(SessionError::Connection(e)),
        };
        match incoming.msg {
            Msg::Assign {
                task,
                attempt,
                name,
                len,
            } => {
                debug!(%task, attempt, %name, len, "assigned");
                let body = if len > config.max_image_bytes {
                    Body::Discard(Progress::new(len))
                } else {
                    Body::Collect(Collector::new(len))
                };
                let p = Pending { attempt, body };
                if len == 0 {
                    spawn_job(
                        &mut jobs,
                        compute,
                        &running,
                        &out_tx,
                        task,
                        attempt,
                        Bytes::new(),
                    );
                } else {
                    pending.insert(task, p);
                }
            }
            Msg::Chunk { stream } => {
                let task = TaskId(stream);
                let Some(p) = pending.get_mut(&task) else {
                    warn!(%task, "chunk for a task that was not assigned");
                    continue;
                };
                let pushed = match &mut p.body {
                    Body::Collect(c) => c.push(incoming.payload).map(|d| d.map(Some)),
                    Body::Discard(progress) => progress
                        .add(incoming.payload.len())
                        .map(|done| done.then_some(None)),
                };
                match pushed {
                    Ok(None) => {}
                    Ok(Some(Some(data))) => {
                        let p = pending.remove(&task).expect("present");
                        spawn_job(&mut jobs, compute, &running, &out_tx, task, p.attempt, data);
                    }
                    Ok(Some(None)) => {
                        let p = pending.remove(&task).expect("present");
                        let reason = format!(
                            "image too large: over the worker's limit of {} bytes",
                            config.max_image_bytes
                        );
                        let kind = FailureKind::TooLarge;
                        let msg = Msg::Failed {
                            task,
                            attempt: p.attempt,
                            kind,
                            reason,
                        };
                        // Never block the reading loop on the writer.
                        let out = out_tx.clone();
                        jobs.spawn(async move {
                            if out.send(Out::Msg(msg)).await.is_ok() {
                                let _ = out.send(Out::Msg(Msg::Ready { credits: 1 })).await;
                            }
                        });
                    }
                    Err(e) => {
                        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
                        break Err(SessionError::Connection(ProtoError::Io(e)));
                    }
                }
            }
            Msg::Accepted { task } => debug!(%task, "master stored the outcome"),
            Msg::Error { code, message, .. } => warn!(?code, "master reported an error: {message}"),
            other => warn!("unexpected {} from master", other.name()),
        }
    };
    jobs.abort_all();
    drop(out_tx);
    writer_task.abort();
    result
}

fn spawn_job(
    jobs: &mut JoinSet<()>,
    compute: &Compute,
    running: &Arc<Semaphore>,
    out: &mpsc::Sender<Out>,
    task: TaskId,
    attempt: u32,
    input: Bytes,
) {
    let compute = compute.clone();
    let running = running.clone();
    let out = out.clone();
    jobs.spawn(async move {
        let Ok(_permit) = running.acquire_owned().await else {
            return;
        };
        let started = std::time::Instant::now();
        let msg = match compute.process(input).await {
            Ok(data) => {
                debug!(%task, ms = started.elapsed().as_millis() as u64, "processed");
                Out::Result {
                    task,
                    attempt,
                    data,
                }
            }
            Err(f) => {
                info!(%task, "cannot process: {}", f.reason);
                Out::Msg(Msg::Failed {
                    task,
                    attempt,
                    kind: f.kind,
                    reason: f.reason,
                })
            }
        };
        if out.send(msg).await.is_ok() {
            let _ = out.send(Out::Msg(Msg::Ready { credits: 1 })).await;
        }
    });
}

/// Jittered exponential backoff between reconnect attempts.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    let jitter = rand::random::<f64>() * 0.5 + 0.5; // 50–100 %
    exp.mul_f64(jitter)
}
