//! One connection from a worker to its master: handshake, announce capacity
//! and grant credits (pull), receive assigned images, run at most `threads`
//! at once, stream results back, send heartbeats on a timer of the master's
//! choosing, give unstarted tasks back when asked (stealing) or when
//! draining.
//!
//! The session's loop never waits on an upload: finished results wait in
//! its own queue (`pending`) and go to the writer one at a time as it takes
//! them, so heartbeats, which name every task held until the master accepts
//! its outcome, keep their interval however slowly the master reads. A
//! result keeps its slot (no credit for it) until the writer takes it, so
//! the results held in memory stay bounded by the slots.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_proto::{
    FailureKind, Liveness, Msg, ProtoError, Refusal, Role, TaskId,
    dial::{DialError, DialOptions, Dialed, dial},
    outgoing::{Outgoing, outgoing},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    WorkerConfig,
    compute::Compute,
    job::{FinishedResult, JobDone, Work, run_job},
    local::{Downloaded, Finished, Local, Release},
};

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Lost the master: reconnect with backoff.
    #[error("{0}")]
    Connection(#[from] ProtoError),
    /// Could not connect or handshake (a refusal included).
    #[error(transparent)]
    Dial(#[from] DialError),
    /// Connected, but the master has given no sign of life for this long
    /// (it answers pings at once): it is hung, or the network to it is cut.
    /// Reconnect with backoff.
    #[error(
        "no word from the master for {:.1} s although it answers pings at once: it is hung or the network to it is cut",
        .0.as_secs_f64()
    )]
    MasterSilent(Duration),
}

impl SessionError {
    /// The master did not prove it holds our cluster key, or refused ours.
    pub fn is_wrong_key(&self) -> bool {
        matches!(self, SessionError::Dial(e) if e.is_wrong_key())
    }

    /// True when retrying cannot help: the master speaks another protocol,
    /// or it and this worker hold different cluster keys.
    pub fn is_permanent(&self) -> bool {
        match self {
            SessionError::Dial(e) => {
                e.is_wrong_key()
                    || matches!(
                        e,
                        DialError::Refused(Refusal::VersionMismatch { .. } | Refusal::BadMagic)
                    )
            }
            SessionError::Connection(_) | SessionError::MasterSilent(_) => false,
        }
    }
}

/// After a drain out of grace, how long to wait for the master to confirm
/// (`Pong`) that it has read the hand-backs.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Connects, handshakes, and works until the connection ends, or until
/// `shutdown` and a drain: then `Ok(())`.
pub async fn run(
    config: &WorkerConfig,
    compute: &Compute,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let options = DialOptions {
        connect_timeout: config.connect_timeout,
        handshake_timeout: config.handshake_timeout,
        ..DialOptions::default()
    };
    let Dialed {
        mut reader,
        writer,
        welcome,
    } = tokio::select! {
        d = dial(&*config.dialer, &config.master, Role::Worker, &config.node_id, &config.key, options) => d?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let heartbeat_every = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(10)));
    info!(
        master = %config.master,
        master_id = %welcome.master_id,
        threads = config.threads,
        heartbeat = ?heartbeat_every,
        "connected to master"
    );
    // The master gives up on a worker that is silent for its lease timeout;
    // the worker gives up on a silent master after the same time.
    let silence_limit =
        Duration::from_millis(u64::from(welcome.lease_timeout_ms)).max(3 * heartbeat_every);
    let liveness = Arc::new(Liveness::new());
    let slots = config.threads + config.prefetch;
    // The writer holds at most one result beyond the one it is sending; the
    // rest wait in the session's `pending`.
    let (out, writer) = outgoing(writer, 4 * slots + 16, 1, Some(liveness.clone()));
    let results = out.payloads.clone();
    let mut writer = tokio::spawn(writer);
    let mut s = Session {
        config,
        compute,
        out,
        local: Local::default(),
        jobs: JoinSet::new(),
        pending: VecDeque::new(),
        draining: false,
    };
    s.control(Msg::Capacity {
        threads: config.threads as u32,
        synthetic: config.synthetic,
    })
    .await?;
    s.control(Msg::Ready {
        credits: slots as u32,
    })
    .await?;

    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut ping_seq = 0u64;
    // After a drain out of grace: the ping whose pong says the master has
    // read the hand-backs (it answers in order), so closing cannot race them.
    let mut closing: Option<u64> = None;
    // The session's loop, raced against the master's silence: the watchdog
    // also ends a loop that is stuck sending to a master that stopped reading.
    let session = async {
        loop {
            if drain_deadline.is_some() && s.local.is_empty() && closing.is_none() {
                break Ok(());
            }
            let grace = async {
                match drain_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = reader.recv() => match next {
                    Ok(incoming) => {
                        liveness.heard();
                        if let (Msg::Pong { seq }, Some(want)) = (&incoming.msg, closing)
                            && *seq == want
                        {
                            break Ok(());
                        }
                        if let Err(e) = s.handle(incoming.msg, incoming.payload).await {
                            break Err(e);
                        }
                    }
                    Err(ProtoError::Decode(e)) => warn!("undecodable message from master: {e}"),
                    Err(e) => break Err(e.into()),
                },
                Some(joined) = s.jobs.join_next(), if !s.jobs.is_empty() => {
                    match joined {
                        Ok(done) => {
                            if let Err(e) = s.job_done(done).await {
                                break Err(e);
                            }
                        }
                        Err(e) => warn!("a task's job ended abnormally: {e}"),
                    }
                }
                permit = results.reserve(), if !s.pending.is_empty() => {
                    let Ok(permit) = permit else {
                        break Err(SessionError::Connection(ProtoError::Closed));
                    };
                    permit.send(s.pending.pop_front().expect("not empty").upload());
                    // Its slot is free now: ask for the next task.
                    if let Err(e) = s.credit().await {
                        break Err(e);
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = s.control(Msg::Heartbeat { leases: s.local.leases() }).await {
                        break Err(e);
                    }
                    // Quiet since the last tick: ask the master to say something.
                    if liveness.since_heard() >= heartbeat_every {
                        ping_seq += 1;
                        if let Err(e) = s.control(Msg::Ping { seq: ping_seq }).await {
                            break Err(e);
                        }
                    }
                }
                () = shutdown.cancelled(), if drain_deadline.is_none() => {
                    drain_deadline = Some(tokio::time::Instant::now() + config.drain_grace);
                    if let Err(e) = s.drain().await {
                        break Err(e);
                    }
                }
                () = grace => {
                    if closing.is_some() {
                        warn!("the master did not confirm the hand-backs in time; closing");
                        break Ok(());
                    }
                    warn!(
                        running = s.local.running(),
                        "drain grace period of {:?} is over; handing unfinished tasks back",
                        config.drain_grace
                    );
                    if let Err(e) = s.hand_back_unfinished().await {
                        break Err(e);
                    }
                    ping_seq += 1;
                    if let Err(e) = s.control(Msg::Ping { seq: ping_seq }).await {
                        break Err(e);
                    }
                    closing = Some(ping_seq);
                    drain_deadline = Some(tokio::time::Instant::now() + CLOSE_WAIT);
                }
            }
        }
    };
    let result = tokio::select! {
        r = session => r,
        silence = liveness.silent_for(silence_limit) => Err(SessionError::MasterSilent(silence)),
    };
    s.jobs.abort_all();
    if let Err(SessionError::MasterSilent(silence)) = &result {
        // Our last word, for a master that still hears us: this connection
        // ends for its silence, not for a crash, so what we held here is no
        // evidence against any image. Control goes ahead of any chunk.
        let silent_ms = u64::try_from(silence.as_millis()).unwrap_or(u64::MAX);
        let _ = s.out.control.try_send(Msg::HangingUp { silent_ms });
    }
    let Session { out, .. } = s;
    drop((out, results));
    match &result {
        // Let the writer send what is queued (hand-backs, and results it
        // has taken already).
        Ok(()) => {
            let _ = tokio::time::timeout(Duration::from_secs(10), &mut writer).await;
        }
        // A moment to write the last word; a master that stopped reading
        // may never take it.
        Err(SessionError::MasterSilent(_)) => {
            let _ = tokio::time::timeout(HANG_UP_WAIT, &mut writer).await;
        }
        Err(_) => {}
    }
    writer.abort();
    result
}

/// How long a worker giving up a silent master lets its writer try to send
/// `HangingUp` before it closes the connection.
const HANG_UP_WAIT: Duration = Duration::from_millis(200);

struct Session<'a> {
    config: &'a WorkerConfig,
    compute: &'a Compute,
    out: Outgoing,
    local: Local,
    jobs: JoinSet<JobDone>,
    /// Finished results the writer has not taken yet, oldest first.
    pending: VecDeque<FinishedResult>,
    draining: bool,
}

impl Session<'_> {
    async fn control(&self, msg: Msg) -> Result<(), SessionError> {
        if let (Msg::Ready { credits }, Some(o)) = (&msg, &self.config.observer) {
            o.credits_granted(*credits);
        }
        self.out
            .control
            .send(msg)
            .await
            .map_err(|_| SessionError::Connection(ProtoError::Closed))
    }

    /// A slot freed: ask for one more task.
    async fn credit(&self) -> Result<(), SessionError> {
        self.control(Msg::Ready { credits: 1 }).await
    }

    async fn handle(&mut self, msg: Msg, payload: Bytes) -> Result<(), SessionError> {
        match msg {
            Msg::Assign {
                task,
                attempt,
                name,
                len,
                checksum,
            } => {
                debug!(%task, attempt, %name, len, "assigned");
                if let Some(o) = &self.config.observer {
                    o.assigned();
                }
                let max = self.config.max_image_bytes;
                self.local.assigned(task, attempt, name, checksum, len, max);
                if self.draining {
                    // Crossed our `Draining` on the wire: give it straight back.
                    self.local.release(task, attempt);
                    self.control(Msg::Released { task, attempt }).await?;
                }
                if let Some(d) = self.local.finish_empty(task) {
                    self.downloaded(task, d).await?;
                }
            }
            Msg::Chunk { stream } => {
                let task = TaskId(stream);
                match self.local.chunk(task, payload) {
                    Ok(Some(d)) => self.downloaded(task, d).await?,
                    Ok(None) => {}
                    Err(e) => {
                        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
                        return Err(SessionError::Connection(ProtoError::Io(e)));
                    }
                }
            }
            Msg::Release { task, attempt } => match self.local.release(task, attempt) {
                Release::Freed => {
                    debug!(%task, "giving an unstarted task back");
                    self.control(Msg::Released { task, attempt }).await?;
                    self.credit().await?;
                }
                Release::Later => self.control(Msg::Released { task, attempt }).await?,
                Release::NotHeld | Release::Reported => {}
            },
            Msg::Drop { task, attempt } => match self.local.drop_task(task, attempt) {
                Release::Freed => {
                    info!(%task, attempt, "master says drop the task");
                    self.credit().await?;
                }
                Release::Later => info!(%task, attempt, "master says drop the task"),
                Release::Reported => {
                    // Decided meanwhile (e.g. by this very result, named in a
                    // heartbeat before the master's `Accepted` arrived).
                    debug!(%task, attempt, "master says drop a finished task");
                    if self.unqueue(task, attempt) {
                        self.credit().await?;
                    }
                }
                Release::NotHeld => {}
            },
            Msg::Accepted { task } => {
                debug!(%task, "master stored the outcome");
                if let Some(o) = &self.config.observer {
                    o.accepted();
                }
                self.local.accepted(task);
            }
            Msg::Pong { .. } => {}
            Msg::Error { code, message, .. } => warn!(?code, "master reported an error: {message}"),
            other => warn!("unexpected {} from master", other.name()),
        }
        Ok(())
    }

    async fn downloaded(&mut self, task: TaskId, d: Downloaded) -> Result<(), SessionError> {
        match d {
            Downloaded::Queued => self.start_ready().await,
            Downloaded::TooLarge { attempt } => {
                let reason = format!(
                    "image too large: over the worker's limit of {} bytes",
                    self.config.max_image_bytes
                );
                let kind = FailureKind::TooLarge;
                self.control(Msg::Failed {
                    task,
                    attempt,
                    kind,
                    reason,
                })
                .await?;
                self.credit().await
            }
            Downloaded::Discarded => self.credit().await,
        }
    }

    /// Starts waiting tasks while threads are free.
    async fn start_ready(&mut self) -> Result<(), SessionError> {
        while self.local.running() < self.config.threads {
            let Some((w, dropped)) = self.local.start_next() else {
                break;
            };
            self.control(Msg::Started {
                task: w.task,
                attempt: w.attempt,
            })
            .await?;
            let crash = (self.config.test_crash_on.as_deref())
                .is_some_and(|pattern| w.name.contains(pattern));
            let compute = self.compute.clone();
            let delay = self.config.test_delay;
            let panic = (self.config.test_panic_on.as_deref())
                .is_some_and(|pattern| w.name.contains(pattern));
            let how = if crash {
                Work::TestCrash(self.config.test_crash.clone())
            } else if self.config.synthetic {
                Work::Synthetic
            } else if panic {
                Work::TestPanic
            } else {
                Work::Process
            };
            self.jobs.spawn(run_job(compute, w, delay, dropped, how));
        }
        Ok(())
    }

    async fn job_done(&mut self, done: JobDone) -> Result<(), SessionError> {
        let JobDone {
            task,
            attempt,
            result,
        } = done;
        match (self.local.finished(task, attempt), result) {
            (Finished::Dropped, _) | (_, None) => {
                debug!(%task, attempt, "finished a dropped attempt; result discarded");
            }
            (Finished::Report { .. }, Some(Ok(data))) => {
                // Its slot is credited when the writer takes it.
                self.pending.push_back(FinishedResult {
                    task,
                    attempt,
                    data,
                });
                return self.start_ready().await;
            }
            (Finished::Report { .. }, Some(Err(f))) => {
                info!(%task, "cannot process: {}", f.reason);
                self.control(Msg::Failed {
                    task,
                    attempt,
                    kind: f.kind,
                    reason: f.reason,
                })
                .await?;
            }
        }
        self.credit().await?;
        self.start_ready().await
    }

    /// Takes (`task`, `attempt`)'s result out of `pending`, if it is still there.
    fn unqueue(&mut self, task: TaskId, attempt: u32) -> bool {
        let before = self.pending.len();
        self.pending
            .retain(|u| !(u.task == task && u.attempt == attempt));
        self.pending.len() < before
    }

    /// The drain's grace is over: every running task, and every finished one
    /// whose result the writer has not taken, is handed back (`Released`, no
    /// strike against it: the master queues it again at once) and dropped.
    /// Results the writer already has are still sent.
    async fn hand_back_unfinished(&mut self) -> Result<(), SessionError> {
        let mut back = self.local.stop_all_running();
        for u in std::mem::take(&mut self.pending) {
            self.local.unreport(u.task, u.attempt);
            back.push(tessera_proto::LeaseRef {
                task: u.task,
                attempt: u.attempt,
            });
        }
        for l in back {
            info!(task = %l.task, attempt = l.attempt, "handing an unfinished task back");
            self.control(Msg::Released {
                task: l.task,
                attempt: l.attempt,
            })
            .await?;
        }
        Ok(())
    }

    /// Stop taking work; give back every unstarted task at once.
    async fn drain(&mut self) -> Result<(), SessionError> {
        self.draining = true;
        self.control(Msg::Draining).await?;
        let back = self.local.release_all_unstarted();
        info!(
            given_back = back.len(),
            running = self.local.running(),
            "draining: finishing running tasks, giving back the rest"
        );
        for l in back {
            self.control(Msg::Released {
                task: l.task,
                attempt: l.attempt,
            })
            .await?;
        }
        Ok(())
    }
}
