//! Heartbeats never wait behind uploads: a worker with several finished
//! results, uploading them to a master that reads slowly (a fake master on
//! real loopback TCP with a small receive buffer, reading at a few MiB/s),
//! keeps sending heartbeats on the master's interval, and every heartbeat
//! names each lease whose result the master has not yet received.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_proto::{ClusterKey, LeaseRef, Msg, TaskId, Welcome};
use tokio::{net::TcpSocket, sync::mpsc};
use tokio_util::sync::CancellationToken;

use super::{WorkerConfig, fake_master};

const TASKS: u64 = 7;
const RESULT_BYTES: usize = 6 << 20;
/// How fast the fake master takes result bytes.
const READ_BYTES_PER_SEC: f64 = 4.0 * 1024.0 * 1024.0;
const HEARTBEAT: Duration = Duration::from_millis(100);
/// The longest silence allowed between two heartbeats: ten intervals. A
/// heartbeat may still queue behind what is already in the socket buffers
/// and the chunk being written (together under 2 MiB: half a second at this
/// rate), but not behind a whole result (1.5 s), let alone several.
const MAX_GAP: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_their_interval_and_name_pending_results_while_uploads_crawl() {
    let key = ClusterKey::from_bytes([9; 32]);
    let socket = TcpSocket::new_v4().unwrap();
    // A small window: the kernel cannot hide the master's slowness.
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4).unwrap();
    let addr = listener.local_addr().unwrap();

    let mut config = WorkerConfig::new(addr.to_string(), key.clone());
    config.threads = 2;
    config.prefetch = 2;
    config.node_id = "uploader".into();
    // Each result is its input, at once: the results pile up for upload.
    config.synthetic = true;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(super::run(config, shutdown.clone()));

    let welcome = Welcome::new("slow-master", HEARTBEAT, Duration::from_secs(30));
    let ((mut reader, mut writer), _, [_, ready]) =
        fake_master::accept_worker(&listener, &key, welcome).await;
    let Msg::Ready { credits } = ready else {
        unreachable!()
    };

    // The master's writes go through a task of their own, so its reading
    // (the slow part) never waits on them.
    let (to_worker, mut outgoing) = mpsc::unbounded_channel::<(Msg, Option<Bytes>)>();
    let sender = tokio::spawn(async move {
        while let Some((msg, payload)) = outgoing.recv().await {
            writer.send(&msg).await?;
            if let Some(p) = payload {
                let Msg::Assign { task, .. } = msg else {
                    unreachable!()
                };
                writer.send_stream(task.0, &p).await?;
            }
        }
        Ok::<_, tessera_proto::ProtoError>(())
    });
    let mut next_task = 1u64;
    let mut assign = |credits: u32| {
        for _ in 0..credits {
            if next_task > TASKS {
                return;
            }
            let task = TaskId(next_task);
            next_task += 1;
            let data = Bytes::from(vec![task.0 as u8; RESULT_BYTES]);
            let msg = Msg::Assign {
                task,
                attempt: 1,
                name: format!("{task}.png"),
                len: data.len() as u64,
                checksum: tessera_proto::checksum(&data),
            };
            to_worker.send((msg, Some(data))).unwrap();
        }
    };
    assign(credits);

    let mut started: BTreeSet<TaskId> = BTreeSet::new();
    let mut received: BTreeSet<TaskId> = BTreeSet::new();
    let mut receiving: HashMap<TaskId, usize> = HashMap::new();
    let mut heartbeats: Vec<Instant> = Vec::new();
    let mut first_done: Option<Instant> = None;
    let begin = Instant::now();
    while received.len() < TASKS as usize {
        assert!(
            begin.elapsed() < Duration::from_secs(60),
            "the uploads did not end: {} of {TASKS} results received",
            received.len()
        );
        let incoming = reader
            .recv_within(fake_master::DEADLINE)
            .await
            .expect("the worker keeps talking");
        match incoming.msg {
            Msg::Ready { credits } => assign(credits),
            Msg::Started { task, attempt } => {
                assert_eq!(attempt, 1);
                started.insert(task);
            }
            Msg::Heartbeat { leases } => {
                heartbeats.push(Instant::now());
                let named: BTreeSet<TaskId> = leases.iter().map(|l: &LeaseRef| l.task).collect();
                let missing: Vec<&TaskId> = started
                    .iter()
                    .filter(|t| !received.contains(t) && !named.contains(t))
                    .collect();
                assert!(
                    missing.is_empty(),
                    "a heartbeat left out the leases of tasks {missing:?}, started and not yet \
                     received (it named {named:?})"
                );
            }
            Msg::Done { task, len, .. } => {
                assert_eq!(len, RESULT_BYTES as u64);
                first_done.get_or_insert_with(Instant::now);
                receiving.insert(task, 0);
            }
            Msg::Chunk { stream } => {
                let task = TaskId(stream);
                let got = receiving
                    .get_mut(&task)
                    .expect("a chunk of a result in progress");
                *got += incoming.payload.len();
                // Reading slowly: as long as these bytes take at this rate.
                let pause = incoming.payload.len() as f64 / READ_BYTES_PER_SEC;
                tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                if *got == RESULT_BYTES {
                    receiving.remove(&task);
                    received.insert(task);
                    to_worker.send((Msg::Accepted { task }, None)).unwrap();
                }
            }
            Msg::Ping { seq } => to_worker.send((Msg::Pong { seq }, None)).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let uploads_from = first_done.expect("results arrived");
    let uploading = uploads_from.elapsed();
    // The test means something only if the uploads took many intervals.
    assert!(
        uploading > 20 * HEARTBEAT,
        "the uploads took only {uploading:?}"
    );
    // Every silence from the first result on, up to the last byte of the
    // last one, counts.
    heartbeats.push(Instant::now());
    let mut gaps: Vec<Duration> = heartbeats
        .windows(2)
        .filter(|w| w[1] > uploads_from)
        .map(|w| w[1] - w[0].max(uploads_from))
        .collect();
    gaps.sort();
    let worst = *gaps.last().unwrap();
    eprintln!(
        "uploads took {uploading:?}; {} heartbeats, median gap {:?}, worst {worst:?}",
        gaps.len(),
        gaps[gaps.len() / 2]
    );
    assert!(
        worst <= MAX_GAP,
        "heartbeats stopped for {worst:?} while results were uploading (interval {HEARTBEAT:?})"
    );
    shutdown.cancel();
    drop(to_worker);
    drop(reader);
    let _ = tokio::time::timeout(fake_master::DEADLINE, worker).await;
    sender.abort();
}
