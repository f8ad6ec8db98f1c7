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
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ROSTER_CONFIG")
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
