//! Joining Adler-32 checksums: the checksum of `A ++ B` from those of `A`
//! and `B` and the length of `B` (zlib's `adler32_combine`), so that pieces
//! of a zlib stream compressed in parallel need no second pass over the
//! data. The checksums themselves come from `simd-adler32`.

/// The Adler-32 modulus.
const BASE: u64 = 65_521;

/// The Adler-32 of `data`.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    let mut hash = simd_adler32::Adler32::new();
    hash.write(data);
    hash.finish()
}

/// The Adler-32 of a concatenation, from the checksum of the first part,
/// the checksum of the second part and the second part's length.
pub(crate) fn combine(first: u32, second: u32, second_len: u64) -> u32 {
    let rem = second_len % BASE;
    let (a1, b1) = (u64::from(first & 0xffff), u64::from(first >> 16));
    let (a2, b2) = (u64::from(second & 0xffff), u64::from(second >> 16));
    // a = a1 + a2 - 1; b = b1 + b2 + rem * (a1 - 1), all mod BASE.
    let a = (a1 + a2 + BASE - 1) % BASE;
    let b = (b1 + b2 + rem * a1 + BASE - rem) % BASE;
    ((b << 16) | a) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(combine(adler32(b"Wiki"), adler32(b"pedia"), 5), 0x11E6_0398);
        assert_eq!(combine(adler32(b"abc"), adler32(b""), 0), adler32(b"abc"));
        assert_eq!(combine(adler32(b""), adler32(b"abc"), 3), adler32(b"abc"));
    }

    #[test]
    fn long_parts_wrap_the_modulus() {
        let first = vec![0xffu8; 200_000];
        let second: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let whole = [&first[..], &second[..]].concat();
        assert_eq!(
            combine(adler32(&first), adler32(&second), second.len() as u64),
            adler32(&whole)
        );
    }

    proptest! {
        #[test]
        fn combining_equals_hashing_the_concatenation(
            first in prop::collection::vec(any::<u8>(), 0..3000),
            second in prop::collection::vec(any::<u8>(), 0..3000),
        ) {
            let whole = [&first[..], &second[..]].concat();
            prop_assert_eq!(
                combine(adler32(&first), adler32(&second), second.len() as u64),
                adler32(&whole)
            );
        }
    }
}
