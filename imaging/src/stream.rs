//! Validating the structure of a whole PNG datastream before decoding:
//! framing and CRC of every chunk, the header, and the chunk-order rules
//! that the rewriting paths rely on.

use png::ColorType;
use png::chunk::{self, ChunkType};

use crate::ProcessError;
use crate::chunks::{Chunk, Chunks, read_chunk, type_name};
use crate::detect::PNG_SIGNATURE;
use crate::header::Header;

/// What the rest of the pipeline needs to know about a validated datastream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamInfo {
    pub(crate) header: Header,
    /// Runs of consecutive image data chunks: the IDAT run plus one fdAT run
    /// per animation frame that is not the default image.
    pub(crate) image_data_runs: u64,
}

/// Checks a whole PNG datastream and returns what the pipeline needs from it.
///
/// Rejects, with a message naming the chunk and reporting the first problem
/// in file order: a first chunk that is not a valid IHDR, a bad CRC on any
/// chunk (critical or ancillary), a chunk cut short by the end of the input,
/// an invalid chunk length or type, IDAT chunks that are missing, empty or
/// not consecutive, a missing or misplaced palette, a missing or non-empty
/// IEND, and bytes after IEND. Other chunk contents are left to the `png`
/// decoder.
///
/// This reads the input once and allocates nothing per chunk.
pub(crate) fn validate_stream(png: &[u8]) -> Result<StreamInfo, ProcessError> {
    if let Some(&[a, b, c, d]) = png.get(12..16) {
        let kind = ChunkType([a, b, c, d]);
        if kind != chunk::IHDR {
            return Err(ProcessError::corrupt(missing_ihdr(png, kind)));
        }
    }
    let ihdr = read_chunk(png, PNG_SIGNATURE.len())?;
    ihdr.verify_crc()?;
    let header = Header::parse(ihdr.data)?;

    let mut rules = Rules::new(header.color_type);
    let mut chunks = Chunks::starting_at(png, PNG_SIGNATURE.len() + ihdr.raw.len());
    for chunk in &mut chunks {
        let chunk = chunk?;
        chunk.verify_crc()?;
        rules.check(&chunk)?;
    }
    let extra = png.len() - chunks.position();
    if extra > 0 {
        return Err(ProcessError::corrupt(format!(
            "{extra} unexpected byte{} after the IEND chunk",
            if extra == 1 { "" } else { "s" }
        )));
    }
    Ok(StreamInfo {
        header,
        image_data_runs: rules.finish()?,
    })
}

/// The message for a datastream whose first chunk type, `kind`, is not IHDR.
fn missing_ihdr(png: &[u8], kind: ChunkType) -> String {
    // A damaged length field shifts "IHDR" away from byte 12; say so.
    let window = &png[..png.len().min(32)];
    match window.windows(4).position(|w| w == b"IHDR") {
        Some(at) => format!(
            "missing IHDR: the chunk header is damaged (the type IHDR is at byte {at}, not 12)"
        ),
        None => format!("missing IHDR: the first chunk is {}", type_name(kind)),
    }
}

/// The chunk-order rules, checked one chunk at a time.
#[derive(Debug)]
struct Rules {
    color_type: ColorType,
    previous: ChunkType,
    idat: IdatRun,
    idat_bytes: u64,
    has_palette: bool,
    image_data_runs: u64,
}

/// Where we are relative to the single run of consecutive IDAT chunks.
#[derive(Clone, Copy, Debug)]
enum IdatRun {
    NotSeen,
    Inside,
    /// Ended by the chunk of type `by` at byte `at`.
    Ended {
        by: ChunkType,
        at: usize,
    },
}

impl Rules {
    fn new(color_type: ColorType) -> Self {
        Self {
            color_type,
            previous: chunk::IHDR,
            idat: IdatRun::NotSeen,
            idat_bytes: 0,
            has_palette: false,
            image_data_runs: 0,
        }
    }

    fn check(&mut self, chunk: &Chunk<'_>) -> Result<(), ProcessError> {
        match chunk.kind {
            chunk::IDAT => self.check_idat(chunk)?,
            chunk::PLTE => self.check_palette(chunk)?,
            chunk::IEND if !chunk.data.is_empty() => {
                return Err(ProcessError::corrupt(format!(
                    "invalid IEND chunk: it must be empty, but its length is {}",
                    chunk.data.len()
                )));
            }
            _ => {}
        }
        if let (IdatRun::Inside, false) = (self.idat, chunk.kind == chunk::IDAT) {
            self.idat = IdatRun::Ended {
                by: chunk.kind,
                at: chunk.offset,
            };
        }
        let image_data = chunk.kind == chunk::IDAT || chunk.kind == chunk::fdAT;
        if image_data && chunk.kind != self.previous {
            self.image_data_runs += 1;
        }
        self.previous = chunk.kind;
        Ok(())
    }

    fn check_idat(&mut self, chunk: &Chunk<'_>) -> Result<(), ProcessError> {
        if let IdatRun::Ended { by, at } = self.idat {
            return Err(ProcessError::corrupt(format!(
                "IDAT chunks are not consecutive: the {} chunk at byte {at} interrupts them",
                type_name(by)
            )));
        }
        if self.color_type == ColorType::Indexed && !self.has_palette {
            return Err(ProcessError::corrupt(
                "missing PLTE: an indexed-colour image needs a palette before its image data",
            ));
        }
        self.idat = IdatRun::Inside;
        self.idat_bytes += chunk.data.len() as u64;
        Ok(())
    }

    fn check_palette(&mut self, chunk: &Chunk<'_>) -> Result<(), ProcessError> {
        let len = chunk.data.len();
        let problem = if matches!(
            self.color_type,
            ColorType::Grayscale | ColorType::GrayscaleAlpha
        ) {
            Some("a grayscale image must not have a palette".to_owned())
        } else if self.has_palette {
            Some("there is more than one".to_owned())
        } else if !matches!(self.idat, IdatRun::NotSeen) {
            Some("it comes after the image data".to_owned())
        } else if len == 0 || len > 3 * 256 || !len.is_multiple_of(3) {
            Some(format!(
                "its length {len} is not 3 to 768 bytes in whole RGB entries"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ProcessError::corrupt(format!(
                "invalid PLTE chunk: {problem}"
            )));
        }
        self.has_palette = true;
        Ok(())
    }

    /// The end-of-stream checks; returns the number of image data runs.
    fn finish(self) -> Result<u64, ProcessError> {
        match self.idat {
            IdatRun::NotSeen => Err(ProcessError::corrupt(
                "missing IDAT: the file contains no image data",
            )),
            _ if self.idat_bytes == 0 => Err(ProcessError::corrupt(
                "missing image data: the IDAT chunks are empty",
            )),
            _ => Ok(self.image_data_runs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::chunks::tests::{IDAT_1X1, IHDR_1X1_GRAY, png, tiny_png};
    use crate::crc::chunk_crc;

    fn error_of(png: &[u8]) -> String {
        let err = validate_stream(png).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        err.to_string()
    }

    fn indexed_ihdr() -> [u8; 13] {
        let mut ihdr = IHDR_1X1_GRAY;
        ihdr[9] = 3;
        ihdr
    }

    #[test]
    fn accepts_a_well_formed_stream() {
        let info = validate_stream(&tiny_png()).unwrap();
        assert_eq!((info.header.width, info.header.height), (1, 1));
        assert_eq!(info.image_data_runs, 1);
    }

    #[test]
    fn counts_animation_frames_data() {
        let fdat = [&[0, 0, 0, 1][..], &IDAT_1X1].concat();
        let apng = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::fdAT, &fdat),
            (chunk::fdAT, &fdat),
            (chunk::fcTL, &[0; 26]),
            (chunk::fdAT, &fdat),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(validate_stream(&apng).unwrap().image_data_runs, 3);
    }

    #[test]
    fn any_bad_crc_is_fatal() {
        for offset in [29, 51, 63] {
            let mut png = tiny_png();
            png[offset] ^= 1;
            assert!(error_of(&png).starts_with("CRC mismatch in"));
        }
    }

    #[test]
    fn problems_are_reported_in_file_order() {
        // A bad IHDR comes before a truncated IDAT.
        let mut png = tiny_png();
        png[16..20].copy_from_slice(&[0; 4]);
        let crc = chunk_crc(*b"IHDR", &png[16..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let cut = png.len() - 14;
        assert_eq!(
            error_of(&png[..cut]),
            "invalid IHDR: width 0 is outside 1..=2^31-1"
        );
    }

    #[test]
    fn first_chunk_must_be_ihdr() {
        let no_ihdr = png(&[(chunk::IDAT, &IDAT_1X1), (chunk::IEND, &[])]);
        assert_eq!(error_of(&no_ihdr), "missing IHDR: the first chunk is IDAT");

        let mut bad_type = tiny_png();
        bad_type[12] = 0;
        assert_eq!(
            error_of(&bad_type),
            "missing IHDR: the first chunk is 0x00484452"
        );

        let shifted = [&tiny_png()[..8], &tiny_png()[11..]].concat();
        assert_eq!(
            error_of(&shifted),
            "missing IHDR: the chunk header is damaged (the type IHDR is at byte 9, not 12)"
        );
    }

    #[test]
    fn image_data_rules() {
        let no_idat = png(&[(chunk::IHDR, &IHDR_1X1_GRAY), (chunk::IEND, &[])]);
        assert_eq!(
            error_of(&no_idat),
            "missing IDAT: the file contains no image data"
        );

        let empty_idat = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &[]),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&empty_idat),
            "missing image data: the IDAT chunks are empty"
        );

        let split_idat = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1[..4]),
            (chunk::tEXt, b"a\0b"),
            (chunk::IDAT, &IDAT_1X1[4..]),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&split_idat),
            "IDAT chunks are not consecutive: the tEXt chunk at byte 49 interrupts them"
        );
    }

    #[test]
    fn palette_rules() {
        let ihdr = indexed_ihdr();
        let no_plte = png(&[
            (chunk::IHDR, &ihdr),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&no_plte),
            "missing PLTE: an indexed-colour image needs a palette before its image data"
        );

        let short = png(&[
            (chunk::IHDR, &ihdr),
            (chunk::PLTE, &[1, 2, 3, 4]),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&short),
            "invalid PLTE chunk: its length 4 is not 3 to 768 bytes in whole RGB entries"
        );

        let gray = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::PLTE, &[1, 2, 3]),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ]);
        assert_eq!(
            error_of(&gray),
            "invalid PLTE chunk: a grayscale image must not have a palette"
        );

        let ok = png(&[
            (chunk::IHDR, &ihdr),
            (chunk::PLTE, &[1, 2, 3]),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, &[]),
        ]);
        assert!(validate_stream(&ok).is_ok());
    }

    #[test]
    fn end_of_stream_rules() {
        let mut trailing = tiny_png();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            error_of(&trailing),
            "4 unexpected bytes after the IEND chunk"
        );

        let full_iend = png(&[
            (chunk::IHDR, &IHDR_1X1_GRAY),
            (chunk::IDAT, &IDAT_1X1),
            (chunk::IEND, b"x"),
        ]);
        assert_eq!(
            error_of(&full_iend),
            "invalid IEND chunk: it must be empty, but its length is 1"
        );

        let no_iend = &tiny_png()[..55];
        assert_eq!(error_of(no_iend), "truncated file: missing IEND chunk");
    }
}
