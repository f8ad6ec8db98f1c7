//! Helpers shared by the integration tests. They print what they saw when an
//! assertion fails, so a red CI log explains itself.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use roster::App;
use roster::client::{Response, pinned_config};
use roster::config::Config;
use roster::server::{self, Running};
use rustls_pki_types::CertificateDer;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_roster");

/// The embedded default, moved to a tempdir and an ephemeral port.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::embedded_default();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.data_dir = dir.join("data");
    c
}

pub struct TestServer {
    pub dir: TempDir,
    pub addr: SocketAddr,
    pub app: App,
    running: Option<Running>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        TestServer::start_with(dir, config).await
    }

    pub async fn start_with(dir: TempDir, config: Config) -> TestServer {
        let app = App::open(config).await.expect("open app");
        app.bootstrap_if_empty().await.expect("bootstrap");
        let running = server::start(app.clone()).await.expect("start server");
        TestServer {
            dir,
            addr: running.local_addr,
            app,
            running: Some(running),
        }
    }

    /// Like `start`, but the app reads time from `clock` (tests that need
    /// codes, tokens or refresh-grace windows to expire).
    pub async fn start_with_clock(clock: Arc<roster::clock::FakeClock>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        TestServer::start_with_config_and_clock(dir, config, clock).await
    }

    /// A given config and fake clock (ACME tests move time to renewal).
    pub async fn start_with_config_and_clock(
        dir: TempDir,
        config: Config,
        clock: Arc<roster::clock::FakeClock>,
    ) -> TestServer {
        let app = App::open_with(config, clock, Arc::new(roster::clock::SystemRng::default()))
            .await
            .expect("open app");
        app.bootstrap_if_empty().await.expect("bootstrap");
        let running = server::start(app.clone()).await.expect("start server");
        TestServer {
            dir,
            addr: running.local_addr,
            app,
            running: Some(running),
        }
    }

    /// The certificate the server presents, as configured.
    pub fn cert(&self) -> CertificateDer<'static> {
        let path = server::tls::cert_path(&self.app.config);
        server::tls::load_certs(&path).unwrap().remove(0)
    }

    pub fn tls(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
        Arc::new(pinned_config(self.cert(), versions, &[b"http/1.1"]).unwrap())
    }

    pub async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Response {
        let tls = self.tls(&[&rustls::version::TLS13, &rustls::version::TLS12]);
        roster::client::request(tls, self.addr, "localhost", req)
            .await
            .unwrap_or_else(|e| panic!("request to {} failed: {e}", self.addr))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(
            hyper::Request::get(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    }

    /// Graceful shutdown; returns the tempdir so a test can restart on it.
    pub async fn stop(mut self) -> TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.dir
    }

    /// The TLS reloader of the running server (what SIGHUP calls).
    pub fn tls_reloader(&self) -> roster::server::TlsReloader {
        self.running.as_ref().map(|r| r.tls()).expect("server running")
    }

    pub fn take_running(&mut self) -> Running {
        self.running.take().unwrap()
    }
}

/// A `roster serve` child process, started on an ephemeral port.
pub struct BinServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl BinServer {
    /// Runs `roster serve ARGS` in `cwd` and waits for the listening line.
    pub fn start(cwd: &Path, args: &[&str]) -> BinServer {
        BinServer::start_env(cwd, args, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_env(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> BinServer {
        let mut child = Command::new(BIN)
            .envs(envs.iter().copied())
            .current_dir(cwd)
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ROSTER_CONFIG")
            .env("ROSTER_NO_SYSTEM_CONFIG", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roster");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; stderr:\n{}", lines.lock().unwrap().join("\n"));
            }
        };
        BinServer {
            child,
            addr,
            stderr_lines: lines,
        }
    }

    pub fn log(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait for exit; returns the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not stop on SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
pub fn run_bin(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ROSTER_CONFIG")
        .env("ROSTER_NO_SYSTEM_CONFIG", "1")
        .output()
        .expect("run roster");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failed command said one line naming `needle`, without a panic.
pub fn assert_one_line_error(code: i32, stderr: &str, needle: &str) {
    assert_ne!(code, 0, "expected failure; stderr:\n{stderr}");
    assert!(stderr.contains(needle), "stderr should mention {needle:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic in stderr:\n{stderr}");
    let error_lines: Vec<_> = stderr.lines().filter(|l| l.contains("roster: error:")).collect();
    assert_eq!(error_lines.len(), 1, "want exactly one error line:\n{stderr}");
}

pub fn write_file(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn sha256_file(path: &Path) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path).unwrap())
        .as_ref()
        .to_vec()
}

/// A fake clock set to the real time now (the self-signed certificate is
/// made with the app's clock, so it must be valid for the client too).
pub fn fake_clock_now() -> Arc<roster::clock::FakeClock> {
    use roster::clock::Clock;
    Arc::new(roster::clock::FakeClock::new(roster::clock::SystemClock.now_ms()))
}

/// One page or redirect as a browser would see it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header; panics (showing the page) when absent.
    #[track_caller]
    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header: {self}"))
            .to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The HTML-unescaped `value` of the first `<input name="NAME" ...>`.
    pub fn input(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\"");
        let at = self.text.find(&needle)?;
        let tag_start = self.text[..at].rfind('<')?;
        let tag_end = at + self.text[at..].find('>')?;
        let tag = &self.text[tag_start..tag_end];
        let v = tag.find("value=\"")? + "value=\"".len();
        let end = v + tag[v..].find('"')?;
        Some(html_unescape(&tag[v..end]))
    }
}

impl std::fmt::Display for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {:?}\n{}", self.status, self.headers, self.text)
    }
}

/// Undoes the HTML escaping templates apply to attribute values and text.
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';').filter(|n| *n <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A cookie-keeping HTTPS client for the server's pages (no redirects are
/// followed: tests read `Location` themselves).
pub struct Web<'a> {
    pub s: &'a TestServer,
    pub jar: std::collections::BTreeMap<String, String>,
}

impl<'a> Web<'a> {
    pub fn new(s: &'a TestServer) -> Web<'a> {
        Web {
            s,
            jar: Default::default(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends a request with the jar's cookies and stores what comes back.
    pub async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Page {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if !self.jar.is_empty() {
            b = b.header("cookie", self.cookie_header());
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = self.s.send(b.body(Full::new(Bytes::from(body))).unwrap()).await;
        let page = Page {
            status: r.status,
            text: r.text(),
            headers: r.headers,
        };
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            let Some((k, v)) = first.split_once('=') else { continue };
            let expired = c.split(';').any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if expired || v.is_empty() {
                self.jar.remove(k.trim());
            } else {
                self.jar.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, &[], Vec::new()).await
    }

    /// POSTs `pairs` as `application/x-www-form-urlencoded`.
    pub async fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.request(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        )
        .await
    }
}
