//! TLS certificate reload (SIGHUP): new connections get the new
//! certificate, open connections carry on, a bad pair changes nothing.

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::*;

/// Writes a fresh self-made certificate and key (0600) for `name`.
fn write_pair(dir: &Path, cert: &str, key: &str, name: &str) -> Vec<u8> {
    let k = rcgen::KeyPair::generate().unwrap();
    let c = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&k)
        .unwrap();
    std::fs::write(dir.join(cert), c.pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(key);
        std::fs::write(&p, k.serialize_pem()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    c.der().to_vec()
}

fn config_with(dir: &Path) -> roster::config::Config {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://localhost\"\ndata_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("data").display(),
        dir.join("tls.crt").display(),
        dir.join("tls.key").display()
    );
    roster::config::Config::parse(&toml, Path::new("t.toml")).unwrap()
}

fn pinned(der: &[u8]) -> Arc<rustls::ClientConfig> {
    Arc::new(
        roster::client::pinned_config(
            rustls_pki_types::CertificateDer::from(der.to_vec()),
            &[&rustls::version::TLS13],
            &[b"http/1.1"],
        )
        .unwrap(),
    )
}

async fn healthz(tls: Arc<rustls::ClientConfig>, addr: std::net::SocketAddr) -> Result<u16, String> {
    let req = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    roster::client::request(tls, addr, "localhost", req)
        .await
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "tls.crt", "tls.key", "localhost");
    let config = config_with(dir.path());
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), config).await;
    assert_eq!(healthz(pinned(&a), s.addr).await, Ok(200));

    // An open keep-alive connection made with certificate A.
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let tls = TlsConnector::from(pinned(&a))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        hyper::Request::get("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(sender.send_request(get()).await.unwrap().status(), 200);

    // Swap the files for certificate B and reload.
    let b = write_pair(dir.path(), "tls.crt", "tls.key", "localhost");
    assert!(
        s.tls_reloader().reload().await.unwrap(),
        "reload should report a new certificate"
    );
    assert_eq!(healthz(pinned(&b), s.addr).await, Ok(200), "new connections get B");
    assert!(
        healthz(pinned(&a), s.addr).await.is_err(),
        "new connections no longer get A"
    );
    let resp = sender
        .send_request(get())
        .await
        .expect("the open connection survived the reload");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;

    // A certificate whose key does not match: refused, B stays.
    let _ = write_pair(dir.path(), "other.crt", "tls.key", "localhost");
    assert!(
        s.tls_reloader().reload().await.is_err(),
        "mismatched pair must be refused"
    );
    assert_eq!(healthz(pinned(&b), s.addr).await, Ok(200), "still serving B");
    // A garbage certificate file: refused, B stays.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    assert!(s.tls_reloader().reload().await.is_err());
    assert_eq!(healthz(pinned(&b), s.addr).await, Ok(200), "still serving B");
    s.stop().await;
}

/// The real binary reloads on SIGHUP: the certificate, and the log level
/// from the config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "tls.crt", "tls.key", "localhost");
    let config_text = |level: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://localhost\"\ndata_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[log]\nlevel = \"{level}\"\n",
            dir.path().join("data").display(),
            dir.path().join("tls.crt").display(),
            dir.path().join("tls.key").display()
        )
    };
    // Request logs (tower_http at info) are off at first.
    let cfg = write_file(&dir.path().join("c.toml"), &config_text("roster=info,tower_http=warn"));
    let server = BinServer::start(dir.path(), &["-c", cfg.to_str().unwrap()]);
    assert_eq!(healthz(pinned(&a), server.addr).await, Ok(200));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !server.log().contains("finished processing request"),
        "{}",
        server.log()
    );
    write_file(&dir.path().join("c.toml"), &config_text("info"));
    let b = write_pair(dir.path(), "tls.crt", "tls.key", "localhost");
    let _ = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(server.child.id().to_string())
        .status();
    let mut ok = false;
    for _ in 0..50 {
        if healthz(pinned(&b), server.addr).await == Ok(200) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "new certificate not served after SIGHUP; log:\n{}", server.log());
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("log level reloaded"), "{log}");
    assert!(
        log.contains("finished processing request"),
        "request logs on after the reload:\n{log}"
    );
}
