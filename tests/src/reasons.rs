//! Why each corrupt image of the test corpus fails: the exact reason a
//! worker gives for it, so that the tests pin what a user reads, not only
//! that some text came back. An image added to `pngsuite/x*` or `bad/` needs
//! its line here (the tests fail without one).

/// (file name, reason) for every corrupt image of the corpus.
const REASONS: &[(&str, &str)] = &[
    ("xc1n0g08.png", "invalid IHDR: colour type 1 is not defined"),
    ("xc9n2c08.png", "invalid IHDR: colour type 9 is not defined"),
    (
        "xcrn0g04.png",
        "not a PNG: bad signature (line feeds were converted to carriage returns, e.g. by a text-mode transfer)",
    ),
    ("xcsn0g01.png", "CRC mismatch in IDAT chunk"),
    (
        "xd0n2c08.png",
        "invalid IHDR: bit depth 0 is not allowed for RGB (allowed: 8, 16)",
    ),
    (
        "xd3n2c08.png",
        "invalid IHDR: bit depth 3 is not allowed for RGB (allowed: 8, 16)",
    ),
    (
        "xd9n2c08.png",
        "invalid IHDR: bit depth 99 is not allowed for RGB (allowed: 8, 16)",
    ),
    (
        "xdtn0g01.png",
        "missing IDAT: the file contains no image data",
    ),
    ("xhdn0g08.png", "CRC mismatch in IHDR chunk"),
    (
        "xlfn0g04.png",
        "not a PNG: bad signature (carriage returns were converted to line feeds, e.g. by a text-mode transfer)",
    ),
    (
        "xs1n0g01.png",
        "not a PNG: bad signature (the high bit of the first byte is clear, e.g. after a 7-bit transfer)",
    ),
    ("xs2n0g01.png", "not a PNG: bad signature"),
    ("xs4n0g01.png", "not a PNG: bad signature"),
    ("xs7n0g01.png", "not a PNG: bad signature"),
    (
        "x_consecutive_idat.png",
        "IDAT chunks are not consecutive: the gAMA chunk at byte 160 interrupts them",
    ),
    (
        "x_ihdr_missing.png",
        "missing IHDR: the first chunk is IDAT",
    ),
    (
        "x_image-issue_1075.png",
        "missing image data: the IDAT chunks are empty",
    ),
    ("x_interlaced_chck.png", "CRC mismatch in IDAT chunk"),
    (
        "x_issue_214.png",
        "invalid IHDR: width 0 is outside 1..=2^31-1",
    ),
    (
        "x_issue_230.0.png",
        "invalid IHDR: width 4293328897 is outside 1..=2^31-1",
    ),
    (
        "x_issue_230.1.png",
        "invalid IHDR: width 4294967295 is outside 1..=2^31-1",
    ),
    (
        "x_unexpected_eof.png",
        "missing IHDR: the chunk header is damaged (the type IHDR is at byte 9, not 12)",
    ),
];

/// The reason the corrupt corpus image `name` must fail with.
pub fn corrupt_reason(name: &str) -> &'static str {
    REASONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("{name}: no expected reason in tests/src/reasons.rs"))
}
