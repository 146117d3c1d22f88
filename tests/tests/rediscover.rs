//! `tessera run` rides through a master that comes back on another address:
//! a master, a worker and a client in separate network namespaces of a test
//! LAN, nobody given an address (all find the master by mDNS). Mid-batch the
//! master is SIGKILLed and restarted on its data directory on a new port;
//! the same `tessera run` finds it again by mDNS and finishes the batch,
//! every image once and pixel-exact. That test needs root (`ip netns add`):
//! without it, it fails and says so.
//!
//! The seam it goes through, without root: a library `Reconnecting` asks
//! its `Resolve` where to reconnect.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tessera_client::{ClientConfig, Reconnecting, Resolve, Resolved};

use tessera_tests::{
    check_batch_json, eventually,
    inproc::Cluster,
    netns::{HostSpec, Lan, Logs, key_file, require_root},
    numbered_photos,
};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const DEADLINE: Duration = Duration::from_secs(60);

const HOSTS: &[HostSpec] = &[
    HostSpec::v4("m", "198.18.0.1/24"),
    HostSpec::v4("w", "198.18.0.11/24"),
    HostSpec::v4("c", "198.18.0.31/24"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_run_finds_a_master_restarted_on_another_port_by_mdns() {
    require_root();
    let lan = Lan::new(HOSTS).unwrap_or_else(|e| panic!("cannot build the test LAN: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let logs = Logs(tmp.path().join("logs"));
    std::fs::create_dir_all(&logs.0).unwrap();
    let data = tmp.path().join("data");
    let master = |name: &str, listen: &str| {
        let args = [
            "master",
            "--key-file",
            key_file(),
            "--listen",
            listen,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        lan.spawn("m", name, NODE, &args, &logs.path(name))
    };
    let mut first = master("master-1", "0.0.0.0:17401");
    first.wait_for_line("listening on ", DEADLINE).await;
    // Slow, so the batch is still under way when the master goes.
    let _worker = lan.spawn(
        "w",
        "worker",
        NODE,
        &[
            "worker",
            "--key-file",
            key_file(),
            "--threads",
            "1",
            "--test-delay",
            "150ms",
        ],
        &logs.path("worker"),
    );

    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    let inputs = numbered_photos(&input, 24);
    let client_log = std::fs::File::create(logs.path("client")).unwrap();
    let run = lan
        .command(
            "c",
            CLIENT,
            &[
                "--key-file",
                key_file(),
                "run",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
                "--json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(client_log)
        .spawn()
        .expect("tessera run started");

    // Once the batch is under way, the master dies and comes back elsewhere.
    let done = || std::fs::read_dir(&output).map(|d| d.count()).unwrap_or(0);
    eventually(DEADLINE, "the batch to get under way", || done() >= 3).await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let mut second = master("master-2", "0.0.0.0:17402");
    second.wait_for_line("listening on ", DEADLINE).await;

    let out = tokio::time::timeout(Duration::from_secs(90), run.wait_with_output())
        .await
        .expect("the batch finished with the master on its new port")
        .expect("tessera run ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let client_log = logs.read("client");
    assert!(
        out.status.success(),
        "tessera run failed:\n{stdout}\n{client_log}"
    );
    assert!(
        client_log.contains("reconnected to the master master=198.18.0.1:17402"),
        "the client must have reconnected to the new port:\n{client_log}"
    );

    // Every image once, pixel-exact.
    check_batch_json(&stdout, &inputs, &output);
}

/// A resolver whose answer the test changes.
#[derive(Debug)]
struct Moved(Arc<Mutex<String>>);

impl Resolve for Moved {
    fn resolve(&self) -> Resolved<'_> {
        let addr = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(vec![addr]) })
    }
}

#[tokio::test]
async fn a_reconnection_goes_where_the_resolver_says() {
    let first = Cluster::start(0).await;
    let key = first.key.clone();
    let second = Cluster::start_with(0, |m| m.key = key.clone(), |_| {}).await;
    let now_at = Arc::new(Mutex::new(first.addr.clone()));
    let conn = Reconnecting::connect(
        &first.addr,
        &key,
        ClientConfig::default(),
        Duration::from_secs(30),
    )
    .await
    .unwrap()
    .with_resolver(Box::new(Moved(now_at.clone())));
    let first_id = master_id(&conn).await;

    // The first master goes away; the resolver now names the second.
    drop(first);
    *now_at.lock().unwrap() = second.addr.clone();
    let second_id = master_id(&conn).await;
    assert_ne!(second_id, first_id, "still the first master");
    assert_eq!(conn.addr(), second.addr);
}

/// The id of the master `conn` reaches (reconnecting if need be).
async fn master_id(conn: &Reconnecting) -> String {
    let info = conn.run(|c| async move { c.cluster().await }).await;
    info.unwrap().master_id
}
