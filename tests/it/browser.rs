//! Real-browser tests: Debian's chromium driven through chromedriver with
//! fantoccini. `Browser::start()` gives a fresh headless chromium (its own
//! profile, so its own cookies) or, when chromium is not installed and `CI` is
//! unset, prints SKIPPED and returns `None`. Every helper panics with the
//! current URL and an excerpt of the page source (and saves a screenshot under
//! `target/screenshots/`), so a red CI log explains itself.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

use crate::support::TestServer;

/// How long `wait_for` (and so `fill`, `click`, `text_of`) waits for an element.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long chromedriver may take to answer `/status` after it starts.
const DRIVER_READY: Duration = Duration::from_secs(20);
const DRIVER_ATTEMPTS: usize = 4;
const SOURCE_EXCERPT: usize = 2000;

pub struct Browser {
    pub client: Client,
    /// `http://127.0.0.1:PORT`, the chromedriver this session runs on.
    pub webdriver_url: String,
    driver: Child,
    /// chromium's `--user-data-dir` and chromedriver's log live here.
    profile: TempDir,
    killed: bool,
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin").join(name);
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
    // The listener is dropped here, releasing the port for chromedriver.
}

/// One `GET /status` (HTTP/1.1: chromedriver refuses 1.0) to chromedriver; true once it says ready.
fn driver_ready(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    // chromedriver may keep the connection open: stop as soon as it says ready.
    let mut body = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        body.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&body);
        if text.contains("\"ready\":true") || text.contains("\"ready\": true") {
            return true;
        }
    }
    false
}

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text[start..].to_string()
}

fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… [{} more bytes]", &text[..end], text.len() - end)
}

/// `target/screenshots` (or `$CARGO_TARGET_DIR/screenshots`), created.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Kills (SIGKILL) the process group `pgid` and any process whose command
/// line mentions `marker` (our unique profile dir), i.e. only what we started.
fn kill_ours(pgid: u32, marker: &str) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill")
                .args(["-KILL", &name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Browser {
    /// A fresh headless chromium with its own profile, or `None` (after a loud
    /// SKIPPED line) when chromium/chromedriver are missing outside CI.
    pub async fn start() -> Option<Browser> {
        let (chromium, chromedriver) = match (find_binary("chromium"), find_binary("chromedriver")) {
            (Some(c), Some(d)) => (c, d),
            _ => {
                let msg = "chromium/chromedriver not installed (apt-get install chromium chromium-driver)";
                if std::env::var_os("CI").is_some() {
                    panic!("CI is set, so browser tests must run, but {msg}");
                }
                eprintln!("\n******** SKIPPED: {msg} ********\n");
                return None;
            }
        };
        let started = Instant::now();
        let profile = tempfile::Builder::new()
            .prefix("roster-chromium-")
            .tempdir()
            .expect("tempdir for chromium profile");
        let log = profile.path().join("chromedriver.log");
        let user_data_dir = profile.path().join("profile");

        let mut failures = Vec::new();
        let (mut driver, port) = 'spawn: {
            for attempt in 1..=DRIVER_ATTEMPTS {
                let port = free_port();
                let log_file = std::fs::File::create(&log).expect("create chromedriver log");
                let mut child = Command::new(&chromedriver)
                    .arg(format!("--port={port}"))
                    .arg("--allowed-ips=127.0.0.1")
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().unwrap())
                    .stderr(log_file)
                    .process_group(0)
                    .spawn()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", chromedriver.display()));
                let deadline = Instant::now() + DRIVER_READY;
                let why = loop {
                    if driver_ready(port) {
                        break 'spawn (child, port);
                    }
                    if let Ok(Some(status)) = child.try_wait() {
                        break format!("exited with {status}");
                    }
                    if Instant::now() > deadline {
                        break format!("did not answer /status within {DRIVER_READY:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                kill_ours(child.id(), &profile.path().to_string_lossy());
                let _ = child.wait();
                failures.push(format!(
                    "attempt {attempt}, port {port}: chromedriver {why}; log:\n{}",
                    tail(&log, 2000)
                ));
            }
            panic!("could not start {}:\n{}", chromedriver.display(), failures.join("\n\n"));
        };
        let driver_up = started.elapsed();

        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", user_data_dir.display()),
                ],
            }),
        );
        let webdriver_url = format!("http://127.0.0.1:{port}");
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver_url)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                kill_ours(driver.id(), &profile.path().to_string_lossy());
                let _ = driver.wait();
                panic!(
                    "chromedriver at {webdriver_url} did not create a chromium session: {e} ({e:?})\n\
                     chromium: {}\nchromedriver log:\n{}",
                    chromium.display(),
                    tail(&log, 4000)
                );
            }
        };
        eprintln!(
            "browser: chromedriver ready in {driver_up:?}, session in {:?} (port {port}, profile {})",
            started.elapsed() - driver_up,
            user_data_dir.display()
        );
        Some(Browser {
            client,
            webdriver_url,
            driver,
            profile,
            killed: false,
        })
    }

    /// Panics with `what`, the current URL, a page source excerpt, and the
    /// path of a screenshot taken now.
    pub async fn fail(&self, what: impl std::fmt::Display) -> ! {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        let source = match self.client.source().await {
            Ok(s) => excerpt(&s, SOURCE_EXCERPT),
            Err(e) => format!("<unavailable: {e}>"),
        };
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                // libtest names the thread after the test: failure-browser__some_test-1.png
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let test: String = std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
                    .collect();
                let path = screenshot_dir().join(format!("failure-{test}-{n}.png"));
                match std::fs::write(&path, png) {
                    Ok(()) => path.display().to_string(),
                    Err(e) => format!("<not saved: {e}>"),
                }
            }
            Err(e) => format!("<not taken: {e}>"),
        };
        panic!("browser: {what}\n  current URL: {url}\n  screenshot: {shot}\n  page source:\n{source}");
    }

    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format_args!("goto {url}: {e}")).await;
        }
    }

    pub async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => self.fail(format_args!("current_url: {e}")).await,
        }
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        match self.client.source().await {
            Ok(s) => s,
            Err(e) => self.fail(format_args!("page source: {e}")).await,
        }
    }

    /// Waits (up to `WAIT`) for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => self.fail(format_args!("no element {css:?} within {WAIT:?}: {e}")).await,
        }
    }

    /// Whether an element matching `css` is on the page now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        if let Err(e) = el.clear().await {
            self.fail(format_args!("clear {css:?}: {e}")).await;
        }
        if let Err(e) = el.send_keys(text).await {
            self.fail(format_args!("type into {css:?}: {e}")).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        if let Err(e) = el.click().await {
            self.fail(format_args!("click {css:?}: {e}")).await;
        }
    }

    /// The rendered text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        let el = self.wait_for(css).await;
        match el.text().await {
            Ok(t) => t,
            Err(e) => self.fail(format_args!("text of {css:?}: {e}")).await,
        }
    }

    /// Saves a PNG of the viewport to `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => self.fail(format_args!("screenshot {name}: {e}")).await,
        };
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (chromium quits), then stops chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        match tokio::time::timeout(Duration::from_secs(10), client.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("browser: ending the session failed: {e}"),
            Err(_) => eprintln!("browser: ending the session timed out"),
        }
        self.kill();
    }

    /// Kills chromedriver's process group and any chromium using our profile.
    fn kill(&mut self) {
        if !std::mem::replace(&mut self.killed, true) {
            kill_ours(self.driver.id(), &self.profile.path().to_string_lossy());
            let _ = self.driver.wait();
        }
    }
}

impl Drop for Browser {
    /// A failing test still leaves no chromedriver or chromium behind.
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_harness_loads_a_page() {
    let server = TestServer::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = format!("https://localhost:{}/healthz", server.addr.port());
    browser.goto(&url).await;
    let text = browser.text_of("body").await;
    if !text.contains("ok") {
        browser
            .fail(format_args!("/healthz should say ok, body text is {text:?}"))
            .await;
    }
    assert!(
        browser.current_url().await.starts_with(&url),
        "landed on {}",
        browser.current_url().await
    );
    let shot = browser.screenshot("browser_harness_healthz").await;
    assert!(
        std::fs::metadata(&shot).map(|m| m.len() > 0).unwrap_or(false),
        "empty screenshot {}",
        shot.display()
    );
    browser.close().await;
    server.stop().await;
}
