//! A batch: stream many images through the master with a bounded number in
//! flight, write each result under the output directory, report every outcome.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_proto::{TaskId, TaskState};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{Reconnecting, buffers::Buffers, files::Input};

/// How to run a batch.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub out_dir: PathBuf,
    /// Images submitted but not yet written out, at most.
    pub in_flight: usize,
}

/// One image's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub input: Input,
    pub result: Result<Done, Failure>,
}

/// A processed image, written to `output`.
#[derive(Debug, Clone)]
pub struct Done {
    pub task: TaskId,
    pub output: PathBuf,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Width × height / 1e6, when the input is a PNG.
    pub megapixels: f64,
}

/// Why an image did not make it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub task: Option<TaskId>,
    pub reason: String,
}

/// Everything a batch did.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub fn done(&self) -> impl Iterator<Item = &Done> {
        self.outcomes.iter().filter_map(|o| o.result.as_ref().ok())
    }

    pub fn failed(&self) -> impl Iterator<Item = (&Input, &Failure)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|f| (&o.input, f)))
    }

    pub fn megapixels(&self) -> f64 {
        // Folded from +0.0: `Sum` for floats starts at -0.0, which would
        // print as "-0.0 MPix/s" for a batch with nothing done.
        self.done().map(|d| d.megapixels).fold(0.0, |a, b| a + b)
    }
}

/// Runs the batch; `on_outcome` is called as each image finishes.
pub async fn run(
    client: Arc<Reconnecting>,
    inputs: Vec<Input>,
    options: &BatchOptions,
    mut on_outcome: impl FnMut(&Outcome),
) -> Report {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(options.in_flight.max(1)));
    let mut jobs = JoinSet::new();
    // Which input each job works on, so a job that panics is still
    // reported (as a failure) rather than silently missing.
    let mut running: BTreeMap<tokio::task::Id, Input> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(inputs.len());
    let buffers = Arc::new(Buffers::default());
    for input in inputs {
        // Bound the tasks, not just the work: acquire before spawning, and
        // report whatever finished meanwhile.
        let permit = loop {
            tokio::select! {
                p = slots.clone().acquire_owned() => break p.expect("never closed"),
                Some(joined) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                    let o = finished(joined, &mut running);
                    on_outcome(&o);
                    outcomes.push(o);
                }
            }
        };
        let client = client.clone();
        let out_dir = options.out_dir.clone();
        let job_input = input.clone();
        let buffers = buffers.clone();
        let handle = jobs.spawn(async move {
            let result = one(&client, &job_input, &out_dir, &buffers).await;
            drop(permit);
            Outcome {
                input: job_input,
                result,
            }
        });
        running.insert(handle.id(), input);
    }
    while let Some(joined) = jobs.join_next_with_id().await {
        let o = finished(joined, &mut running);
        on_outcome(&o);
        outcomes.push(o);
    }
    Report {
        outcomes,
        elapsed: started.elapsed(),
    }
}

/// The outcome of a finished job; a job that panicked fails its image.
fn finished(
    joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    running: &mut BTreeMap<tokio::task::Id, Input>,
) -> Outcome {
    match joined {
        Ok((id, o)) => {
            running.remove(&id);
            o
        }
        Err(e) => {
            let input = running.remove(&e.id()).expect("every job is listed");
            Outcome {
                input,
                result: Err(Failure {
                    task: None,
                    reason: format!("internal error: the job for this image {e}"),
                }),
            }
        }
    }
}

async fn one(
    conn: &Reconnecting,
    input: &Input,
    out_dir: &std::path::Path,
    buffers: &Buffers,
) -> Result<Done, Failure> {
    let fail = |task, reason: String| Failure { task, reason };
    let data = crate::files::read_into(&input.path, buffers.take())
        .await
        .map_err(|e| fail(None, format!("cannot read {}: {e}", input.path.display())))?;
    let megapixels = png_dimensions(&data).map_or(0.0, |(w, h)| f64::from(w) * f64::from(h) / 1e6);
    let bytes_in = data.len() as u64;
    let name = input.name.to_string_lossy().into_owned();
    let data = Bytes::from(data);
    let key = tessera_proto::submission_key(&name, &data);
    // Resubmitting after a lost answer is safe: the key finds the same task.
    let task = conn
        .run(|c| {
            let (name, data) = (&name, data.clone());
            async move { c.submit_with_key(name, data, key).await }
        })
        .await;
    // The master has the whole input (or will not take it): its buffer
    // serves the next input.
    buffers.give(data);
    let task = task.map_err(|e| fail(None, e.to_string()))?;
    let info = conn
        .run(|c| async move { c.wait(task).await })
        .await
        .map_err(|e| fail(Some(task), e.to_string()))?;
    match info.state {
        TaskState::Done => {
            let output = out_dir.join(&input.name);
            let result = conn
                .run(|c| async move { c.fetch(task).await })
                .await
                .map_err(|e| fail(Some(task), e.to_string()))?;
            crate::files::write_atomically(&output, result.clone())
                .await
                .map_err(|e| {
                    fail(
                        Some(task),
                        format!("cannot write {}: {e}", output.display()),
                    )
                })?;
            // Stored durably: the master may remove it once every
            // submitter of the task has confirmed. A lost confirmation only
            // means the master keeps the result until its retention ends.
            let _ = conn.run(|c| async move { c.confirm(task).await }).await;
            Ok(Done {
                task,
                output,
                bytes_in,
                bytes_out: result.len() as u64,
                megapixels,
            })
        }
        TaskState::Failed { reason, .. } => Err(fail(Some(task), reason)),
        other => Err(fail(
            Some(task),
            format!("unexpected state after wait: {other}"),
        )),
    }
}

/// Width and height from a PNG's IHDR, if `data` starts like a PNG.
pub fn png_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if data.len() < 24 || !data.starts_with(SIG) || &data[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(data[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(data[20..24].try_into().ok()?);
    Some((w, h))
}
