//! Shared helpers of the workspace-level integration tests: the test corpus,
//! an independent pixel check, and real processes that die with the test.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

pub mod bench_line;
pub mod chaos;
pub mod eavesdrop;
pub mod inproc;
pub mod netns;
pub mod procstat;
pub mod reasons;
pub mod run;
pub mod sim_clock;
pub mod sim_disk;
pub mod sim_net;
pub mod supervisor;
pub mod tmpfs;

pub use eavesdrop::{image_windows, windows_found_in};

use image::GenericImageView;
pub use tessera_node::cli::TEST_SWITCHES_ENV;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// `tests/data/` in the source tree.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Every PNG in `dir` whose file name satisfies `keep`, sorted.
pub fn pngs_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".png") && keep(&name)
        })
        .collect();
    v.sort();
    v
}

/// The valid PngSuite images (names not starting with `x`).
pub fn valid_pngsuite() -> Vec<PathBuf> {
    pngs_in(&data_dir().join("pngsuite"), |n| !n.starts_with('x'))
}

/// The deliberately corrupt PngSuite images.
pub fn corrupt_pngsuite() -> Vec<PathBuf> {
    pngs_in(&data_dir().join("pngsuite"), |n| n.starts_with('x'))
}

/// The malformed PNGs of `bad/`.
pub fn bad_pngs() -> Vec<PathBuf> {
    pngs_in(&data_dir().join("bad"), |_| true)
}

/// The Kodak photos.
pub fn photos() -> Vec<PathBuf> {
    pngs_in(&data_dir().join("photos"), |_| true)
}

/// Checks that `output` is `input` with red and blue swapped, computed here
/// independently of tessera: both decoded by the `image` crate to RGBA16 and
/// compared pixel by pixel, and both PNG headers compared (size, colour type,
/// bit depth). Grayscale images must come back byte-identical.
pub fn check_swapped(input: &[u8], output: &[u8]) -> Result<(), String> {
    let hi = png_header(input)?;
    let ho = png_header(output).map_err(|e| format!("output: {e}"))?;
    if hi != ho {
        return Err(format!("header changed: input {hi:?}, output {ho:?}"));
    }
    let a = image::load_from_memory_with_format(input, image::ImageFormat::Png)
        .map_err(|e| format!("input does not decode: {e}"))?;
    let b = image::load_from_memory_with_format(output, image::ImageFormat::Png)
        .map_err(|e| format!("output does not decode: {e}"))?;
    if a.dimensions() != b.dimensions() {
        return Err(format!(
            "size changed: {:?} -> {:?}",
            a.dimensions(),
            b.dimensions()
        ));
    }
    let (a, b) = (a.to_rgba16(), b.to_rgba16());
    for (x, y, pa) in a.enumerate_pixels() {
        let [r, g, bl, al] = pa.0;
        let want = [bl, g, r, al];
        let got = b.get_pixel(x, y).0;
        if got != want {
            return Err(format!(
                "pixel ({x},{y}): input {:?}, want {want:?}, got {got:?}",
                pa.0
            ));
        }
    }
    if matches!(
        hi.2,
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha
    ) && input != output
    {
        return Err("grayscale image was not returned unchanged".into());
    }
    Ok(())
}

type Header = (u32, u32, png::ColorType, png::BitDepth);

fn png_header(data: &[u8]) -> Result<Header, String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(data));
    let reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let info = reader.info();
    Ok((info.width, info.height, info.color_type, info.bit_depth))
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts `program args` with stdout piped and stderr inherited, and
    /// the test-only switches enabled ([`TEST_SWITCHES_ENV`]).
    pub fn spawn(name: &str, program: &str, args: &[&str]) -> Proc {
        Proc::spawn_logging(name, program, args, Stdio::inherit())
    }

    /// [`Proc::spawn`] with stderr (the log) written to `log`.
    pub fn spawn_logged(name: &str, program: &str, args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        Proc::spawn_logging(name, program, args, file.into())
    }

    fn spawn_logging(name: &str, program: &str, args: &[&str], stderr: Stdio) -> Proc {
        let log = std::env::var("TESSERA_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", log)
            .env(TEST_SWITCHES_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        Proc {
            child,
            name: name.into(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends a signal by name (`KILL`, `STOP`, `CONT`, `TERM`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.name);
    }

    /// Reads stdout lines until one starts with `prefix`; returns the rest of it.
    pub async fn wait_for_line(&mut self, prefix: &str, deadline: Duration) -> String {
        self.wait_for_lines(&[prefix], deadline).await.remove(0)
    }

    /// Reads stdout lines until, for each of `prefixes` in turn, one starts
    /// with it; returns the rest of each (lines in between are skipped).
    pub async fn wait_for_lines(&mut self, prefixes: &[&str], deadline: Duration) -> Vec<String> {
        let stdout = self
            .child
            .stdout
            .take()
            .expect("stdout piped and not yet taken");
        let mut lines = BufReader::new(stdout).lines();
        let mut found = Vec::new();
        let read = tokio::time::timeout(deadline, async {
            for prefix in prefixes {
                loop {
                    let Some(line) = lines.next_line().await.expect("read stdout") else {
                        return Err(*prefix);
                    };
                    if let Some(rest) = line.strip_prefix(prefix) {
                        found.push(rest.trim().to_string());
                        break;
                    }
                }
            }
            Ok(())
        })
        .await;
        match read {
            Ok(Ok(())) => {
                // Keep draining so the child never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                found
            }
            Ok(Err(prefix)) => panic!("{} exited before printing {prefix:?}", self.name),
            Err(_) => panic!(
                "{} did not print {prefixes:?} within {deadline:?}",
                self.name
            ),
        }
    }
}

/// Starts `tessera-node master` (the binary at `node_bin`) on 127.0.0.1:0
/// with `data_dir` and `extra` options, and returns it with the address it
/// bound and the path of the cluster key it created in `data_dir` (pass it
/// to workers and clients with `--key-file`; load it with `ClusterKey::load`).
/// It does not announce itself on mDNS: these tests give everyone its address.
pub async fn spawn_master(
    node_bin: &str,
    data_dir: &Path,
    extra: &[&str],
) -> (Proc, String, PathBuf) {
    spawn_master_logged(node_bin, data_dir, extra, None).await
}

/// [`spawn_master`], its log written to `log` when given.
pub async fn spawn_master_logged(
    node_bin: &str,
    data_dir: &Path,
    extra: &[&str],
    log: Option<&Path>,
) -> (Proc, String, PathBuf) {
    let data = data_dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "master",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--no-mdns",
    ];
    args.extend_from_slice(extra);
    let mut master = match log {
        Some(log) => Proc::spawn_logged("master", node_bin, &args, log),
        None => Proc::spawn("master", node_bin, &args),
    };
    let addr = master
        .wait_for_line("listening on ", Duration::from_secs(30))
        .await;
    let key_file = data_dir.join(tessera_proto::KEY_FILE_NAME);
    assert!(
        key_file.exists(),
        "the master created {}",
        key_file.display()
    );
    (master, addr, key_file)
}

/// Starts `tessera-node worker` (the binary at `node_bin`) for the master at
/// `addr` with the cluster key in `key`, named `name`, with `extra` options.
pub fn spawn_worker(node_bin: &str, addr: &str, key: &Path, name: &str, extra: &[&str]) -> Proc {
    let key = key.to_str().expect("utf-8 path");
    let mut args = vec![
        "worker",
        "--master",
        addr,
        "--key-file",
        key,
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    Proc::spawn(name, node_bin, &args)
}

/// Copies `files` into `dir` (created if needed), keeping their file names.
pub fn copy_into(dir: &Path, files: &[PathBuf]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

/// A task's recorded events, as `tessera history` prints them.
pub async fn history_lines(
    client: &tessera_client::Client,
    task: tessera_client::TaskId,
) -> Vec<String> {
    client
        .history(task)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.to_string())
        .collect()
}

/// Waits up to `deadline` for `cond` to hold, checking every 10 ms.
pub async fn eventually(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` images in `dir` (created): the Kodak photos over and over, under
/// distinct names `img-00.png`, `img-01.png`, ...
pub fn numbered_photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let photos = photos();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img-{i:02}.png"));
            std::fs::copy(&photos[i % photos.len()], &p).unwrap();
            p
        })
        .collect()
}

/// Checks what `tessera run --json` printed (`stdout`) and wrote to
/// `output`: every one of `inputs` done exactly once (one distinct task
/// each, none failed) and pixel-exact.
pub fn check_batch_json(stdout: &str, inputs: &[PathBuf], output: &Path) {
    let mut tasks = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] == "image" {
            assert_eq!(v["ok"], true, "{line}");
            assert!(tasks.insert(v["task"].as_u64().unwrap()), "twice: {line}");
        }
    }
    assert_eq!(tasks.len(), inputs.len(), "one task per image:\n{stdout}");
    for p in inputs {
        let result = std::fs::read(output.join(p.file_name().unwrap())).unwrap();
        check_swapped(&std::fs::read(p).unwrap(), &result)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

/// A PNG bomb: a `side` x `side` 8-bit grayscale image of zeros, deflated at
/// the highest level, so a small file (about 1/1000 of its decoded size)
/// declares and decodes to `side * side` bytes. Built row by row, so making
/// it never holds the decoded image.
pub fn png_bomb(side: u32) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_deflate_compression(png::DeflateCompression::Level(9));
    encoder.set_filter(png::Filter::NoFilter);
    let mut header = encoder.write_header().expect("header");
    let mut writer = header.stream_writer().expect("stream writer");
    let row = vec![0u8; side as usize];
    for _ in 0..side {
        writer.write_all(&row).expect("row");
    }
    writer.finish().expect("finish");
    header.finish().expect("finish");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker itself must catch an unswapped or altered image.
    #[test]
    fn the_pixel_check_rejects_an_unswapped_image() {
        let photo = std::fs::read(&photos()[0]).unwrap();
        let err = check_swapped(&photo, &photo).unwrap_err();
        assert!(err.starts_with("pixel ("), "{err}");
    }

    #[test]
    fn the_pixel_check_rejects_a_changed_colour_type() {
        // basn2c08 is RGB 8-bit; basn6a08 is RGBA 8-bit of a different image.
        let dir = data_dir().join("pngsuite");
        let rgb = std::fs::read(dir.join("basn2c08.png")).unwrap();
        let rgba = std::fs::read(dir.join("basn6a08.png")).unwrap();
        let err = check_swapped(&rgb, &rgba).unwrap_err();
        assert!(err.starts_with("header changed"), "{err}");
    }
}
