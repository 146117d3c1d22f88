//! CRC-32 as used by PNG chunks (ISO 3309 / ITU-T V.42, reflected
//! polynomial 0xEDB88320), computed by `crc32fast` (the `png` crate's own
//! choice), which uses the CPU's carry-less multiply where it has one: every
//! chunk of every input and output is checksummed, so this is on the hot
//! path. A table-driven version here ran at a fraction of its speed.

/// An incremental CRC-32.
#[derive(Clone, Debug)]
pub(crate) struct Crc32(crc32fast::Hasher);

impl Crc32 {
    pub(crate) fn new() -> Self {
        Self(crc32fast::Hasher::new())
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> u32 {
        self.0.finalize()
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
            assert_eq!(parts.finish(), whole.clone().finish(), "split at {split}");
        }
    }
}
