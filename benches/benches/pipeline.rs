//! Where a worker's CPU time goes, per image: decode, swap, encode, and the
//! whole `process` call, for each encode setting, on the Kodak photos and on
//! generated photo-like 1920x1080 and 7680x4320 RGB images.
//!
//! Figures are megapixels per CPU-second (process CPU clock, all threads),
//! wall milliseconds per image and the output size relative to the input.
//! Decode is the `png` crate with the worker's settings (raw samples,
//! Adler-32 checked) into a reused buffer; swap is `swap_rb_in_place` and
//! encode is `encode_png`, both on a pool of all cores, exactly as in a
//! worker; `other` is what `process` spends besides those three (chunk
//! CRCs, splicing the chunks). Then, for the 8K image, the latency of the
//! parallel encoder next to the `png` crate encoding the same pixels on one
//! thread; and, for the Kodak photos, the `png` crate's fast encoder with
//! each row filter.
//!
//! `cargo bench -p tessera-benches --bench pipeline`
//! (`TESSERA_BENCH_REPEAT=N` sets the rounds over the Kodak photos; the
//! generated images get a third of that, the 8K image one round; default 6.
//! `TESSERA_BENCH_ONLY=7680` measures only the sets whose name contains
//! `7680`.)

use std::io::Cursor;

use tessera_benches::{
    Measured, cores, figure, machine, measure, photo_bytes, photo_like_png, repeat, selected,
    thread_cpu_seconds,
};
use tessera_imaging::{Compression, Options, SampleLayout, encode_png, swap_rb_in_place};

/// A set of images measured together.
struct Set {
    name: &'static str,
    images: Vec<Vec<u8>>,
    rounds: usize,
}

/// A decoded image.
struct Decoded {
    width: u32,
    height: u32,
    layout: SampleLayout,
    pixels: Vec<u8>,
}

impl Decoded {
    fn megapixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }

    /// Encodes as the worker does.
    fn encode(&self, compression: Compression) -> Result<Vec<u8>, tessera_imaging::ProcessError> {
        encode_png(
            &self.pixels,
            self.width,
            self.height,
            self.layout,
            compression,
        )
    }
}

/// Decodes into a new buffer.
fn decode(png_bytes: &[u8]) -> Decoded {
    let mut buffer = Vec::new();
    let (width, height, layout, size) = decode_into(png_bytes, &mut buffer);
    buffer.truncate(size);
    Decoded {
        width,
        height,
        layout,
        pixels: buffer,
    }
}

/// Decodes like the worker does, into `buffer` (grown if needed, reused
/// across images as the worker reuses its buffers); returns the width,
/// height, layout and the number of bytes of pixels.
fn decode_into(png_bytes: &[u8], buffer: &mut Vec<u8>) -> (u32, u32, SampleLayout, usize) {
    let mut options = png::DecodeOptions::default();
    options.set_ignore_adler32(false);
    options.set_ignore_crc(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(png_bytes), options);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().expect("a PNG");
    let size = reader.output_buffer_size().expect("a size");
    if buffer.len() < size {
        buffer.resize(size, 0);
    }
    let info = reader.next_frame(buffer).expect("pixels");
    let layout = SampleLayout::new(info.bit_depth as usize / 8, info.color_type.samples())
        .expect("an RGB or RGBA image");
    (info.width, info.height, layout, info.buffer_size())
}

const SETTINGS: [(&str, Compression); 3] = [
    ("fast", Compression::Fast),
    ("default", Compression::Default),
    ("best", Compression::Best),
];

fn main() -> anyhow::Result<()> {
    machine("pipeline");
    let rounds = repeat(6);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores())
        .build()?;
    let mut sets = Vec::new();
    if selected("kodak") {
        sets.push(Set {
            name: "kodak",
            images: photo_bytes(),
            rounds,
        });
    }
    for (name, width, height, rounds) in [
        ("1920x1080", 1920, 1080, rounds.div_ceil(3)),
        ("7680x4320", 7680, 4320, 1),
    ] {
        if selected(name) {
            sets.push(Set {
                name,
                images: vec![photo_like_png(width, height)],
                rounds,
            });
        }
    }
    for set in &sets {
        pool.install(|| measure_set(set))?;
    }
    for set in &sets {
        match set.name {
            "7680x4320" => parallel_encode_latency(set, &pool)?,
            "kodak" => filters_on_kodak(set, rounds),
            _ => {}
        }
    }
    Ok(())
}

/// Decode, swap, encode and `process` for every setting on one set.
fn measure_set(set: &Set) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let decoded: Vec<Decoded> = set.images.iter().map(|b| decode(b)).collect();
    let mpix: f64 = decoded.iter().map(Decoded::megapixels).sum::<f64>() * set.rounds as f64;
    let images = (set.images.len() * set.rounds) as f64;
    let input_bytes: usize = set.images.iter().map(Vec::len).sum();

    let mut decode_time = Measured::default();
    let mut swap_time = Measured::default();
    for _ in 0..set.rounds {
        for png_bytes in &set.images {
            let ((_, _, layout, size), spent) = measure(|| decode_into(png_bytes, &mut buffer));
            decode_time += spent;
            let ((), spent) = measure(|| swap_rb_in_place(&mut buffer[..size], layout));
            swap_time += spent;
        }
    }

    for (setting, compression) in SETTINGS {
        let mut encode_time = Measured::default();
        let mut process_time = Measured::default();
        let mut output_bytes = 0;
        let options = Options {
            compression,
            ..Options::default()
        };
        for _ in 0..set.rounds {
            for (png_bytes, image) in set.images.iter().zip(&decoded) {
                let (encoded, spent) = measure(|| image.encode(compression));
                encoded?;
                encode_time += spent;
                let (output, spent) = measure(|| tessera_imaging::process(png_bytes, &options));
                output_bytes += output?.bytes.len();
                process_time += spent;
            }
        }
        let other = Measured {
            wall: process_time.wall - decode_time.wall - swap_time.wall - encode_time.wall,
            cpu: process_time.cpu - decode_time.cpu - swap_time.cpu - encode_time.cpu,
        };
        let rate = |m: Measured| mpix / m.cpu;
        let ms = |m: Measured| m.wall * 1e3 / images;
        figure(
            "pipeline",
            &format!("{}_{setting}", set.name),
            &[
                ("images", images),
                ("mpix_per_image", mpix / images),
                ("decode_mpix_per_cpu_s", rate(decode_time)),
                ("swap_mpix_per_cpu_s", rate(swap_time)),
                ("encode_mpix_per_cpu_s", rate(encode_time)),
                ("process_mpix_per_cpu_s", rate(process_time)),
                ("decode_ms", ms(decode_time)),
                ("swap_ms", ms(swap_time)),
                ("encode_ms", ms(encode_time)),
                ("other_ms", ms(other)),
                ("process_ms", ms(process_time)),
                (
                    "output_vs_input",
                    output_bytes as f64 / (input_bytes * set.rounds) as f64,
                ),
                (
                    "input_bits_per_pixel",
                    (input_bytes * set.rounds * 8) as f64 / (mpix * 1e6),
                ),
                (
                    "output_bits_per_pixel",
                    (output_bytes * 8) as f64 / (mpix * 1e6),
                ),
            ],
        );
    }
    Ok(())
}

/// The `png` crate's encoder on one thread, as for small images.
fn encode_serially(
    image: &Decoded,
    deflate: png::DeflateCompression,
    filter: png::Filter,
) -> usize {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    let color = match image.layout.samples_per_pixel() {
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    };
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_deflate_compression(deflate);
    encoder.set_filter(filter);
    let mut writer = encoder.write_header().expect("header");
    writer.write_image_data(&image.pixels).expect("data");
    writer.finish().expect("end");
    out.len()
}

/// CPU seconds used so far by each thread of `pool`.
fn pool_cpu(pool: &rayon::ThreadPool) -> Vec<f64> {
    pool.broadcast(|_| thread_cpu_seconds())
}

/// The 8K image's encode: one thread (`png`) against the parallel encoder.
///
/// The wall-clock gain compares the best of a few runs of each way. Next
/// to it, `balanced_gain` is the parallel encode's CPU time over that of
/// its busiest pool thread (last run): the gain it gets when every pool
/// thread has a core to itself, which the wall clock only shows on an
/// otherwise idle machine.
fn parallel_encode_latency(set: &Set, pool: &rayon::ThreadPool) -> anyhow::Result<()> {
    let image = decode(&set.images[0]);
    // Fast is quick enough to take turns several times: the best wall time
    // of each way is the nearest to an idle machine's.
    let settings = [
        (
            "fast",
            Compression::Fast,
            png::DeflateCompression::FdeflateUltraFast,
            5,
        ),
        (
            "default",
            Compression::Default,
            png::DeflateCompression::Level(6),
            1,
        ),
    ];
    for (setting, compression, deflate, runs) in settings {
        let (mut serial, mut parallel) = (Vec::new(), Vec::new());
        let (mut serial_bytes, mut parallel_bytes, mut per_thread) = (0, 0, Vec::new());
        for _ in 0..runs {
            let (bytes, spent) =
                measure(|| encode_serially(&image, deflate, png::Filter::Adaptive));
            serial_bytes = bytes;
            serial.push(spent);
            let before = pool_cpu(pool);
            let (png, spent) = measure(|| pool.install(|| image.encode(compression)));
            parallel_bytes = png?.len();
            parallel.push(spent);
            per_thread = pool_cpu(pool)
                .iter()
                .zip(before)
                .map(|(after, before)| after - before)
                .collect();
        }
        let best = |m: &[Measured]| m.iter().map(|m| m.wall).fold(f64::INFINITY, f64::min);
        let median_cpu = |m: &mut Vec<Measured>| {
            m.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
            m[m.len() / 2].cpu
        };
        let busiest = per_thread.iter().copied().fold(0.0, f64::max);
        figure(
            "pipeline",
            &format!("{}_encode_{setting}_parallel_vs_one_thread", set.name),
            &[
                ("threads", cores() as f64),
                ("runs", runs as f64),
                ("one_thread_best_ms", best(&serial) * 1e3),
                ("parallel_best_ms", best(&parallel) * 1e3),
                ("latency_gain", best(&serial) / best(&parallel)),
                ("balanced_gain", per_thread.iter().sum::<f64>() / busiest),
                ("one_thread_cpu_s", median_cpu(&mut serial)),
                ("parallel_cpu_s", median_cpu(&mut parallel)),
                (
                    "size_vs_one_thread",
                    parallel_bytes as f64 / serial_bytes as f64,
                ),
            ],
        );
    }
    Ok(())
}

/// The `png` crate's fast (fdeflate) encoder with each filter, on one
/// thread, over the Kodak photos.
fn filters_on_kodak(set: &Set, rounds: usize) {
    let decoded: Vec<Decoded> = set.images.iter().map(|b| decode(b)).collect();
    let mpix: f64 = decoded.iter().map(Decoded::megapixels).sum::<f64>() * rounds as f64;
    let input_bytes: usize = set.images.iter().map(Vec::len).sum();
    let filters = [
        ("none", png::Filter::NoFilter),
        ("sub", png::Filter::Sub),
        ("up", png::Filter::Up),
        ("avg", png::Filter::Avg),
        ("paeth", png::Filter::Paeth),
        ("adaptive", png::Filter::Adaptive),
    ];
    for (name, filter) in filters {
        let mut bytes = 0;
        let ((), spent) = measure(|| {
            for _ in 0..rounds {
                for image in &decoded {
                    bytes +=
                        encode_serially(image, png::DeflateCompression::FdeflateUltraFast, filter);
                }
            }
        });
        figure(
            "pipeline",
            &format!("kodak_fast_filter_{name}"),
            &[
                ("encode_mpix_per_cpu_s", mpix / spent.cpu),
                (
                    "output_vs_input",
                    bytes as f64 / (input_bytes * rounds) as f64,
                ),
            ],
        );
    }
}
