//! The images every simulated client sends from: every valid PngSuite
//! image under two names, and one poison.

use std::path::{Path, PathBuf};

use tessera_client::files::Input;
use tessera_tests::valid_pngsuite;

/// An image whose name has this kills every worker that processes it.
pub(crate) const POISON: &str = "poison";

/// The corpus: every valid PngSuite image, twice under two names (the
/// imaging runs for real).
pub(crate) fn inputs(dir: &Path) -> Vec<Input> {
    let suite = valid_pngsuite();
    ["a", "b"]
        .iter()
        .flat_map(|copy| {
            suite.iter().map(move |p: &PathBuf| {
                let name = PathBuf::from(format!(
                    "{copy}-{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
                let path = dir.join(&name);
                std::fs::copy(p, &path).unwrap();
                Input { path, name }
            })
        })
        .chain(std::iter::once({
            let name = PathBuf::from(format!("{POISON}.png"));
            let path = dir.join(&name);
            std::fs::copy(&suite[0], &path).unwrap();
            Input { path, name }
        }))
        .collect()
}
