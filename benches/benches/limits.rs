//! How fast an image over the limits is refused: a decompression bomb (a
//! small PNG that declares 16384 x 16384 8-bit grayscale pixels, 256 MiB)
//! given to `tessera_imaging::process` with a 64 MiB limit of decoded bytes,
//! and the same bomb with its width over `max_width`. Both are decided from
//! the header, before anything large is allocated or decoded; the figure is
//! how long that takes (the tests in `imaging/tests/limits.rs` check the
//! refusal itself, never its speed).
//!
//! `cargo bench -p tessera-benches --bench limits`
//! (`TESSERA_BENCH_REPEAT=N`: refusals timed per case, default 1000)

use std::time::Instant;

use tessera_benches::{figure, machine, repeat};
use tessera_imaging::{ErrorKind, Limits, Options, process};

fn main() -> anyhow::Result<()> {
    machine("limits");
    let n = repeat(1000);
    let side = 16384;
    let input = tessera_tests::png_bomb(side);
    let cases = [
        (
            "bomb_decoded_bytes",
            Limits {
                max_decoded_bytes: 64 << 20,
                ..Limits::default()
            },
        ),
        (
            "bomb_width",
            Limits {
                max_width: side - 1,
                ..Limits::default()
            },
        ),
    ];
    for (case, limits) in cases {
        let opts = Options {
            limits,
            ..Options::default()
        };
        let mut micros = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let refused = process(&input, &opts);
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            match refused {
                Err(e) if e.kind() == ErrorKind::TooLarge => {}
                other => anyhow::bail!("{case}: expected TooLarge, got {other:?}"),
            }
        }
        micros.sort_by(f64::total_cmp);
        figure(
            "limits",
            case,
            &[
                ("input_bytes", input.len() as f64),
                ("declared_bytes", f64::from(side) * f64::from(side)),
                ("refusals", n as f64),
                ("p50_us", micros[n / 2]),
                ("max_us", micros[n - 1]),
            ],
        );
    }
    Ok(())
}
