//! The cluster's overhead as processes (issue 18): how much of the CPU a
//! batch costs goes to the worker's image work, and how much to the master
//! and the client around it. A master and one single-thread worker as
//! separate processes on loopback (real TCP, real files with fsync on the
//! master and the client), `tessera run` on 24 photo mosaics of 1920x1080
//! (tiles of the Kodak photos in `tests/data/photos`, different in every
//! image and every round, so that no submission is answered by an earlier
//! identical one).
//!
//! Per round it reads each process's CPU time (user + system, from
//! `/proc/PID/stat` for the master and the worker, and from this process's
//! waited-for children for the client) before and after the batch, and
//! prints: the worker's share of the three processes' CPU (issue 18's
//! target: at least 0.85), the master's and the client's CPU over the
//! worker's, and megapixels per worker CPU-second. Medians at the end.
//! Asserts no timing.
//!
//! `cargo bench -p tessera-tests --bench process_share` (rounds:
//! `TESSERA_BENCH_REPEAT`, default 3).

use std::{io::Write, path::Path, time::Duration};

use image::{ImageEncoder, RgbImage, codecs::png::PngEncoder};
use tessera_tests::{bench_line::median, photos, spawn_master, spawn_worker};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const CLIENT: &str = env!("CARGO_BIN_EXE_tessera-under-test");
const IMAGES: usize = 24;
const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// The bytes of the files in `dir` (the batch's inputs or its results: what
/// the client sends and receives, encrypted, and the master stores).
fn dir_bytes(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as f64)
        .sum()
}

/// `IMAGES` mosaics for `round` in `dir`: every image tiles the photos in
/// its own order and offset.
fn mosaics(photos: &[RgbImage], dir: &Path, round: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..IMAGES {
        let seed = round * IMAGES + i;
        let mut img = RgbImage::new(WIDTH, HEIGHT);
        for (x, y, px) in img.enumerate_pixels_mut() {
            let (tx, ty) = (x / 640, y / 540);
            let photo = &photos[(tx as usize + 3 * ty as usize + seed) % photos.len()];
            let sx = (x % 640 + 7 * seed as u32) % photo.width();
            let sy = (y % 540 + 3 * seed as u32) % photo.height();
            *px = *photo.get_pixel(sx, sy);
        }
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(&img, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
            .unwrap();
        std::fs::write(dir.join(format!("mosaic-{i:02}.png")), png).unwrap();
    }
}

/// Clock ticks per second of `/proc`'s CPU times.
fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// Fields of `/proc/PID/stat` after the command name and the state letter:
/// the file's field N (numbered from 1, as proc(5) does) is at N - 4.
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace()
        .skip(1) // the state letter
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// A process's CPU seconds so far (user + system).
fn cpu_of(pid: u32) -> f64 {
    let f = stat_fields(&pid.to_string());
    // utime and stime: fields 14 and 15 of the file.
    (f[14 - 4] + f[15 - 4]) as f64 / ticks_per_second()
}

/// CPU seconds of this process's children that it has waited for.
fn cpu_of_waited_children() -> f64 {
    let f = stat_fields("self");
    // cutime and cstime: fields 16 and 17 of the file.
    (f[16 - 4] + f[17 - 4]) as f64 / ticks_per_second()
}

#[tokio::main]
async fn main() {
    tessera_tests::bench_line::machine("process_share");
    let repeat = tessera_tests::bench_line::repeat(3);
    let photos: Vec<RgbImage> = photos()
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (master, addr, key) = spawn_master(NODE, &data, &[]).await;
    let worker = spawn_worker(NODE, &addr, &key, "w1", &["--threads", "1"]);
    let megapixels = IMAGES as f64 * f64::from(WIDTH * HEIGHT) / 1e6;
    let (mut shares, mut per_worker_cpu) = (Vec::new(), Vec::new());
    // Round 0 warms up (connections, page cache) and is not counted.
    for round in 0..=repeat {
        let input = tmp.path().join(format!("in-{round}"));
        let output = tmp.path().join(format!("out-{round}"));
        mosaics(&photos, &input, round);
        let before = (
            cpu_of(master.pid()),
            cpu_of(worker.pid()),
            cpu_of_waited_children(),
        );
        let started = std::time::Instant::now();
        let run = tokio::process::Command::new(CLIENT)
            .args(["--master", &addr, "--key-file", key.to_str().unwrap()])
            .args([
                "run",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
            ])
            .env("RUST_LOG", "warn")
            .output();
        let out = tokio::time::timeout(Duration::from_secs(600), run)
            .await
            .expect("the batch finished within 10 minutes")
            .expect("tessera started");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "tessera run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let master_cpu = cpu_of(master.pid()) - before.0;
        let worker_cpu = cpu_of(worker.pid()) - before.1;
        let client_cpu = cpu_of_waited_children() - before.2;
        let share = worker_cpu / (master_cpu + worker_cpu + client_cpu);
        let (mb_in, mb_out) = (dir_bytes(&input) / 1e6, dir_bytes(&output) / 1e6);
        let line = format!(
            "{{\"bench\":\"process_share\",\"round\":{round},\"warm_up\":{},\"images\":{IMAGES},\"megapixels\":{megapixels:.1},\"mb_in\":{mb_in:.1},\"mb_out\":{mb_out:.1},\"wall_s\":{wall:.3},\"cpu_s\":{{\"master\":{master_cpu:.2},\"worker\":{worker_cpu:.2},\"client\":{client_cpu:.2}}},\"master_over_worker\":{:.3},\"client_over_worker\":{:.3},\"worker_share\":{share:.3},\"mpix_per_worker_cpu_s\":{:.1}}}\n",
            round == 0,
            master_cpu / worker_cpu,
            client_cpu / worker_cpu,
            megapixels / worker_cpu,
        );
        let _ = std::io::stdout().write_all(line.as_bytes());
        if round > 0 {
            shares.push(share);
            per_worker_cpu.push(megapixels / worker_cpu);
        }
        let _ = std::fs::remove_dir_all(&input);
        let _ = std::fs::remove_dir_all(&output);
    }
    let line = format!(
        "{{\"bench\":\"process_share\",\"rounds\":{repeat},\"median_worker_share\":{:.3},\"median_mpix_per_worker_cpu_s\":{:.1},\"target_worker_share\":0.85}}\n",
        median(&mut shares),
        median(&mut per_worker_cpu)
    );
    let _ = std::io::stdout().write_all(line.as_bytes());
}
