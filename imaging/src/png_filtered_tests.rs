//! The filtered path against the full path (decode, swap, encode), file by
//! file: on every file of the corpus, the corrupt ones included, both
//! accept or both reject (with the same message); what both accept decodes
//! to the same pixels; the filtered path is the one taken for every still
//! truecolour file with `fast`; and damage inside the image data that the
//! CRCs do not catch is rejected the same way.

use std::path::PathBuf;

use crate::{
    Compression, Engine, Options, Path as Taken, ProcessError, process_png,
    test_common::{Chunk, DATA, assemble, chunks, name, png_header, pngs, raw_frames, read},
};

fn fast() -> Options {
    Options {
        compression: Compression::Fast,
        ..Options::default()
    }
}

/// Every file of the corpus: valid, corrupt (PngSuite's `x*`) and bad.
fn every_file() -> Vec<PathBuf> {
    let mut files = pngs("pngsuite", |_| true);
    files.extend(pngs("photos", |_| true));
    files.extend(pngs("bad", |_| true));
    files
}

/// Both ways of processing `input`, which must agree; returns the path the
/// default engine took, if it accepted the file. They may disagree only on
/// a file whose image data an independent inflater finds broken, which
/// the full path accepts (it stops at the image's last byte and never
/// reads the checksum) and the default engine refuses.
fn both_agree(label: &str, input: &[u8], options: &Options) -> Option<Taken> {
    let run = |engine: &Engine<'_>| {
        crate::detect::detect(input).and_then(|_| process_png(input, options, engine))
    };
    let (full, default) = (run(&Engine::FULL_PATH), run(&Engine::DEFAULT));
    match (full, default) {
        (Ok(full), Ok(default)) => {
            assert!(
                raw_frames(&full.bytes) == raw_frames(&default.bytes),
                "{label}: the filtered path gives other pixels than the full path"
            );
            assert_eq!((full.width, full.height), (default.width, default.height));
            Some(default.path)
        }
        (Err(full), Err(default)) => {
            assert_eq!(full.to_string(), default.to_string(), "{label}");
            None
        }
        (Ok(_), Err(default)) if !zlib_sound(input) => {
            assert!(
                default.to_string().contains("damaged image data"),
                "{label}: {default}"
            );
            None
        }
        (full, default) => panic!(
            "{label}: the paths disagree: full {:?}, default {:?}",
            full.map(|o| o.path),
            default.map(|o| o.path)
        ),
    }
}

/// An independent inflater finds the IDAT stream whole, Adler-32 included.
fn zlib_sound(input: &[u8]) -> bool {
    let data: Vec<u8> = chunks(input)
        .into_iter()
        .filter(|c| &c.kind == b"IDAT")
        .flat_map(|c| c.data)
        .collect();
    miniz_oxide::inflate::decompress_to_vec_zlib(&data).is_ok()
}

fn is_still_truecolour(input: &[u8]) -> bool {
    let (_, _, color, _, _) = png_header(input);
    matches!(color, png::ColorType::Rgb | png::ColorType::Rgba)
        && !chunks(input).iter().any(|c| &c.kind == b"acTL")
}

#[test]
fn both_paths_agree_on_every_file_and_the_filtered_one_takes_every_still_truecolour_one() {
    let (mut filtered, mut interlaced) = (0, 0);
    for path in every_file() {
        let input = read(&path);
        let label = name(&path);
        let taken = both_agree(&label, &input, &fast());
        let valid = !label.starts_with('x');
        if valid && is_still_truecolour(&input) {
            assert_eq!(taken, Some(Taken::FilteredSwap), "{label}");
            filtered += 1;
            let (.., was_interlaced) = png_header(&input);
            if was_interlaced {
                interlaced += 1;
                // The source's interlacing is kept with its filters.
                let out = process_png(&input, &fast(), &Engine::DEFAULT).unwrap();
                assert!(png_header(&out.bytes).4, "{label}: interlacing dropped");
            }
        } else {
            assert_ne!(taken, Some(Taken::FilteredSwap), "{label}");
        }
        // `default` and `best` keep the full path.
        for compression in [Compression::Default, Compression::Best] {
            let options = Options {
                compression,
                ..Options::default()
            };
            let taken = both_agree(&label, &input, &options);
            assert_ne!(taken, Some(Taken::FilteredSwap), "{label} {compression:?}");
        }
    }
    // PngSuite's 8 and 16-bit RGB and RGBA files and the photos.
    assert!(
        filtered >= 40,
        "only {filtered} files took the filtered path"
    );
    assert!(interlaced >= 4, "only {interlaced} interlaced ones");
    assert!(std::path::Path::new(DATA).is_dir());
}

/// A still RGB file whose IDAT data is changed at `at` (CRC recomputed, so
/// that only the zlib stream or the rows can tell).
fn with_idat_byte(input: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut parts: Vec<Chunk> = chunks(input);
    let idat = parts.iter_mut().find(|c| &c.kind == b"IDAT").unwrap();
    let at = at.min(idat.data.len() - 1);
    idat.data[at] = value;
    assemble(&parts)
}

/// The length of the first IDAT chunk's data.
fn idat_len(input: &[u8]) -> usize {
    let parts = chunks(input);
    parts
        .iter()
        .find(|c| &c.kind == b"IDAT")
        .unwrap()
        .data
        .len()
}

#[test]
fn damage_the_crcs_cannot_see_is_refused() {
    let input = read(&PathBuf::from(DATA).join("pngsuite/basn2c08.png"));
    let idat_len = idat_len(&input);
    let (mut tried, mut broken) = (0, 0);
    // Every byte of the zlib stream: its header, the blocks, the Adler-32.
    for at in 0..idat_len {
        for value in [0x00, 0xff, 0x55, 0x01] {
            let damaged = with_idat_byte(&input, at, value);
            if damaged == input {
                continue;
            }
            tried += 1;
            let label = format!("basn2c08 with IDAT byte {at} = {value:#04x}");
            both_agree(&label, &damaged, &fast());
            let accepted = process_png(&damaged, &fast(), &Engine::DEFAULT).is_ok();
            assert!(
                !accepted || zlib_sound(&damaged),
                "{label}: accepted a broken zlib stream"
            );
            if !zlib_sound(&damaged) {
                broken += 1;
                assert!(
                    process_png(&damaged, &fast(), &Engine::FULL_PATH).is_err(),
                    "{label}: the full path accepted a broken zlib stream"
                );
            }
        }
    }
    // Before the full path read the stream to its end, it alone accepted
    // 20 of these 286 (changed pixels from a broken stream).
    assert!(broken >= 20, "{broken} broken of {tried}");
}

#[test]
fn a_row_with_an_unknown_filter_type_is_rejected_as_by_the_full_path() {
    use miniz_oxide::{deflate::compress_to_vec_zlib, inflate::decompress_to_vec_zlib};
    let input = read(&PathBuf::from(DATA).join("pngsuite/basn6a16.png"));
    let mut parts = chunks(&input);
    let idat = parts.iter_mut().find(|c| &c.kind == b"IDAT").unwrap();
    let mut rows = decompress_to_vec_zlib(&idat.data).unwrap();
    // basn6a16 is 32x32 RGBA16: rows of 1 + 256 bytes; row 5's filter byte.
    rows[5 * 257] = 9;
    idat.data = compress_to_vec_zlib(&rows, 6);
    let damaged = assemble(&parts);
    assert_eq!(both_agree("filter type 9", &damaged, &fast()), None);
    let err: ProcessError = process_png(&damaged, &fast(), &Engine::DEFAULT).unwrap_err();
    assert!(err.to_string().contains("filter"), "{err}");
}

/// The banded way (frames over `Parallelism::min_bytes`), forced on every
/// file with bands of one row and of a few rows, and a window that slides
/// many times: the same answers and pixels as the full path; interlaced
/// files go to the full path (bands need whole rows of one pass).
#[test]
fn in_bands_both_paths_agree_on_every_file() {
    let mut banded = 0;
    for path in every_file() {
        let input = read(&path);
        let label = name(&path);
        for band_bytes in [1, 3000] {
            let engine = Engine {
                parallelism: crate::encode::Parallelism {
                    min_bytes: 0,
                    band_bytes,
                },
                ..Engine::DEFAULT
            };
            let run = |engine: &Engine<'_>| {
                crate::detect::detect(&input).and_then(|_| process_png(&input, &fast(), engine))
            };
            let (full, bands) = (run(&Engine::FULL_PATH), run(&engine));
            match (full, bands) {
                (Ok(full), Ok(bands)) => {
                    assert!(
                        raw_frames(&full.bytes) == raw_frames(&bands.bytes),
                        "{label} in bands of {band_bytes}: other pixels"
                    );
                    let (.., interlaced) = png_header(&input);
                    let expected = match interlaced || !is_still_truecolour(&input) {
                        true => Taken::Reencoded,
                        false => Taken::FilteredSwap,
                    };
                    if matches!(expected, Taken::FilteredSwap) {
                        banded += 1;
                    }
                    if full.path == Taken::Reencoded {
                        assert_eq!(bands.path, expected, "{label}");
                    }
                }
                (Err(full), Err(bands)) => assert_eq!(full.to_string(), bands.to_string()),
                (Ok(_), Err(bands)) if !zlib_sound(&input) => {
                    assert!(bands.to_string().contains("damaged image data"), "{label}")
                }
                (full, bands) => panic!(
                    "{label} in bands of {band_bytes}: full {:?}, bands {:?}",
                    full.map(|o| o.path),
                    bands.map(|o| o.path)
                ),
            }
        }
    }
    assert!(banded >= 60, "only {banded} banded runs");
}

/// The full path (grey, palette, `default` and `best`) reads the zlib
/// stream to its end too: a stream that an independent inflater finds
/// broken (its Adler-32, or data past the last row) is never accepted,
/// whatever the path.
#[test]
fn no_path_accepts_a_broken_zlib_stream() {
    let suite = PathBuf::from(DATA).join("pngsuite");
    let cases = [
        ("basn0g08.png", Compression::Fast),
        ("basn3p08.png", Compression::Fast),
        ("basn2c08.png", Compression::Default),
        ("basn2c08.png", Compression::Best),
        ("basi0g08.png", Compression::Fast),
    ];
    for (file, compression) in cases {
        let input = read(&suite.join(file));
        let options = Options {
            compression,
            ..Options::default()
        };
        let idat_len = idat_len(&input);
        let mut broken = 0;
        for at in 0..idat_len {
            for value in [0x00, 0xff, 0x55, 0x01] {
                let damaged = with_idat_byte(&input, at, value);
                if damaged == input || zlib_sound(&damaged) {
                    continue;
                }
                broken += 1;
                for engine in [&Engine::DEFAULT, &Engine::FULL_PATH] {
                    if let Ok(out) = process_png(&damaged, &options, engine) {
                        panic!(
                            "{file} ({compression:?}) with IDAT byte {at} = {value:#04x}: \
                             a broken zlib stream accepted on {:?}",
                            out.path
                        );
                    }
                }
            }
        }
        assert!(broken > 50, "{file}: only {broken} broken streams tried");
    }
}
