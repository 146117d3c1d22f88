//! What happens to each non-image chunk when red and blue are swapped.
//!
//! The rule: a chunk that holds *colour values of this image* has its red
//! and blue swapped so that it still describes the same pixels; a chunk that
//! describes the *colour space* or anything else is copied byte for byte.
//!
//! | chunk | treatment |
//! |---|---|
//! | `PLTE` | R and B of every entry swapped (indexed: the palette; truecolour: the suggested palette) |
//! | `tRNS` | RGB: the colour key's R and B swapped, so the same pixels stay transparent; otherwise copied (per-index alpha, gray key) |
//! | `bKGD` | RGB/RGBA: R and B swapped; otherwise copied (a palette index or a gray level) |
//! | `sBIT` | RGB/RGBA/indexed: the red and blue significant bits swapped; gray: copied |
//! | `sPLT` | R and B of every suggested-palette entry swapped |
//! | `cHRM`, `iCCP`, `sRGB`, `gAMA`, `cICP`, `mDCV`, `cLLI`, `hIST`, text, `pHYs`, `tIME`, `eXIf`, APNG control, ... | copied |
//! | unknown, safe-to-copy | copied |
//! | unknown, unsafe-to-copy | dropped, as the PNG specification requires of an editor that changes critical chunks |
//!
//! `cHRM`, `iCCP` and friends are kept as they are on purpose: they say how
//! to interpret the first sample as red; swapping them too would make the
//! output *look* like the input again.

use png::ColorType;
use png::chunk::{self, ChunkType};

use crate::chunks::Chunk;

/// Chunk types this crate recognises (PNG third edition and its registered
/// extensions); everything else is "unknown" for the copy rules. `dSIG` is
/// left out on purpose: a signature over the old file is void, and as an
/// unsafe-to-copy chunk it is dropped.
const KNOWN: [&[u8; 4]; 33] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT", b"cHRM", b"cICP", b"gAMA",
    b"iCCP", b"mDCV", b"cLLI", b"sBIT", b"sRGB", b"bKGD", b"hIST", b"tRNS", b"eXIf", b"pHYs",
    b"sPLT", b"tIME", b"iTXt", b"tEXt", b"zTXt", b"oFFs", b"pCAL", b"sCAL", b"gIFg", b"gIFt",
    b"gIFx", b"sTER", b"fRAc",
];

/// What to write for one chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Copy the chunk byte for byte.
    Copy,
    /// Write the chunk with this data instead (and a new CRC).
    Replace(Vec<u8>),
    /// Leave the chunk out.
    Drop,
}

/// Decides what to write for `chunk`, an ancillary or palette chunk of an
/// image of `color_type` whose red and blue are being swapped.
///
/// Malformed chunks (wrong length) are copied unchanged: the `png` decoder
/// ignores them, so they never described the pixels.
pub(crate) fn rewrite(chunk: &Chunk<'_>, color_type: ColorType) -> Rewrite {
    let truecolor = matches!(color_type, ColorType::Rgb | ColorType::Rgba);
    let swapped = match chunk.kind {
        chunk::PLTE => swap_entries(chunk.data, 3, 1),
        chunk::tRNS if color_type == ColorType::Rgb => swap_exact(chunk.data, 6, 2),
        chunk::bKGD if truecolor => swap_exact(chunk.data, 6, 2),
        chunk::sBIT => match color_type {
            ColorType::Rgb | ColorType::Indexed => swap_exact(chunk.data, 3, 1),
            ColorType::Rgba => swap_exact(chunk.data, 4, 1),
            ColorType::Grayscale | ColorType::GrayscaleAlpha => None,
        },
        kind if kind.0 == *b"sPLT" => swap_suggested_palette(chunk.data),
        kind if !is_known(kind) && !chunk::safe_to_copy(kind) => return Rewrite::Drop,
        _ => None,
    };
    swapped.map_or(Rewrite::Copy, Rewrite::Replace)
}

fn is_known(kind: ChunkType) -> bool {
    KNOWN.contains(&&kind.0)
}

/// `data` with the first and third `sample`-byte values swapped, if it is
/// exactly `len` bytes long.
fn swap_exact(data: &[u8], len: usize, sample: usize) -> Option<Vec<u8>> {
    (data.len() == len).then(|| swapped(data, len, sample))
}

/// `data`, a whole number of `entry`-byte records starting with R, G, B
/// samples of `sample` bytes, with R and B of every record swapped.
fn swap_entries(data: &[u8], entry: usize, sample: usize) -> Option<Vec<u8>> {
    data.len()
        .is_multiple_of(entry)
        .then(|| swapped(data, entry, sample))
}

fn swapped(data: &[u8], entry: usize, sample: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for record in out.chunks_exact_mut(entry) {
        let (red, rest) = record.split_at_mut(sample);
        red.swap_with_slice(&mut rest[sample..2 * sample]);
    }
    out
}

/// An `sPLT` chunk with R and B of every entry swapped: a NUL-terminated
/// name, a sample depth (8 or 16), then entries of R, G, B, A samples and a
/// 2-byte frequency.
fn swap_suggested_palette(data: &[u8]) -> Option<Vec<u8>> {
    let nul = data.iter().position(|&b| b == 0)?;
    let (&depth, entries) = data[nul + 1..].split_first()?;
    let sample = match depth {
        8 => 1,
        16 => 2,
        _ => return None,
    };
    let swapped_entries = swap_entries(entries, 4 * sample + 2, sample)?;
    let mut out = data[..nul + 2].to_vec();
    out.extend_from_slice(&swapped_entries);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk<'a>(kind: &[u8; 4], data: &'a [u8]) -> Chunk<'a> {
        Chunk {
            kind: ChunkType(*kind),
            data,
            raw: data,
            offset: 0,
        }
    }

    fn replaced(kind: &[u8; 4], data: &[u8], color_type: ColorType) -> Vec<u8> {
        match rewrite(&chunk(kind, data), color_type) {
            Rewrite::Replace(data) => data,
            other => panic!("{kind:?} for {color_type:?}: {other:?}"),
        }
    }

    fn copied(kind: &[u8; 4], data: &[u8], color_type: ColorType) -> bool {
        rewrite(&chunk(kind, data), color_type) == Rewrite::Copy
    }

    #[test]
    fn palette_entries_are_swapped() {
        let plte = [1, 2, 3, 4, 5, 6];
        let expected = [3, 2, 1, 6, 5, 4];
        assert_eq!(replaced(b"PLTE", &plte, ColorType::Indexed), expected);
        assert_eq!(replaced(b"PLTE", &plte, ColorType::Rgb), expected);
        assert!(copied(b"PLTE", &[1, 2], ColorType::Indexed), "malformed");
    }

    #[test]
    fn rgb_colour_key_and_background_are_swapped() {
        let key = [0, 1, 0, 2, 0, 3];
        assert_eq!(replaced(b"tRNS", &key, ColorType::Rgb), [0, 3, 0, 2, 0, 1]);
        assert_eq!(replaced(b"bKGD", &key, ColorType::Rgb), [0, 3, 0, 2, 0, 1]);
        assert_eq!(replaced(b"bKGD", &key, ColorType::Rgba), [0, 3, 0, 2, 0, 1]);
        assert!(copied(b"tRNS", &[255, 128, 0], ColorType::Indexed));
        assert!(copied(b"tRNS", &[0, 7], ColorType::Grayscale));
        assert!(copied(b"bKGD", &[4], ColorType::Indexed));
        assert!(copied(b"bKGD", &[0, 4], ColorType::GrayscaleAlpha));
    }

    #[test]
    fn significant_bits_follow_the_samples() {
        assert_eq!(replaced(b"sBIT", &[5, 6, 7], ColorType::Rgb), [7, 6, 5]);
        assert_eq!(replaced(b"sBIT", &[5, 6, 7], ColorType::Indexed), [7, 6, 5]);
        assert_eq!(
            replaced(b"sBIT", &[5, 6, 7, 8], ColorType::Rgba),
            [7, 6, 5, 8]
        );
        assert!(copied(b"sBIT", &[5, 8], ColorType::GrayscaleAlpha));
    }

    #[test]
    fn suggested_palettes_are_swapped() {
        let mut splt = b"six\0\x08".to_vec();
        splt.extend_from_slice(&[1, 2, 3, 4, 0, 9]);
        let mut expected = b"six\0\x08".to_vec();
        expected.extend_from_slice(&[3, 2, 1, 4, 0, 9]);
        assert_eq!(replaced(b"sPLT", &splt, ColorType::Indexed), expected);

        let mut splt16 = b"p\0\x10".to_vec();
        splt16.extend_from_slice(&[1, 1, 2, 2, 3, 3, 4, 4, 0, 9]);
        let mut expected16 = b"p\0\x10".to_vec();
        expected16.extend_from_slice(&[3, 3, 2, 2, 1, 1, 4, 4, 0, 9]);
        assert_eq!(replaced(b"sPLT", &splt16, ColorType::Rgb), expected16);

        assert!(copied(b"sPLT", b"no terminator", ColorType::Rgb));
        assert!(copied(b"sPLT", b"p\0\x07", ColorType::Rgb), "bad depth");
    }

    #[test]
    fn colour_space_and_other_chunks_are_copied() {
        for kind in [
            b"cHRM", b"gAMA", b"iCCP", b"sRGB", b"tEXt", b"pHYs", b"hIST",
        ] {
            assert!(
                copied(kind, &[1, 2, 3, 4, 5, 6], ColorType::Rgb),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn unknown_chunks_follow_the_safe_to_copy_bit() {
        assert!(copied(b"prVt", &[1], ColorType::Rgb), "safe-to-copy");
        assert_eq!(
            rewrite(&chunk(b"prVT", &[1]), ColorType::Rgb),
            Rewrite::Drop
        );
    }
}
