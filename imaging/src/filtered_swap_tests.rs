//! The filtered-row exchange against an independent decode: the image
//! whose IDAT holds the exchanged filtered rows must decode (with the `png`
//! crate, no transformations) to exactly the source's samples with red and
//! blue exchanged.

use miniz_oxide::{deflate::compress_to_vec_zlib, inflate::decompress_to_vec_zlib};
use proptest::prelude::*;

use crate::{
    filtered_swap::{FilteredError, filtered_len, passes, swap_rb_in_filtered_rows},
    swap::SampleLayout,
    test_common::{
        Chunk, assemble, chunks, png_header, raw_frames, read, swap_samples, valid_files,
    },
};

const LAYOUTS: [SampleLayout; 4] = [
    SampleLayout::Rgb8,
    SampleLayout::Rgba8,
    SampleLayout::Rgb16,
    SampleLayout::Rgba16,
];

/// IHDR fields (colour type, bit depth) of `layout`.
fn ihdr_fields(layout: SampleLayout) -> (u8, u8) {
    let color = if layout.samples_per_pixel() == 4 {
        6
    } else {
        2
    };
    (color, 8 * layout.bytes_per_sample() as u8)
}

/// A PNG of the given header whose one IDAT is `filtered`, compressed.
fn png_of(w: u32, h: u32, layout: SampleLayout, interlaced: bool, filtered: &[u8]) -> Vec<u8> {
    let (color, depth) = ihdr_fields(layout);
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, u8::from(interlaced)]);
    assemble(&[
        Chunk {
            kind: *b"IHDR",
            data: ihdr,
        },
        Chunk {
            kind: *b"IDAT",
            data: compress_to_vec_zlib(filtered, 1),
        },
        Chunk {
            kind: *b"IEND",
            data: Vec::new(),
        },
    ])
}

/// Checks the exchange on `filtered` against an independent decode.
fn check(w: u32, h: u32, layout: SampleLayout, interlaced: bool, filtered: &[u8]) {
    let source = raw_frames(&png_of(w, h, layout, interlaced, filtered));
    let mut swapped = filtered.to_vec();
    swap_rb_in_filtered_rows(&mut swapped, w, h, layout, interlaced).unwrap();
    let result = raw_frames(&png_of(w, h, layout, interlaced, &swapped));
    let want = swap_samples(
        &source[0].2,
        layout.samples_per_pixel(),
        layout.bytes_per_sample(),
    );
    assert_eq!(
        result[0].2, want,
        "{w}x{h} {layout:?} interlaced={interlaced}"
    );
}

/// Filtered data of the right length with every row's filter type from
/// `filter` (row index in, type out) and bytes from `byte`.
fn filtered_data(
    w: u32,
    h: u32,
    layout: SampleLayout,
    interlaced: bool,
    mut filter: impl FnMut(usize) -> u8,
    mut byte: impl FnMut() -> u8,
) -> Vec<u8> {
    let len = filtered_len(w, h, layout, interlaced) as usize;
    let mut data: Vec<u8> = (0..len).map(|_| byte()).collect();
    // Each row's first byte is its filter type.
    let bpp = layout.bytes_per_pixel();
    let mut pos = 0;
    let mut row = 0;
    for (pw, ph) in passes(w, h, interlaced) {
        if pw == 0 || ph == 0 {
            continue;
        }
        for _ in 0..ph {
            data[pos] = filter(row);
            pos += 1 + pw as usize * bpp;
            row += 1;
        }
    }
    assert_eq!(pos, len);
    data
}

/// Every filter type on every row, every layout, interlaced and not, every
/// size up to 9 x 9 (Adam7's passes all appear from 5 x 5 on).
#[test]
fn every_filter_layout_and_small_size_exchanges_exactly() {
    let mut state = 0x2545_f491_u32;
    let mut byte = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 24) as u8
    };
    for layout in LAYOUTS {
        for interlaced in [false, true] {
            for w in 1..=9 {
                for h in 1..=9 {
                    for filter in 0..=4u8 {
                        let data = filtered_data(w, h, layout, interlaced, |_| filter, &mut byte);
                        check(w, h, layout, interlaced, &data);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random filtered data (any bytes, any filter type per row) is a valid
    /// image; its exchange decodes to the exchanged samples.
    #[test]
    fn random_filtered_rows_exchange_exactly(
        w in 1u32..40,
        h in 1u32..40,
        layout in prop::sample::select(LAYOUTS.to_vec()),
        interlaced in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut filters = next();
        let data = filtered_data(w, h, layout, interlaced, |_| {
            filters = filters.rotate_left(3);
            (filters % 5) as u8
        }, || (next() >> 56) as u8);
        check(w, h, layout, interlaced, &data);
    }
}

/// The RGB and RGBA files of PngSuite (8 and 16 bit, interlaced and not,
/// every filter type) and the photos, with their own filter choices.
#[test]
fn the_corpus_rgb_files_exchange_exactly_with_their_own_filters() {
    let mut checked = 0;
    for path in valid_files() {
        let bytes = read(&path);
        let (w, h, color, depth, interlaced) = png_header(&bytes);
        let samples = match color {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            _ => continue,
        };
        let all = chunks(&bytes);
        if all.iter().any(|c| &c.kind == b"acTL") {
            continue; // animated: frames beyond the first live in fdAT
        }
        let idat: Vec<u8> = all
            .iter()
            .filter(|c| &c.kind == b"IDAT")
            .flat_map(|c| c.data.iter().copied())
            .collect();
        let filtered = decompress_to_vec_zlib(&idat).unwrap();
        let layout = SampleLayout::new(depth as usize / 8, samples).unwrap();
        check(w, h, layout, interlaced, &filtered);
        checked += 1;
    }
    assert!(checked > 40, "only {checked} RGB/RGBA files");
}

#[test]
fn a_wrong_length_or_filter_type_is_named() {
    let layout = SampleLayout::Rgb8;
    let mut short = vec![0u8; 9];
    assert_eq!(
        swap_rb_in_filtered_rows(&mut short, 3, 1, layout, false),
        Err(FilteredError::Length {
            expected: 10,
            found: 9
        })
    );
    let mut bad = vec![0u8; 20];
    bad[10] = 5;
    let err = swap_rb_in_filtered_rows(&mut bad, 3, 2, layout, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 1 of pass 0 has the unknown filter type 5"
    );
}
