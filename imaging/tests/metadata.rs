//! Ancillary chunks with colour values must follow the swap; everything
//! else must survive. PngSuite's colour keys and sBIT values all have equal
//! red and blue, so these files are crafted.

mod common;

use common::{Chunk, assemble, chunks, encode, rgba16};
use png::{BitDepth, ColorType};
use tessera_imaging::{Options, Path, process};

fn chunk(kind: &[u8; 4], data: &[u8]) -> Chunk {
    Chunk {
        kind: *kind,
        data: data.to_vec(),
    }
}

/// `png` with `extra` chunks inserted just before its first IDAT.
fn with_chunks(png: &[u8], extra: &[Chunk]) -> Vec<u8> {
    let mut all = chunks(png);
    let idat = all.iter().position(|c| &c.kind == b"IDAT").unwrap();
    all.splice(idat..idat, extra.iter().cloned());
    assemble(&all)
}

/// The data of the only chunk of type `kind` in `png`, if any.
fn chunk_data(png: &[u8], kind: &[u8; 4]) -> Option<Vec<u8>> {
    let found: Vec<Chunk> = chunks(png)
        .into_iter()
        .filter(|c| &c.kind == kind)
        .collect();
    assert!(found.len() <= 1, "several {kind:?} chunks");
    found.into_iter().next().map(|c| c.data)
}

/// Processes `input` and checks the output against the input through the
/// `image` crate (RGBA 16 bit, with tRNS applied): red and blue swapped,
/// alpha identical. Returns the output and its decoded pixels.
fn process_and_compare(input: &[u8]) -> (Vec<u8>, Vec<u16>) {
    let out = process(input, &Options::default()).unwrap();
    let (_, _, mut expected) = rgba16(input).unwrap();
    for pixel in expected.chunks_exact_mut(4) {
        pixel.swap(0, 2);
    }
    let (_, _, pixels) = rgba16(&out.bytes).unwrap();
    assert!(pixels == expected, "pixels or alpha differ");
    (out.bytes, pixels)
}

fn alphas(rgba: &[u16]) -> Vec<u16> {
    rgba.chunks_exact(4).map(|p| p[3]).collect()
}

#[test]
fn rgb8_colour_key_follows_the_swap() {
    // The key (10, 20, 30) matches pixels 0 and 2, not its mirror image.
    let pixels = [10, 20, 30, 30, 20, 10, 10, 20, 30, 1, 2, 3];
    let base = encode(4, 1, ColorType::Rgb, BitDepth::Eight, &pixels);
    let input = with_chunks(&base, &[chunk(b"tRNS", &[0, 10, 0, 20, 0, 30])]);
    assert_eq!(alphas(&rgba16(&input).unwrap().2), [0, 65535, 0, 65535]);

    let (out, decoded) = process_and_compare(&input);
    assert_eq!(chunk_data(&out, b"tRNS").unwrap(), [0, 30, 0, 20, 0, 10]);
    assert_eq!(alphas(&decoded), [0, 65535, 0, 65535]);
}

#[test]
fn rgb16_colour_key_follows_the_swap() {
    let (r, g, b) = ([0x12, 0x34], [0x56, 0x78], [0x9A, 0xBC]);
    let pixels = [r, g, b, b, g, r, r, g, b].concat();
    let base = encode(3, 1, ColorType::Rgb, BitDepth::Sixteen, &pixels);
    let key = [r, g, b].concat();
    let input = with_chunks(&base, &[chunk(b"tRNS", &key)]);
    assert_eq!(alphas(&rgba16(&input).unwrap().2), [0, 65535, 0]);

    let (out, decoded) = process_and_compare(&input);
    assert_eq!(chunk_data(&out, b"tRNS").unwrap(), [b, g, r].concat());
    assert_eq!(alphas(&decoded), [0, 65535, 0]);
}

#[test]
fn significant_bits_and_background_follow_the_swap() {
    let rgb = encode(2, 1, ColorType::Rgb, BitDepth::Eight, &[1, 2, 3, 4, 5, 6]);
    let input = with_chunks(
        &rgb,
        &[
            chunk(b"sBIT", &[3, 5, 7]),
            chunk(b"bKGD", &[0, 1, 0, 2, 0, 3]),
        ],
    );
    let (out, _) = process_and_compare(&input);
    assert_eq!(chunk_data(&out, b"sBIT").unwrap(), [7, 5, 3]);
    assert_eq!(chunk_data(&out, b"bKGD").unwrap(), [0, 3, 0, 2, 0, 1]);

    let rgba = encode(1, 1, ColorType::Rgba, BitDepth::Eight, &[1, 2, 3, 4]);
    let input = with_chunks(&rgba, &[chunk(b"sBIT", &[3, 5, 7, 8])]);
    let (out, _) = process_and_compare(&input);
    assert_eq!(chunk_data(&out, b"sBIT").unwrap(), [7, 5, 3, 8]);
}

#[test]
fn indexed_images_swap_the_palette_only() {
    let indices = [0b0001_1011]; // four 2-bit pixels: 0, 1, 2, 3
    let mut base = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut base, 4, 1);
        encoder.set_color(ColorType::Indexed);
        encoder.set_depth(BitDepth::Two);
        encoder.set_palette(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        encoder.set_trns(vec![0, 128]);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&indices).unwrap();
    }
    let input = with_chunks(&base, &[chunk(b"sBIT", &[3, 5, 7]), chunk(b"bKGD", &[2])]);
    let out = process(&input, &Options::default()).unwrap();
    assert_eq!(out.path, Path::PaletteSwapped);
    let out = out.bytes;
    assert_eq!(
        chunk_data(&out, b"PLTE").unwrap(),
        [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]
    );
    assert_eq!(chunk_data(&out, b"tRNS").unwrap(), [0, 128]);
    assert_eq!(chunk_data(&out, b"sBIT").unwrap(), [7, 5, 3]);
    assert_eq!(chunk_data(&out, b"bKGD").unwrap(), [2]);
    assert_eq!(chunk_data(&out, b"IDAT"), chunk_data(&input, b"IDAT"));
    process_and_compare(&input);
}

#[test]
fn unknown_chunks_follow_the_copy_rules() {
    let safe = chunk(b"prVt", b"safe to copy");
    let unsafe_ = chunk(b"prVT", b"depends on the pixels");
    let cases = [
        (ColorType::Rgb, vec![1, 2, 3], true),
        (ColorType::Grayscale, vec![7], false),
    ];
    for (color, pixels, modified) in cases {
        let base = encode(1, 1, color, BitDepth::Eight, &pixels);
        let input = with_chunks(&base, &[safe.clone(), unsafe_.clone()]);
        let out = process(&input, &Options::default()).unwrap().bytes;
        assert_eq!(chunk_data(&out, b"prVt").unwrap(), safe.data, "{color:?}");
        // An editor that changed critical chunks must drop unknown
        // unsafe-to-copy chunks; grayscale images are not changed at all.
        assert_eq!(chunk_data(&out, b"prVT").is_some(), !modified, "{color:?}");
    }
}

#[test]
fn colour_space_and_text_chunks_survive_reencoding() {
    let mut icc = b"profile\0\0".to_vec();
    icc.extend_from_slice(&[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    let extra = [
        chunk(b"gAMA", &45455u32.to_be_bytes()),
        chunk(b"iCCP", &icc),
        chunk(b"pHYs", &[0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        chunk(b"tEXt", b"Title\0tessera"),
        chunk(b"iTXt", b"Author\0\0\0en\0\0Ren\xC3\xA9"),
        chunk(b"eXIf", b"MM\0\x2A\0\0\0\x08\0\0"),
        chunk(b"tIME", &[0x07, 0xE9, 1, 2, 3, 4, 5]),
    ];
    let base = encode(2, 2, ColorType::Rgba, BitDepth::Sixteen, &[0x42; 32]);
    let input = with_chunks(&base, &extra);
    let (out, _) = process_and_compare(&input);
    let kept: Vec<Chunk> = chunks(&out)
        .into_iter()
        .filter(|c| !matches!(&c.kind, b"IHDR" | b"IDAT" | b"IEND"))
        .collect();
    assert_eq!(kept, extra);
}
