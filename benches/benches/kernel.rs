//! The red/blue swap kernel next to memcpy of the same buffer.
//!
//! For each pixel layout, on an 8K frame (7680x4320, far larger than the
//! caches) and on a 1 MiB buffer (cache-resident): GB/s of the in-place swap
//! (`swap_rb_sequential` on 1 thread, `swap_rb_in_place` over bands on all
//! threads), of `copy_from_slice` into a separate pre-faulted buffer of the
//! same size, and, on 1 thread, of the naive per-byte loop for reference.
//! Every figure is the median of several runs; bytes counted once (the
//! buffer size).
//!
//! `cargo bench -p tessera-benches --bench kernel`
//! (`TESSERA_BENCH_REPEAT=N` sets the runs per figure; default 7.)

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;
use tessera_benches::{cores, figure, machine, repeat};
use tessera_imaging::{SampleLayout, swap_rb_in_place, swap_rb_sequential};

/// Median seconds of `runs` runs of `op`, after one warm-up run.
fn median_secs(runs: usize, mut op: impl FnMut()) -> f64 {
    op();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
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
            let repeat_op = |op: &mut dyn FnMut()| {
                for _ in 0..inner {
                    op();
                }
            };

            let memcpy_1t = median_secs(runs, || {
                repeat_op(&mut || buffer.copy_from_slice(black_box(&source)))
            });
            let swap_1t = median_secs(runs, || {
                repeat_op(&mut || swap_rb_sequential(black_box(&mut buffer), layout))
            });
            let naive_1t = median_secs(runs, || {
                repeat_op(&mut || naive_swap(black_box(&mut buffer), layout))
            });
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

            let memcpy_all = all.install(|| {
                median_secs(runs, || {
                    repeat_op(&mut || {
                        buffer
                            .par_chunks_mut(BAND)
                            .zip(source.par_chunks(BAND))
                            .for_each(|(d, s)| d.copy_from_slice(black_box(s)))
                    })
                })
            });
            let swap_all = all.install(|| {
                median_secs(runs, || {
                    repeat_op(&mut || swap_rb_in_place(black_box(&mut buffer), layout))
                })
            });
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
