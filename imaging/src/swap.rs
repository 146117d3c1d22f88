//! Swapping the red and blue samples of packed RGB / RGBA pixels in place.
//!
//! The buffer is split into bands of roughly [`BAND_BYTES`] (always a whole
//! number of pixels, so a pixel never straddles two bands) and the bands are
//! processed in parallel with rayon. Within a band the loop works on
//! fixed-size pixel arrays, which lets the compiler unroll and vectorise it.

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
    match layout {
        SampleLayout::Rgb8 => swap_bands::<3, 1>(pixels),
        SampleLayout::Rgba8 => swap_bands::<4, 1>(pixels),
        SampleLayout::Rgb16 => swap_bands::<6, 2>(pixels),
        SampleLayout::Rgba16 => swap_bands::<8, 2>(pixels),
    }
}

/// Splits `pixels` into whole-pixel bands and swaps each one, in parallel
/// when there is more than one band.
fn swap_bands<const PIXEL: usize, const SAMPLE: usize>(pixels: &mut [u8]) {
    let band = BAND_BYTES - BAND_BYTES % PIXEL;
    if pixels.len() <= band {
        swap_band::<PIXEL, SAMPLE>(pixels);
    } else {
        pixels
            .par_chunks_mut(band)
            .for_each(swap_band::<PIXEL, SAMPLE>);
    }
}

/// The sequential kernel: exchanges the first and third `SAMPLE`-byte
/// sample of every `PIXEL`-byte pixel. Working on a copied fixed-size array
/// lets the compiler turn each pixel into a couple of register shuffles.
fn swap_band<const PIXEL: usize, const SAMPLE: usize>(band: &mut [u8]) {
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
