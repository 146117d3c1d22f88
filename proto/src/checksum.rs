//! The checksum that travels with every image end to end (client → master →
//! worker → master → client), and the default idempotency key of a submission.
//! Both are XXH3 (64- and 128-bit): fast enough to run at memory speed on
//! every hop, and meant to catch corruption, not to resist an attacker (the
//! cluster key keeps attackers out).

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The checksum of a whole image.
pub fn checksum(data: &[u8]) -> u64 {
    xxh3_64(data)
}

/// A checksum computed over a stream of chunks; equals [`checksum`] of their concatenation.
#[derive(Clone)]
pub struct Checksummer(Box<Xxh3>);

impl std::fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checksummer")
    }
}

impl Default for Checksummer {
    fn default() -> Self {
        Checksummer(Box::new(Xxh3::new()))
    }
}

impl Checksummer {
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

/// The default idempotency key of a submission: its name and its content.
pub fn submission_key(name: &str, data: &[u8]) -> u128 {
    let mut h = SubmissionKeyer::new(name);
    h.update(data);
    h.finish()
}

/// [`submission_key`] computed over a stream of chunks (an upload whose
/// content is not known before it has arrived, as the web page's).
#[derive(Clone)]
pub struct SubmissionKeyer(Box<Xxh3>);

impl std::fmt::Debug for SubmissionKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubmissionKeyer")
    }
}

impl SubmissionKeyer {
    pub fn new(name: &str) -> Self {
        let mut h = Box::new(Xxh3::new());
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        SubmissionKeyer(h)
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_and_whole_submission_keys_agree() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        let mut k = SubmissionKeyer::new("a/b.png");
        for part in data.chunks(777) {
            k.update(part);
        }
        assert_eq!(k.finish(), submission_key("a/b.png", &data));
        assert_ne!(k.finish(), submission_key("a/c.png", &data));
    }

    #[test]
    fn streamed_and_whole_checksums_agree() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut c = Checksummer::default();
        for part in data.chunks(333) {
            c.update(part);
        }
        assert_eq!(c.finish(), checksum(&data));
        let mut flipped = data.clone();
        flipped[5000] ^= 1;
        assert_ne!(checksum(&flipped), checksum(&data));
    }

    #[test]
    fn the_key_depends_on_name_and_content() {
        let k = submission_key("a.png", b"xy");
        assert_eq!(k, submission_key("a.png", b"xy"));
        assert_ne!(k, submission_key("b.png", b"xy"));
        assert_ne!(k, submission_key("a.png", b"xz"));
        assert_ne!(submission_key("ab", b"c"), submission_key("a", b"bc"));
    }
}
