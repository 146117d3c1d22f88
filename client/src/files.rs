//! Local files: atomic writes and the inputs of a batch.

use std::{
    io,
    path::{Path, PathBuf},
};

/// Writes `data` to `path` via a temporary file in the same directory, then
/// renames it into place, so a reader never sees a partial image; the file
/// is fsynced before the rename and the directory after it, so once this
/// returns the output survives a power loss (and may be confirmed to the
/// master, which then deletes its copy).
pub async fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let path = path.to_path_buf();
    let data = data.to_vec();
    tessera_proto::determinism::blocking(move || write_durably(&path, &data)).await
}

/// Reads a whole file (on the blocking pool).
pub async fn read(path: &Path) -> io::Result<Vec<u8>> {
    let path = path.to_path_buf();
    tessera_proto::determinism::blocking(move || std::fs::read(path)).await
}

fn write_durably(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.part", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// One image of a batch: where it is, and the name (relative path) it keeps
/// in the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub name: PathBuf,
}

/// Expands files and directories into inputs. A file keeps its file name; a
/// directory contributes every non-hidden regular file below it, named by its
/// path relative to that directory. Sorted; two inputs with one name are an error.
pub fn collect_inputs(args: &[PathBuf]) -> io::Result<Vec<Input>> {
    let mut out = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", arg.display())))?;
        if meta.is_dir() {
            walk(arg, Path::new(""), &mut out)?;
        } else {
            let name = arg.file_name().map(PathBuf::from).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a file", arg.display()),
                )
            })?;
            out.push(Input {
                path: arg.clone(),
                name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in out.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} and {} would both be written as {}",
                    pair[0].path.display(),
                    pair[1].path.display(),
                    pair[0].name.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// `--skip-existing`: the inputs whose output under `out_dir` does not exist
/// yet, and how many were left out. Outputs are written atomically (a
/// temporary file renamed into place), so one that exists is complete, and
/// an interrupted batch resumes where it stopped.
pub fn without_existing_outputs(inputs: Vec<Input>, out_dir: &Path) -> (Vec<Input>, usize) {
    let before = inputs.len();
    let left: Vec<Input> = inputs
        .into_iter()
        .filter(|i| !out_dir.join(&i.name).exists())
        .collect();
    let skipped = before - left.len();
    (left, skipped)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<Input>) -> io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = std::fs::metadata(&path)?;
        if kind.is_dir() {
            walk(&path, &rel.join(&name), out)?;
        } else if kind.is_file() {
            out.push(Input {
                path,
                name: rel.join(&name),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_keep_relative_paths_and_skip_hidden_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/x.png"), b"x").unwrap();
        std::fs::write(d.path().join("y.png"), b"y").unwrap();
        std::fs::write(d.path().join(".hidden"), b"h").unwrap();
        let got = collect_inputs(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<_> = got.iter().map(|i| i.name.clone()).collect();
        assert_eq!(
            names,
            vec![PathBuf::from("a/b/x.png"), PathBuf::from("y.png")]
        );
    }

    #[test]
    fn two_inputs_with_one_output_name_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("1")).unwrap();
        std::fs::create_dir_all(d.path().join("2")).unwrap();
        std::fs::write(d.path().join("1/x.png"), b"x").unwrap();
        std::fs::write(d.path().join("2/x.png"), b"x").unwrap();
        let err =
            collect_inputs(&[d.path().join("1/x.png"), d.path().join("2/x.png")]).unwrap_err();
        assert!(
            err.to_string().contains("would both be written as x.png"),
            "{err}"
        );
    }

    #[test]
    fn inputs_whose_output_exists_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(out.join("a")).unwrap();
        std::fs::write(out.join("a/x.png"), b"done").unwrap();
        // A leftover temporary file of an interrupted write is not an output.
        std::fs::write(out.join(".y.png.1.part"), b"half").unwrap();
        let input = |n: &str| Input {
            path: d.path().join(n),
            name: PathBuf::from(n),
        };
        let (left, skipped) =
            without_existing_outputs(vec![input("a/x.png"), input("y.png")], &out);
        assert_eq!(skipped, 1);
        assert_eq!(left, vec![input("y.png")]);
    }

    #[test]
    fn a_missing_input_names_itself() {
        let err = collect_inputs(&[PathBuf::from("/nonexistent/q.png")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/q.png"), "{err}");
    }
}
