//! The HTTPS server: default start, TLS, certificates, health, limits,
//! graceful shutdown, first-start bootstrap.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_start_serves_health_over_tls() {
    let s = TestServer::start().await;
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok\n");
    let id = r.headers.get("x-request-id").expect("request id header");
    assert_eq!(id.len(), 16, "{id:?}");

    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = s.get("/no/such/thing").await;
    assert_eq!(r.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("404 body is JSON");
    assert_eq!(body["error"], "not_found");

    // The embedded default keeps everything in the data dir, owner-only.
    let data = s.app.config.data_dir.clone();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("roster.redb")), 0o600);
    assert_eq!(mode(&data.join("tls/cert.pem")), 0o600);
    assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_12_and_13_accepted_and_h2_offered() {
    let s = TestServer::start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tls = s.tls(&[version]);
        let req = hyper::Request::get("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = roster::client::request(tls, s.addr, "localhost", req).await.unwrap();
        assert_eq!(r.status, 200, "version {version:?}");
    }
    // ALPN: the server prefers HTTP/2 when the client offers it.
    let cfg = roster::client::pinned_config(s.cert(), &[&rustls::version::TLS13], &[b"h2", b"http/1.1"]).unwrap();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let tls = TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.stop().await;
}

/// A client that only speaks TLS 1.0/1.1 gets no connection: rustls has no
/// such versions, so we send a raw TLS 1.1-only ClientHello and expect an
/// alert (or a close) instead of a ServerHello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_11_refused() {
    let s = TestServer::start().await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("server answers")
        .unwrap_or(0);
    // 0x15 = alert record; 0x16 would be a handshake (ServerHello).
    assert!(n == 0 || buf[0] == 0x15, "got {:?}", &buf[..n]);
    s.stop().await;
}

fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    body.extend([0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00];
    hs.extend((body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_cert_persisted_and_reused_across_restarts() {
    let s = TestServer::start().await;
    let first = s.cert();
    let config = (*s.app.config).clone();
    let dir = s.stop().await;

    let s = TestServer::start_with(dir, config).await;
    assert_eq!(s.cert(), first, "certificate regenerated on restart");
    // A client pinned to the first run's certificate still connects.
    let tls =
        std::sync::Arc::new(roster::client::pinned_config(first, &[&rustls::version::TLS13], &[b"http/1.1"]).unwrap());
    let req = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = roster::client::request(tls, s.addr, "localhost", req).await.unwrap();
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pem_cert_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["roster.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = write_file(&dir.path().join("op.crt"), &cert.pem());
    let key_path = dir.path().join("op.key");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap();
        std::io::Write::write_all(&mut f, key.serialize_pem().as_bytes()).unwrap();
    }
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://roster.test\"\ndata_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("data").display(),
        cert_path.display(),
        key_path.display()
    );
    let config = roster::config::Config::parse(&toml, std::path::Path::new("t.toml")).unwrap();
    let s = TestServer::start_with(dir, config).await;
    assert_eq!(s.cert().as_ref(), cert.der().as_ref());
    assert_eq!(s.get("/healthz").await.status, 200);
    // No self-signed material is made when the operator brings a cert.
    assert!(!s.app.config.data_dir.join("tls").exists());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_bootstraps_workspace_and_admin_link_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let app = roster::App::open(config.clone()).await.unwrap();
    let b = app
        .bootstrap_if_empty()
        .await
        .unwrap()
        .expect("bootstrapped on empty db");
    assert_eq!(b.workspace, "My workspace");
    assert_eq!(b.admin.email, "admin@localhost");
    assert!(
        b.login_url
            .starts_with("https://localhost:8443/login/link?token=rst_login_"),
        "{}",
        b.login_url
    );
    let token = b.login_url.split("token=").nth(1).unwrap();
    let (link, member) = roster::workspace::peek_link(&app, token)
        .await
        .unwrap()
        .expect("link is valid");
    assert_eq!(member.id, b.admin.id);
    assert_eq!(member.role, roster::workspace::model::Role::Admin);
    assert!(link.expires_ms > app.clock.now_ms());
    // Only the hash is stored: the raw token is nowhere in the file.
    app.store.close().await;
    drop(app);
    let bytes = std::fs::read(config.db_path()).unwrap();
    assert!(
        !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
        "raw token stored"
    );

    let app = roster::App::open(config).await.unwrap();
    assert!(
        app.bootstrap_if_empty().await.unwrap().is_none(),
        "second start must not bootstrap again"
    );
    // A typo'd token is rejected without a lookup, an unknown one finds nothing.
    assert!(
        roster::workspace::peek_link(&app, "rst_login_x")
            .await
            .unwrap()
            .is_none()
    );
    app.store.close().await;
}

/// A declared body over `limits.max_body_bytes` is refused with 413 before
/// the body is read (the client never has to upload it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_gets_413() {
    let s = TestServer::start().await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = TlsConnector::from(s.tls(&[&rustls::version::TLS13]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(b"{\"a\":").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("answer before the body is sent")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    // A small body passes the limit and reaches routing (GET-only route).
    let req = hyper::Request::post("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(vec![b'x'; 100])))
        .unwrap();
    assert_eq!(s.send(req).await.status, 405);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.header_read_timeout = Duration::from_secs(1);
    let s = TestServer::start_with(dir, config).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = TlsConnector::from(s.tls(&[&rustls::version::TLS13]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Never finish the headers: the server must give up on its own.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after the header read timeout");
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_holds_excess_connections_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.max_connections = 1;
    let s = TestServer::start_with(dir, config).await;
    let connector = TlsConnector::from(s.tls(&[&rustls::version::TLS13]));
    let first = connector
        .connect(
            "localhost".try_into().unwrap(),
            TcpStream::connect(s.addr).await.unwrap(),
        )
        .await
        .unwrap();
    // The second connection is not served while the first holds the only slot.
    let second = tokio::time::timeout(
        Duration::from_millis(700),
        connector.connect(
            "localhost".try_into().unwrap(),
            TcpStream::connect(s.addr).await.unwrap(),
        ),
    )
    .await;
    assert!(second.is_err(), "second connection was served beyond max_connections");
    drop(first);
    // Once the slot is free, new connections are served again.
    let r = tokio::time::timeout(Duration::from_secs(10), s.get("/healthz"))
        .await
        .expect("served after release");
    assert_eq!(r.status, 200);
    s.stop().await;
}

/// SIGTERM-style shutdown lets a request that is in flight finish, then
/// refuses new connections and closes the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_request() {
    let mut s = TestServer::start().await;
    // Occupy the database writer so /readyz (which needs it) stays in flight.
    let store = s.app.store.clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let busy = tokio::spawn(async move {
        store
            .write(move |_txn| {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(1500));
                Ok(Ok::<(), ()>(()))
            })
            .await
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();

    let addr = s.addr;
    let tls = s.tls(&[&rustls::version::TLS13]);
    let in_flight = tokio::spawn(async move {
        let req = hyper::Request::get("/readyz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        roster::client::request(tls, addr, "localhost", req).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "request should still be waiting on the writer"
    );

    let running = s.take_running();
    let shutdown = tokio::spawn(running.shutdown());
    let r = in_flight.await.unwrap().expect("in-flight request completed");
    assert_eq!(r.status, 200, "{}", r.text());
    busy.await.unwrap().unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown finished")
        .unwrap();

    // No longer accepting, and the database is closed (writes refused).
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    let closed = s.app.store.write(|_| Ok(Ok::<(), ()>(()))).await;
    assert!(matches!(closed, Err(roster::store::StoreError::Closed)), "{closed:?}");
}
