//! The real master, workers and client on turmoil's simulated hosts and
//! TCP (the network seam, `tessera_proto::net`; `tessera_tests::sim_net`).
//!
//! This is the first step of the deterministic simulation: the same code
//! that runs over real sockets runs over simulated ones, with simulated
//! time, and an image comes back pixel-exact. Faults drawn from a seed and
//! the oracle over many seeds build on it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use tessera_client::{Client, ClientConfig};
use tessera_node::{
    master::{self, MasterConfig},
    worker::{self, WorkerConfig},
};
use tessera_proto::{ClusterKey, TaskState};
use tessera_tests::{
    check_swapped,
    sim_net::{SimDialer, SimListener},
    valid_pngsuite,
};
use tokio_util::sync::CancellationToken;

const PORT: u16 = 7878;

/// Small colour images of the corpus (the imaging runs for real).
fn images() -> Vec<(String, Vec<u8>)> {
    valid_pngsuite()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("basn2c") || name.starts_with("basn6a")
        })
        .map(|p: PathBuf| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn images_come_back_pixel_exact_over_simulated_tcp() {
    let data = tempfile::tempdir().unwrap();
    let key = ClusterKey::generate();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .build();

    let (dir, master_key) = (data.path().to_path_buf(), key.clone());
    sim.host("master", move || {
        let (dir, key) = (dir.clone(), master_key.clone());
        async move {
            let mut config = MasterConfig::new(dir);
            config.key = key;
            let listener = SimListener::bind(PORT).await?;
            master::run(listener, config, CancellationToken::new()).await?;
            Ok(())
        }
    });
    for name in ["worker1", "worker2"] {
        let key = key.clone();
        sim.host(name, move || {
            let key = key.clone();
            async move {
                let mut config = WorkerConfig::new(format!("master:{PORT}"), key);
                config.threads = 1;
                config.node_id = name.to_string();
                config.dialer = Arc::new(SimDialer);
                worker::run(config, CancellationToken::new()).await?;
                Ok(())
            }
        });
    }

    let inputs = images();
    assert!(inputs.len() >= 4, "the corpus has colour images");
    let expected = inputs.clone();
    sim.client("client", async move {
        let config = ClientConfig {
            dialer: Arc::new(SimDialer),
            ..ClientConfig::default()
        };
        let client = Client::connect_with(&format!("master:{PORT}"), &key, config).await?;
        let mut tasks = Vec::new();
        for (name, bytes) in &inputs {
            tasks.push(client.submit(name, Bytes::from(bytes.clone())).await?);
        }
        for (task, (name, input)) in tasks.into_iter().zip(&expected) {
            let info = client.wait(task).await?;
            assert!(
                matches!(info.state, TaskState::Done),
                "{name}: {:?}",
                info.state
            );
            let output = client.fetch(task).await?;
            check_swapped(input, &output).map_err(|e| format!("{name}: {e}"))?;
            client.confirm(task).await?;
        }
        Ok(())
    });
    sim.run().unwrap();
}
