//! The writing side of a worker's connection. Control messages (heartbeats,
//! `Started`, `Released`, `Ready`, failures) go ahead of result bytes: a large
//! result is sent chunk by chunk, and waiting control messages are sent
//! between chunks, so a heartbeat is never stuck behind a big upload.

use std::sync::Arc;

use bytes::Bytes;
use tessera_proto::{FrameWriter, Liveness, MAX_CHUNK, Msg, ProtoError, TaskId};
use tokio::{io::AsyncWrite, sync::mpsc};

/// A result to upload.
#[derive(Debug)]
pub struct ResultUpload {
    pub task: TaskId,
    pub attempt: u32,
    pub data: Bytes,
}

/// The two queues the writer serves.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub control: mpsc::Sender<Msg>,
    pub results: mpsc::Sender<ResultUpload>,
}

/// Creates the queues and returns the writer future to spawn. Every result
/// chunk the master takes is recorded in `liveness`.
pub fn outbox<W: AsyncWrite + Unpin + Send + 'static>(
    writer: FrameWriter<W>,
    control_capacity: usize,
    result_capacity: usize,
    liveness: Arc<Liveness>,
) -> (
    Outbox,
    impl Future<Output = Result<(), ProtoError>> + Send + 'static,
) {
    let (control, control_rx) = mpsc::channel(control_capacity);
    let (results, results_rx) = mpsc::channel(result_capacity);
    (
        Outbox { control, results },
        run(writer, control_rx, results_rx, liveness),
    )
}

async fn run<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut control: mpsc::Receiver<Msg>,
    mut results: mpsc::Receiver<ResultUpload>,
    liveness: Arc<Liveness>,
) -> Result<(), ProtoError> {
    let mut control_open = true;
    let mut results_open = true;
    while control_open || results_open {
        tokio::select! {
            biased;
            msg = control.recv(), if control_open => match msg {
                Some(m) => writer.send(&m).await?,
                None => control_open = false,
            },
            upload = results.recv(), if results_open => match upload {
                Some(u) => send_result(&mut writer, &mut control, u, &liveness).await?,
                None => results_open = false,
            },
        }
    }
    writer.flush().await
}

async fn send_result<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    control: &mut mpsc::Receiver<Msg>,
    u: ResultUpload,
    liveness: &Liveness,
) -> Result<(), ProtoError> {
    writer
        .feed(&Msg::Done {
            checksum: tessera_proto::checksum(&u.data),
            task: u.task,
            attempt: u.attempt,
            len: u.data.len() as u64,
        })
        .await?;
    let mut offset = 0;
    while offset < u.data.len() {
        let end = (offset + MAX_CHUNK).min(u.data.len());
        writer
            .feed_chunk(u.task.0, u.data.slice(offset..end))
            .await?;
        liveness.took_data();
        offset = end;
        while let Ok(m) = control.try_recv() {
            writer.feed(&m).await?;
        }
        writer.flush().await?;
    }
    writer.flush().await
}
