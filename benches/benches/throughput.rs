//! Images/s and megapixels/s for the Kodak photos: processed in this process
//! with no network (every core busy, one image per core), and through a dev
//! cluster (a master and two workers over loopback TCP) driven by the client
//! library's batch runner, as `tessera run` does.
//!
//! `cargo bench -p tessera-benches --bench throughput`
//! (`TESSERA_BENCH_REPEAT=N` sets how many times each photo is sent; default 8.)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rayon::prelude::*;
use tessera_benches::{figure, photos, repeat};
use tessera_client::{ClientConfig, Reconnecting, batch, files::Input};
use tessera_node::dev::{DevCluster, DevConfig};

fn megapixels(data: &[u8]) -> f64 {
    let (w, h) = tessera_client::batch::png_dimensions(data).expect("a PNG");
    f64::from(w) * f64::from(h) / 1e6
}

fn main() -> anyhow::Result<()> {
    let n = repeat(8);
    let originals: Vec<Vec<u8>> = photos()
        .iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let images: Vec<&Vec<u8>> = (0..n).flat_map(|_| originals.iter()).collect();
    let mpix: f64 = images.iter().map(|d| megapixels(d)).sum();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    // 1. In process: decode + swap + encode, one image per core at a time.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cores).build()?;
    let options = tessera_imaging::Options::default();
    let start = Instant::now();
    pool.install(|| {
        images.par_iter().with_max_len(1).for_each(|d| {
            tessera_imaging::process(d, &options).expect("photos process");
        })
    });
    let secs = start.elapsed().as_secs_f64();
    figure(
        "throughput",
        "in_process",
        &[
            ("images", images.len() as f64),
            ("threads", cores as f64),
            ("seconds", secs),
            ("images_per_s", images.len() as f64 / secs),
            ("mpix_per_s", mpix / secs),
        ],
    );

    // 2. Through a dev cluster of two workers, files on disk in and out.
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let tmp = tempfile::tempdir()?;
        let inputs: Vec<Input> = images
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let path = tmp.path().join(format!("in-{i}.png"));
                std::fs::write(&path, d)?;
                Ok(Input {
                    path,
                    name: format!("{i}.png").into(),
                })
            })
            .collect::<std::io::Result<_>>()?;
        let cluster = DevCluster::start(DevConfig::new(2)).await?;
        let addr = cluster.addr.to_string();
        let client = Arc::new(
            Reconnecting::connect(
                &addr,
                &cluster.key,
                ClientConfig::default(),
                Duration::from_secs(5),
            )
            .await?,
        );
        let options = batch::BatchOptions {
            out_dir: tmp.path().join("out"),
            in_flight: 16,
        };
        let report = batch::run(client, inputs, &options, |_| {}).await;
        let failed = report.failed().count();
        anyhow::ensure!(failed == 0, "{failed} images failed");
        let secs = report.elapsed.as_secs_f64();
        figure(
            "throughput",
            "dev_cluster_2_workers",
            &[
                ("images", images.len() as f64),
                ("seconds", secs),
                ("images_per_s", images.len() as f64 / secs),
                ("mpix_per_s", report.megapixels() / secs),
            ],
        );
        cluster.stop().await;
        Ok(())
    })
}
