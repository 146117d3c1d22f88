//! Swapping the red and blue samples of packed RGB / RGBA pixels in place.
//!
//! The buffer is split into bands of roughly [`BAND_BYTES`] (always a whole
//! number of pixels, so a pixel never straddles two bands) and the bands are
//! processed in parallel with rayon.
//!
//! Within a band the kernel works on whole 64-bit words rather than on
//! pixels: a block of pixels that fills a whole number of words (8 bytes:
//! two RGBA8 pixels or one RGBA16 pixel; 24 bytes: eight RGB8 or four RGB16
//! pixels) is read as little-endian words, and red and blue trade places
//! with two shifts and three masks per word. That is a handful of ALU
//! operations per 8 bytes with no per-byte work and no unsafe code. The few
//! pixels after the last whole block go through the per-pixel loop.
//!
//! The default x86-64 target only promises SSE2, so code compiled for it
//! cannot use AVX2 even where the CPU has it, and choosing a
//! `#[target_feature]` version at run time takes unsafe code, which the
//! workspace forbids. The `pulp` crate does that dispatch behind a safe API:
//! [`pulp::Arch::dispatch`] runs the (inlined) kernel compiled for the best
//! instruction set the CPU has (AVX-512, AVX2, ...), and the compiler
//! vectorises it for that set. For RGB8 in cache that is about 2.5x the
//! SSE2 build's speed with AVX2 and 4x with AVX-512, where it overtakes
//! memcpy; see `benches/benches/kernel.rs` and `benches/README.md`.
use rayon::prelude::*;

/// Target size of one unit of parallel work: large enough to amortise the
/// rayon task overhead, small enough to stay within the L2 cache.
pub const BAND_BYTES: usize = 128 * 1024;

/// How the samples of one pixel are laid out in memory.
///
/// PNG stores 16-bit samples big-endian; the swap only moves whole samples,
/// so it is correct for either byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleLayout {
    /// 8-bit red, green, blue (3 bytes per pixel).
    Rgb8,
    /// 8-bit red, green, blue, alpha (4 bytes per pixel).
    Rgba8,
    /// 16-bit red, green, blue (6 bytes per pixel).
    Rgb16,
    /// 16-bit red, green, blue, alpha (8 bytes per pixel).
    Rgba16,
}

impl SampleLayout {
    /// The layout with `bytes_per_sample` (1 or 2) and `samples_per_pixel`
    /// (3 or 4), or `None` for any other combination.
    pub fn new(bytes_per_sample: usize, samples_per_pixel: usize) -> Option<Self> {
        match (bytes_per_sample, samples_per_pixel) {
            (1, 3) => Some(Self::Rgb8),
            (1, 4) => Some(Self::Rgba8),
            (2, 3) => Some(Self::Rgb16),
            (2, 4) => Some(Self::Rgba16),
            _ => None,
        }
    }

    /// Bytes per sample: 1 or 2.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::Rgb8 | Self::Rgba8 => 1,
            Self::Rgb16 | Self::Rgba16 => 2,
        }
    }

    /// Samples per pixel: 3 (RGB) or 4 (RGBA).
    pub fn samples_per_pixel(self) -> usize {
        match self {
            Self::Rgb8 | Self::Rgb16 => 3,
            Self::Rgba8 | Self::Rgba16 => 4,
        }
    }

    /// Bytes per pixel: 3, 4, 6 or 8.
    pub fn bytes_per_pixel(self) -> usize {
        self.bytes_per_sample() * self.samples_per_pixel()
    }
}

/// Swaps the red and blue samples of every pixel in `pixels`, in place.
///
/// `pixels` holds packed pixels in `layout`; green and alpha are untouched.
/// Trailing bytes that do not make up a whole pixel are left as they are.
/// Buffers larger than one band are processed in parallel on the current
/// rayon pool.
pub fn swap_rb_in_place(pixels: &mut [u8], layout: SampleLayout) {
    swap(pixels, layout, true);
}

/// Swaps red and blue in `pixels` on the calling thread only: the kernel
/// of [`swap_rb_in_place`] without the split into parallel bands.
pub fn swap_rb_sequential(pixels: &mut [u8], layout: SampleLayout) {
    swap(pixels, layout, false);
}

fn swap(pixels: &mut [u8], layout: SampleLayout, parallel: bool) {
    match layout {
        SampleLayout::Rgb8 => swap_bands::<3, 1, 3>(pixels, parallel),
        SampleLayout::Rgba8 => swap_bands::<4, 1, 1>(pixels, parallel),
        SampleLayout::Rgb16 => swap_bands::<6, 2, 3>(pixels, parallel),
        SampleLayout::Rgba16 => swap_bands::<8, 2, 1>(pixels, parallel),
    }
}

/// Splits `pixels` into whole-pixel bands and swaps each one, in parallel
/// when asked and there is more than one band. `WORDS` is the number of
/// 64-bit words in the smallest block of whole pixels (see [`swap_band`]).
fn swap_bands<const PIXEL: usize, const SAMPLE: usize, const WORDS: usize>(
    pixels: &mut [u8],
    parallel: bool,
) {
    // Whole blocks, so that only the last band has a tail.
    let block = 8 * WORDS;
    let band = BAND_BYTES - BAND_BYTES % block;
    if !parallel || pixels.len() <= band {
        dispatch_band::<PIXEL, SAMPLE, WORDS>(pixels);
    } else {
        pixels
            .par_chunks_mut(band)
            .for_each(dispatch_band::<PIXEL, SAMPLE, WORDS>);
    }
}

/// [`swap_band`] compiled for the best instruction set of this CPU.
fn dispatch_band<const PIXEL: usize, const SAMPLE: usize, const WORDS: usize>(band: &mut [u8]) {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || swap_band::<PIXEL, SAMPLE, WORDS>(band),
    );
}

/// The sequential kernel. `WORDS` 64-bit words hold a whole number of
/// `PIXEL`-byte pixels. Read as one little-endian integer, such a block
/// gets each pixel's red sample from `2 * SAMPLE` bytes higher up (a right
/// shift) and its blue sample from as far below (a left shift); everything
/// else stays. Per word: two shifts (plus the bits carried over from the
/// neighbouring words), three masks.
#[inline(always)]
fn swap_band<const PIXEL: usize, const SAMPLE: usize, const WORDS: usize>(band: &mut [u8]) {
    let [keep, red, blue] = const { block_masks::<WORDS>(PIXEL, SAMPLE) };
    let shift = 16 * SAMPLE as u32;
    let mut blocks = band.chunks_exact_mut(8 * WORDS);
    for block in &mut blocks {
        let mut words = [0u64; WORDS];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
            *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        for (i, bytes) in block.chunks_exact_mut(8).enumerate() {
            let mut down = words[i] >> shift;
            if i + 1 < WORDS {
                down |= words[i + 1] << (64 - shift);
            }
            let mut up = words[i] << shift;
            if i > 0 {
                up |= words[i - 1] >> (64 - shift);
            }
            let word = (words[i] & keep[i]) | (down & red[i]) | (up & blue[i]);
            bytes.copy_from_slice(&word.to_le_bytes());
        }
    }
    swap_pixels::<PIXEL, SAMPLE>(blocks.into_remainder());
}

/// The masks of [`swap_band`] for a block of `WORDS` words of pixels with
/// `pixel` bytes and `sample` bytes per sample: the bytes that stay, the
/// red bytes and the blue bytes.
const fn block_masks<const WORDS: usize>(pixel: usize, sample: usize) -> [[u64; WORDS]; 3] {
    assert!(
        (8 * WORDS).is_multiple_of(pixel),
        "a block must hold whole pixels"
    );
    let mut masks = [[0u64; WORDS]; 3];
    let mut byte = 0;
    while byte < 8 * WORDS {
        let in_pixel = byte % pixel;
        let which = if in_pixel < sample {
            1
        } else if in_pixel >= 2 * sample && in_pixel < 3 * sample {
            2
        } else {
            0
        };
        masks[which][byte / 8] |= 0xff << (8 * (byte % 8));
        byte += 1;
    }
    masks
}

/// Exchanges the first and third `SAMPLE`-byte sample of every
/// `PIXEL`-byte pixel, one pixel at a time: for the pixels after the last
/// whole block.
fn swap_pixels<const PIXEL: usize, const SAMPLE: usize>(band: &mut [u8]) {
    for pixel in band.chunks_exact_mut(PIXEL) {
        let pixel: &mut [u8; PIXEL] = pixel.try_into().expect("chunks of PIXEL bytes");
        let mut swapped = *pixel;
        swapped[..SAMPLE].copy_from_slice(&pixel[2 * SAMPLE..3 * SAMPLE]);
        swapped[2 * SAMPLE..3 * SAMPLE].copy_from_slice(&pixel[..SAMPLE]);
        *pixel = swapped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obviously correct version: one pixel at a time, sample by sample.
    fn naive_swap(pixels: &mut [u8], layout: SampleLayout) {
        let sample = layout.bytes_per_sample();
        for pixel in pixels.chunks_exact_mut(layout.bytes_per_pixel()) {
            for byte in 0..sample {
                pixel.swap(byte, 2 * sample + byte);
            }
        }
    }

    const LAYOUTS: [SampleLayout; 4] = [
        SampleLayout::Rgb8,
        SampleLayout::Rgba8,
        SampleLayout::Rgb16,
        SampleLayout::Rgba16,
    ];

    #[test]
    fn layout_constructor_accepts_only_rgb_and_rgba() {
        for layout in LAYOUTS {
            let rebuilt = SampleLayout::new(layout.bytes_per_sample(), layout.samples_per_pixel());
            assert_eq!(rebuilt, Some(layout));
        }
        assert_eq!(SampleLayout::new(1, 1), None);
        assert_eq!(SampleLayout::new(2, 2), None);
        assert_eq!(SampleLayout::new(4, 3), None);
        assert_eq!(SampleLayout::new(1, 5), None);
    }

    #[test]
    fn rgb8_swaps_first_and_third_byte() {
        let mut px = [1, 2, 3, 4, 5, 6];
        swap_rb_in_place(&mut px, SampleLayout::Rgb8);
        assert_eq!(px, [3, 2, 1, 6, 5, 4]);
    }

    #[test]
    fn rgba8_keeps_alpha() {
        let mut px = [1, 2, 3, 4, 5, 6, 7, 8];
        swap_rb_in_place(&mut px, SampleLayout::Rgba8);
        assert_eq!(px, [3, 2, 1, 4, 7, 6, 5, 8]);
    }

    #[test]
    fn rgb16_moves_whole_big_endian_samples() {
        let mut px = [0x11, 0x12, 0x21, 0x22, 0x31, 0x32];
        swap_rb_in_place(&mut px, SampleLayout::Rgb16);
        assert_eq!(px, [0x31, 0x32, 0x21, 0x22, 0x11, 0x12]);
    }

    #[test]
    fn rgba16_keeps_alpha() {
        let mut px = [0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x41, 0x42];
        swap_rb_in_place(&mut px, SampleLayout::Rgba16);
        assert_eq!(px, [0x31, 0x32, 0x21, 0x22, 0x11, 0x12, 0x41, 0x42]);
    }

    #[test]
    fn partial_trailing_pixel_is_untouched() {
        let mut px = [1, 2, 3, 9, 8];
        swap_rb_in_place(&mut px, SampleLayout::Rgb8);
        assert_eq!(px, [3, 2, 1, 9, 8]);
    }

    #[test]
    fn swapping_twice_is_the_identity_across_band_boundaries() {
        // Several bands plus a partial one, for every layout.
        let len = 3 * BAND_BYTES + 7 * 8 * 3;
        let original: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        for layout in LAYOUTS {
            let mut fast = original.clone();
            swap_rb_in_place(&mut fast, layout);
            let mut naive = original.clone();
            naive_swap(&mut naive, layout);
            assert!(fast == naive, "{layout:?} differs from the reference");
            swap_rb_in_place(&mut fast, layout);
            assert!(fast == original, "{layout:?} twice is not the identity");
        }
    }

    #[test]
    fn word_kernel_matches_reference_at_every_tail_length() {
        // Every length up to a few 24-byte blocks: whole blocks, then a tail
        // of whole pixels, then a partial pixel.
        for layout in LAYOUTS {
            for len in 0..200 {
                let original: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                let mut fast = original.clone();
                swap_rb_sequential(&mut fast, layout);
                let mut naive = original;
                naive_swap(&mut naive, layout);
                assert!(fast == naive, "{layout:?}, {len} bytes");
            }
        }
    }

    #[test]
    fn block_masks_cover_every_byte_once() {
        let [keep, red, blue] = block_masks::<3>(3, 1);
        for i in 0..3 {
            assert_eq!(keep[i] ^ red[i] ^ blue[i], u64::MAX);
            assert_eq!(keep[i] | red[i] | blue[i], u64::MAX);
        }
        // Byte 0 is red, 1 green, 2 blue, 3 red...
        assert_eq!(red[0] & 0xffff_ffff, 0xff00_00ff);
        assert_eq!(blue[0] & 0xffff_ffff, 0x00ff_0000);
        let [keep, red, blue] = block_masks::<1>(8, 2);
        assert_eq!(
            (keep[0], red[0], blue[0]),
            (0xffff_0000_ffff_0000, 0xffff, 0xffff_0000_0000)
        );
    }

    fn any_layout() -> impl Strategy<Value = SampleLayout> {
        prop::sample::select(LAYOUTS.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_naive_reference(
            layout in any_layout(),
            // Lengths straddle the band size so the parallel split and the
            // last partial band are exercised.
            len in prop_oneof![0usize..64, (BAND_BYTES - 64)..(BAND_BYTES * 2 + 64)],
            seed in any::<u8>(),
        ) {
            let original: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
                .collect();
            let mut fast = original.clone();
            swap_rb_in_place(&mut fast, layout);
            let mut naive = original;
            naive_swap(&mut naive, layout);
            prop_assert!(fast == naive);
        }
    }
}
