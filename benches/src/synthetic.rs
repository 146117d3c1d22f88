//! Large photo-like test images, generated at bench time (nothing big is
//! committed): the Kodak photos upscaled 2x with bilinear interpolation,
//! tiled (mirrored on alternate tiles, so no tile repeats its neighbour),
//! with a little deterministic noise so that no row repeats an earlier one
//! byte for byte. Per pixel they compress about like the photos do.

use std::io::Cursor;

/// A decoded photo: width, height, RGB8 samples.
struct Photo {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Photo {
    fn decode(png_bytes: &[u8]) -> Self {
        let mut decoder = png::Decoder::new(Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a photo");
        let mut buffer = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buffer).expect("photo pixels");
        assert_eq!(info.color_type, png::ColorType::Rgb, "photos are RGB");
        buffer.truncate(info.buffer_size());
        Self {
            width: info.width as usize,
            height: info.height as usize,
            rgb: buffer,
        }
    }

    /// Sample `c` at (x, y) of this photo upscaled 2x (bilinear, clamped).
    fn upscaled(&self, x: usize, y: usize, c: usize) -> u32 {
        let (x0, y0) = (x / 2, y / 2);
        let x1 = (x0 + (x & 1)).min(self.width - 1);
        let y1 = (y0 + (y & 1)).min(self.height - 1);
        let at = |x: usize, y: usize| u32::from(self.rgb[(y * self.width + x) * 3 + c]);
        (at(x0, y0) + at(x1, y0) + at(x0, y1) + at(x1, y1) + 2) / 4
    }
}

/// A deterministic pseudo-random value in 0..=3 for a sample position.
fn noise(x: usize, y: usize, c: usize) -> u32 {
    let mut h = (x as u64) << 32 ^ (y as u64) << 2 ^ c as u64;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((h >> 40) & 3) as u32
}

/// A `width` x `height` photo-like RGB8 image built from the Kodak photos.
pub fn photo_like_rgb8(width: u32, height: u32) -> Vec<u8> {
    let photos: Vec<Photo> = crate::photo_bytes()
        .iter()
        .map(|b| Photo::decode(b))
        .collect();
    let (width, height) = (width as usize, height as usize);
    // Tiles as large as the smallest upscaled photo.
    let tile_w = photos.iter().map(|p| 2 * p.width).min().expect("photos");
    let tile_h = photos.iter().map(|p| 2 * p.height).min().expect("photos");
    let mut rgb = vec![0u8; width * height * 3];
    for (y, row) in rgb.chunks_exact_mut(width * 3).enumerate() {
        let (ty, in_y) = (y / tile_h, y % tile_h);
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let (tx, in_x) = (x / tile_w, x % tile_w);
            let photo = &photos[(tx + 3 * ty) % photos.len()];
            let in_x = if (tx + ty) % 2 == 1 {
                tile_w - 1 - in_x
            } else {
                in_x
            };
            for (c, sample) in pixel.iter_mut().enumerate() {
                let v = photo.upscaled(in_x, in_y, c) + noise(x, y, c);
                *sample = v.saturating_sub(1).min(255) as u8;
            }
        }
    }
    rgb
}

/// [`photo_like_rgb8`] as an 8-bit RGB PNG, compressed the way common tools
/// do it (zlib level 1, adaptive filtering).
pub fn photo_like_png(width: u32, height: u32) -> Vec<u8> {
    let rgb = photo_like_rgb8(width, height);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_deflate_compression(png::DeflateCompression::Level(1));
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header().expect("png header");
    writer.write_image_data(&rgb).expect("png data");
    writer.finish().expect("png end");
    out
}
