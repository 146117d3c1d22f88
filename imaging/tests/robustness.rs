//! Damaged inputs beyond the corpus: specific messages for errors found by
//! the `png` decoder, and a sweep of mutated files that must never panic or
//! produce an internal error.

mod common;

use common::{Chunk, assemble, chunks, encode, name, read, rgba16};
use png::{BitDepth, ColorType};
use tessera_imaging::{ErrorKind, Options, ProcessError, process};

fn corrupt_message(parts: &[Chunk]) -> String {
    let err = process(&assemble(parts), &Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    err.to_string()
}

/// A 20x20 RGB8 image with varied pixels, as chunks.
fn rgb_chunks() -> Vec<Chunk> {
    let pixels: Vec<u8> = (0..1200u32).map(|i| (i * 7 % 256) as u8).collect();
    chunks(&encode(20, 20, ColorType::Rgb, BitDepth::Eight, &pixels))
}

fn idat(parts: &mut [Chunk]) -> &mut Vec<u8> {
    &mut parts.iter_mut().find(|c| &c.kind == b"IDAT").unwrap().data
}

#[test]
fn zlib_checksum_is_verified_for_every_colour_type() {
    // Grayscale and indexed outputs reuse the input's image data, so they
    // must be decoded just as fully as truecolour ones.
    let cases = [
        ("RGB", rgb_chunks()),
        (
            "gray",
            chunks(&encode(
                3,
                2,
                ColorType::Grayscale,
                BitDepth::Eight,
                &[9; 6],
            )),
        ),
        (
            "indexed",
            common::chunks(&read(&common::pngs("pngsuite", |n| n == "basn3p08.png")[0])),
        ),
    ];
    for (label, mut parts) in cases {
        let data = idat(&mut parts);
        *data.last_mut().unwrap() ^= 1; // Adler-32, with a correct chunk CRC
        let message = corrupt_message(&parts);
        assert!(
            message.starts_with("corrupt image data: "),
            "{label}: {message}"
        );
        assert!(message.contains("WrongChecksum"), "{label}: {message}");
    }
}

#[test]
fn truncated_compressed_data_is_rejected() {
    let mut parts = rgb_chunks();
    let data = idat(&mut parts);
    data.truncate(data.len() / 2);
    let message = corrupt_message(&parts);
    assert!(message.starts_with("corrupt image data: "), "{message}");
}

#[test]
fn unknown_row_filter_is_rejected() {
    // A stored (uncompressed) zlib block holding one row with filter type 9.
    let row = [9u8, 1, 2, 3, 4, 5, 6];
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &row {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01, 7, 0, !7, 0xFF];
    zlib.extend_from_slice(&row);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut parts = chunks(&encode(2, 1, ColorType::Rgb, BitDepth::Eight, &[0; 6]));
    *idat(&mut parts) = zlib;
    assert_eq!(
        corrupt_message(&parts),
        "corrupt image data: Unknown filter method 9"
    );
}

#[test]
fn indexed_image_without_palette_is_rejected() {
    let mut parts = chunks(&encode(
        2,
        1,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0, 1],
    ));
    parts[0].data[9] = 3; // colour type: indexed
    assert_eq!(
        corrupt_message(&parts),
        "missing PLTE: an indexed-colour image needs a palette before its image data"
    );
}

#[test]
fn text_is_not_a_png() {
    let err = process(
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        &Options::default(),
    );
    assert_eq!(err.unwrap_err().to_string(), "not a PNG: bad signature");
}

/// Damages every valid PngSuite file in many ways (with and without fixing
/// the chunk CRC, and by truncation): `process` must return normally, never
/// with an internal error, and whatever it accepts must decode correctly.
#[test]
fn mutated_files_never_cause_internal_errors() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in common::pngs("pngsuite", |n| !n.starts_with('x')) {
        let input = read(&path);
        for (label, damaged) in mutations(&input) {
            cases += 1;
            if let Err(problem) = check_damaged(&damaged) {
                failures.push(format!("{} ({label}): {problem}", name(&path)));
            }
        }
    }
    assert!(cases > 5000, "only {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Variants of `png`: bytes flipped inside each chunk with the CRC
/// recomputed (reaching the decoder), raw flips (caught by the CRC), and
/// truncations.
fn mutations(png: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let parts = chunks(png);
    for (i, chunk) in parts.iter().enumerate() {
        let len = chunk.data.len();
        for at in [
            0,
            1,
            len / 3,
            len / 2,
            len.saturating_sub(5),
            len.saturating_sub(1),
        ] {
            if at >= len {
                continue;
            }
            for flip in [0x01, 0x80, 0xFF] {
                let mut damaged = parts.clone();
                damaged[i].data[at] ^= flip;
                out.push((
                    format!("{} byte {at} ^ {flip:#x}", chunk.name()),
                    assemble(&damaged),
                ));
            }
        }
    }
    for at in (8..png.len()).step_by(png.len() / 16 + 1) {
        out.push((format!("truncated to {at}"), png[..at].to_vec()));
        let mut flipped = png.to_vec();
        flipped[at] ^= 0x10;
        out.push((format!("raw flip at {at}"), flipped));
    }
    out
}

fn check_damaged(png: &[u8]) -> Result<(), String> {
    match process(png, &Options::default()) {
        Err(ProcessError::Internal(message)) => Err(format!("internal error: {message}")),
        Err(e) if e.to_string().is_empty() => Err("empty message".into()),
        Err(_) => Ok(()),
        Ok(out) => {
            // Accepted: the output must decode to the swapped input.
            let (_, _, before) =
                rgba16(png).map_err(|e| format!("accepted, but the image crate says: {e}"))?;
            let (_, _, mut after) = rgba16(&out.bytes).map_err(|e| format!("output: {e}"))?;
            for pixel in after.chunks_exact_mut(4) {
                pixel.swap(0, 2);
            }
            if after != before {
                return Err("accepted, but the pixels are not swapped exactly".into());
            }
            Ok(())
        }
    }
}
