//! End to end: the same images processed in this process with no network
//! (one image per core at a time, as a worker does), and through a dev
//! cluster (a master and two workers over loopback TCP, files on disk in
//! and out) driven by the client library's batch runner, as `tessera run`
//! does, in the same run. Three sets: the Kodak photos, a generated
//! photo-like 1920x1080 image and a 7680x4320 one, each sent several times.
//!
//! The two ways take turns, three rounds each. Per set and way:
//! megapixels per second (best round, wall clock) and megapixels per
//! CPU-second of the whole process (the process CPU clock covers the master,
//! the workers and the client alike, and nothing else runs here), and for
//! the cluster its throughput relative to in-process (`vs_in_process`, by
//! wall clock) and its megapixels per CPU-second relative to in-process
//! (`cpu_efficiency_vs_in_process`). When both keep every core busy the
//! two ratios agree; on a machine shared with other work the wall-clock
//! ratio is at the mercy of what else runs, and the CPU ratio is the one to
//! trust.
//!
//! `cargo bench -p tessera-benches --bench throughput`
//! (`TESSERA_BENCH_REPEAT=N` sets how many times each Kodak photo and the
//! 1080p image are sent; default 8. The 8K image is sent twice.
//! `TESSERA_BENCH_ONLY=kodak` measures only the sets whose name contains
//! `kodak`, e.g. for a profile.)

use std::sync::Arc;

use rayon::prelude::*;
use tessera_benches::{
    Measured, cores, cpu_seconds, figure, machine, measure, photo_bytes, photo_like_png, repeat,
    selected,
};
use tessera_client::{ClientConfig, Reconnecting, batch, files::Input};
use tessera_node::dev::{DevCluster, DevConfig};

/// How many times each way processes each set.
const ROUNDS: usize = 3;

/// A way's rounds: the best wall-clock time (the nearest to an idle
/// machine's) and the mean CPU time of a round.
struct Summary {
    best_wall: f64,
    cpu: f64,
}

impl Summary {
    fn of(rounds: &[Measured]) -> Self {
        Self {
            best_wall: rounds.iter().map(|m| m.wall).fold(f64::INFINITY, f64::min),
            cpu: rounds.iter().map(|m| m.cpu).sum::<f64>() / rounds.len() as f64,
        }
    }
}

fn megapixels(data: &[u8]) -> f64 {
    let (w, h) = batch::png_dimensions(data).expect("a PNG");
    f64::from(w) * f64::from(h) / 1e6
}

/// One set of images: a name and the files to send, repeats included.
struct Set {
    name: &'static str,
    images: Vec<Vec<u8>>,
}

impl Set {
    fn new(name: &'static str, originals: Vec<Vec<u8>>, times: usize) -> Self {
        let images = (0..times).flat_map(|_| originals.iter().cloned()).collect();
        Self { name, images }
    }

    fn megapixels(&self) -> f64 {
        self.images.iter().map(|d| megapixels(d)).sum()
    }
}

fn main() -> anyhow::Result<()> {
    machine("throughput");
    let n = repeat(8);
    let mut sets = Vec::new();
    if selected("kodak") {
        sets.push(Set::new("kodak", photo_bytes(), n));
    }
    for (width, height, times) in [(1920, 1080, n), (7680, 4320, 2)] {
        let name = if width == 1920 {
            "1920x1080"
        } else {
            "7680x4320"
        };
        if selected(name) {
            sets.push(Set::new(name, vec![photo_like_png(width, height)], times));
        }
    }
    let cores = cores();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cores).build()?;
    let options = tessera_imaging::Options::default();
    let rt = tokio::runtime::Runtime::new()?;
    let cluster = rt.block_on(DevCluster::start(DevConfig::new(2)))?;
    let client = Arc::new(rt.block_on(Reconnecting::connect(
        &cluster.addr.to_string(),
        &cluster.key,
        ClientConfig::default(),
        std::time::Duration::from_secs(5),
    ))?);
    let tmp = tempfile::tempdir()?;

    for set in &sets {
        let mpix = set.megapixels();
        let images = set.images.len() as f64;
        let dir = tmp.path().join(set.name);
        std::fs::create_dir_all(&dir)?;
        let inputs: Vec<Input> = set
            .images
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let path = dir.join(format!("in-{i}.png"));
                std::fs::write(&path, d)?;
                Ok(Input {
                    path,
                    name: format!("{i}.png").into(),
                })
            })
            .collect::<std::io::Result<_>>()?;

        // The two ways take turns, ROUNDS times each.
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // 1. In process: decode + swap + encode, one image per core at a time.
            let ((), spent) = measure(|| {
                pool.install(|| {
                    set.images.par_iter().with_max_len(1).for_each(|d| {
                        tessera_imaging::process(d, &options).expect("images process");
                    })
                })
            });
            local.push(spent);

            // 2. Through the dev cluster of two workers, files on disk in and out.
            let batch_options = batch::BatchOptions {
                out_dir: dir.join(format!("out-{round}")),
                in_flight: 16,
            };
            let cpu = cpu_seconds();
            let report = rt.block_on(batch::run(
                client.clone(),
                inputs.clone(),
                &batch_options,
                |_| {},
            ));
            let failed = report.failed().count();
            anyhow::ensure!(failed == 0, "{failed} images failed");
            anyhow::ensure!(
                (report.megapixels() - mpix).abs() < 1e-6,
                "megapixels differ"
            );
            remote.push(Measured {
                wall: report.elapsed.as_secs_f64(),
                cpu: cpu_seconds() - cpu,
            });
        }
        let (local, remote) = (Summary::of(&local), Summary::of(&remote));
        figure(
            "throughput",
            &format!("{}_in_process", set.name),
            &[
                ("images", images),
                ("megapixels", mpix),
                ("threads", cores as f64),
                ("best_seconds", local.best_wall),
                ("mpix_per_s", mpix / local.best_wall),
                ("mpix_per_cpu_s", mpix / local.cpu),
            ],
        );
        figure(
            "throughput",
            &format!("{}_dev_cluster_2_workers", set.name),
            &[
                ("images", images),
                ("megapixels", mpix),
                ("best_seconds", remote.best_wall),
                ("mpix_per_s", mpix / remote.best_wall),
                ("mpix_per_cpu_s", mpix / remote.cpu),
                ("vs_in_process", local.best_wall / remote.best_wall),
                ("cpu_efficiency_vs_in_process", local.cpu / remote.cpu),
            ],
        );
    }
    rt.block_on(cluster.stop());
    Ok(())
}
