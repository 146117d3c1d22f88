//! Shared helpers of the benchmarks: the corpus, generated photo-like
//! images, CPU-time measurement and JSON figure lines.

use std::path::{Path, PathBuf};

pub mod child_master;
mod cpu;
mod synthetic;
pub mod synthetic_worker;

pub use cpu::{Measured, cpu_seconds, measure, thread_cpu_seconds};
pub use synthetic::{photo_like_png, photo_like_rgb8};

/// The Kodak photos shipped for tests and benchmarks.
pub fn photos() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/photos");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v
}

/// The Kodak photos' bytes, in name order.
pub fn photo_bytes() -> Vec<Vec<u8>> {
    photos()
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Prints one figure as a JSON line: `{"bench":..,"case":..,<fields>}`.
pub fn figure(bench: &str, case: &str, fields: &[(&str, f64)]) {
    let mut line = format!("{{\"bench\":\"{bench}\",\"case\":\"{case}\"");
    for (k, v) in fields {
        line.push_str(&format!(",\"{k}\":{v:.3}"));
    }
    line.push('}');
    println!("{line}");
}

/// Whether the set of images `name` is to be measured: all are, unless
/// `TESSERA_BENCH_ONLY` is set, then those whose name contains it (for
/// profiling one set).
pub fn selected(name: &str) -> bool {
    std::env::var("TESSERA_BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |c| c.get())
}

/// The machine line every bench starts with (cores, load before the run).
pub use tessera_tests::bench_line::machine;
/// Number of repetitions, from `TESSERA_BENCH_REPEAT`.
pub use tessera_tests::bench_line::repeat;
