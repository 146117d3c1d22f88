//! Helpers shared by the integration tests. They deliberately avoid the
//! crate's internals: chunks, CRCs and pixels are read here independently.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// The shared test corpus.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

/// The `.png` files of `tests/data/<dir>` whose names satisfy `keep`, sorted.
pub fn pngs(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let dir = Path::new(DATA).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .filter(|path| keep(&name(path)))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    files
}

/// Every valid PngSuite file (including `PngSuite.png`) and every photo.
pub fn valid_files() -> Vec<PathBuf> {
    let mut files = pngs("pngsuite", |n| !n.starts_with('x'));
    files.extend(pngs("photos", |_| true));
    files
}

pub fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Width, height, colour type, bit depth and interlacing, read with `png`.
pub fn png_header(bytes: &[u8]) -> (u32, u32, png::ColorType, png::BitDepth, bool) {
    let reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let info = reader.info();
    (
        info.width,
        info.height,
        info.color_type,
        info.bit_depth,
        info.interlaced,
    )
}

/// The image as RGBA, 16 bits per sample, decoded by the `image` crate.
pub fn rgba16(bytes: &[u8]) -> Result<(u32, u32, Vec<u16>), String> {
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?
        .into_rgba16();
    Ok((image.width(), image.height(), image.into_raw()))
}

/// Every frame of the image as raw samples (no transformations), with the
/// frame's width and height, decoded by the `png` crate.
pub fn raw_frames(bytes: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    let frames = match &info.animation_control {
        None => 1,
        Some(a) => a.num_frames + u32::from(info.frame_control.is_none()),
    };
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let mut out = Vec::new();
    for _ in 0..frames {
        let frame = reader.next_frame(&mut buffer).unwrap();
        out.push((
            frame.width,
            frame.height,
            buffer[..frame.buffer_size()].to_vec(),
        ));
    }
    out
}

/// `samples` (RGB or RGBA, `bytes_per_sample` each) with red and blue
/// swapped, computed the slow and obvious way.
pub fn swap_samples(samples: &[u8], channels: usize, bytes_per_sample: usize) -> Vec<u8> {
    let mut out = samples.to_vec();
    for pixel in out.chunks_exact_mut(channels * bytes_per_sample) {
        for b in 0..bytes_per_sample {
            pixel.swap(b, 2 * bytes_per_sample + b);
        }
    }
    out
}

/// A chunk: its type and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub kind: [u8; 4],
    pub data: Vec<u8>,
}

impl Chunk {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }
}

/// The chunks of a well-formed PNG (CRCs not checked).
pub fn chunks(png: &[u8]) -> Vec<Chunk> {
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = png[pos + 4..pos + 8].try_into().unwrap();
        out.push(Chunk {
            kind,
            data: png[pos + 8..pos + 8 + len].to_vec(),
        });
        pos += 12 + len;
    }
    out
}

/// Serialises chunks into a PNG datastream, computing their CRCs.
pub fn assemble(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in chunks {
        out.extend_from_slice(&(chunk.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&chunk.kind);
        out.extend_from_slice(&chunk.data);
        out.extend_from_slice(&crc32(&[&chunk.kind, &chunk.data]).to_be_bytes());
    }
    out
}

/// Bitwise CRC-32 (the PNG chunk CRC) over the concatenation of `parts`.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG built with the `png` encoder from raw samples.
pub fn encode(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    samples: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(samples).unwrap();
    writer.finish().unwrap();
    out
}
