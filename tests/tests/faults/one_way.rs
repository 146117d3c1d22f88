//! A worker that stops hearing the master while the master still hears it
//! (the master's messages lost on the way, or the master stopped): the
//! worker gives the connection up after the lease timeout of silence, as it
//! must, and the master sees that connection end. That end is the master's
//! silence, not a crash: the image that was executing alone there must not
//! be blamed for it. In-process master and worker over real TCP; the
//! worker's connection is made deaf (its reads never return) by its dialer.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tessera_client::TaskState;
use tessera_proto::{
    TaskEvent,
    net::{Connection, Dialer, NetFuture, ReadHalf, Tcp},
};
use tessera_tests::{check_swapped, inproc::Cluster, photos};
use tokio::io::{AsyncRead, ReadBuf};

use crate::T;

/// TCP, whose first connection goes deaf when told: from then on its reads
/// never return, while its writes still reach the master.
#[derive(Debug, Default)]
struct DeafFirst {
    deaf: Arc<AtomicBool>,
    dialed: AtomicUsize,
}

impl Dialer for DeafFirst {
    fn connect<'a>(&'a self, addr: &'a str) -> NetFuture<'a, Connection> {
        Box::pin(async move {
            let mut c = Tcp::default().connect(addr).await?;
            if self.dialed.fetch_add(1, Ordering::SeqCst) == 0 {
                c.read = Box::new(Deaf {
                    inner: c.read,
                    deaf: self.deaf.clone(),
                });
            }
            Ok(c)
        })
    }
}

struct Deaf {
    inner: ReadHalf,
    deaf: Arc<AtomicBool>,
}

impl AsyncRead for Deaf {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.deaf.load(Ordering::SeqCst) {
            // Nothing arrives any more (the worker's own timers go on).
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_hearing_the_master_gets_no_image_blamed() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let dialer = Arc::new(DeafFirst::default());
    let cluster = Cluster::start_with(
        0,
        |m| {
            m.heartbeat_interval = Duration::from_millis(100);
            m.scheduler.lease_timeout = Duration::from_millis(600);
            // One piece of evidence fails a task: a blame would show.
            m.scheduler.max_attempts = 1;
        },
        |_| {},
    )
    .await;
    let worker_dialer = dialer.clone();
    cluster.spawn_worker(move |w| {
        w.prefetch = 0;
        w.test_delay = Some(Duration::from_secs(2));
        w.dialer = worker_dialer.clone();
    });
    let client = cluster.client().await;
    let input = Bytes::from(std::fs::read(&photos()[0]).unwrap());
    let task = client.submit("cut-off.png", input.clone()).await.unwrap();
    let start = Instant::now();
    while client.status(task).await.unwrap().state != TaskState::Running {
        assert!(start.elapsed() < T, "never leased");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The worker has started it (`Started` goes before its --test-delay);
    // now it hears nothing more, and its heartbeats still arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    dialer.deaf.store(true, Ordering::SeqCst);

    let info = tokio::time::timeout(T, client.wait(task))
        .await
        .expect("decided in time")
        .unwrap();
    let history = client.history(task).await.unwrap();
    assert_eq!(info.state, TaskState::Done, "{info:?}\n{history:?}");
    check_swapped(&input, &client.fetch(task).await.unwrap()).unwrap();
    // The attempt was lost to the master's silence, and said so; nothing
    // lost counted against the image.
    let lost: Vec<&String> = history
        .iter()
        .filter_map(|e| match &e.event {
            TaskEvent::Lost { why, .. } => Some(why),
            _ => None,
        })
        .collect();
    assert!(!lost.is_empty(), "{history:?}");
    assert!(
        lost.iter().all(|why| why.contains("not its fault")),
        "{lost:?}"
    );
    assert!(
        dialer.dialed.load(Ordering::SeqCst) >= 2,
        "the worker came back on a new connection"
    );
}
