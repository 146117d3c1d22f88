//! Tests of the parallel encoder, at modest sizes: tiny bands make many
//! pieces out of small images. Every output is decoded with both the `png`
//! and the `image` crate and compared with the pixels that went in.

use std::io::Cursor;

use crate::buffers::BufferCache;
use crate::encode::{Parallelism, encode_png_with};
use crate::test_common::{raw_frames, valid_files};
use crate::{Compression, Engine, Options, Path, SampleLayout, process_png};

const LAYOUTS: [SampleLayout; 4] = [
    SampleLayout::Rgb8,
    SampleLayout::Rgba8,
    SampleLayout::Rgb16,
    SampleLayout::Rgba16,
];

const COMPRESSIONS: [Compression; 3] = [Compression::Fast, Compression::Default, Compression::Best];

/// Always in parallel, `band_bytes` per band.
fn parallel(band_bytes: usize) -> Parallelism {
    Parallelism {
        min_bytes: 0,
        band_bytes,
    }
}

/// Photo-like pixels: smooth gradients plus a little pseudo-random noise.
fn pixels(width: u32, height: u32, layout: SampleLayout, seed: u32) -> Vec<u8> {
    let samples = (width * height) as usize * layout.samples_per_pixel();
    let mut out = Vec::with_capacity(samples * layout.bytes_per_sample());
    for i in 0..samples as u32 {
        let (pixel, sample) = (i / 4, i % 4);
        let (x, y) = (pixel % width, pixel / width);
        let noise = i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 29;
        let value = (x * 3 + y * 5 + sample * 40 + noise) as u16;
        let value = value.wrapping_mul(257).wrapping_add(noise as u16);
        match layout.bytes_per_sample() {
            1 => out.push(value as u8),
            _ => out.extend_from_slice(&value.to_be_bytes()),
        }
    }
    out
}

/// Raw samples (16-bit big-endian) of the first frame, decoded by `png`.
fn decode_png(bytes: &[u8]) -> (u32, u32, png::ColorType, png::BitDepth, Vec<u8>) {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().expect("png reads the header");
    let mut buffer = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buffer).expect("png decodes");
    buffer.truncate(info.buffer_size());
    reader.finish().expect("png reads to IEND");
    (
        info.width,
        info.height,
        info.color_type,
        info.bit_depth,
        buffer,
    )
}

/// The pixels as the `image` crate sees them: RGBA, 16 bits per sample.
fn decode_image(bytes: &[u8]) -> Vec<u16> {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .expect("image decodes")
        .into_rgba16()
        .into_raw()
}

/// Raw samples in `layout` as RGBA 16, the way `image` widens them.
fn to_rgba16(raw: &[u8], layout: SampleLayout) -> Vec<u16> {
    let samples: Vec<u16> = match layout.bytes_per_sample() {
        1 => raw.iter().map(|&b| u16::from(b) * 257).collect(),
        _ => raw
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect(),
    };
    samples
        .chunks_exact(layout.samples_per_pixel())
        .flat_map(|p| [p[0], p[1], p[2], p.get(3).copied().unwrap_or(u16::MAX)])
        .collect()
}

fn idat_count(png: &[u8]) -> usize {
    crate::chunks::chunks_of(png)
        .filter(|c| c.kind == png::chunk::IDAT)
        .count()
}

#[test]
fn parallel_output_is_pixel_exact_for_both_decoders() {
    let sizes = [(1, 1), (1, 9), (9, 1), (13, 17), (64, 33), (101, 37)];
    for layout in LAYOUTS {
        for (i, &(width, height)) in sizes.iter().enumerate() {
            let input = pixels(width, height, layout, i as u32);
            for compression in COMPRESSIONS {
                // One row per band, and a few rows per band.
                for band_bytes in [1, 700] {
                    let what = format!("{layout:?} {width}x{height} {compression:?} {band_bytes}");
                    let png = encode_png_with(
                        &input,
                        width,
                        height,
                        layout,
                        compression,
                        parallel(band_bytes),
                    )
                    .unwrap();
                    let (w, h, _, _, raw) = decode_png(&png);
                    assert_eq!((w, h), (width, height), "{what}");
                    assert!(raw == input, "{what}: png decodes other pixels");
                    assert!(
                        decode_image(&png) == to_rgba16(&input, layout),
                        "{what}: image decodes other pixels"
                    );
                }
            }
        }
    }
}

#[test]
fn each_band_becomes_one_image_data_chunk() {
    let (width, height) = (50, 40);
    let input = pixels(width, height, SampleLayout::Rgb8, 1);
    let row = 50 * 3;
    for (band_bytes, bands) in [
        (1, 40),
        (row, 40),
        (row * 3, 14),
        (row * 40, 1),
        (1 << 30, 1),
    ] {
        let png = encode_png_with(
            &input,
            width,
            height,
            SampleLayout::Rgb8,
            Compression::Fast,
            parallel(band_bytes),
        )
        .unwrap();
        assert_eq!(idat_count(&png), bands, "{band_bytes} bytes per band");
    }
}

#[test]
fn small_images_stay_with_the_png_encoder() {
    // Below the threshold the png crate writes one IDAT; above it, bands.
    let (width, height) = (40, 40);
    let input = pixels(width, height, SampleLayout::Rgba8, 2);
    let threshold = Parallelism {
        min_bytes: input.len(),
        band_bytes: 40 * 4,
    };
    let at = encode_png_with(
        &input,
        width,
        height,
        SampleLayout::Rgba8,
        Compression::Fast,
        threshold,
    );
    assert_eq!(idat_count(&at.unwrap()), 1);
    let above = Parallelism {
        min_bytes: input.len() - 1,
        ..threshold
    };
    let png = encode_png_with(
        &input,
        width,
        height,
        SampleLayout::Rgba8,
        Compression::Fast,
        above,
    );
    assert_eq!(idat_count(&png.unwrap()), 40);
}

#[test]
fn noise_is_stored_and_still_exact() {
    let (width, height) = (128, 64);
    let noise: Vec<u8> = (0..width * height * 3)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let png = encode_png_with(
        &noise,
        width,
        height,
        SampleLayout::Rgb8,
        Compression::Fast,
        parallel(4096),
    )
    .unwrap();
    assert_eq!(decode_png(&png).4, noise);
    // Stored: no bigger than the filtered rows plus a little framing.
    assert!(png.len() < noise.len() + height as usize + 1024);
}

#[test]
fn wrong_buffer_sizes_are_internal_errors() {
    let err = encode_png_with(
        &[0; 10],
        2,
        2,
        SampleLayout::Rgb8,
        Compression::Fast,
        parallel(1),
    )
    .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Internal);
}

#[test]
fn process_in_parallel_bands_gives_the_same_pixels_on_the_corpus() {
    // Every truecolour file of the corpus (16-bit, alpha, interlaced, odd
    // sizes, animations), re-encoded in bands of two rows and as usual.
    let options = Options::default();
    let mut checked = 0;
    for path in valid_files() {
        let input = std::fs::read(&path).unwrap();
        let name = path.display();
        let usual = process_png(&input, &options, &Engine::FULL_PATH).unwrap();
        if usual.path != Path::Reencoded {
            continue;
        }
        let band_bytes = usual.width as usize * 2;
        let buffers = BufferCache::new(1 << 30);
        let engine = Engine {
            parallelism: parallel(band_bytes),
            buffers: &buffers,
            filtered: false,
        };
        let banded = process_png(&input, &options, &engine).unwrap();
        assert_eq!(banded.path, Path::Reencoded);
        assert!(
            raw_frames(&banded.bytes) == raw_frames(&usual.bytes),
            "{name}: the banded output has other pixels"
        );
        assert!(
            decode_image(&banded.bytes) == decode_image(&usual.bytes),
            "{name}: image decodes the banded output differently"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} truecolour files");
}

#[test]
fn bands_cost_little_size_on_a_photo() {
    // Same filters as the png crate, so with fdeflate (no matches across
    // rows) the banded stream is the same size give or take the framing.
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/photos/kodim23.png"
    ))
    .unwrap();
    let (width, height, _, _, raw) = decode_png(&input);
    let encode = |parallelism| {
        encode_png_with(
            &raw,
            width,
            height,
            SampleLayout::Rgb8,
            Compression::Fast,
            parallelism,
        )
        .unwrap()
    };
    let usual = encode(Parallelism::DEFAULT);
    let banded = encode(parallel(64 * 1024));
    let bands = idat_count(&banded);
    assert!(bands > 10);
    assert!(
        banded.len() <= usual.len() + usual.len() / 100 + bands * 80,
        "banded {} vs {} bytes",
        banded.len(),
        usual.len()
    );
    assert_eq!(decode_png(&banded).4, raw);
}
