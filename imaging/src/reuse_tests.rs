//! Reused decode buffers never leak an earlier image into an output: every
//! truecolour file of the corpus (interlaced, animated, 16-bit, alpha, odd
//! sizes, photos) is processed with a buffer full of a marker and must come
//! out byte for byte as it does with fresh buffers.

use crate::buffers::BufferCache;
use crate::encode::Parallelism;
use crate::test_common::valid_files;
use crate::{Engine, Options, Path, process_png};

/// Larger than any decoded frame of the corpus.
const MARKED_BYTES: usize = 4 << 20;

#[test]
fn stale_buffers_never_reach_the_output() {
    let options = Options::default();
    let marked = BufferCache::new(MARKED_BYTES);
    let marked_engine = Engine {
        parallelism: Parallelism::DEFAULT,
        buffers: &marked,
        filtered: false,
    };
    let mut reencoded = 0;
    for path in valid_files() {
        let input = std::fs::read(&path).unwrap();
        // Fresh buffers: a cache that keeps nothing.
        let fresh = BufferCache::new(0);
        let fresh_engine = Engine {
            parallelism: Parallelism::DEFAULT,
            buffers: &fresh,
            filtered: false,
        };
        let expected = process_png(&input, &options, &fresh_engine).unwrap();
        if expected.path != Path::Reencoded {
            continue;
        }
        for marker in [0x00, 0xa5, 0xff] {
            marked.take(MARKED_BYTES).unwrap().fill(marker);
            let before = marked.reused();
            let got = process_png(&input, &options, &marked_engine).unwrap();
            assert_eq!(marked.reused(), before + 1, "{}: no reuse", path.display());
            assert!(
                got.bytes == expected.bytes,
                "{} with stale bytes {marker:#04x} differs",
                path.display()
            );
        }
        reencoded += 1;
    }
    assert!(reencoded > 20, "only {reencoded} truecolour files");
}

#[test]
fn a_failed_decode_leaves_the_next_image_intact() {
    let marked = BufferCache::new(MARKED_BYTES);
    let engine = Engine {
        parallelism: Parallelism::DEFAULT,
        buffers: &marked,
        filtered: false,
    };
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/photos/kodim07.png"
    ))
    .unwrap();
    let options = Options::default();
    let expected = process_png(&photo, &options, &engine).unwrap();
    // The same photo with its image data damaged (and the chunk's CRC
    // made right, so that decoding starts), then the intact one.
    let mut damaged = photo.clone();
    let kind = damaged.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(damaged[kind - 4..kind].try_into().unwrap()) as usize;
    let data = kind + 4..kind + 4 + len;
    for byte in &mut damaged[data.start + len / 2..data.start + len / 2 + 200] {
        *byte ^= 0x5a;
    }
    let crc = crate::crc::chunk_crc(*b"IDAT", &damaged[data.clone()]);
    damaged[data.end..data.end + 4].copy_from_slice(&crc.to_be_bytes());
    let before = marked.reused();
    let err = process_png(&damaged, &options, &engine).unwrap_err();
    assert!(err.to_string().contains("image data"), "{err}");
    assert_eq!(marked.reused(), before + 1, "the decode did not start");
    let again = process_png(&photo, &options, &engine).unwrap();
    assert!(again.bytes == expected.bytes);
}
