//! What every bench shares (the workspace's `benches/` and this crate's
//! own): the first line it prints (the cores this process may use and the
//! 1-minute load average before the run, because the figures mean little
//! on a machine that other work keeps busy), its number of rounds, and the
//! median of its rounds.

/// Prints `{"bench":BENCH,"case":"machine","cores":N,"load_avg_1m":L}`.
pub fn machine(bench: &str) {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    // JSON has no NaN: an unreadable load is `null`.
    let load = if load.is_nan() {
        "null".to_string()
    } else {
        format!("{load:.2}")
    };
    println!(
        "{{\"bench\":\"{bench}\",\"case\":\"machine\",\"cores\":{cores},\"load_avg_1m\":{load}}}"
    );
}

/// Number of repetitions, from `TESSERA_BENCH_REPEAT` (default `default`).
pub fn repeat(default: usize) -> usize {
    std::env::var("TESSERA_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (the upper one of an even count); `v` is sorted.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
