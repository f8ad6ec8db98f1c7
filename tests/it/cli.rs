//! The real binary: `serve` on its defaults, `init`, `healthcheck`, and
//! one-line errors for bad environments.

use crate::support::*;

#[test]
fn serve_with_no_config_uses_embedded_default_and_prints_login_link() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is moved off 8443 so tests never collide.
    let server = BinServer::start(dir.path(), &["--listen", "127.0.0.1:0"]);
    assert!(
        dir.path().join("roster-data/roster.redb").exists(),
        "default data dir ./roster-data"
    );
    assert!(dir.path().join("roster-data/tls/cert.pem").exists());
    let log = server.log();
    // The advertised address follows --listen (issue 18).
    assert!(
        log.contains(&format!(
            "https://localhost:{}/login/link?token=rst_login_",
            server.addr.port()
        )),
        "{log}"
    );

    // healthcheck with the same data dir and the bound port.
    let cfg = write_file(
        &dir.path().join("hc.toml"),
        &format!("[server]\nlisten = \"{}\"\n", server.addr),
    );
    let (code, out, err) = run_bin(dir.path(), &["healthcheck", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
    assert_eq!(out.trim(), "ready");

    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(log.contains("database closed"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // A stopped server fails the healthcheck.
    let (code, _, err) = run_bin(
        dir.path(),
        &["healthcheck", "-c", cfg.to_str().unwrap(), "--timeout", "3"],
    );
    assert_one_line_error(code, &err, "connect");
}

#[test]
fn json_logs_carry_request_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir.path().join("c.toml"), "[log]\nformat = \"json\"\n");
    let server = BinServer::start(dir.path(), &["-c", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let hc = write_file(
        &dir.path().join("hc.toml"),
        &format!("[server]\nlisten = \"{}\"\n", server.addr),
    );
    let (code, _, err) = run_bin(dir.path(), &["healthcheck", "-c", hc.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, log) = server.terminate();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|v| v["message"] == "finished processing request")
        .unwrap_or_else(|| panic!("no request line in\n{log}"));
    let span = &done["span"];
    assert_eq!(span["method"], "GET");
    assert_eq!(span["route"], "/readyz");
    assert_eq!(span["id"].as_str().map(str::len), Some(16));
    assert_eq!(done["status"], 200);
    assert!(done["latency"].is_string() || done["latency"].is_number(), "{done}");
}

#[test]
fn init_creates_workspace_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let args = [
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--workspace-name",
        "Acme",
        "--admin-email",
        "Ada@Acme.example",
    ];
    let (code, out, err) = run_bin(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Created workspace \"Acme\" with admin Ada@Acme.example"),
        "{out}"
    );
    assert!(
        out.contains("https://localhost:8443/login/link?token=rst_login_"),
        "{out}"
    );

    let (code, _, err) = run_bin(dir.path(), &args);
    assert_one_line_error(code, &err, "already holds the workspace \"Acme\"");

    let (code, _, err) = run_bin(
        dir.path(),
        &[
            "init",
            "--data-dir",
            dir.path().join("e").to_str().unwrap(),
            "--admin-email",
            "nope",
        ],
    );
    assert_one_line_error(code, &err, "not an email address");
}

#[test]
fn port_in_use_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_bin(dir.path(), &["serve", "--listen", &addr]);
    assert_one_line_error(code, &err, &format!("cannot listen on {addr}"));
}

#[test]
fn unusable_data_dir_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir.path().join("plain-file"), "");
    let bad = file.join("data");
    let (code, _, err) = run_bin(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", bad.to_str().unwrap()],
    );
    assert_one_line_error(code, &err, "cannot create data directory");
}

#[test]
fn malformed_tls_files_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_file(&dir.path().join("x.crt"), "not a certificate\n");
    let key = dir.path().join("x.key");
    write_file(&key, "not a key\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = write_file(
        &dir.path().join("c.toml"),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let (code, _, err) = run_bin(dir.path(), &["serve", "-c", cfg.to_str().unwrap()]);
    assert_one_line_error(code, &err, "x.crt");
}

/// Under systemd (Type=notify) the server says READY=1 once it listens and
/// STOPPING=1 when it begins to shut down.
#[test]
fn sd_notify_ready_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let server = BinServer::start_env(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let n = sock.recv(&mut buf).expect("STOPPING=1 datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg}");
}
