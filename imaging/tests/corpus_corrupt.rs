//! Every corrupt file of the corpus, and inputs that are not PNG at all, must
//! be rejected with the right kind of error and a specific message, without
//! panicking. Run with `--nocapture` to see the table of messages.

mod common;

use common::{name, read};
use tessera_imaging::{ErrorKind, Options, process};

/// Expected kind and a distinctive part of the message, per file.
const EXPECTED: &[(&str, ErrorKind, &str)] = &[
    // PngSuite
    (
        "xc1n0g08.png",
        ErrorKind::Corrupt,
        "colour type 1 is not defined",
    ),
    (
        "xc9n2c08.png",
        ErrorKind::Corrupt,
        "colour type 9 is not defined",
    ),
    (
        "xcrn0g04.png",
        ErrorKind::Corrupt,
        "line feeds were converted to carriage returns",
    ),
    (
        "xcsn0g01.png",
        ErrorKind::Corrupt,
        "CRC mismatch in IDAT chunk",
    ),
    (
        "xd0n2c08.png",
        ErrorKind::Corrupt,
        "bit depth 0 is not allowed for RGB",
    ),
    (
        "xd3n2c08.png",
        ErrorKind::Corrupt,
        "bit depth 3 is not allowed for RGB",
    ),
    (
        "xd9n2c08.png",
        ErrorKind::Corrupt,
        "bit depth 99 is not allowed for RGB",
    ),
    ("xdtn0g01.png", ErrorKind::Corrupt, "missing IDAT"),
    (
        "xhdn0g08.png",
        ErrorKind::Corrupt,
        "CRC mismatch in IHDR chunk",
    ),
    (
        "xlfn0g04.png",
        ErrorKind::Corrupt,
        "carriage returns were converted to line feeds",
    ),
    (
        "xs1n0g01.png",
        ErrorKind::Corrupt,
        "high bit of the first byte is clear",
    ),
    (
        "xs2n0g01.png",
        ErrorKind::Corrupt,
        "not a PNG: bad signature",
    ),
    (
        "xs4n0g01.png",
        ErrorKind::Corrupt,
        "not a PNG: bad signature",
    ),
    (
        "xs7n0g01.png",
        ErrorKind::Corrupt,
        "not a PNG: bad signature",
    ),
    // bad/
    (
        "x_consecutive_idat.png",
        ErrorKind::Corrupt,
        "IDAT chunks are not consecutive: the gAMA chunk at byte 160",
    ),
    (
        "x_ihdr_missing.png",
        ErrorKind::Corrupt,
        "missing IHDR: the first chunk is IDAT",
    ),
    (
        "x_image-issue_1075.png",
        ErrorKind::Corrupt,
        "missing image data: the IDAT chunks are empty",
    ),
    (
        "x_interlaced_chck.png",
        ErrorKind::Corrupt,
        "CRC mismatch in IDAT chunk",
    ),
    (
        "x_issue_214.png",
        ErrorKind::Corrupt,
        "invalid IHDR: width 0 is outside",
    ),
    (
        "x_issue_230.0.png",
        ErrorKind::Corrupt,
        "invalid IHDR: width 4293328897 is outside",
    ),
    (
        "x_issue_230.1.png",
        ErrorKind::Corrupt,
        "invalid IHDR: width 4294967295 is outside",
    ),
    (
        "x_unexpected_eof.png",
        ErrorKind::Corrupt,
        "missing IHDR: the chunk header is damaged",
    ),
];

#[test]
fn corrupt_files_are_rejected_with_specific_messages() {
    let mut files = common::pngs("pngsuite", |n| n.starts_with('x'));
    files.extend(common::pngs("bad", |_| true));

    let mut table = String::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &files {
        let file = name(path);
        let result = process(&read(path), &Options::default());
        let message = match &result {
            Ok(out) => format!("accepted ({:?})", out.path),
            Err(e) => e.to_string(),
        };
        table.push_str(&format!("{file:<24} {message}\n"));

        let Some(&(_, kind, part)) = EXPECTED.iter().find(|(f, _, _)| *f == file) else {
            failures.push(format!("{file}: no expectation listed"));
            continue;
        };
        checked += 1;
        match result {
            Ok(_) => failures.push(format!("{file}: accepted")),
            Err(e) if e.kind() != kind => {
                failures.push(format!("{file}: {:?} instead of {kind:?}: {e}", e.kind()));
            }
            Err(e) if !e.to_string().contains(part) => {
                failures.push(format!("{file}: {e:?} does not mention {part:?}"));
            }
            Err(_) => {}
        }
    }
    println!("{table}");
    assert_eq!(checked, EXPECTED.len(), "some expected files are missing");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn non_png_inputs() {
    let cases: &[(&[u8], ErrorKind, &str)] = &[
        (
            b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
            ErrorKind::Unsupported,
            "unsupported format: JPEG (only PNG is supported)",
        ),
        (
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            ErrorKind::Unsupported,
            "unsupported format: GIF (only PNG is supported)",
        ),
        (b"", ErrorKind::Corrupt, "empty input"),
        (
            b"\x13\x37\xC0\xDE random garbage that is not an image",
            ErrorKind::Corrupt,
            "not a PNG: bad signature",
        ),
    ];
    for (input, kind, message) in cases {
        let err = process(input, &Options::default()).unwrap_err();
        assert_eq!(err.kind(), *kind, "{err}");
        assert_eq!(err.to_string(), *message);
    }
}
