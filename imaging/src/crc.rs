//! CRC-32 as used by PNG chunks (ISO 3309 / ITU-T V.42, reflected
//! polynomial 0xEDB88320), computed 16 bytes at a time with tables built at
//! compile time ("slicing-by-16").

/// Bytes consumed per step of the main loop.
const SLICES: usize = 16;

/// `TABLES[0]` is the classic byte table; `TABLES[k]` advances a byte that
/// is followed by `k` more bytes.
const TABLES: [[u32; 256]; SLICES] = build_tables();

const fn build_tables() -> [[u32; 256]; SLICES] {
    let mut tables = [[0u32; 256]; SLICES];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][n] = c;
        n += 1;
    }
    let mut t = 1;
    while t < SLICES {
        let mut n = 0;
        while n < 256 {
            let prev = tables[t - 1][n];
            tables[t][n] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            n += 1;
        }
        t += 1;
    }
    tables
}

/// An incremental CRC-32.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(crate) fn new() -> Self {
        Self(!0)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        let mut blocks = bytes.chunks_exact(SLICES);
        for block in &mut blocks {
            let first = c ^ u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
            let mut next = 0;
            for (i, byte) in first.to_le_bytes().into_iter().enumerate() {
                next ^= TABLES[SLICES - 1 - i][usize::from(byte)];
            }
            for (i, &byte) in block[4..].iter().enumerate() {
                next ^= TABLES[SLICES - 5 - i][usize::from(byte)];
            }
            c = next;
        }
        for &byte in blocks.remainder() {
            c = TABLES[0][((c ^ u32::from(byte)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub(crate) fn finish(self) -> u32 {
        !self.0
    }
}

/// The CRC of a PNG chunk: computed over the chunk type and the chunk data.
pub(crate) fn chunk_crc(kind: [u8; 4], data: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(&kind);
    crc.update(data);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The standard CRC-32 check value.
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
    }

    #[test]
    fn iend_chunk() {
        // Every PNG ends with IEND, whose CRC is the well-known AE 42 60 82.
        assert_eq!(chunk_crc(*b"IEND", &[]), 0xAE42_6082);
    }

    /// The plain bit-by-bit definition.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_bitwise_definition_at_every_length() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 151 + 7) as u8).collect();
        for len in 0..data.len() {
            let mut crc = Crc32::new();
            crc.update(&data[..len]);
            assert_eq!(crc.finish(), bitwise(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn incremental_equals_one_shot_at_every_split() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut whole = Crc32::new();
        whole.update(&data);
        for split in [0, 1, 2, 3, 5, 511, 999, 1000] {
            let mut parts = Crc32::new();
            parts.update(&data[..split]);
            parts.update(&data[split..]);
            assert_eq!(parts.finish(), whole.finish(), "split at {split}");
        }
    }
}
