//! Issue 18: every address roster hands out follows `--public-url`, or the
//! listen address when no public URL was chosen; and the first admin can
//! never be locked out (a busy port on first start creates nothing, each
//! start prints a fresh link until they chose a password, and
//! `roster admin login-link` prints one at any time, live or offline).

use std::path::Path;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::support::*;

/// Every `https://…` URL in `text`.
fn urls(text: &str) -> Vec<String> {
    text.match_indices("https://")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '<' | '>' | ')' | ','))
                .collect()
        })
        .collect()
}

/// A request to the child server, trusting only its own certificate.
async fn call(
    dir: &Path,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> roster::client::Response {
    let cert = roster::server::tls::load_certs(&dir.join("roster-data/tls/cert.pem"))
        .unwrap()
        .remove(0);
    let tls = roster::client::pinned_config(cert, &[&rustls::version::TLS13], &[b"http/1.1"]).unwrap();
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/scim+json");
    }
    let body = body.map(|v| v.to_string()).unwrap_or_default();
    roster::client::request(
        Arc::new(tls),
        addr,
        "localhost",
        b.body(Full::new(Bytes::from(body))).unwrap(),
    )
    .await
    .unwrap()
}

/// Collects what a person, the CLI, an IdP and a mail reader are handed by
/// a server started with `serve_args`, and checks every URL starts with `base`.
async fn collect_and_check(serve_args: &[&str], cli_extra: &[&str], base_of: impl Fn(u16) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let server = BinServer::start(&d, serve_args);
    let base = base_of(server.addr.port());
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut take = |what: &str, text: &str| {
        let found = urls(text);
        assert!(!found.is_empty(), "{what}: no URL in {text}");
        for u in found {
            seen.push((what.to_owned(), u));
        }
    };
    let link_lines: String = server.log().lines().filter(|l| l.contains("/login/link")).collect();
    take("first-start link in the log", &link_lines);

    let cli = |args: Vec<&str>| {
        let mut all: Vec<String> = args.into_iter().map(str::to_owned).collect();
        all.extend(cli_extra.iter().map(|s| (*s).to_owned()));
        let d = d.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = all.iter().map(String::as_str).collect();
                run_bin(&d, &a)
            })
            .await
            .unwrap()
        }
    };
    let (code, out, err) = cli(vec!["token", "create", "--name", "Okta"]).await;
    assert_eq!(code, 0, "{out}{err}");
    take("roster token create", &out);
    let token = out.lines().last().unwrap().trim().to_owned();
    let (code, out, err) = cli(vec!["admin", "login-link", "admin@localhost"]).await;
    assert_eq!(code, 0, "{out}{err}");
    take("roster admin login-link", &out);

    // An IdP's create: Location and meta.location.
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ida@unverified.example"});
    let r = call(&d, server.addr, "POST", "/scim/v2/Users", Some(&token), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    take("SCIM Location header", r.headers["location"].to_str().unwrap());
    take("SCIM meta.location", &r.text());
    // OAuth metadata: issuer and endpoints.
    let r = call(
        &d,
        server.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    take("OAuth metadata", &r.text());
    // The invitation mail's link.
    let (code, out, _) = cli(vec!["mail", "list"]).await;
    assert_eq!(code, 0);
    let seq = out
        .lines()
        .find(|l| l.contains("ida@unverified.example"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no mail to ida in {out}"))
        .to_owned();
    let (code, out, _) = cli(vec!["mail", "show", &seq]).await;
    assert_eq!(code, 0);
    take("invitation mail", &out);

    // The certificate an on-premises agent must trust: what the server
    // really presents (a client pinned to the export connects).
    let (code, pem, err) = cli(vec!["tls", "export-cert"]).await;
    assert_eq!(code, 0, "{err}");
    let exported: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not PEM ({e}): {pem}"));
    assert_eq!(exported.len(), 1, "{pem}");
    let tls = roster::client::pinned_config(exported[0].clone(), &[&rustls::version::TLS13], &[b"http/1.1"]).unwrap();
    let req = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = roster::client::request(Arc::new(tls), server.addr, "localhost", req)
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    let wrong: Vec<_> = seen
        .iter()
        .filter(|(_, u)| !(*u == base || u.starts_with(&format!("{base}/"))))
        .collect();
    assert!(wrong.is_empty(), "URLs not under {base}: {wrong:#?}");
    assert!(seen.len() >= 8, "{seen:#?}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_every_url_follows_the_listen_address() {
    collect_and_check(&["--listen", "127.0.0.1:0"], &[], |port| {
        format!("https://localhost:{port}")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_every_url_follows_public_url() {
    collect_and_check(
        &[
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "https://roster.example.net:9443",
        ],
        // Offline commands would take it from the same flag; these run
        // through the live server's control socket, which uses its own.
        &[],
        |_| "https://roster.example.net:9443".to_owned(),
    )
    .await;
}

#[test]
fn r18_busy_port_on_first_start_creates_nothing_and_the_admin_gets_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_bin(dir.path(), &["serve", "--listen", &addr]);
    assert_one_line_error(code, &err, &format!("cannot listen on {addr}"));
    assert!(
        !dir.path().join("roster-data/roster.redb").exists(),
        "a failed start must not create the workspace (its link would be lost)"
    );
    drop(taken);

    // The start that serves prints the first link...
    let server = BinServer::start(dir.path(), &["--listen", "127.0.0.1:0"]);
    assert!(
        server.log().contains("first start: sign in as the first admin"),
        "{}",
        server.log()
    );
    let (_, _) = server.terminate();
    // ...and, while the admin has no password, every later start prints a
    // fresh one.
    let server = BinServer::start(dir.path(), &["--listen", "127.0.0.1:0"]);
    let log = server.log();
    assert!(log.contains("has not chosen a password yet"), "{log}");
    let port = server.addr.port();
    assert!(
        log.contains(&format!("https://localhost:{port}/login/link?token=rst_login_")),
        "{log}"
    );
    // Live, through the control socket.
    let (code, out, err) = run_bin(dir.path(), &["admin", "login-link", "admin@localhost"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("https://localhost:{port}/login/link?token=rst_login_")),
        "{out}"
    );
    let (_, _) = server.terminate();
    // Offline, with the address the server will be reached at.
    let (code, out, err) = run_bin(
        dir.path(),
        &[
            "admin",
            "login-link",
            "admin@localhost",
            "--public-url",
            "https://roster.example.net",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("https://roster.example.net/login/link?token=rst_login_"),
        "{out}"
    );
    // Only for active admins, one line otherwise.
    let (code, _, err) = run_bin(dir.path(), &["admin", "login-link", "nobody@example.com"]);
    assert_one_line_error(code, &err, "no member has the email nobody@example.com");
}

/// Issue 18: following the README's two Entra recipes gave two connections
/// named "Entra ID", after which `roster token revoke "Entra ID"` failed. A
/// name now names one live static token and one OAuth client; revoking by
/// name works, and the name is free again afterwards.
#[test]
fn r18_a_name_names_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run_bin(d, &["init"]).0, 0);
    let (code, _, err) = run_bin(d, &["token", "create", "--name", "Entra ID"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_bin(d, &["token", "create", "--name", "entra id"]);
    assert_one_line_error(code, &err, "a connection named \"entra id\" already exists");
    // An OAuth client may share a static token's name; `token revoke` then
    // picks the static token.
    let (code, _, err) = run_bin(d, &["client", "add", "--name", "Entra ID", "--service"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_bin(d, &["client", "add", "--name", "ENTRA ID", "--service"]);
    assert_one_line_error(code, &err, "an OAuth client named \"ENTRA ID\" already exists");
    let (code, out, err) = run_bin(d, &["token", "revoke", "Entra ID"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Revoked connection \"Entra ID\""), "{out}");
    let (code, _, err) = run_bin(d, &["token", "create", "--name", "Entra ID"]);
    assert_eq!(code, 0, "a revoked connection's name is free again: {err}");
}
