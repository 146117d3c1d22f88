//! PNG row filtering (the encoder side), for the parallel encoder.
//!
//! The `png` crate's filters are private to its encoder, and the parallel
//! encoder has to filter each band of rows itself (see
//! [`crate::encode_parallel`]), so they are written here. The choice per
//! row is the `png` crate's `Filter::Adaptive` heuristic (libpng's too): of
//! Up, Sub, Average and Paeth, the filter whose output has the smallest sum
//! of absolute values read as signed bytes, ties going to the later one.
//! Each filter is a straight loop over zipped slices with no dependency
//! between bytes, so the compiler vectorises it; everything here is
//! inlined into the caller, which runs it under [`pulp`]'s dispatch for
//! the CPU's best SIMD level (see [`crate::swap`] for why).

/// The PNG filter types (the byte that starts each filtered row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RowFilter {
    Sub = 1,
    Up = 2,
    Average = 3,
    Paeth = 4,
}

/// Filters `current` into `out` (same length) with the filter that the
/// adaptive heuristic picks, and returns it. `previous` is the row above
/// (all zeros for the first row of the image); `bpp` is the number of bytes
/// per pixel (at least 1).
#[inline(always)]
pub(crate) fn filter_adaptive(
    bpp: usize,
    previous: &[u8],
    current: &[u8],
    out: &mut [u8],
) -> RowFilter {
    const CANDIDATES: [RowFilter; 4] = [
        RowFilter::Up,
        RowFilter::Sub,
        RowFilter::Average,
        RowFilter::Paeth,
    ];
    let mut best = (u64::MAX, RowFilter::Up);
    for kind in CANDIDATES {
        filter_row(kind, bpp, previous, current, out);
        let cost = signed_sum(out);
        if cost <= best.0 {
            best = (cost, kind);
            if cost == 0 {
                return kind;
            }
        }
    }
    if best.1 != RowFilter::Paeth {
        filter_row(best.1, bpp, previous, current, out);
    }
    best.1
}

/// Filters `current` into `out` with `kind`.
#[inline(always)]
pub(crate) fn filter_row(
    kind: RowFilter,
    bpp: usize,
    previous: &[u8],
    current: &[u8],
    out: &mut [u8],
) {
    let len = current.len();
    assert!(previous.len() == len && out.len() == len && bpp > 0);
    let bpp = bpp.min(len);
    // For the first pixel the left neighbours (a, c) are zero.
    let (first, rest) = out.split_at_mut(bpp);
    let left = &current[..len - bpp];
    let up_left = &previous[..len - bpp];
    let (here, up) = (&current[bpp..], &previous[bpp..]);
    match kind {
        RowFilter::Sub => {
            first.copy_from_slice(&current[..bpp]);
            for ((o, &x), &a) in rest.iter_mut().zip(here).zip(left) {
                *o = x.wrapping_sub(a);
            }
        }
        RowFilter::Up => {
            for ((o, &x), &b) in out.iter_mut().zip(current).zip(previous) {
                *o = x.wrapping_sub(b);
            }
        }
        RowFilter::Average => {
            for ((o, &x), &b) in first.iter_mut().zip(current).zip(previous) {
                *o = x.wrapping_sub(b / 2);
            }
            for (((o, &x), &a), &b) in rest.iter_mut().zip(here).zip(left).zip(up) {
                *o = x.wrapping_sub(((u16::from(a) + u16::from(b)) / 2) as u8);
            }
        }
        RowFilter::Paeth => {
            for ((o, &x), &b) in first.iter_mut().zip(current).zip(previous) {
                *o = x.wrapping_sub(paeth(0, b, 0));
            }
            for ((((o, &x), &a), &b), &c) in
                rest.iter_mut().zip(here).zip(left).zip(up).zip(up_left)
            {
                *o = x.wrapping_sub(paeth(a, b, c));
            }
        }
    }
}

/// The Paeth predictor of the PNG specification: of left (`a`), up (`b`)
/// and up-left (`c`), the one nearest to `a + b - c`, ties in that order.
///
/// In FPNGE's formulation (as in the `png` crate), all in unsigned bytes so
/// that it vectorises: `pa = |b - c|`, `pb = |a - c|`, and `pc = |pa - pb|`
/// when `c` lies between `a` and `b`; otherwise `pc` exceeds both and
/// cannot win.
#[inline(always)]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let pa = b.max(c) - b.min(c);
    let pb = a.max(c) - a.min(c);
    let pc = if (a < c) == (c < b) {
        pa.max(pb) - pa.min(pb)
    } else {
        u8::MAX
    };
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// The adaptive heuristic's cost: the sum of the bytes' absolute values as
/// signed bytes.
#[inline(always)]
fn signed_sum(bytes: &[u8]) -> u64 {
    bytes
        .chunks(4096)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&b| u32::from((b as i8).unsigned_abs()))
                .sum::<u32>()
        })
        .map(u64::from)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's reconstruction, to check that filtering is its
    /// exact inverse.
    fn unfilter(kind: u8, bpp: usize, previous: &[u8], filtered: &[u8]) -> Vec<u8> {
        let mut row = vec![0u8; filtered.len()];
        for i in 0..filtered.len() {
            let a = if i >= bpp { row[i - bpp] } else { 0 };
            let b = previous[i];
            let c = if i >= bpp { previous[i - bpp] } else { 0 };
            let predicted = match kind {
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                _ => unreachable!(),
            };
            row[i] = filtered[i].wrapping_add(predicted);
        }
        row
    }

    fn row(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    #[test]
    fn every_filter_is_inverted_by_the_decoder_rule() {
        for bpp in [1, 3, 4, 6, 8] {
            for len in [bpp, 2 * bpp, 7 * bpp, 333 * bpp] {
                let (previous, current) = (row(len, 1), row(len, 99));
                for kind in [
                    RowFilter::Sub,
                    RowFilter::Up,
                    RowFilter::Average,
                    RowFilter::Paeth,
                ] {
                    let mut out = vec![0; len];
                    filter_row(kind, bpp, &previous, &current, &mut out);
                    assert_eq!(
                        unfilter(kind as u8, bpp, &previous, &out),
                        current,
                        "{kind:?}, bpp {bpp}, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn adaptive_picks_the_cheapest_and_leaves_its_output() {
        // A row equal to the one above: Up gives all zeros.
        let previous = row(30, 5);
        let mut out = vec![0; 30];
        let kind = filter_adaptive(3, &previous, &previous, &mut out);
        assert_eq!(kind, RowFilter::Up);
        assert!(out.iter().all(|&b| b == 0));

        // A horizontal ramp under a different row: Sub gives small values.
        let ramp: Vec<u8> = (0..30).map(|i| i as u8 * 2).collect();
        let kind = filter_adaptive(3, &row(30, 7), &ramp, &mut out);
        assert_eq!(kind, RowFilter::Sub);
        assert_eq!(unfilter(1, 3, &row(30, 7), &out), ramp);

        // Whatever is picked, the output is that filter's.
        for seed in 0..20 {
            let (previous, current) = (row(64, seed), row(64, seed * 7 + 1));
            let mut picked = vec![0; 64];
            let kind = filter_adaptive(4, &previous, &current, &mut picked);
            assert_eq!(unfilter(kind as u8, 4, &previous, &picked), current);
            let mut alone = vec![0; 64];
            filter_row(kind, 4, &previous, &current, &mut alone);
            assert_eq!(alone, picked);
        }
    }

    /// The specification's Paeth predictor, in wide arithmetic.
    fn paeth_reference(a: u8, b: u8, c: u8) -> u8 {
        let (ia, ib, ic) = (i16::from(a), i16::from(b), i16::from(c));
        let p = ia + ib - ic;
        let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
        if pa <= pb && pa <= pc {
            a
        } else if pb <= pc {
            b
        } else {
            c
        }
    }

    #[test]
    fn paeth_matches_the_specification_for_every_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    assert_eq!(paeth(a, b, c), paeth_reference(a, b, c), "{a} {b} {c}");
                }
            }
        }
    }

    #[test]
    fn paeth_follows_the_specification() {
        assert_eq!(paeth(10, 20, 10), 20); // p = 20: nearest is b
        assert_eq!(paeth(20, 10, 10), 20); // p = 20: nearest is a
        assert_eq!(paeth(0, 0, 0), 0);
        assert_eq!(paeth(100, 200, 255), 100); // p = 45: a
        assert_eq!(paeth(5, 5, 5), 5);
    }
}
