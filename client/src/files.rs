//! Local files: atomic writes and the inputs of a batch.

use std::{
    io,
    path::{Path, PathBuf},
};

use bytes::Bytes;

/// Writes `data` to `path` via a temporary file in the same directory, then
/// renames it into place, so a reader never sees a partial image; the file
/// is fsynced before the rename and the directory after it, so once this
/// returns the output survives a power loss (and may be confirmed to the
/// master, which then deletes its copy). `data` goes to the blocking
/// thread as it is, not copied.
pub async fn write_atomically(path: &Path, data: Bytes) -> io::Result<()> {
    let path = path.to_path_buf();
    tessera_proto::determinism::blocking(move || write_durably(&path, &data)).await
}

/// Reads a whole file (on the blocking pool).
pub async fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_into(path, Vec::new()).await
}

/// Reads a whole file into `buffer` (emptied first; its memory reused),
/// on the blocking pool.
pub async fn read_into(path: &Path, mut buffer: Vec<u8>) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let path = path.to_path_buf();
    tessera_proto::determinism::blocking(move || {
        buffer.clear();
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata().map_or(0, |m| m.len() as usize);
        buffer.reserve_exact(len);
        file.read_to_end(&mut buffer)?;
        Ok(buffer)
    })
    .await
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

/// The inputs of a batch, and the files of its directories left out
/// because they are not images.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub inputs: Vec<Input>,
    /// Files found in a directory with neither an image format's
    /// signature nor an image file extension (a README, a licence, notes):
    /// not uploaded, reported once as skipped.
    pub not_images: Vec<PathBuf>,
}

/// Image file extensions: a file in a directory with one of these is an
/// input whatever its bytes (a damaged image must fail by name, not vanish).
const IMAGE_EXTENSIONS: [&str; 10] = [
    "png", "apng", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "avif",
];

/// Leading bytes of image formats (PNG, JPEG, GIF, WebP's RIFF, BMP,
/// TIFF both ways).
const IMAGE_SIGNATURES: [&[u8]; 7] = [
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"RIFF",
    b"BM",
    b"II*\0",
    b"MM\0*",
];

/// Whether a file found in a directory is an image to process: an image
/// extension, or an image format's first bytes.
fn looks_like_an_image(path: &Path) -> io::Result<bool> {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if by_name {
        return Ok(true);
    }
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut filled = 0;
    while filled < head.len() {
        match std::io::Read::read(&mut file, &mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(IMAGE_SIGNATURES
        .iter()
        .any(|sig| head[..filled].starts_with(sig)))
}

/// Expands files and directories into inputs. A file named on the command
/// line is always an input and keeps its file name; a directory contributes
/// every non-hidden regular file below it that looks like an image (see
/// `looks_like_an_image`; the rest go to [`Collected::not_images`]),
/// named by its path relative to that directory. Sorted; two inputs with
/// one name are an error.
pub fn collect_inputs(args: &[PathBuf]) -> io::Result<Collected> {
    let mut out = Vec::new();
    let mut not_images = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", arg.display())))?;
        if meta.is_dir() {
            walk(arg, Path::new(""), &mut out, &mut not_images)?;
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
    not_images.sort();
    Ok(Collected {
        inputs: out,
        not_images,
    })
}

/// The one line telling which files of the directories were left out.
pub fn not_images_notice(not_images: &[PathBuf]) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = not_images
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if not_images.len() > SHOWN {
        names.push(format!("and {} more", not_images.len() - SHOWN));
    }
    format!(
        "skipping {} file{} that {} not images (no image extension or signature): {}",
        not_images.len(),
        if not_images.len() == 1 { "" } else { "s" },
        if not_images.len() == 1 { "is" } else { "are" },
        names.join(", ")
    )
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

fn walk(
    dir: &Path,
    rel: &Path,
    out: &mut Vec<Input>,
    not_images: &mut Vec<PathBuf>,
) -> io::Result<()> {
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
            walk(&path, &rel.join(&name), out, not_images)?;
        } else if kind.is_file() && !looks_like_an_image(&path)? {
            not_images.push(path);
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
        let got = collect_inputs(&[d.path().to_path_buf()]).unwrap().inputs;
        let names: Vec<_> = got.iter().map(|i| i.name.clone()).collect();
        assert_eq!(
            names,
            vec![PathBuf::from("a/b/x.png"), PathBuf::from("y.png")]
        );
    }

    /// A README or licence beside the images is left out and named; a
    /// damaged image (image extension, bad bytes) and an image without an
    /// extension stay inputs, as does any file named on the command line.
    #[test]
    fn files_of_a_directory_that_are_not_images_are_left_out_and_named() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, b: &[u8]| std::fs::write(d.path().join(n), b).unwrap();
        w("README.md", b"# photos");
        w("LICENSE", b"MIT");
        w("broken.PNG", b"not really");
        w("scan", b"\x89PNG\r\n\x1a\n....");
        w("photo.jpeg", b"\xff\xd8\xff\xe0");
        let got = collect_inputs(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<_> = got.inputs.iter().map(|i| i.name.clone()).collect();
        assert_eq!(
            names,
            ["broken.PNG", "photo.jpeg", "scan"].map(PathBuf::from)
        );
        assert_eq!(
            got.not_images,
            vec![d.path().join("LICENSE"), d.path().join("README.md")]
        );
        let named = collect_inputs(&[d.path().join("README.md")]).unwrap();
        assert_eq!(named.inputs.len(), 1);
        assert!(named.not_images.is_empty());
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

    /// A reused buffer that held a longer input gives exactly the new
    /// file: none of the old bytes are left after it.
    #[tokio::test]
    async fn reading_into_a_used_buffer_gives_exactly_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.png");
        std::fs::write(&path, b"short input").unwrap();
        let used = vec![0xAAu8; 4096];
        let at = used.as_ptr();
        let data = read_into(&path, used).await.unwrap();
        assert_eq!(data, b"short input");
        assert_eq!(data.as_ptr(), at, "the buffer's memory is reused");
    }
}
