//! Helpers for the SCIM tests: one HTTPS request with a bearer token, SCIM
//! error checks, and reads of the store for assertions.

#![allow(dead_code)]

use std::time::Duration;

use http_body_util::Full;
use hyper::HeaderMap;
use hyper::body::Bytes;
use roster::workspace::model::{Actor, AuditEntry, Mail, Member, SyncError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use uuid::Uuid;

use crate::support::TestServer;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ROSTER_URN: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One SCIM answer: status, headers, and the body parsed as JSON (a JSON
/// string holding the text when the body is not JSON; `Null` when empty).
#[derive(Debug)]
pub struct R {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl R {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn resources(&self) -> Vec<Value> {
        self.body["Resources"].as_array().cloned().unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<String> {
        self.resources()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl std::fmt::Display for R {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {:?}\n{}", self.status, self.headers, self.text)
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/Users?filter=<encoded>` plus extra raw query text.
pub fn filter_path(filter: &str) -> String {
    format!("/Users?filter={}", enc(filter))
}

pub async fn scim(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> R {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    scim_with(s, method, path, token, &[], bytes).await
}

/// A request to `/scim/v2{path}`; `content-type: application/scim+json` is
/// added when there is a body and `headers` do not name one.
pub async fn scim_with(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> R {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("/scim/v2{path}"))
        .header("host", "localhost")
        .header("accept", "application/scim+json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let has_ct = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !has_ct {
        b = b.header("content-type", "application/scim+json");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap();
    let r = s.send(req).await;
    let text = r.text();
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or_else(|_| Value::String(text.clone()))
    };
    R {
        status: r.status,
        headers: r.headers,
        body,
        text,
    }
}

/// Asserts `r` is a SCIM error response with `status` (and `scim_type`).
#[track_caller]
pub fn assert_scim_error(r: &R, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "want {status}; got {r}");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/scim+json"), "content-type {ct:?}; {r}");
    let schemas = r.body["schemas"].as_array().cloned().unwrap_or_default();
    assert!(
        schemas.iter().any(|s| s == ERROR_URN),
        "schemas lack the Error URN: {r}"
    );
    assert_eq!(
        r.body["status"],
        json!(status.to_string()),
        "status must be a string: {r}"
    );
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.trim().is_empty()),
        "detail must be a non-empty string: {r}"
    );
    if let Some(t) = scim_type {
        assert_eq!(r.body["scimType"], json!(t), "scimType: {r}");
    }
}

/// A new static-token connection; returns (token, connection id).
pub async fn connection(s: &TestServer, name: &str) -> (String, Uuid) {
    let t = roster::workspace::connections::create_static_token(&s.app, name, Actor::Operator)
        .await
        .unwrap();
    (t.token, t.connection.id)
}

pub async fn domain(s: &TestServer, name: &str, verified: bool) {
    roster::workspace::domains::change(
        &s.app,
        name,
        roster::workspace::domains::DomainChange::Add { verified },
        Actor::Operator,
    )
    .await
    .unwrap();
}

/// A typical create body for `email`, with `extra` merged over it.
pub fn user_body(email: &str, extra: Value) -> Value {
    let local = email.split('@').next().unwrap_or(email);
    let mut body = json!({
        "schemas": [USER_URN],
        "userName": email,
        "name": {"givenName": format!("G-{local}"), "familyName": format!("F-{local}")},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": format!("D {local}"),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// POSTs a user and insists on 201; returns the body.
pub async fn create(s: &TestServer, token: &str, email: &str, extra: Value) -> Value {
    let r = scim(s, "POST", "/Users", Some(token), Some(user_body(email, extra))).await;
    assert_eq!(r.status, 201, "create {email}: {r}");
    r.body
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub fn uuid_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().expect("id")).expect("id is a UUID")
}

pub fn status_of(v: &Value) -> String {
    v[ROSTER_URN]["status"].as_str().unwrap_or_default().to_owned()
}

pub fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

pub async fn get_user(s: &TestServer, token: &str, id: &str) -> R {
    scim(s, "GET", &format!("/Users/{id}"), Some(token), None).await
}

/// Every listed user, one page of 1000.
pub async fn list_all(s: &TestServer, token: &str) -> Vec<Value> {
    let r = scim(s, "GET", "/Users?startIndex=1&count=1000", Some(token), None).await;
    assert_eq!(r.status, 200, "{r}");
    r.resources()
}

pub async fn audit(s: &TestServer) -> Vec<AuditEntry> {
    s.app
        .store
        .read(|txn| roster::store::audit::recent(txn, 10_000))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

pub async fn mails(s: &TestServer) -> Vec<Mail> {
    s.app
        .store
        .read(|txn| roster::store::outbox::recent(txn, 1000))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

pub async fn sync_errors(s: &TestServer) -> Vec<SyncError> {
    s.app
        .store
        .read(|txn| roster::store::sync_errors::recent(txn, 1000))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

pub async fn member(s: &TestServer, id: Uuid) -> Option<Member> {
    s.app
        .store
        .read(move |txn| roster::store::members::get(txn, id))
        .await
        .unwrap()
}

pub async fn admin(s: &TestServer) -> Member {
    s.app
        .store
        .read(|txn| roster::store::members::by_email(txn, "admin@localhost"))
        .await
        .unwrap()
        .expect("first admin")
}

pub async fn link_count(s: &TestServer, id: Uuid) -> usize {
    s.app
        .store
        .read(move |txn| roster::store::links::count_for_member(txn, id))
        .await
        .unwrap()
}

/// Stores a browser session for `member_id` under `token`.
pub async fn add_session(s: &TestServer, member_id: Uuid, token: &'static str) {
    s.app
        .store
        .write(move |txn| {
            roster::store::sessions::put(
                txn,
                &roster::secret::hash_token(token),
                &roster::workspace::model::Session {
                    member_id,
                    created_ms: 0,
                    last_seen_ms: 0,
                    expires_ms: i64::MAX,
                    csrf: String::new(),
                },
            )?;
            Ok(Ok::<(), ()>(()))
        })
        .await
        .unwrap()
        .unwrap();
}

pub async fn has_session(s: &TestServer, token: &'static str) -> bool {
    s.app
        .store
        .read(move |txn| roster::store::sessions::get(txn, &roster::secret::hash_token(token)))
        .await
        .unwrap()
        .is_some()
}

/// Audit rows by `connection` with `action` on `member:<id>`.
pub fn audit_rows<'a>(rows: &'a [AuditEntry], connection: Uuid, action: &str, id: &str) -> Vec<&'a AuditEntry> {
    rows.iter()
        .filter(|e| e.action == action)
        .filter(|e| e.target == format!("member:{id}"))
        .filter(|e| matches!(&e.actor, Actor::Connection { id, .. } if *id == connection))
        .collect()
}

/// Sends raw bytes over TLS and returns what came back within a few
/// seconds (for requests the client library would not send).
pub async fn raw_exchange(s: &TestServer, head: &str, body_start: &[u8]) -> String {
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = TlsConnector::from(s.tls(&[&rustls::version::TLS13]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body_start).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let len = h
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(usize::MAX);
                    if b.len() >= len {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
