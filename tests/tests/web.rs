//! The master's web page (`--http`) in a real browser: Debian's chromium,
//! driven through the DevTools protocol by `tests/browser/web_page.mjs`
//! (playwright-core; `scripts/test-deps` installs both). A master process
//! with no worker yet; the page cancels two queued images (one by its
//! button, one by "Cancel all"); two worker
//! processes join and are listed by name; a dozen real images go in
//! through the page's file input (and one file that is not an image, which
//! the page skips); every result is downloaded through its link and
//! checked pixel-exact, and the zip of the batch holds the same bytes.
//! Without the token, every route but `/health` is refused.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tessera_tests::{Proc, check_swapped, photos, valid_pngsuite};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const NODE: &str = env!("CARGO_BIN_EXE_tessera-node-under-test");
const T: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    request(addr, method, path, headers, body.len(), body)
}

/// A request that announces `len` bytes of body and sends `body`.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    len: usize,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).to_string();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Every route of the page, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/app.js"),
    ("GET", "/style.css"),
    ("GET", "/api/events?batch=b-1"),
    ("GET", "/api/tasks/1/result"),
    ("GET", "/api/tasks/1/history"),
    ("GET", "/api/batches/b-1/zip"),
    ("POST", "/api/upload?batch=b-1&name=a.png"),
    ("POST", "/api/tasks/1/cancel"),
    ("POST", "/api/batches/b-1/cancel"),
];

fn check_closed_without_the_token(addr: &str, token: &str) {
    assert_eq!(http(addr, "GET", "/health", &[], b"").0, 200);
    let wrong = format!("Cookie: tessera_token={}", "0".repeat(token.len()));
    for (method, path) in ROUTES {
        for headers in [vec![], vec![wrong.as_str(), "X-Tessera-Request: 1"]] {
            let (status, body) = http(addr, method, path, &headers, b"x");
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {body}");
        }
    }
    let (status, _) = http(
        addr,
        "GET",
        &format!("/?token={}", "f".repeat(32)),
        &[],
        b"",
    );
    assert_eq!(status, 401, "a wrong token in the link");
    // With the cookie, a change still needs the header and this origin.
    let cookie = format!("Cookie: tessera_token={token}");
    let (status, body) = http(addr, "POST", "/api/tasks/1/cancel", &[&cookie], b"");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-Tessera-Request"), "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/api/tasks/1/cancel",
        &[
            &cookie,
            "X-Tessera-Request: 1",
            "Origin: http://evil.example",
        ],
        b"",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another site"), "{body}");
    // The same size limit as the binary protocol, answered from the
    // announced length before any of the body is sent.
    let (status, body) = request(
        addr,
        "POST",
        "/api/upload?batch=b-1&name=big.png",
        &[&cookie, "X-Tessera-Request: 1"],
        3_000_001,
        b"",
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("over the master's image size limit of 3000000 bytes"),
        "{body}"
    );
    // The link turns into the cookie, and leaves the address bar.
    let (status, _) = http(addr, "GET", &format!("/?token={token}"), &[], b"");
    assert_eq!(status, 303);
}

/// The images the page uploads: the Kodak photos and truecolour, grey and
/// palette files from PngSuite, a dozen in all, copied into `dir`.
fn images(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut picked: Vec<PathBuf> = photos();
    let suite = valid_pngsuite();
    for name in [
        "basn2c08.png",
        "basn6a08.png",
        "basi2c16.png",
        "basn0g08.png",
        "basn3p04.png",
        "f04n2c08.png",
        "s39i3p04.png",
        "tbrn2c08.png",
    ] {
        picked.push(
            suite
                .iter()
                .find(|p| p.file_name().unwrap() == name)
                .unwrap_or_else(|| panic!("{name} in the corpus"))
                .clone(),
        );
    }
    assert_eq!(picked.len(), 12);
    picked
        .iter()
        .map(|p| {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(p, &to).unwrap();
            to
        })
        .collect()
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chromium() -> String {
    let path = std::env::var("TESSERA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "no chromium at {path}: scripts/test-deps installs Debian's (or set TESSERA_CHROMIUM)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: scripts/test-deps runs npm ci there"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_uploads_watches_cancels_and_downloads_in_a_real_browser() {
    let chromium = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let master = master_with_page(&data, &["--max-image-bytes", "3000000"]).await;
    let (url, web, token, addr) = (
        master.url.clone(),
        master.web.clone(),
        master.token.clone(),
        master.addr.clone(),
    );
    let key = data.join(tessera_proto::KEY_FILE_NAME);
    assert_eq!(
        token,
        tessera_proto::ClusterKey::load(&key).unwrap().web_token(),
        "the token is the one derived from the cluster key"
    );
    check_closed_without_the_token(&web, &token);

    let inputs = images(&tmp.path().join("in"));
    let cancel_images: Vec<PathBuf> = ["wait-here.png", "wait-too.png"]
        .iter()
        .map(|name| {
            let to = tmp.path().join(name);
            std::fs::copy(&inputs[4], &to).unwrap();
            to
        })
        .collect();
    let not_image = tmp.path().join("LICENSE.txt");
    std::fs::write(&not_image, "These images are licensed as follows...\n").unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page.png");
    let workers = ["web-worker-1", "web-worker-2"];
    let config = serde_json::json!({
        "url": url,
        "chromium": chromium,
        "cancel_images": cancel_images,
        "images": inputs,
        "not_image": not_image,
        "out_dir": out,
        "screenshot": screenshot,
        "workers": workers,
    });
    let config_path = tmp.path().join("browser.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut driver = tokio::process::Command::new("node")
        .arg(browser_dir().join("web_page.mjs"))
        .arg(&config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (Debian's nodejs)");
    let mut stdin = driver.stdin.take().unwrap();
    let mut stdout = BufReader::new(driver.stdout.take().unwrap()).lines();
    let mut _workers = Vec::new();
    let started = Instant::now();
    let result = loop {
        let line = tokio::time::timeout(Duration::from_secs(300), stdout.next_line())
            .await
            .expect("the browser script said nothing for 300 s")
            .unwrap();
        let Some(line) = line else {
            panic!(
                "the browser script ended without a result: {:?}",
                driver.wait().await
            );
        };
        println!("browser: {}", line.chars().take(300).collect::<String>());
        if line == "step: workers" {
            for name in workers {
                _workers.push(tessera_tests::spawn_worker(
                    NODE,
                    &addr,
                    &key,
                    name,
                    &["--threads", "1"],
                ));
            }
            stdin.write_all(b"go\n").await.unwrap();
        } else if let Some(json) = line.strip_prefix("result: ") {
            break serde_json::from_str::<serde_json::Value>(json).unwrap();
        }
    };
    let status = driver.wait().await.unwrap();
    assert!(status.success(), "the browser script failed: {status}");
    println!(
        "{{\"bench\":\"web\",\"browser_s\":{:.1}}}",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(
        result["problems"],
        serde_json::json!([]),
        "errors on the page"
    );
    // Each result, downloaded through its link, is its input swapped.
    let by_name: BTreeMap<String, &PathBuf> = inputs
        .iter()
        .map(|p| (p.file_name().unwrap().to_str().unwrap().to_string(), p))
        .collect();
    let downloads = result["downloads"].as_array().unwrap();
    assert_eq!(downloads.len(), inputs.len(), "{downloads:?}");
    let mut tasks = std::collections::BTreeSet::new();
    let mut downloaded = BTreeMap::new();
    for d in downloads {
        let name = d["name"].as_str().unwrap();
        assert_eq!(
            d["suggested"].as_str().unwrap(),
            name,
            "the download's file name"
        );
        let input = std::fs::read(by_name[name]).unwrap();
        let output = std::fs::read(d["path"].as_str().unwrap()).unwrap();
        check_swapped(&input, &output).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            tasks.insert(d["task"].as_u64().unwrap()),
            "one task per image"
        );
        downloaded.insert(name.to_string(), output);
    }
    let cancelled: Vec<u64> = result["cancelled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(cancelled.len(), 2, "one by its button, one by Cancel all");
    assert!(cancelled.iter().all(|t| !tasks.contains(t)));
    // The zip holds exactly the same results.
    let zip = std::fs::File::open(result["zip"].as_str().unwrap()).unwrap();
    let mut zip = zip::ZipArchive::new(zip).unwrap();
    assert_eq!(zip.len(), inputs.len());
    for (name, bytes) in &downloaded {
        let mut entry = zip.by_name(name).unwrap();
        let mut got = Vec::new();
        entry.read_to_end(&mut got).unwrap();
        assert!(got == *bytes, "{name} in the zip differs from its download");
    }
    // What the page showed.
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let skipped = skipped[0].as_str().unwrap();
    assert!(
        skipped.contains("LICENSE.txt") && skipped.contains("not a PNG"),
        "{skipped}"
    );
    let rows = result["worker_rows"].to_string();
    for name in workers {
        assert!(rows.contains(name), "worker {name} listed: {rows}");
    }
    assert!(result["spans"].as_u64().unwrap() >= inputs.len() as u64);
    let history = result["history"].as_str().unwrap();
    assert!(
        history.contains("handed to web-worker-") && history.contains(" done in "),
        "{history}"
    );
    let summary = result["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("15 images: 12 done, 0 to go, 0 failed, 2 cancelled, 1 skipped"),
        "{summary}"
    );
    assert!(screenshot.exists());
    println!("screenshot: {}", screenshot.display());
}

/// A master started with its web page on.
struct PageMaster {
    _proc: Proc,
    /// The link the master printed (`http://ADDR/?token=TOKEN`).
    url: String,
    /// The page's address (`host:port`).
    web: String,
    token: String,
    /// The master's protocol address.
    addr: String,
}

/// Starts a master with the page on (and `extra` arguments).
async fn master_with_page(data: &Path, extra: &[&str]) -> PageMaster {
    let mut args = vec![
        "master",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--no-mdns",
        "--http",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut master = Proc::spawn("master", NODE, &args);
    let lines = master
        .wait_for_lines(&["web page on ", "listening on "], T)
        .await;
    let (url, addr) = (lines[0].clone(), lines[1].clone());
    let token = url.rsplit_once("token=").unwrap().1.to_string();
    let web = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once('/'))
        .unwrap()
        .0
        .to_string();
    PageMaster {
        _proc: master,
        url,
        web,
        token,
        addr,
    }
}

/// `GET /health` answered 200 (false when the connection is closed unanswered).
fn health(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(T));
    let _ = write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

/// Waits until the peer closes `s` (a read returns 0 or fails), at most `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_bounds_connections_cuts_idle_ones_and_leaves_nothing_of_a_cut_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let master = master_with_page(&data, &[]).await;
    let (web, token) = (master.web.clone(), master.token.clone());
    let cookie = format!("Cookie: tessera_token={token}");

    // An upload cut off halfway (over the in-memory cutoff, so it goes to
    // a temporary file on disk): nothing is kept, nothing is recorded.
    let len = 3 * 1024 * 1024;
    let mut s = TcpStream::connect(&web).unwrap();
    write!(
        s,
        "POST /api/upload?batch=b-1&name=cut.png HTTP/1.1\r\nHost: {web}\r\n{cookie}\r\nX-Tessera-Request: 1\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![7u8; len / 2]).unwrap();
    let tmp_dir = data.join("tmp");
    let parts = || std::fs::read_dir(&tmp_dir).map(|d| d.count()).unwrap_or(0);
    tessera_tests::eventually(T, "the upload's temporary file on disk", || parts() == 1).await;
    drop(s);
    tessera_tests::eventually(T, "the cut upload's temporary file removed", || {
        parts() == 0
    })
    .await;
    let (status, body) = http(&web, "GET", "/api/tasks/1/history", &[&cookie], b"");
    assert_eq!(status, 404, "no task was made of it: {body}");

    // A connection that sends nothing is closed after the head deadline.
    let mut idle = TcpStream::connect(&web).unwrap();
    let since = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(30)),
        "an idle connection was left open"
    );
    println!(
        "{{\"bench\":\"web\",\"idle_connection_closed_after_s\":{:.1}}}",
        since.elapsed().as_secs_f64()
    );

    // At most 64 connections at once: the 65th is closed at once, and the
    // page serves again when they go.
    let held: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(&web).unwrap()).collect();
    let mut extra = TcpStream::connect(&web).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "a 65th connection was served"
    );
    drop(held);
    tessera_tests::eventually(T, "the page serving again", || health(&web)).await;
}
