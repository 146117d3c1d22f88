//! Animated PNGs: every frame is swapped, frame control is kept, and the
//! output is a valid APNG (sequence numbers in order).

mod common;

use common::{Chunk, assemble, chunks, raw_frames, swap_samples};
use png::{BitDepth, ColorType};
use tessera_imaging::{ErrorKind, Options, Path, process};

/// A sub-frame: size, position and raw samples.
struct Frame {
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    samples: Vec<u8>,
}

fn frame(width: u32, height: u32, x: u32, y: u32, channels: u32, seed: u32) -> Frame {
    let len = width * height * channels;
    Frame {
        width,
        height,
        x,
        y,
        samples: (0..len).map(|i| (i * 7 + seed * 31) as u8).collect(),
    }
}

/// An 8-bit APNG of `color` (8x6). With `default_image`, a full-size image
/// that is not part of the animation comes first.
fn apng(color: ColorType, default_image: Option<&Frame>, frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 8, 6);
    encoder.set_color(color);
    encoder.set_depth(BitDepth::Eight);
    if color == ColorType::Indexed {
        encoder.set_palette(
            (0..=255u8)
                .flat_map(|i| [i, i / 2, 255 - i])
                .collect::<Vec<_>>(),
        );
    }
    encoder.set_animated(frames.len() as u32, 0).unwrap();
    encoder.set_sep_def_img(default_image.is_some()).unwrap();
    let mut writer = encoder.write_header().unwrap();
    if let Some(image) = default_image {
        writer.write_image_data(&image.samples).unwrap();
    }
    for f in frames {
        writer.reset_frame_position().unwrap();
        writer.set_frame_dimension(f.width, f.height).unwrap();
        writer.set_frame_position(f.x, f.y).unwrap();
        writer.write_image_data(&f.samples).unwrap();
    }
    writer.finish().unwrap();
    out
}

/// fcTL chunks without their sequence numbers.
fn frame_controls(png: &[u8]) -> Vec<Vec<u8>> {
    chunks(png)
        .into_iter()
        .filter(|c| &c.kind == b"fcTL")
        .map(|c| c.data[4..].to_vec())
        .collect()
}

fn assert_all_frames_swapped(input: &[u8], output: &[u8], channels: usize) {
    let before = raw_frames(input);
    let after = raw_frames(output);
    assert_eq!(before.len(), after.len(), "frame count");
    for (i, ((w, h, raw), (ow, oh, oraw))) in before.iter().zip(&after).enumerate() {
        assert_eq!((w, h), (ow, oh), "frame {i} size");
        let expected = if channels >= 3 {
            swap_samples(raw, channels, 1)
        } else {
            raw.clone()
        };
        assert!(*oraw == expected, "frame {i} samples");
    }
    assert_eq!(frame_controls(input), frame_controls(output));
}

#[test]
fn rgb_animation_frames_are_all_swapped() {
    let frames = [
        frame(8, 6, 0, 0, 3, 1),
        frame(3, 2, 4, 3, 3, 2),
        frame(1, 1, 7, 5, 3, 3),
        frame(8, 6, 0, 0, 3, 4),
    ];
    let input = apng(ColorType::Rgb, None, &frames);
    let out = process(&input, &Options::default()).unwrap();
    assert_eq!(out.path, Path::Reencoded);
    assert_all_frames_swapped(&input, &out.bytes, 3);
}

#[test]
fn separate_default_image_is_swapped_too() {
    let default_image = frame(8, 6, 0, 0, 4, 9);
    let frames = [frame(2, 2, 1, 1, 4, 5), frame(8, 6, 0, 0, 4, 6)];
    let input = apng(ColorType::Rgba, Some(&default_image), &frames);
    let out = process(&input, &Options::default()).unwrap();
    assert_eq!(raw_frames(&input).len(), 3, "default image + 2 frames");
    assert_all_frames_swapped(&input, &out.bytes, 4);
}

#[test]
fn indexed_animation_keeps_every_frame_byte_identical() {
    let frames = [frame(8, 6, 0, 0, 1, 1), frame(5, 3, 2, 2, 1, 2)];
    let input = apng(ColorType::Indexed, None, &frames);
    let out = process(&input, &Options::default()).unwrap();
    assert_eq!(out.path, Path::PaletteSwapped);
    assert_all_frames_swapped(&input, &out.bytes, 1);
    let data = |png: &[u8]| -> Vec<Chunk> {
        chunks(png)
            .into_iter()
            .filter(|c| matches!(&c.kind, b"IDAT" | b"fdAT" | b"fcTL" | b"acTL"))
            .collect()
    };
    assert_eq!(data(&input), data(&out.bytes));
}

/// `png` with every fdAT chunk split in two, sequence numbers renumbered.
fn split_frame_data(png: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sequence = 0u32;
    let mut next = || {
        sequence += 1;
        (sequence - 1).to_be_bytes()
    };
    for mut c in chunks(png) {
        match &c.kind {
            b"fcTL" => {
                c.data[..4].copy_from_slice(&next());
                out.push(c);
            }
            b"fdAT" => {
                let (first, second) = c.data[4..].split_at((c.data.len() - 4) / 2);
                for half in [first, second] {
                    let data = [&next()[..], half].concat();
                    out.push(Chunk {
                        kind: *b"fdAT",
                        data,
                    });
                }
            }
            _ => out.push(c),
        }
    }
    assemble(&out)
}

#[test]
fn sequence_numbers_are_renumbered() {
    // Each frame arrives in two fdAT chunks and leaves in one, so every
    // later fcTL / fdAT needs a new sequence number.
    let frames = [
        frame(8, 6, 0, 0, 3, 1),
        frame(6, 4, 1, 1, 3, 2),
        frame(8, 6, 0, 0, 3, 3),
    ];
    let input = split_frame_data(&apng(ColorType::Rgb, None, &frames));
    let fdats = |png: &[u8]| chunks(png).iter().filter(|c| &c.kind == b"fdAT").count();
    assert_eq!(fdats(&input), 4);
    let out = process(&input, &Options::default()).unwrap();
    assert_eq!(fdats(&out.bytes), 2);
    let sequence: Vec<u32> = chunks(&out.bytes)
        .iter()
        .filter(|c| matches!(&c.kind, b"fcTL" | b"fdAT"))
        .map(|c| u32::from_be_bytes(c.data[..4].try_into().unwrap()))
        .collect();
    assert_eq!(sequence, [0, 1, 2, 3, 4]);
    assert_all_frames_swapped(&input, &out.bytes, 3);
}

#[test]
fn missing_frames_are_rejected() {
    // acTL promises one frame more than the file holds.
    let frames = [frame(8, 6, 0, 0, 3, 1), frame(2, 2, 0, 0, 3, 2)];
    let mut parts = chunks(&apng(ColorType::Rgb, None, &frames));
    let actl = parts.iter_mut().find(|c| &c.kind == b"acTL").unwrap();
    actl.data[..4].copy_from_slice(&3u32.to_be_bytes());
    let err = process(&assemble(&parts), &Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}
