//! Every valid image of the corpus: the output must decode to exactly the
//! input's pixels with red and blue swapped, with the same header, and must
//! keep every other chunk.

mod common;

use common::{Chunk, chunks, name, png_header, raw_frames, read, rgba16, swap_samples};
use png::ColorType;
use tessera_imaging::{Compression, Options, Path, process};

/// Runs `check` on every valid file and reports all failures at once.
fn for_every_valid_file(check: impl Fn(&[u8]) -> Result<(), String>) {
    let files = common::valid_files();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            check(&read(path))
                .err()
                .map(|e| format!("{}: {e}", name(path)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn process_default(input: &[u8]) -> Result<tessera_imaging::Output, String> {
    process(input, &Options::default()).map_err(|e| format!("process failed: {e}"))
}

#[test]
fn corpus_is_complete() {
    let files = common::valid_files();
    assert!(files.len() >= 150, "only {} valid files", files.len());
    assert!(files.iter().any(|p| name(p) == "PngSuite.png"));
    assert_eq!(
        files
            .iter()
            .filter(|p| name(p).starts_with("kodim"))
            .count(),
        4
    );
}

/// The main fidelity check, through the `image` crate (RGBA, 16 bit): this
/// also covers tRNS, whose colour key becomes alpha when decoded.
#[test]
fn pixels_are_swapped_exactly() {
    for_every_valid_file(|input| {
        let out = process_default(input)?;
        let (w, h, color, depth, _) = png_header(input);
        let (ow, oh, ocolor, odepth, _) = png_header(&out.bytes);
        if (ow, oh, ocolor, odepth) != (w, h, color, depth) {
            return Err(format!(
                "header {w}x{h} {color:?} {depth:?} became {ow}x{oh} {ocolor:?} {odepth:?}"
            ));
        }
        if (out.width, out.height) != (w, h) {
            return Err(format!("Output reports {}x{}", out.width, out.height));
        }

        let (_, _, before) = rgba16(input)?;
        let (_, _, after) = rgba16(&out.bytes).map_err(|e| format!("output: {e}"))?;
        let mut expected = before;
        for pixel in expected.chunks_exact_mut(4) {
            pixel.swap(0, 2);
        }
        if let Some(i) = (0..expected.len()).find(|&i| expected[i] != after[i]) {
            let pixel = i / 4;
            return Err(format!(
                "pixel ({}, {}) channel {} is {}, expected {}",
                pixel as u32 % w,
                pixel as u32 / w,
                i % 4,
                after[i],
                expected[i]
            ));
        }

        let expected_path = match color {
            ColorType::Grayscale | ColorType::GrayscaleAlpha => Path::Unchanged,
            ColorType::Indexed => Path::PaletteSwapped,
            // Still images with `fast` (the default) exchange red and blue
            // in the filtered rows; animations are decoded and re-encoded.
            ColorType::Rgb | ColorType::Rgba if animated(input) => Path::Reencoded,
            ColorType::Rgb | ColorType::Rgba => Path::FilteredSwap,
        };
        if out.path != expected_path {
            return Err(format!("path {:?}, expected {expected_path:?}", out.path));
        }
        if out.path == Path::Unchanged && out.bytes != input {
            return Err("grayscale output is not byte-identical".into());
        }
        Ok(())
    });
}

/// The same check on raw samples (no transformations, 16-bit big-endian):
/// truecolour samples are swapped, palette indices are untouched.
#[test]
fn raw_samples_are_swapped_exactly() {
    for_every_valid_file(|input| {
        let out = process_default(input)?;
        let (_, _, color, depth, _) = png_header(input);
        let before = raw_frames(input);
        let after = raw_frames(&out.bytes);
        if before.len() != after.len() {
            return Err(format!("{} frames became {}", before.len(), after.len()));
        }
        for ((w, h, raw), (ow, oh, oraw)) in before.iter().zip(&after) {
            if (w, h) != (ow, oh) {
                return Err(format!("frame {w}x{h} became {ow}x{oh}"));
            }
            let expected = match color {
                ColorType::Rgb | ColorType::Rgba => {
                    swap_samples(raw, color.samples(), depth as usize / 8)
                }
                _ => raw.clone(),
            };
            if *oraw != expected {
                return Err("raw samples differ".into());
            }
        }
        Ok(())
    });
}

/// Chunk by chunk: the output has the input's chunks in the input's order;
/// only the colour values in PLTE / tRNS / bKGD / sBIT / sPLT are swapped,
/// and the image data of truecolour images is re-encoded: with `fast`
/// (the default) a still image keeps its interlacing (its filtered rows are
/// exchanged), with `default` it is re-encoded from its pixels, which comes
/// out non-interlaced.
#[test]
fn other_chunks_are_kept() {
    for compression in [Compression::Fast, Compression::Default] {
        other_chunks_are_kept_with(compression);
    }
}

fn other_chunks_are_kept_with(compression: Compression) {
    for_every_valid_file(|input| {
        let options = Options {
            compression,
            ..Options::default()
        };
        let out = process(input, &options).map_err(|e| format!("process failed: {e}"))?;
        let (_, _, color, _, interlaced) = png_header(input);
        let truecolor = matches!(color, ColorType::Rgb | ColorType::Rgba);
        let not_image_data = |c: &Chunk| !(truecolor && &c.kind == b"IDAT");
        let before: Vec<Chunk> = chunks(input).into_iter().filter(not_image_data).collect();
        let after: Vec<Chunk> = chunks(&out.bytes)
            .into_iter()
            .filter(not_image_data)
            .collect();
        let names = |cs: &[Chunk]| cs.iter().map(Chunk::name).collect::<Vec<_>>().join(" ");
        if names(&before) != names(&after) {
            return Err(format!(
                "chunks [{}] became [{}]",
                names(&before),
                names(&after)
            ));
        }
        for (b, a) in before.iter().zip(&after) {
            let deinterlaced = interlaced && (animated(input) || compression != Compression::Fast);
            let expected = expected_chunk_data(b, color, deinterlaced);
            if a.data != expected {
                let at = (0..).find(|&i| a.data.get(i) != expected.get(i)).unwrap();
                return Err(format!(
                    "{} chunk ({} bytes) differs from the expected {} bytes at byte {at}",
                    b.name(),
                    a.data.len(),
                    expected.len(),
                ));
            }
        }
        Ok(())
    });
}

/// An APNG (it has an acTL chunk).
fn animated(input: &[u8]) -> bool {
    chunks(input).iter().any(|c| &c.kind == b"acTL")
}

/// What a chunk of the input should look like in the output. Grayscale
/// images are returned verbatim, so nothing changes in them; an image
/// re-encoded from its pixels (an animation) comes out non-interlaced.
fn expected_chunk_data(chunk: &Chunk, color: ColorType, deinterlaced: bool) -> Vec<u8> {
    let truecolor = matches!(color, ColorType::Rgb | ColorType::Rgba);
    let data = &chunk.data;
    match (&chunk.kind, color) {
        (_, ColorType::Grayscale | ColorType::GrayscaleAlpha) => data.clone(),
        (b"IHDR", _) if truecolor && deinterlaced => {
            let mut d = data.clone();
            d[12] = 0;
            d
        }
        (b"PLTE", _) => swap_samples(data, 3, 1),
        (b"tRNS", ColorType::Rgb) => swap_samples(data, 3, 2),
        (b"bKGD", ColorType::Rgb | ColorType::Rgba) => swap_samples(data, 3, 2),
        (b"sBIT", ColorType::Rgb | ColorType::Indexed) => swap_samples(data, 3, 1),
        (b"sBIT", ColorType::Rgba) => swap_samples(data, 4, 1),
        (b"sPLT", _) => {
            let nul = data.iter().position(|&b| b == 0).unwrap();
            let sample = usize::from(data[nul + 1] / 8);
            let mut d = data[..nul + 2].to_vec();
            for entry in data[nul + 2..].chunks(4 * sample + 2) {
                d.extend(swap_samples(&entry[..4 * sample], 4, sample));
                d.extend_from_slice(&entry[4 * sample..]);
            }
            d
        }
        _ => data.clone(),
    }
}

#[test]
fn corpus_exercises_the_metadata_rules() {
    // Guard against the checks above passing vacuously. Every tRNS colour
    // key and sBIT of PngSuite has equal red and blue, so those two rules
    // are exercised with crafted files in `metadata.rs` instead.
    let mut seen = std::collections::BTreeSet::new();
    for path in common::valid_files() {
        let input = read(&path);
        let (_, _, color, _, interlaced) = png_header(&input);
        for chunk in chunks(&input) {
            let expected = expected_chunk_data(&chunk, color, interlaced);
            if expected != chunk.data {
                seen.insert(chunk.name());
            }
        }
    }
    let seen: Vec<String> = seen.into_iter().collect();
    assert_eq!(seen, ["IHDR", "PLTE", "bKGD", "sPLT"]);
}

#[test]
fn every_compression_level_is_pixel_exact_and_ordered_by_size() {
    let photo = read(&common::pngs("photos", |n| n == "kodim23.png")[0]);
    let (_, _, expected) = rgba16(&photo).unwrap();
    let mut sizes = Vec::new();
    for compression in [Compression::Fast, Compression::Default, Compression::Best] {
        let opts = Options {
            compression,
            ..Options::default()
        };
        let out = process(&photo, &opts).unwrap();
        let (_, _, mut pixels) = rgba16(&out.bytes).unwrap();
        for pixel in pixels.chunks_exact_mut(4) {
            pixel.swap(0, 2);
        }
        assert!(pixels == expected, "{compression:?} is not pixel-exact");
        sizes.push(out.bytes.len());
    }
    assert!(
        sizes[0] > sizes[1] && sizes[1] >= sizes[2],
        "sizes Fast/Default/Best: {sizes:?}"
    );
}

#[test]
fn processing_twice_gives_back_the_pixels() {
    for_every_valid_file(|input| {
        let once = process_default(input)?;
        let twice = process_default(&once.bytes)?;
        if rgba16(&twice.bytes)? != rgba16(input)? {
            return Err("swap applied twice is not the identity".into());
        }
        Ok(())
    });
}
