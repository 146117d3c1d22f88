//! The real master, workers and clients on turmoil's simulated hosts, TCP,
//! time and disk, under faults drawn from a seed; a seed fixes the whole
//! run (ARCHITECTURE.md, "The simulation", lists the seams that make it so,
//! the faults, the oracle, and how to add a fault).
//!
//! `TESSERA_SIM_SEEDS=N` runs seeds 1..=N (default 200, about a minute;
//! `TESSERA_SIM_FIRST=K` starts at seed K instead, to split a long run
//! over processes);
//! `TESSERA_SIM_SEED=S` replays one and prints its faults and the master's
//! record. Each run ends with the line
//! `simulation: N seeds passed, 0 failed (F faults injected)`.
//!
//! Faults are drawn for the first 600 simulated seconds, then undone; the
//! batch must end within 300 s of calm after them (liveness).
//! `TESSERA_SIM_LOG=info` (a tracing filter) adds the nodes' logs to a
//! replay's trace.
//!
//! Workers process images inline (`WorkerConfig::inline_compute`), so no
//! simulated time passes while an image is processed; each image takes its
//! worker's `test_delay` (20-300 ms, one worker in four 0.8-2.5 s, from the
//! seed) of simulated time.
//!
//! The simulated cluster runs with `--max-attempts 5` (see `max_attempts`
//! in `harness.rs`; `TESSERA_SIM_MAX_ATTEMPTS` sets another). At the
//! default 3, 1 of 1,900 seeds fails (2026-12-06: seeds 1-1,000 and
//! 62,951-63,850; 63,598 fails an innocent image that died alone three
//! times in a storm of crashes; blame weighs deaths by running time,
//! `scheduler/background.rs`).
//!
//! Found with it: at ten times this fault rate (a fault every 20-200 ms),
//! 4 of 100 seeds failed an innocent image "for its content" after three
//! worker crashes that hit it while it ran alone. A crash alone on a worker
//! is the blame rule's evidence of a poison; in a storm of crashes it is
//! not (the limit the README states). And the reverted fixes the README
//! names.

mod corpus;
mod determinism;
mod faults;
mod harness;
mod oracle;

use harness::{Run, run_seed};

#[test]
fn seeded_faults_lose_no_image_and_fail_no_innocent_one() {
    let one: Option<u64> = std::env::var("TESSERA_SIM_SEED")
        .ok()
        .map(|s| s.parse().expect("TESSERA_SIM_SEED: a number"));
    let seeds: Vec<u64> = match one {
        Some(s) => vec![s],
        None => {
            let n: u64 = std::env::var("TESSERA_SIM_SEEDS")
                .map(|s| s.parse().expect("TESSERA_SIM_SEEDS: a number"))
                .unwrap_or(200);
            // Where to start, to split a long run over processes.
            let first: u64 = std::env::var("TESSERA_SIM_FIRST")
                .map(|s| s.parse().expect("TESSERA_SIM_FIRST: a number"))
                .unwrap_or(1);
            (first..first + n).collect()
        }
    };
    let (mut passed, mut failed, mut injected) = (0, Vec::new(), 0);
    for &seed in &seeds {
        let run = run_seed(seed, one.is_some());
        injected += run.faults.len();
        if run.problems.is_empty() {
            passed += 1;
        } else {
            failed.push(format!(
                "seed {seed} failed (replay: TESSERA_SIM_SEED={seed} cargo test --release -p tessera-tests --test simulation -- --nocapture):\n  {}\nfaults:\n  {}",
                run.problems.join("\n  "),
                run.faults.join("\n  ")
            ));
        }
    }
    println!(
        "simulation: {passed} seeds passed, {} failed ({injected} faults injected)",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// A seed fixes the whole run: the same faults at the same times, and the
/// same record of every task, event for event, to the millisecond, whatever
/// ran before it in the process (the seeds run in one order, then in the
/// reverse order).
#[test]
fn a_seed_fixes_the_whole_run() {
    let seeds = [3, 11, 29, 5];
    let first: Vec<Run> = seeds.iter().map(|&s| run_seed(s, false)).collect();
    for (&seed, first) in seeds.iter().zip(&first).rev() {
        let again = run_seed(seed, false);
        assert_eq!(first.faults, again.faults, "seed {seed}: the faults differ");
        if first.fingerprint != again.fingerprint {
            let (a, b): (Vec<_>, Vec<_>) = (
                first.fingerprint.lines().collect(),
                again.fingerprint.lines().collect(),
            );
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "seed {seed}: two runs differ from the record's line {at}:\n  {:?}\n  {:?}",
                a.get(at),
                b.get(at)
            );
        }
    }
}
