//! CRC-32 as used by PNG chunks (ISO 3309 / ITU-T V.42, polynomial
//! 0xEDB88320 reflected), computed with a slice-by-4 table built at compile time.

/// Four 256-entry tables: `TABLES[0]` is the classic byte table, `TABLES[k]`
/// advances a byte that is followed by `k` more bytes.
const TABLES: [[u32; 256]; 4] = build_tables();

const fn build_tables() -> [[u32; 256]; 4] {
    let mut tables = [[0u32; 256]; 4];
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
    while t < 4 {
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
        let mut words = bytes.chunks_exact(4);
        for w in &mut words {
            c ^= u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            c = TABLES[3][(c & 0xFF) as usize]
                ^ TABLES[2][((c >> 8) & 0xFF) as usize]
                ^ TABLES[1][((c >> 16) & 0xFF) as usize]
                ^ TABLES[0][(c >> 24) as usize];
        }
        for &b in words.remainder() {
            c = TABLES[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
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
