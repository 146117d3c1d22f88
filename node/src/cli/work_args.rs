//! The options a worker runs with (`worker` and `dev`): threads,
//! compression, prefetch, the drain grace, the image limits, and the
//! switches for tests and load tests only (hidden from `--help`, refused
//! unless `TESSERA_TEST_SWITCHES=1`).

use std::time::Duration;

use clap::ValueEnum;

use crate::{cli_security::ImageLimitArgs, worker::WorkerConfig};

/// Options shared by `worker` and `dev`.
#[derive(Debug, clap::Args)]
pub struct WorkArgs {
    /// Images processed at once, each with its swap spread over the same threads
    /// (default: all cores; in `dev`, the cores shared among the workers).
    #[arg(long)]
    pub threads: Option<usize>,
    /// PNG encoder effort for re-encoded images.
    #[arg(long, value_enum, default_value_t = PngCompression::Fast)]
    pub png_compression: PngCompression,
    /// Tasks fetched ahead beyond `--threads`, so the next image is already
    /// here when a thread frees up (default: as many as threads, at least 2).
    #[arg(long)]
    pub prefetch: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long running tasks may take to finish
    /// (unstarted ones are given back at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,
    // The switches below are for tests and load tests only: not in `--help`,
    // and refused unless `TESSERA_TEST_SWITCHES=1` is set.
    /// BENCHMARK ONLY (the synthetic task mode): return each input unchanged
    /// as its result the moment it has arrived, without decoding or
    /// processing it, to load-test a master and the network alone. The
    /// results are NOT processed images.
    #[arg(long, hide = true)]
    pub synthetic: bool,
    /// TEST ONLY: sleep this long before processing each image, to simulate
    /// a slow worker.
    #[arg(long, hide = true, value_parser = humantime::parse_duration)]
    pub test_delay: Option<Duration>,
    /// TEST ONLY: abort the process when starting an image whose name
    /// contains this text, to simulate a poison image.
    #[arg(long, hide = true)]
    pub test_crash_on: Option<String>,
    /// TEST ONLY: panic while processing an image whose name contains this
    /// text (the task must fail and the worker go on).
    #[arg(long, hide = true)]
    pub test_panic_on: Option<String>,
    #[command(flatten)]
    pub image_limits: ImageLimitArgs,
}

/// The environment variable that enables the test-only worker switches
/// (`--test-delay`, `--test-crash-on`, `--test-panic-on`, `--synthetic`):
/// set to `1`.
pub const TEST_SWITCHES_ENV: &str = "TESSERA_TEST_SWITCHES";

/// Whether [`TEST_SWITCHES_ENV`] is set to `1`.
pub fn test_switches_enabled() -> bool {
    std::env::var_os(TEST_SWITCHES_ENV).is_some_and(|v| v == "1")
}

impl WorkArgs {
    /// The test-only switches given, by flag.
    fn test_switches(&self) -> Vec<&'static str> {
        [
            (self.synthetic, "--synthetic"),
            (self.test_delay.is_some(), "--test-delay"),
            (self.test_crash_on.is_some(), "--test-crash-on"),
            (self.test_panic_on.is_some(), "--test-panic-on"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// Applies these options to a worker's configuration; the test-only
    /// switches only when [`TEST_SWITCHES_ENV`] is `1`.
    pub fn apply(&self, config: &mut WorkerConfig) -> anyhow::Result<()> {
        self.apply_with(config, test_switches_enabled())
    }

    /// [`Self::apply`], with the test-only switches allowed or not.
    pub fn apply_with(&self, config: &mut WorkerConfig, test_switches: bool) -> anyhow::Result<()> {
        let used = self.test_switches();
        anyhow::ensure!(
            used.is_empty() || test_switches,
            "{} {} for tests only and refused unless {TEST_SWITCHES_ENV}=1 is set",
            used.join(", "),
            if used.len() == 1 { "is" } else { "are" },
        );
        if let Some(t) = self.threads {
            anyhow::ensure!(t > 0, "--threads must be at least 1");
            config.threads = t;
        }
        config.prefetch = self.prefetch.unwrap_or(config.threads.max(2));
        config.options.compression = self.png_compression.into();
        config.drain_grace = self.drain_grace;
        config.synthetic = self.synthetic;
        if self.synthetic {
            tracing::warn!(
                "synthetic task mode: inputs are returned unprocessed (--synthetic is for load tests only)"
            );
        }
        config.test_delay = self.test_delay;
        config.test_crash_on = self.test_crash_on.clone();
        config.test_panic_on = self.test_panic_on.clone();
        self.image_limits.apply(config);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PngCompression {
    Fast,
    Default,
    Best,
}

impl From<PngCompression> for tessera_imaging::Compression {
    fn from(c: PngCompression) -> Self {
        match c {
            PngCompression::Fast => tessera_imaging::Compression::Fast,
            PngCompression::Default => tessera_imaging::Compression::Default,
            PngCompression::Best => tessera_imaging::Compression::Best,
        }
    }
}
