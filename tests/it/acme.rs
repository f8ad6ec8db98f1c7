//! ACME end to end against Debian's `pebble` (an RFC 8555 test CA), all on
//! loopback: first issuance over TLS-ALPN-01 and over HTTP-01, a restart
//! that reuses the stored certificate, renewal that keeps open connections,
//! and a failed order that keeps the last good certificate and says so.
//!
//! Each test starts its own pebble on free ports. Pebble's validator dials
//! the name under validation ("localhost", from /etc/hosts) on the ports in
//! its config, so roster's HTTPS listener sits on pebble's `tlsPort`
//! (TLS-ALPN-01) or its plain-HTTP listener on pebble's `httpPort`
//! (HTTP-01). Pebble serves its API with a certificate made here, which
//! roster trusts through `tls.acme.ca_file`; the CA root of the issued
//! certificates comes from pebble's management API (`/roots/0`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use roster::clock::{Clock, FakeClock};
use roster::server::tls::{TlsStatus, summarize};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::*;

const PEBBLE: &str = "/usr/bin/pebble";
const DAY_MS: i64 = 86_400_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pebble child process, killed on drop.
struct Pebble {
    child: Option<Child>,
    _dir: TempDir,
    directory: String,
    /// The certificate of pebble's own HTTPS API (made here).
    api_cert_path: PathBuf,
    api_cert: CertificateDer<'static>,
    management: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Pebble {
    /// Starts pebble; its validator dials `tls_port` for TLS-ALPN-01 and
    /// `http_port` for HTTP-01.
    fn start(tls_port: u16, http_port: u16) -> Pebble {
        assert!(
            Path::new(PEBBLE).exists(),
            "{PEBBLE} is missing: the ACME tests need Debian's RFC 8555 test CA; run `apt-get install pebble`"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let api_cert_path = write_file(&dir.path().join("api.crt"), &cert.pem());
        let api_key_path = write_file(&dir.path().join("api.key"), &key.serialize_pem());
        let listen = free_port();
        let management = free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": api_cert_path,
                "privateKey": api_key_path,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = write_file(&dir.path().join("pebble.json"), &config.to_string());
        let mut child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_path)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates its challenge (no reused authorizations).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pebble");
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let mut pebble = Pebble {
            child: Some(child),
            _dir: dir,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            api_cert_path,
            api_cert: CertificateDer::from(cert.der().to_vec()),
            management: format!("127.0.0.1:{management}").parse().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(reachable(listen) && reachable(management)) {
            if let Some(Ok(Some(status))) = pebble.child.as_mut().map(|c| c.try_wait()) {
                panic!("pebble exited ({status}):\n{}", pebble.log());
            }
            assert!(Instant::now() < deadline, "pebble did not start:\n{}", pebble.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        pebble
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The root of the certificates pebble issues (made anew each start).
    async fn root(&self) -> CertificateDer<'static> {
        let tls = Arc::new(
            roster::client::pinned_config(
                self.api_cert.clone(),
                &[&rustls::version::TLS13, &rustls::version::TLS12],
                &[b"http/1.1"],
            )
            .unwrap(),
        );
        let req = hyper::Request::get("/roots/0")
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = roster::client::request(tls, self.management, "127.0.0.1", req)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        CertificateDer::from_pem_slice(&r.body).unwrap()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// roster's config for pebble: TLS-ALPN-01 on `listen_port` unless
/// `http_port` is given (HTTP-01 there).
fn acme_config(dir: &Path, pebble: &Pebble, listen_port: u16, http_port: Option<u16>) -> roster::config::Config {
    let http = http_port.map_or(String::new(), |p| format!("http_listen = \"127.0.0.1:{p}\"\n"));
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{listen_port}\"\npublic_url = \"https://localhost:{listen_port}\"\ndata_dir = \"{}\"\n\
         [tls.acme]\ndirectory = \"{}\"\ncontact = \"ops@example.com\"\nca_file = \"{}\"\n{http}",
        dir.join("data").display(),
        pebble.directory,
        pebble.api_cert_path.display(),
    );
    roster::config::Config::parse(&text, Path::new("acme.toml")).unwrap()
}

async fn start_roster(dir: TempDir, config: roster::config::Config, clock: Arc<FakeClock>) -> TestServer {
    TestServer::start_with_config_and_clock(dir, config, clock).await
}

/// Accepts any server certificate and keeps it, to see what is served.
#[derive(Debug)]
struct Capture(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(verifier: Arc<dyn ServerCertVerifier>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// The end-entity certificate a new connection to `addr` (SNI localhost)
/// gets, and the ALPN protocol negotiated.
async fn served(addr: SocketAddr, alpn: &[&[u8]]) -> Result<(CertificateDer<'static>, Option<Vec<u8>>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = client_config(Arc::new(Capture(provider)), alpn);
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(cfg)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tls.get_ref().1;
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no certificate")?;
    Ok((cert, conn.alpn_protocol().map(<[u8]>::to_vec)))
}

async fn served_cert(addr: SocketAddr) -> CertificateDer<'static> {
    served(addr, &[b"http/1.1"]).await.unwrap().0
}

/// A client that trusts only pebble's root, as an IdP trusts public CAs.
fn trusting(root: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn issuer(der: &CertificateDer<'_>) -> String {
    summarize(der).map(|s| s.issuer).unwrap_or_default()
}

/// Waits until the server hands out a certificate issued by pebble other
/// than `not`, printing pebble's log and roster's status on timeout.
async fn wait_for_pebble_cert(
    s: &TestServer,
    pebble: &Pebble,
    not: Option<&CertificateDer<'static>>,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((c, _)) = served(s.addr, &[b"http/1.1"]).await
            && issuer(&c).contains("Pebble Intermediate")
            && Some(&c) != not
        {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate from pebble; roster status: {:#?}\npebble log:\n{}",
            s.app.tls_status.get(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_status(s: &TestServer, what: &str, ok: impl Fn(&TlsStatus) -> bool) -> TlsStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = s.app.tls_status.get();
        if ok(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "{what}; status: {st:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issues a first certificate over TLS-ALPN-01; returns roster, pebble,
/// pebble's root and the served certificate.
async fn issued(clock: Arc<FakeClock>) -> (TestServer, Pebble, CertificateDer<'static>, CertificateDer<'static>) {
    let port = free_port();
    let pebble = Pebble::start(port, free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = acme_config(dir.path(), &pebble, port, None);
    let s = start_roster(dir, config, clock).await;
    let cert = wait_for_pebble_cert(&s, &pebble, None).await;
    let root = pebble.root().await;
    (s, pebble, root, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_first_issuance_is_served_and_publicly_trusted() {
    let started = Instant::now();
    let (s, pebble, root, cert) = issued(fake_clock_now()).await;

    // An IdP that trusts only the CA's root now reaches roster.
    let r = roster::client::request(trusting(&root), s.addr, "localhost", get("/healthz"))
        .await
        .unwrap_or_else(|e| panic!("{e}\npebble log:\n{}", pebble.log()));
    assert_eq!(r.status, 200);

    // What admins are shown.
    let st = wait_status(&s, "status after issuance", |st| {
        st.acme
            .as_ref()
            .is_some_and(|a| a.last_success_ms.is_some() && !a.ordering)
    })
    .await;
    let c = st.certificate.as_ref().unwrap();
    assert!(!c.self_signed, "{st:#?}");
    assert!(c.issuer.contains("Pebble Intermediate"), "{st:#?}");
    assert_eq!(c.names, vec!["localhost".to_owned()]);
    assert_eq!(summarize(&cert).unwrap().serial, c.serial);
    let a = st.acme.as_ref().unwrap();
    assert_eq!(a.challenge, "tls-alpn-01");
    assert_eq!(a.names, vec!["localhost".to_owned()]);
    assert_eq!(a.directory, pebble.directory);
    assert_eq!(a.last_error, None);
    assert_eq!(a.failures, 0);
    let now = s.app.clock.now_ms();
    assert!(
        a.next_attempt_ms.is_some_and(|t| t > now + 11 * 3_600_000),
        "next check in ~12 h: {st:#?}"
    );
    // The same record through the server handle.
    assert_eq!(s.tls_reloader().status(), st);

    // Account and certificate are private to roster's user.
    let data = s.app.config.data_dir.clone();
    assert_eq!(mode(&data.join("acme")), 0o700);
    assert_eq!(mode(&data.join("acme/certificate.pem")), 0o600);
    assert_eq!(mode(&data.join("acme/account.json")), 0o600);
    // `roster healthcheck` pins the stored certificate.
    assert_eq!(
        roster::server::tls::load_certs(&roster::server::tls::cert_path(&s.app.config)).unwrap()[0],
        cert
    );

    // An ordinary client never negotiates acme-tls/1, and a validation
    // handshake for a name with no pending challenge gets nothing: no
    // certificate, no HTTP.
    let (_, alpn) = served(s.addr, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(served(s.addr, &[b"acme-tls/1"]).await.is_err());

    s.stop().await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// One HTTP/1.1 request on the plain-HTTP listener: (status, Location).
fn plain_get(port: u16, path: &str) -> (u16, Option<String>) {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let location = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location").then(|| v.trim().to_owned())
    });
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_first_issuance_and_the_port_80_listener_redirects() {
    let http_port = free_port();
    // Pebble's TLS-ALPN-01 port is one nothing listens on: only HTTP-01 can pass.
    let pebble = Pebble::start(free_port(), http_port);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = acme_config(dir.path(), &pebble, port, Some(http_port));
    let s = start_roster(dir, config, fake_clock_now()).await;
    let cert = wait_for_pebble_cert(&s, &pebble, None).await;
    let root = pebble.root().await;
    let r = roster::client::request(trusting(&root), s.addr, "localhost", get("/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let st = s.app.tls_status.get();
    assert_eq!(st.acme.as_ref().unwrap().challenge, "http-01", "{st:#?}");
    assert_eq!(summarize(&cert).unwrap().names, vec!["localhost".to_owned()]);

    // Everything but challenges goes to the HTTPS public URL, path and query kept.
    assert_eq!(
        plain_get(http_port, "/scim/v2/Users?filter=x"),
        (308, Some(format!("https://localhost:{port}/scim/v2/Users?filter=x")))
    );
    // No challenge is pending after the order: unknown tokens are 404.
    assert_eq!(plain_get(http_port, "/.well-known/acme-challenge/nope"), (404, None));
    s.stop().await;
    // The listener goes away with the server.
    assert!(!reachable(http_port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_the_stored_certificate_without_a_new_order() {
    let clock = fake_clock_now();
    let (s, mut pebble, root, cert) = issued(clock.clone()).await;
    let config = (*s.app.config).clone();
    let dir = s.stop().await;
    // Without the CA, a new order could only fail: the restart must not need one.
    pebble.stop();

    let s = start_roster(dir, config, clock).await;
    assert_eq!(
        served_cert(s.addr).await,
        cert,
        "the stored certificate is served from the start"
    );
    let r = roster::client::request(trusting(&root), s.addr, "localhost", get("/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // The worker has looked, found nothing due, and scheduled the next check.
    let st = wait_status(&s, "worker scheduled its next check", |st| {
        st.acme.as_ref().is_some_and(|a| a.next_attempt_ms.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st2 = s.app.tls_status.get();
    let a = st2.acme.as_ref().unwrap();
    assert_eq!(a.last_error, None, "{st2:#?}");
    assert!(!a.ordering, "{st2:#?}");
    assert_eq!(a.last_success_ms, None, "no order in this run: {st2:#?}");
    assert!(
        a.next_attempt_ms
            .is_some_and(|t| t > s.app.clock.now_ms() + 11 * 3_600_000),
        "{st:#?}"
    );
    assert!(!st2.certificate.as_ref().unwrap().self_signed);
    assert_eq!(served_cert(s.addr).await, cert);
    s.stop().await;
}

/// Advances the fake clock to `days_left` days before `cert` expires.
fn move_clock_near_expiry(clock: &FakeClock, cert: &CertificateDer<'_>, days_left: i64) {
    let not_after = summarize(cert).unwrap().not_after_ms;
    clock.advance_ms(not_after - days_left * DAY_MS - clock.now_ms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_serves_a_new_certificate_and_keeps_open_connections() {
    let clock = fake_clock_now();
    let (s, pebble, root, first) = issued(clock.clone()).await;
    let st = wait_status(&s, "first success recorded", |st| {
        st.acme
            .as_ref()
            .is_some_and(|a| a.last_success_ms.is_some() && !a.ordering)
    })
    .await;
    let first_success = st.acme.unwrap().last_success_ms.unwrap();

    // A keep-alive connection opened with the first certificate.
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let tls = TlsConnector::from(trusting(&root))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(get("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;

    // Ten days before expiry (renew_before_days is 30), a SIGHUP-style
    // reload wakes the worker instead of waiting for its 12-hour check.
    move_clock_near_expiry(&clock, &first, 10);
    let _ = s.tls_reloader().reload().await;
    let second = wait_for_pebble_cert(&s, &pebble, Some(&first)).await;
    assert_ne!(summarize(&first).unwrap().serial, summarize(&second).unwrap().serial);

    let resp = sender
        .send_request(get("/healthz"))
        .await
        .expect("the open connection survived the renewal");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let r = roster::client::request(trusting(&root), s.addr, "localhost", get("/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let st = wait_status(&s, "renewal recorded", |st| {
        st.acme
            .as_ref()
            .is_some_and(|a| a.last_success_ms.is_some_and(|t| t > first_success) && !a.ordering)
    })
    .await;
    assert_eq!(st.certificate.unwrap().serial, summarize(&second).unwrap().serial);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_renewal_keeps_the_last_good_certificate_and_reports_it() {
    let clock = fake_clock_now();
    let (s, mut pebble, root, cert) = issued(clock.clone()).await;
    wait_status(&s, "first success recorded", |st| {
        st.acme
            .as_ref()
            .is_some_and(|a| a.last_success_ms.is_some() && !a.ordering)
    })
    .await;
    pebble.stop();
    move_clock_near_expiry(&clock, &cert, 10);
    let _ = s.tls_reloader().reload().await;

    let st = wait_status(&s, "the failure is recorded", |st| {
        st.acme.as_ref().is_some_and(|a| a.last_error.is_some() && !a.ordering)
    })
    .await;
    let a = st.acme.as_ref().unwrap();
    let err = a.last_error.as_deref().unwrap();
    assert!(
        err.contains(&pebble.directory) && err.contains("cannot connect"),
        "{err}"
    );
    assert_eq!(a.failures, 1);
    let now = s.app.clock.now_ms();
    assert_eq!(a.last_error_ms, Some(now));
    // First retry a minute later (then 2, 4, ... up to 6 h).
    assert_eq!(a.next_attempt_ms, Some(now + 60_000), "{st:#?}");
    // Still the good certificate, still trusted, still ready.
    assert_eq!(served_cert(s.addr).await, cert);
    assert_eq!(
        st.certificate.as_ref().unwrap().serial,
        summarize(&cert).unwrap().serial
    );
    let r = roster::client::request(trusting(&root), s.addr, "localhost", get("/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // A second failure doubles the wait.
    let _ = s.tls_reloader().reload().await;
    let st = wait_status(&s, "the second failure is recorded", |st| {
        st.acme.as_ref().is_some_and(|a| a.failures == 2 && !a.ordering)
    })
    .await;
    let a = st.acme.unwrap();
    assert_eq!(a.next_attempt_ms, Some(s.app.clock.now_ms() + 120_000));
    s.stop().await;
}

/// The real binary, with a CA that cannot be reached at first start:
/// the self-signed certificate is served, and the log has exactly one line
/// about the failure saying what failed and when the next try is.
#[test]
fn first_order_failure_is_one_log_line_and_the_self_signed_certificate_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the CA is "down".
    let dead = free_port();
    let cfg = write_file(
        &dir.path().join("c.toml"),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://roster.example.com\"\ndata_dir = \"{}\"\n\
             [tls.acme]\ndirectory = \"https://127.0.0.1:{dead}/dir\"\n",
            dir.path().join("data").display()
        ),
    );
    let server = BinServer::start(dir.path(), &["-c", cfg.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("ACME: could not get a certificate") {
        assert!(Instant::now() < deadline, "no failure line:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cert = rt.block_on(served_cert(server.addr));
    let summary = summarize(&cert).unwrap();
    assert!(summary.self_signed, "{summary:?}");
    assert!(summary.names.contains(&"roster.example.com".to_owned()), "{summary:?}");
    std::thread::sleep(Duration::from_millis(200));
    let (_, log) = server.terminate();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ACME") && l.contains("ERROR"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    for needle in [
        "could not get a certificate",
        "cannot connect",
        "still serving the self-signed certificate",
        "next attempt in 1 min",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from {line}");
    }
}
