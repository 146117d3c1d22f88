//! What an eavesdropper looks for: sampled windows of image files, searched
//! for in a capture of the wire.

use std::{collections::HashSet, path::PathBuf};

/// Sampled 32-byte windows of `files` (one every 512 bytes): what an
/// eavesdropper looks for in a capture.
pub fn image_windows(files: &[PathBuf]) -> HashSet<[u8; 32]> {
    let mut set = HashSet::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for start in (0..bytes.len().saturating_sub(32)).step_by(512) {
            set.insert(bytes[start..start + 32].try_into().unwrap());
        }
    }
    set
}

/// How many of `windows` appear anywhere in `haystack` (e.g. a capture).
pub fn windows_found_in(haystack: &[u8], windows: &HashSet<[u8; 32]>) -> usize {
    let prefixes: HashSet<[u8; 8]> = windows.iter().map(|w| w[..8].try_into().unwrap()).collect();
    let mut found = HashSet::new();
    for start in 0..haystack.len().saturating_sub(32) {
        let prefix: [u8; 8] = haystack[start..start + 8].try_into().unwrap();
        if prefixes.contains(&prefix) {
            let w: [u8; 32] = haystack[start..start + 32].try_into().unwrap();
            if windows.contains(&w) {
                found.insert(w);
            }
        }
    }
    found.len()
}
