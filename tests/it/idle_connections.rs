//! Idle connections are closed and one address cannot hold every slot.
//!
//! A client that finished the TLS handshake and then sent nothing, or an
//! HTTP/2 connection left idle after its preface, used to stay open for
//! ever and hold one of `limits.max_connections`: 100 such sockets took the
//! service down. Every test here has a hard outer timeout, so a server that
//! keeps a connection open fails the test with a message instead of
//! hanging it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use roster::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// The bound on how long the server may take to close an idle connection:
/// well above the 1–2 s timeouts used here (plus the 2 s close grace for an
/// HTTP/2 peer that does not answer the GOAWAY ping), far below "for ever".
const CLOSE_BOUND: Duration = Duration::from_secs(15);

/// Short timeouts: 1 s for the first request, 2 s between requests.
fn short_timeouts(dir: &std::path::Path) -> Config {
    let mut c = test_config(dir);
    c.limits.header_read_timeout = Duration::from_secs(1);
    c.limits.idle_timeout = Duration::from_secs(2);
    c
}

fn localhost() -> rustls_pki_types::ServerName<'static> {
    rustls_pki_types::ServerName::try_from("localhost").unwrap()
}

/// A TCP connection to the server, from `from` when given (any 127/8
/// address works on Linux: the whole block is routed to loopback).
async fn tcp(s: &TestServer, from: Option<IpAddr>) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(ip, 0))
            .unwrap_or_else(|e| panic!("cannot bind a client socket to {ip}: {e}"));
    }
    sock.connect(s.addr).await.unwrap()
}

/// A TLS connection with the pinned certificate, offering `alpn`.
async fn tls(s: &TestServer, alpn: &[&[u8]], from: Option<IpAddr>) -> std::io::Result<TlsStream<TcpStream>> {
    let cfg = roster::client::pinned_config(s.cert(), &[&rustls::version::TLS13], alpn).unwrap();
    TlsConnector::from(Arc::new(cfg))
        .connect(localhost(), tcp(s, from).await)
        .await
}

/// Reads (and discards) until the server closes: EOF or an error such as
/// a missing close_notify. Panics with `what` if it is still open after
/// `CLOSE_BOUND`. Returns how long that took.
async fn closed_by_server(stream: &mut TlsStream<TcpStream>, what: &str) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(CLOSE_BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the server kept the connection open for {CLOSE_BOUND:?} (idle connections must be closed)"
    );
    start.elapsed()
}

fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn healthz_within(s: &TestServer, bound: Duration, what: &str) {
    let r = tokio::time::timeout(bound, s.get("/healthz"))
        .await
        .unwrap_or_else(|_| panic!("{what}: /healthz not served within {bound:?}"));
    assert_eq!(r.status, 200, "{what}: {}", r.text());
}

/// TLS handshake done, HTTP/1.1 negotiated, then not one byte: closed
/// after the header read timeout (before, it stayed open for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = short_timeouts(dir.path());
    let s = TestServer::start_with(dir, config).await;
    let mut conn = tls(&s, &[b"http/1.1"], None).await.unwrap();
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let took = closed_by_server(&mut conn, "silent HTTP/1.1 connection").await;
    eprintln!("silent HTTP/1.1 connection closed after {took:?}");
    s.stop().await;
}

/// HTTP/2 preface and an empty SETTINGS frame, then nothing (and no answer
/// to the server's frames, not even its GOAWAY ping): closed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_idle_after_its_preface_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = short_timeouts(dir.path());
    let s = TestServer::start_with(dir, config).await;
    let mut conn = tls(&s, &[b"h2"], None).await.unwrap();
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    // SETTINGS: length 0, type 4, no flags, stream 0.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    conn.flush().await.unwrap();
    let took = closed_by_server(&mut conn, "HTTP/2 connection idle after its preface").await;
    eprintln!("HTTP/2 connection idle after its preface closed after {took:?}");
    s.stop().await;
}

/// An HTTP/2 connection that made requests, then idles: closed after the
/// idle timeout with a GOAWAY (hyper's client sees its connection end).
/// A pause shorter than the timeout does not close it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connection_idle_after_a_request_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = short_timeouts(dir.path());
    let s = TestServer::start_with(dir, config).await;
    let conn = tls(&s, &[b"h2"], None).await.unwrap();
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    for i in 0..2 {
        let r = sender.send_request(get("/healthz")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
        if i == 0 {
            // Well inside the 2 s idle timeout: the connection stays usable.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let start = Instant::now();
    let ended = tokio::time::timeout(CLOSE_BOUND, connection).await;
    assert!(
        ended.is_ok(),
        "idle HTTP/2 connection still open {CLOSE_BOUND:?} after its last request"
    );
    eprintln!(
        "idle HTTP/2 connection closed {:?} after its last request",
        start.elapsed()
    );
    assert!(
        sender.send_request(get("/healthz")).await.is_err(),
        "request on a closed connection"
    );
    s.stop().await;
}

/// An HTTP/1.1 keep-alive connection that made requests, then idles:
/// closed after the idle timeout. A pause shorter than it does not. (hyper
/// also runs its header read timer while waiting for the next request, so
/// that timer is made longer than the test's bound here: the close must
/// come from the idle timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_keep_alive_connection_idle_after_a_request_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = short_timeouts(dir.path());
    config.limits.header_read_timeout = Duration::from_secs(60);
    let s = TestServer::start_with(dir, config).await;
    let conn = tls(&s, &[b"http/1.1"], None).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn)).await.unwrap();
    let connection = tokio::spawn(connection);
    for i in 0..2 {
        let r = sender.send_request(get("/healthz")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
        if i == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let start = Instant::now();
    let ended = tokio::time::timeout(CLOSE_BOUND, connection).await;
    assert!(
        ended.is_ok(),
        "idle HTTP/1.1 keep-alive connection still open {CLOSE_BOUND:?} after its last request"
    );
    eprintln!(
        "idle HTTP/1.1 connection closed {:?} after its last request",
        start.elapsed()
    );
    s.stop().await;
}

/// Idle sockets holding every `max_connections` slot no longer lock out
/// legitimate clients: the slots come free when the idle ones are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_client_is_served_while_idle_sockets_hold_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = short_timeouts(dir.path());
    config.limits.max_connections = 3;
    config.limits.max_connections_per_ip = 0;
    let s = TestServer::start_with(dir, config).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tls(&s, &[b"http/1.1"], None).await.unwrap());
    }
    let mut h2 = tls(&s, &[b"h2"], None).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    idle.push(h2);
    healthz_within(&s, CLOSE_BOUND, "all slots held by idle connections").await;
    // And with idle connections open but slots to spare, at once.
    let _more = (
        tls(&s, &[b"http/1.1"], None).await.unwrap(),
        tls(&s, &[b"h2"], None).await.unwrap(),
    );
    healthz_within(&s, Duration::from_secs(5), "two idle connections open").await;
    drop(idle);
    s.stop().await;
}

/// `limits.max_connections_per_ip`: the fourth connection from an address
/// with three open is closed at once (before the TLS handshake), other
/// addresses are still served, and the address can connect again once its
/// connections have closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.max_connections_per_ip = 3;
    // Long enough that the three idle ones stay open for the whole test.
    config.limits.header_read_timeout = Duration::from_secs(60);
    let s = TestServer::start_with(dir, config).await;
    let other: IpAddr = "127.0.0.2".parse().unwrap();

    let mut held = Vec::new();
    for i in 0..3 {
        let c = tls(&s, &[b"http/1.1"], Some(other))
            .await
            .unwrap_or_else(|e| panic!("connection {i} from {other} refused under the cap: {e}"));
        held.push(c);
    }
    let start = Instant::now();
    let fourth = tokio::time::timeout(Duration::from_secs(10), tls(&s, &[b"http/1.1"], Some(other)))
        .await
        .expect("the fourth connection from one address was neither served nor closed");
    assert!(fourth.is_err(), "a fourth connection from {other} got a TLS session");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "closed by a timeout, not by the cap"
    );

    // 127.0.0.1 has its own count.
    healthz_within(
        &s,
        Duration::from_secs(5),
        "another address while 127.0.0.2 is at its cap",
    )
    .await;

    // Once the three are gone, 127.0.0.2 is served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn = loop {
        match tls(&s, &[b"http/1.1"], Some(other)).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{other} still refused 10 s after closing its connections: {e}"),
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn)).await.unwrap();
    tokio::spawn(connection);
    let r = sender.send_request(get("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
