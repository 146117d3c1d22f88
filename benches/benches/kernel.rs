//! The red/blue swap kernel next to memcpy of the same buffer.
//!
//! For each pixel layout, on an 8K frame (7680x4320, far larger than the
//! caches) and on a 1 MiB buffer (cache-resident): GB/s of the in-place swap
//! (`swap_rb_sequential` on 1 thread, `swap_rb_in_place` over bands on all
//! threads), of `copy_from_slice` into a separate pre-faulted buffer of the
//! same size, and, on 1 thread, of the naive per-byte loop for reference.
//! Every figure is the median of several runs, the operations taking turns
//! so that load from elsewhere hits them alike; bytes counted once (the
//! buffer size).
//!
//! `cargo bench -p tessera-benches --bench kernel`
//! (`TESSERA_BENCH_REPEAT=N` sets the runs per figure; default 7.)

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;
use tessera_benches::{cores, figure, machine, repeat};
use tessera_imaging::{SampleLayout, swap_rb_in_place, swap_rb_sequential};

/// Median seconds of each of `ops` operations (`run(i)` runs the i-th)
/// over `runs` rounds, after one warm-up round. The operations take turns
/// within each round, so that other load on the machine weighs on all of
/// them alike and their ratios stay meaningful.
fn medians(runs: usize, ops: usize, mut run: impl FnMut(usize)) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(runs); ops];
    for round in 0..=runs {
        for (op, times) in times.iter_mut().enumerate() {
            let start = Instant::now();
            run(op);
            if round > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// The textbook loop: one pixel at a time, byte by byte, bounds-checked.
fn naive_swap(pixels: &mut [u8], layout: SampleLayout) {
    let (pixel, sample) = (layout.bytes_per_pixel(), layout.bytes_per_sample());
    let mut i = 0;
    while i + pixel <= pixels.len() {
        for b in 0..sample {
            pixels.swap(i + b, i + 2 * sample + b);
        }
        i += pixel;
    }
}

/// The parallel memcpy's unit of work: the swap's band size (128 KiB), so
/// that both split the buffer the same way.
const BAND: usize = 128 * 1024;

fn main() -> anyhow::Result<()> {
    machine("kernel");
    let runs = repeat(7);
    let threads = cores();
    let all = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let layouts = [
        ("rgb8", SampleLayout::Rgb8),
        ("rgba8", SampleLayout::Rgba8),
        ("rgb16", SampleLayout::Rgb16),
        ("rgba16", SampleLayout::Rgba16),
    ];
    for (layout_name, layout) in layouts {
        let frame = 7680 * 4320 * layout.bytes_per_pixel();
        let small = (1 << 20) / 24 * 24;
        for (size_name, len, inner) in [("8k", frame, 1), ("1mib", small, 64)] {
            // Both buffers written before timing: no page faults counted.
            let source: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut buffer = vec![1u8; len];
            let gb = (len * inner) as f64 / 1e9;

            let one = medians(runs, 3, |op| {
                for _ in 0..inner {
                    match op {
                        0 => buffer.copy_from_slice(black_box(&source)),
                        1 => swap_rb_sequential(black_box(&mut buffer), layout),
                        _ => naive_swap(black_box(&mut buffer), layout),
                    }
                }
            });
            let (memcpy_1t, swap_1t, naive_1t) = (one[0], one[1], one[2]);
            figure(
                "kernel",
                &format!("{layout_name}_{size_name}_1_thread"),
                &[
                    ("bytes", len as f64),
                    ("threads", 1.0),
                    ("memcpy_gb_per_s", gb / memcpy_1t),
                    ("swap_gb_per_s", gb / swap_1t),
                    ("naive_gb_per_s", gb / naive_1t),
                    ("swap_vs_memcpy", memcpy_1t / swap_1t),
                    ("naive_vs_memcpy", memcpy_1t / naive_1t),
                ],
            );

            let every = all.install(|| {
                medians(runs, 2, |op| {
                    for _ in 0..inner {
                        match op {
                            0 => buffer
                                .par_chunks_mut(BAND)
                                .zip(source.par_chunks(BAND))
                                .for_each(|(d, s)| d.copy_from_slice(black_box(s))),
                            _ => swap_rb_in_place(black_box(&mut buffer), layout),
                        }
                    }
                })
            });
            let (memcpy_all, swap_all) = (every[0], every[1]);
            figure(
                "kernel",
                &format!("{layout_name}_{size_name}_all_threads"),
                &[
                    ("bytes", len as f64),
                    ("threads", threads as f64),
                    ("memcpy_gb_per_s", gb / memcpy_all),
                    ("swap_gb_per_s", gb / swap_all),
                    ("swap_vs_memcpy", memcpy_all / swap_all),
                ],
            );
            black_box(&buffer);
        }
    }
    Ok(())
}
