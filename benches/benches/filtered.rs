//! Issue 18's floor: what the worker's per-image work costs today
//! (`tessera_imaging::process`, `fast`), next to the path it proposes,
//! measured here as a prototype on one thread: inflate the image data
//! (fdeflate, into a buffer of the size the header gives),
//! exchange red and blue in the filtered rows
//! (`swap_rb_in_filtered_rows`), deflate with fdeflate (what `fast`
//! uses); and next to inflate plus deflate alone, the floor of that path.
//! Per set: megapixels per CPU-second of each way (median of the rounds,
//! the ways taking turns), the prototype's and today's output sizes.
//!
//! The prototype is not yet the worker's path: it skips what `process`
//! also does (chunk validation, the other chunks, APNG), so its figure is
//! an upper bound of what wiring it in can give.
//!
//! `cargo bench -p tessera-benches --bench filtered`
//! (`TESSERA_BENCH_REPEAT=N` sets the rounds; default 5.)

use tessera_benches::{cpu_seconds, figure, machine, photo_bytes, photo_like_png, repeat};
use tessera_imaging::{Compression, Options, SampleLayout, process, swap_rb_in_filtered_rows};

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

/// The prototype path: inflate, exchange in the filtered rows, deflate.
fn prototype(png: &[u8], swap: bool) -> usize {
    let (idat, w, h, layout, interlaced) = image_data(png);
    // fdeflate's inflate (what the png crate decodes with) into a buffer of
    // the exact size the header gives.
    let len = tessera_imaging::filtered_len(w, h, layout, interlaced) as usize;
    let mut filtered = vec![0u8; len];
    let (mut decoder, mut read, mut written) = (fdeflate::Decompressor::new(), 0, 0);
    while !decoder.is_done() {
        let (r, w) = decoder
            .read(&idat[read..], &mut filtered, written, true)
            .expect("valid zlib");
        (read, written) = (read + r, written + w);
        assert!(r + w > 0, "inflate made no progress");
    }
    assert_eq!(written, len);
    if swap {
        swap_rb_in_filtered_rows(&mut filtered, w, h, layout, interlaced).expect("valid rows");
    }
    fdeflate::compress_to_vec(&filtered).len()
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
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let (mut today_bytes, mut proto_bytes) = (0usize, 0usize);
        for _ in 0..rounds {
            for (way, t) in times.iter_mut().enumerate() {
                let start = cpu_seconds();
                let mut bytes = 0;
                for png in &images {
                    bytes += match way {
                        0 => process(png, &opts).expect("a valid image").bytes.len(),
                        1 => prototype(png, true),
                        _ => prototype(png, false),
                    };
                }
                t.push(cpu_seconds() - start);
                match way {
                    0 => today_bytes = bytes,
                    1 => proto_bytes = bytes,
                    _ => {}
                }
            }
        }
        let median = |t: &mut Vec<f64>| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let [today, proto, floor] = times.map(|mut t| median(&mut t));
        figure(
            "filtered",
            name,
            &[
                ("images", images.len() as f64),
                ("megapixels", mpix),
                ("today_mpix_per_cpu_s", mpix / today),
                ("prototype_mpix_per_cpu_s", mpix / proto),
                ("inflate_deflate_mpix_per_cpu_s", mpix / floor),
                ("prototype_vs_floor", floor / proto),
                (
                    "prototype_bytes_vs_today",
                    proto_bytes as f64 / today_bytes as f64,
                ),
            ],
        );
    }
}
