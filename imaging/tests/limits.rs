//! Resource limits: decided from the input size and the header, before
//! decoding allocates anything large.

mod common;

use common::{Chunk, assemble, encode, rgba16};
use png::{BitDepth, ColorType};
use tessera_imaging::{ErrorKind, Limits, Options, Path, process};

/// A well-formed PNG whose header claims `width` x `height` RGB8 but whose
/// image data is a tiny (and far too short) zlib stream.
fn header_only(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let empty_zlib = [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    assemble(&[
        Chunk {
            kind: *b"IHDR",
            data: ihdr,
        },
        Chunk {
            kind: *b"IDAT",
            data: empty_zlib.to_vec(),
        },
        Chunk {
            kind: *b"IEND",
            data: Vec::new(),
        },
    ])
}

fn with_limits(limits: Limits) -> Options {
    Options {
        limits,
        ..Options::default()
    }
}

/// Refused as too large (how fast: `cargo bench -p tessera-benches --bench
/// limits`); returns the message.
fn too_large(input: &[u8], opts: &Options) -> String {
    let err = process(input, opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    err.to_string()
}

#[test]
fn huge_dimensions_are_rejected_from_the_header() {
    let input = header_only(100_000, 100_000);
    assert_eq!(
        too_large(&input, &Options::default()),
        "image too large: 100000x100000 pixels exceeds the 32768x32768 limit"
    );

    // Even when the dimensions are allowed, 30 GB of pixels are not.
    let generous = with_limits(Limits {
        max_width: 100_000,
        max_height: 100_000,
        ..Limits::default()
    });
    assert_eq!(
        too_large(&input, &generous),
        "image too large: decoding 100000x100000 pixels needs 30000000000 bytes (27.9 GiB), \
         the limit is 1.0 GiB"
    );
}

#[test]
fn each_dimension_is_limited_separately() {
    let input = header_only(40_000, 10);
    assert!(too_large(&input, &Options::default()).contains("40000x10"));
    let input = header_only(10, 40_000);
    assert!(too_large(&input, &Options::default()).contains("10x40000"));
}

#[test]
fn input_size_is_limited() {
    let input = encode(1, 1, ColorType::Rgb, BitDepth::Eight, &[1, 2, 3]);
    let tight = with_limits(Limits {
        max_input_bytes: input.len() as u64 - 1,
        ..Limits::default()
    });
    let message = too_large(&input, &tight);
    assert!(
        message.starts_with("image too large: the input has"),
        "{message}"
    );

    let exact = with_limits(Limits {
        max_input_bytes: input.len() as u64,
        ..Limits::default()
    });
    assert!(process(&input, &exact).is_ok());
}

#[test]
fn decompression_bomb_is_rejected() {
    // 10000 x 10000 zero bytes: 100 MB of pixels in a tiny file.
    let (width, height) = (10_000, 10_000);
    let bomb = encode(
        width,
        height,
        ColorType::Grayscale,
        BitDepth::Eight,
        &vec![0; 100_000_000],
    );
    assert!(bomb.len() < 1_000_000, "the bomb is {} bytes", bomb.len());

    let tight = with_limits(Limits {
        max_decoded_bytes: 50_000_000,
        ..Limits::default()
    });
    let message = too_large(&bomb, &tight);
    assert!(message.contains("needs 100000000 bytes"), "{message}");

    // Within the default limits it is a valid image, validated row by row.
    let out = process(&bomb, &Options::default()).unwrap();
    assert_eq!(out.path, Path::Unchanged);
    assert_eq!((out.width, out.height), (width, height));
}

#[test]
fn decoded_limit_covers_the_pixel_buffer_and_the_decoder() {
    // 2000 x 1500 RGB8: a 9 MB pixel buffer, swapped in many parallel bands.
    let (width, height) = (2000u32, 1500u32);
    let frame = (width * height * 3) as usize;
    let pixels: Vec<u8> = (0..frame).map(|i| (i % 251) as u8).collect();
    let input = encode(width, height, ColorType::Rgb, BitDepth::Eight, &pixels);

    let below = with_limits(Limits {
        max_decoded_bytes: frame as u64 - 1,
        ..Limits::default()
    });
    too_large(&input, &below);

    // The decoder's working memory comes out of the same budget.
    let no_room = with_limits(Limits {
        max_decoded_bytes: frame as u64,
        ..Limits::default()
    });
    assert!(too_large(&input, &no_room).contains("PNG decoder needs more memory"));

    let enough = with_limits(Limits {
        max_decoded_bytes: frame as u64 + (1 << 20),
        ..Limits::default()
    });
    let out = process(&input, &enough).unwrap();
    let (_, _, after) = rgba16(&out.bytes).unwrap();
    let (_, _, mut expected) = rgba16(&input).unwrap();
    for pixel in expected.chunks_exact_mut(4) {
        pixel.swap(0, 2);
    }
    assert!(after == expected);
}
