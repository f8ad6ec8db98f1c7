//! The "Authenticate with roster" flow in a real browser (Debian chromium
//! through chromedriver): the admin signs in on the login page, reads the
//! consent page and clicks Confirm; a loopback listener plays Okta's
//! callback, and the code it receives buys a token that works on SCIM.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use http_body_util::Full;
use hyper::body::Bytes;
use roster::workspace::model::{Actor, ClientKind};

use crate::browser::Browser;
use crate::oauth::{ADMIN, PASSWORD, enc, params_of, set_password};
use crate::support::*;

/// A one-shot HTTP listener on loopback that records the request target of
/// the first request and answers with a small page.
fn callback_listener() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Browsers may open speculative connections; answer until a request
        // with a path arrives.
        for stream in l.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let target = req.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let body = "<!doctype html><title>Okta</title><p id=done>back at the identity provider</p>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            if target.starts_with("/cb") {
                let _ = tx.send(target);
                return;
            }
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_signs_in_and_confirms_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let (port, codes) = callback_listener();
    let redirect = format!("http://127.0.0.1:{port}/cb");
    let reg = roster::workspace::oauth::register(
        &s.app,
        "Okta",
        vec![redirect.clone()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();
    let client_id = reg.client.client_id.clone();
    let secret = reg.secret.clone().unwrap();
    let base = format!("https://localhost:{}", s.addr.port());
    let authorize = format!(
        "{base}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=scim&state=st-42",
        enc(&client_id),
        enc(&redirect)
    );

    // Not signed in: the login page, then back to the consent page.
    browser.goto(&authorize).await;
    browser.wait_for("input#email").await;
    browser.screenshot("login").await;
    browser.fill("input#email", ADMIN).await;
    browser.fill("input#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("button#confirm").await;
    let page = browser.source().await;
    assert!(
        page.contains("Connect Okta to My workspace?"),
        "consent page names client and workspace"
    );
    assert!(
        page.contains("provision and deprovision members"),
        "consent page says what access is granted"
    );
    browser.screenshot("consent").await;

    // Confirm: the browser lands on the client's callback with a code.
    browser.click("button#confirm").await;
    let target = tokio::task::spawn_blocking(move || codes.recv_timeout(std::time::Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the callback received the redirect");
    let p = params_of(&format!("http://x{target}"));
    assert_eq!(p.get("state").map(String::as_str), Some("st-42"));
    assert_eq!(p.get("iss").map(String::as_str), Some("https://localhost:8443"));
    let code = p.get("code").cloned().expect("code in the callback");

    // Okta's back channel: code → token → SCIM.
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}",
        enc(&code),
        enc(&redirect),
        enc(&client_id),
        enc(&secret)
    );
    let r = s
        .send(
            hyper::Request::post("/oauth/token")
                .header("host", "localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tok: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let r = s
        .send(
            hyper::Request::get("/scim/v2/Users?count=1")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {access}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The signed-in admin's home page.
    browser.goto(&format!("{base}/")).await;
    browser.wait_for("h1").await;
    assert!(browser.source().await.contains(ADMIN));
    browser.screenshot("home").await;
    browser.close().await;
    s.stop().await;
}
