//! Issue 18's per-core figures, on one thread, `fast`: the worker's
//! per-image work (`tessera_imaging::process`, which takes the filtered
//! path for still truecolour images: inflate, exchange red and blue in the
//! filtered rows, deflate), the full path it replaced (decode, swap,
//! encode: `process_full_path`), a bare prototype of the filtered path
//! (inflate with fdeflate into a buffer of the size the header gives,
//! `swap_rb_in_filtered_rows`, deflate; no validation, no other chunks),
//! and inflate plus deflate alone, the floor of that path. Per set:
//! megapixels per CPU-second of each way (median of the rounds, the ways
//! taking turns), the worker's output size against the full path's.
//!
//! `cargo bench -p tessera-benches --bench filtered`
//! (`TESSERA_BENCH_REPEAT=N` sets the rounds; default 5.)

use tessera_benches::{cpu_seconds, figure, machine, photo_bytes, photo_like_png, repeat};
use tessera_imaging::{
    Compression, Options, SampleLayout, process, process_full_path, swap_rb_in_filtered_rows,
};

/// The concatenated IDAT data and the IHDR fields of a PNG.
fn image_data(png: &[u8]) -> (Vec<u8>, u32, u32, SampleLayout, bool) {
    let (mut pos, mut idat, mut header) = (8, Vec::new(), None);
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let (kind, data) = (&png[pos + 4..pos + 8], &png[pos + 8..pos + 8 + len]);
        match kind {
            b"IHDR" => {
                let w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                let h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                let samples = if data[9] == 6 { 4 } else { 3 };
                let layout = SampleLayout::new(usize::from(data[8]) / 8, samples).unwrap();
                header = Some((w, h, layout, data[12] == 1));
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let (w, h, layout, interlaced) = header.expect("an IHDR");
    (idat, w, h, layout, interlaced)
}

thread_local! {
    /// The inflated data's buffer, kept from image to image (as the
    /// worker's path keeps its own), so that no way pays for page faults
    /// the others do not.
    static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// fdeflate's inflate (what the png crate decodes with) of the image data
/// into a buffer of the exact size the header gives (kept for the next
/// call: hand it back with `BUFFER.set`).
fn inflate(png: &[u8]) -> (Vec<u8>, u32, u32, SampleLayout, bool) {
    let (idat, w, h, layout, interlaced) = image_data(png);
    let len = tessera_imaging::filtered_len(w, h, layout, interlaced) as usize;
    let mut filtered = BUFFER.take();
    filtered.resize(len, 0);
    let (mut decoder, mut read, mut written) = (fdeflate::Decompressor::new(), 0, 0);
    while !decoder.is_done() {
        let (r, w) = decoder
            .read(&idat[read..], &mut filtered, written, true)
            .expect("valid zlib");
        (read, written) = (read + r, written + w);
        assert!(r + w > 0, "inflate made no progress");
    }
    assert_eq!(written, len);
    (filtered, w, h, layout, interlaced)
}

/// The prototype path: inflate, exchange in the filtered rows, deflate.
fn prototype(png: &[u8], swap: bool) -> usize {
    let (mut filtered, w, h, layout, interlaced) = inflate(png);
    if swap {
        swap_rb_in_filtered_rows(&mut filtered, w, h, layout, interlaced).expect("valid rows");
    }
    let len = fdeflate::compress_to_vec(&filtered).len();
    BUFFER.set(filtered);
    len
}

/// One large image's latency on a pool of two threads (a 2-core worker):
/// the worker's path (the filtered path in bands: inflating on one thread,
/// exchanging and deflating the finished bands on the other), the full
/// path, and inflating its image data alone on one thread, the bound.
fn large_image_latency(rounds: usize, opts: &Options) {
    let png = photo_like_png(7680, 4320);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Each way once untimed: buffers grown and faulted in.
    pool.install(|| {
        drop(process(&png, opts));
        drop(process_full_path(&png, opts));
        BUFFER.set(inflate(&png).0);
    });
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (way, t) in times.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            pool.install(|| match way {
                0 => drop(process(&png, opts).expect("a valid image")),
                1 => drop(process_full_path(&png, opts).expect("a valid image")),
                _ => BUFFER.set(inflate(&png).0),
            });
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [worker, full, inflate] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    figure(
        "filtered",
        "7680x4320 latency, 2 threads",
        &[
            ("worker_ms", worker),
            ("full_path_ms", full),
            ("inflate_alone_ms", inflate),
            ("worker_vs_inflate", worker / inflate),
        ],
    );
}

fn main() {
    machine("filtered");
    let rounds = repeat(5);
    let sets: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("kodak", photo_bytes()),
        ("1920x1080", vec![photo_like_png(1920, 1080)]),
    ];
    let opts = Options {
        compression: Compression::Fast,
        ..Options::default()
    };
    for (name, images) in sets {
        let mpix: f64 = images
            .iter()
            .map(|png| {
                let (_, w, h, _, _) = image_data(png);
                f64::from(w) * f64::from(h) / 1e6
            })
            .sum();
        let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        let (mut worker_bytes, mut full_bytes) = (0usize, 0usize);
        for _ in 0..rounds {
            for (way, t) in times.iter_mut().enumerate() {
                let start = cpu_seconds();
                let mut bytes = 0;
                for png in &images {
                    bytes += match way {
                        0 => process(png, &opts).expect("a valid image").bytes.len(),
                        1 => process_full_path(png, &opts)
                            .expect("a valid image")
                            .bytes
                            .len(),
                        2 => prototype(png, true),
                        _ => prototype(png, false),
                    };
                }
                t.push(cpu_seconds() - start);
                match way {
                    0 => worker_bytes = bytes,
                    1 => full_bytes = bytes,
                    _ => {}
                }
            }
        }
        let median = |t: &mut Vec<f64>| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let [worker, full, proto, floor] = times.map(|mut t| median(&mut t));
        figure(
            "filtered",
            name,
            &[
                ("images", images.len() as f64),
                ("megapixels", mpix),
                ("worker_mpix_per_cpu_s", mpix / worker),
                ("full_path_mpix_per_cpu_s", mpix / full),
                ("prototype_mpix_per_cpu_s", mpix / proto),
                ("inflate_deflate_mpix_per_cpu_s", mpix / floor),
                ("worker_vs_floor", floor / worker),
                (
                    "worker_bytes_vs_full_path",
                    worker_bytes as f64 / full_bytes as f64,
                ),
            ],
        );
    }
    large_image_latency(rounds, &opts);
}
