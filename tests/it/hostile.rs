//! Hostile input against a live server: hundreds of generated and
//! hand-written bad requests. For every one: no 5xx, the protocol's own
//! error shape (SCIM error JSON under /scim/v2, RFC 6749 JSON on the token
//! endpoint, an HTML page for pages), and afterwards no change to the data
//! (every table that holds members, teams, memberships, audit, mail, sync
//! errors, connections, OAuth clients, codes and grants, byte for byte, plus
//! the SCIM listings). Injection payloads that are valid input are stored
//! and then must render escaped on the pages that show them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle};
use roster::client::Response;
use roster::store::tables as t;
use roster::workspace::model::{Actor, ClientKind, Connection, Grant};
use serde_json::{Value, json};

use crate::oauth::{ADMIN, OKTA_CB, PASSWORD, admin_web, set_password, sign_in};
use crate::scim_support::{ERROR_URN, LIST_URN, PATCH_URN, USER_URN, connection, domain, enc, scim};
use crate::support::{Page, TestServer, Web, fake_clock_now};

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// What a case's answer must look like.
#[derive(Clone, Debug)]
enum Kind {
    /// A SCIM error body, or one of these success statuses (with a SCIM
    /// JSON body: a ListResponse for 200 on a listing).
    Scim(&'static [u16]),
    /// A SCIM 401 with `WWW-Authenticate: Bearer`.
    ScimUnauthorized,
    /// An RFC 6749 §5.2 JSON error (or these success statuses, e.g. the
    /// revocation endpoint's 200 for unknown tokens, RFC 7009 §2.2).
    OAuth(&'static [u16]),
    /// An HTML page with a 4xx status or one of these; redirects only
    /// same-site (`/...`, never `//`).
    Page(&'static [u16]),
    /// An HTML page, never a redirect (client / redirect_uri errors).
    PageNoRedirect,
    /// Overlong or broken framing: 4xx or the connection closed; never 5xx.
    Conn,
    /// A body over the limit: a SCIM 413, or the connection closed while
    /// the client was still sending (the server answers before reading it).
    ScimOrClosed,
}

struct Case {
    cat: &'static str,
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    kind: Kind,
}

fn case(cat: &'static str, method: &str, path: &str, kind: Kind) -> Case {
    Case {
        cat,
        method: method.into(),
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        kind,
    }
}

impl Case {
    fn h(mut self, k: &str, v: impl AsRef<[u8]>) -> Case {
        self.headers.push((k.into(), v.as_ref().to_vec()));
        self
    }
    fn body(mut self, b: impl AsRef<[u8]>) -> Case {
        self.body = b.as_ref().to_vec();
        self
    }
    fn bearer(self, tok: &str) -> Case {
        self.h("authorization", format!("Bearer {tok}"))
    }
    fn scim_json(self, b: impl AsRef<[u8]>) -> Case {
        self.h("content-type", "application/scim+json").body(b)
    }
    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(160).collect();
        let path: String = self.path.chars().take(200).collect();
        let hdrs: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v);
                format!("{k}: {}", v.chars().take(80).collect::<String>())
            })
            .collect();
        format!("[{}] {} {path} {hdrs:?} body={body:?}", self.cat, self.method)
    }
}

async fn send(s: &TestServer, c: &Case) -> Result<Response, String> {
    let mut b = hyper::Request::builder()
        .method(hyper::Method::from_bytes(c.method.as_bytes()).unwrap())
        .uri(c.path.as_str())
        .header("host", "localhost");
    for (k, v) in &c.headers {
        b = b.header(k.as_str(), hyper::header::HeaderValue::from_bytes(v).unwrap());
    }
    let req = b
        .body(Full::new(Bytes::from(c.body.clone())))
        .map_err(|e| format!("bad test request: {e}"))?;
    let tls = s.tls(&[&rustls::version::TLS13]);
    match tokio::time::timeout(
        Duration::from_secs(20),
        roster::client::request(tls, s.addr, "localhost", req),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err("no answer within 20 s".into()),
    }
}

fn header<'a>(r: &'a Response, k: &str) -> &'a str {
    r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn show(r: &Response) -> String {
    let text: String = r.text().chars().take(300).collect();
    format!(
        "HTTP {} ct={:?} loc={:?} {text}",
        r.status,
        header(r, "content-type"),
        header(r, "location")
    )
}

fn scim_error_shape(r: &Response) -> Result<(), String> {
    if !header(r, "content-type").starts_with("application/scim+json") {
        return Err(format!("not application/scim+json: {}", show(r)));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|_| format!("body not JSON: {}", show(r)))?;
    if !v["schemas"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == ERROR_URN))
    {
        return Err(format!("no Error URN: {}", show(r)));
    }
    if v["status"] != json!(r.status.to_string()) {
        return Err(format!("status not the string {:?}: {}", r.status.to_string(), show(r)));
    }
    if v["detail"].as_str().is_none_or(|d| d.trim().is_empty()) {
        return Err(format!("no detail: {}", show(r)));
    }
    Ok(())
}

/// RFC 6749 §5.2 (and RFC 7009 §2.2.1) error codes.
const OAUTH_ERRORS: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "temporarily_unavailable",
];

fn check(c: &Case, r: &Result<Response, String>) -> Result<(), String> {
    let r = match (r, &c.kind) {
        (Err(_), Kind::Conn | Kind::ScimOrClosed) => return Ok(()),
        (Err(e), _) => return Err(format!("transport error: {e}")),
        (Ok(r), _) => r,
    };
    // SPEC §2: /Me and /Bulk may answer 501 with a SCIM error.
    let unbuilt = c.path.starts_with("/scim/v2/Bulk") || c.path.starts_with("/scim/v2/Me");
    if r.status == 501 && unbuilt {
        return scim_error_shape(r);
    }
    if r.status >= 500 {
        return Err(format!("5xx: {}", show(r)));
    }
    match &c.kind {
        Kind::Conn => {
            if r.status < 400 {
                return Err(format!("overlong/broken request served: {}", show(r)));
            }
        }
        Kind::ScimOrClosed => {
            if r.status != 413 {
                return Err(format!("want 413: {}", show(r)));
            }
            scim_error_shape(r)?;
        }
        Kind::Scim(ok) => {
            if ok.contains(&r.status) {
                if r.status == 204 {
                    return Ok(());
                }
                if !header(r, "content-type").starts_with("application/scim+json") {
                    return Err(format!("success not scim+json: {}", show(r)));
                }
                let v: Value = serde_json::from_slice(&r.body).map_err(|_| format!("not JSON: {}", show(r)))?;
                if c.method == "GET" && !c.path.contains("/Users/") && !c.path.contains("/Groups/") {
                    let list = v["schemas"].as_array().is_some_and(|a| a.iter().any(|s| s == LIST_URN));
                    if !list {
                        return Err(format!("200 but not a ListResponse: {}", show(r)));
                    }
                }
                return Ok(());
            }
            if !(400..500).contains(&r.status) {
                return Err(format!("unexpected status: {}", show(r)));
            }
            scim_error_shape(r)?;
        }
        Kind::ScimUnauthorized => {
            if r.status != 401 {
                return Err(format!("want 401: {}", show(r)));
            }
            scim_error_shape(r)?;
            if !header(r, "www-authenticate").starts_with("Bearer") {
                return Err(format!("no WWW-Authenticate: Bearer: {}", show(r)));
            }
        }
        Kind::OAuth(ok) => {
            if ok.contains(&r.status) {
                return Ok(());
            }
            if !(400..500).contains(&r.status) {
                return Err(format!("unexpected status: {}", show(r)));
            }
            if !header(r, "content-type").starts_with("application/json") {
                return Err(format!("not application/json: {}", show(r)));
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|_| format!("not JSON: {}", show(r)))?;
            let e = v["error"].as_str().unwrap_or_default();
            if !OAUTH_ERRORS.contains(&e) {
                return Err(format!("error {e:?} is not an RFC 6749 code: {}", show(r)));
            }
            if header(r, "cache-control") != "no-store" {
                return Err(format!("no Cache-Control: no-store: {}", show(r)));
            }
        }
        Kind::Page(ok) => {
            if (300..400).contains(&r.status) {
                let loc = header(r, "location");
                if !loc.starts_with('/') || loc.starts_with("//") || loc.starts_with("/\\") {
                    return Err(format!("redirect off-site: {}", show(r)));
                }
                if !ok.contains(&r.status) {
                    return Err(format!("unexpected redirect: {}", show(r)));
                }
                return Ok(());
            }
            if !(ok.contains(&r.status) || (400..500).contains(&r.status)) {
                return Err(format!("unexpected status: {}", show(r)));
            }
            if !header(r, "content-type").starts_with("text/html") {
                return Err(format!("not an HTML page: {}", show(r)));
            }
        }
        Kind::PageNoRedirect => {
            if !(400..500).contains(&r.status) || !header(r, "location").is_empty() {
                return Err(format!("want a 4xx page, no redirect: {}", show(r)));
            }
            if !header(r, "content-type").starts_with("text/html") {
                return Err(format!("not an HTML page: {}", show(r)));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------ snapshot

/// Like [`dump`] for a table of encoded rows, with `forget` clearing
/// fields that are bookkeeping rather than data.
fn dump_decoded<T: serde::de::DeserializeOwned + Debug>(
    txn: &ReadTransaction,
    def: TableDefinition<u128, &[u8]>,
    forget: fn(&mut T),
    out: &mut Vec<String>,
) {
    let name = def.name().to_owned();
    let table = txn.open_table(def).expect("open");
    for row in table.iter().expect("iterate") {
        let (k, v) = row.expect("row");
        let mut value: T = roster::store::codec::decode(v.value()).expect("decode");
        forget(&mut value);
        out.push(format!("{name}: {:?} = {value:?}", k.value()));
    }
}

fn dump<K, V>(txn: &ReadTransaction, def: TableDefinition<K, V>, out: &mut Vec<String>)
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: Debug,
    for<'a> V::SelfType<'a>: Debug,
{
    let name = def.name().to_owned();
    let Ok(table) = txn.open_table(def) else {
        out.push(format!("{name}: absent"));
        return;
    };
    for row in table.iter().expect("iterate") {
        let (k, v) = row.expect("row");
        out.push(format!("{name}: {:?} = {:?}", k.value(), v.value()));
    }
}

/// Every data table, byte for byte (sessions only by key: `last_seen`
/// moves on every page view), plus what SCIM lists.
async fn snapshot(s: &TestServer, tok: &str) -> (Vec<String>, Value, Value) {
    let rows = s
        .app
        .store
        .read(|txn| {
            let mut out = Vec::new();
            dump(txn, t::WORKSPACE, &mut out);
            dump(txn, t::MEMBERS, &mut out);
            dump(txn, t::MEMBER_BY_EMAIL, &mut out);
            dump(txn, t::MEMBER_ORDER, &mut out);
            dump(txn, t::MEMBER_BY_EXTERNAL_ID, &mut out);
            dump(txn, t::MEMBER_BY_ANY_EMAIL, &mut out);
            dump(txn, t::ACTIVE_ADMINS, &mut out);
            dump(txn, t::ONE_TIME_LINKS, &mut out);
            dump(txn, t::AUDIT, &mut out);
            // "Last used" is bookkeeping of any authenticated request, not
            // a change a request made: compared without it.
            dump_decoded(
                txn,
                t::CONNECTIONS,
                |c: &mut Connection| c.last_used_ms = None,
                &mut out,
            );
            dump(txn, t::SCIM_TOKENS, &mut out);
            dump(txn, t::OUTBOX, &mut out);
            dump(txn, t::SYNC_ERRORS, &mut out);
            dump(txn, t::TEAMS, &mut out);
            dump(txn, t::TEAM_BY_NAME, &mut out);
            dump(txn, t::TEAM_MEMBERS, &mut out);
            dump(txn, t::MEMBER_TEAMS, &mut out);
            dump(txn, t::OAUTH_CLIENTS, &mut out);
            dump(txn, t::OAUTH_CODES, &mut out);
            dump_decoded(txn, t::OAUTH_GRANTS, |g: &mut Grant| g.last_used_ms = None, &mut out);
            if let Ok(table) = txn.open_table(t::SESSIONS) {
                for row in table.iter()? {
                    out.push(format!("session {:?}", row?.0.value()));
                }
            }
            Ok(out)
        })
        .await
        .unwrap();
    let users = scim(s, "GET", "/Users?startIndex=1&count=1000", Some(tok), None).await;
    assert_eq!(users.status, 200, "{users}");
    let groups = scim(s, "GET", "/Groups?startIndex=1&count=1000", Some(tok), None).await;
    assert_eq!(groups.status, 200, "{groups}");
    (rows, users.body, groups.body)
}

// ------------------------------------------------------------ generators

const SCIM_ERR: Kind = Kind::Scim(&[]);
const LIST_OK: Kind = Kind::Scim(&[200]);

fn bad_json_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = [
        "",
        " ",
        "{",
        "}",
        "[",
        "{\"userName\":}",
        "{\"userName\": \"x@example.com\",}",
        "{\"userName\": \"x@example.com\"} trailing",
        "{} {}",
        "nul",
        "null",
        "true",
        "123",
        "\"just a string\"",
        "[]",
        "[{\"userName\": \"x@example.com\"}]",
        "{'userName': 'x@example.com'}",
        "{userName: \"x@example.com\"}",
        "{\"userName\": NaN}",
        "{\"userName\": Infinity}",
        "/* c */ {\"userName\": \"x@example.com\"}",
        "{\"userName\": \"x@example.com\" // c\n}",
        "{\"userName\": 1e999999}",
        "{\"userName\": -0}",
        "{\"userName\": \"unterminated}",
        "{\"userName\": \"bad \\x41 escape\"}",
        "{\"userName\": \"lone \\ud800 surrogate@example.com\"}",
        "{\"userName\": \"\\u0000@example.com\"}",
        "{\"userName\": [\"a@example.com\"]}",
        "{\"userName\": {\"value\": \"a@example.com\"}}",
        "{\"userName\": 42}",
        "{\"userName\": true}",
        "{\"userName\": null}",
        "{\"userName\": \"\"}",
        "{\"Operations\": \"nope\"}",
        "{\"Operations\": [{\"op\": \"explode\"}]}",
        "{\"Operations\": [{\"op\": \"replace\", \"path\": \"]]][[[\", \"value\": 1}]}",
        "{\"displayName\": {\"$ne\": null}}",
        "{\"emails\": [{\"value\": {\"$gt\": \"\"}}]}",
        "\u{feff}{\"userName\": \"bom@example.com\"}",
    ]
    .iter()
    .map(|s| ("malformed", s.as_bytes().to_vec()))
    .collect();
    // Raw control characters inside strings (JSON forbids them unescaped).
    v.push(("malformed", b"{\"userName\": \"ctl\x01@example.com\"}".to_vec()));
    v.push(("malformed", b"{\"userName\": \"nl\n@example.com\"}".to_vec()));
    // Deep nesting, bare and inside an otherwise valid resource.
    for depth in [200usize, 1_000, 10_000, 100_000] {
        v.push((
            "deep",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ));
        v.push((
            "deep",
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes(),
        ));
        v.push((
            "deep",
            format!(
                "{{\"userName\":\"deep{depth}@example.com\",\"x\":{}{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes(),
        ));
    }
    // Huge: near the body limit, and over it (413).
    v.push((
        "huge",
        format!("{{\"userName\":\"{}@example.com\"}}", "a".repeat(900 << 10)).into_bytes(),
    ));
    v.push((
        "huge",
        format!("{{\"userName\":\"{}\"}}", "a".repeat(2 << 20)).into_bytes(),
    ));
    v.push(("huge", format!("[{}0]", "0,".repeat(400_000)).into_bytes()));
    v.push(("huge", format!("\"{}\"", "\\u0041".repeat(150_000)).into_bytes()));
    // Invalid UTF-8 in otherwise valid JSON.
    for bad in [
        &b"\xff\xfe"[..],
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
    ] {
        let mut b = b"{\"userName\": \"u".to_vec();
        b.extend_from_slice(bad);
        b.extend_from_slice(b"@example.com\", \"displayName\": \"x\"}");
        v.push(("utf8", b));
    }
    v
}

/// Bodies that are well-formed but must still be refused.
fn invalid_resources() -> Vec<(&'static str, Value)> {
    vec![
        ("missing", json!({"schemas": [USER_URN]})),
        ("missing", json!({"schemas": [USER_URN], "displayName": "no userName"})),
        (
            "email",
            json!({"schemas": [USER_URN], "userName": "alice＠example.com"}),
        ),
        ("email", json!({"schemas": [USER_URN], "userName": "a@b@example.com"})),
        ("email", json!({"schemas": [USER_URN], "userName": "@example.com"})),
        ("email", json!({"schemas": [USER_URN], "userName": "nobody@"})),
        ("email", json!({"schemas": [USER_URN], "userName": "no-at-sign"})),
        (
            "email",
            json!({"schemas": [USER_URN], "userName": "sp ace@example.com"}),
        ),
        ("email", json!({"schemas": [USER_URN], "userName": "nl@example.com\n"})),
        (
            "email",
            json!({"schemas": [USER_URN], "userName": "nul\u{0}@example.com"}),
        ),
        (
            "email",
            json!({"schemas": [USER_URN], "userName": "x@example.com\r\nBcc: y@evil.example"}),
        ),
        (
            "email",
            json!({"schemas": [USER_URN], "userName": format!("{}@example.com", "l".repeat(5000))}),
        ),
    ]
}

/// Duplicate keys: the resource must be refused, never half-read.
fn duplicate_key_bodies(existing_user: &str) -> Vec<(&'static str, String, Vec<u8>)> {
    vec![
        (
            "POST",
            "/scim/v2/Users".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dup1@example.com","userName":"dup2@example.com"}"#.to_vec(),
        ),
        (
            "POST",
            "/scim/v2/Users".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dup3@example.com","active":true,"active":false,"userName":"dup3@example.com"}"#.to_vec(),
        ),
        (
            "POST",
            "/scim/v2/Groups".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"dup team a","displayName":"dup team b"}"#.to_vec(),
        ),
        (
            "PATCH",
            format!("/scim/v2/Users/{existing_user}"),
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"a","value":"b"}]}"#.to_vec(),
        ),
        (
            "PATCH",
            format!("/scim/v2/Users/{existing_user}"),
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[],"Operations":[{"op":"replace","path":"active","value":false}]}"#.to_vec(),
        ),
        (
            "PUT",
            format!("/scim/v2/Users/{existing_user}"),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"seed1@example.com","displayName":"x","displayName":"y"}"#.to_vec(),
        ),
        // Attribute names are case-insensitive (RFC 7643 §2.1): a key
        // given twice in two spellings is the same ambiguity (issue 17).
        (
            "POST",
            "/scim/v2/Users".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dup4@example.com","USERNAME":"dup5@example.com"}"#.to_vec(),
        ),
        (
            "POST",
            "/scim/v2/Users".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dup6@example.com","roles":["admin"],"Roles":["member"]}"#.to_vec(),
        ),
        (
            "PATCH",
            format!("/scim/v2/Users/{existing_user}"),
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"a","Value":"b"}]}"#.to_vec(),
        ),
        (
            "POST",
            "/scim/v2/Groups".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"dup team c","DisplayName":"dup team d"}"#.to_vec(),
        ),
    ]
}

fn query_values() -> Vec<&'static str> {
    vec![
        "-1",
        "-999999999999",
        "99999999999999999999999",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "abc",
        "1.5",
        "1e3",
        "0x10",
        "%2B1",
        "%201",
        "",
        "%00",
        "1%00",
        "%E2%80%8B1",
        "%EF%BC%91",
        "NaN",
    ]
}

fn filter_bombs() -> Vec<String> {
    let mut f = vec![
        "userName eq".to_owned(),
        "userName eq \"unterminated".into(),
        "userName eq \"\\\"".into(),
        "userName xx \"a\"".into(),
        "(userName eq \"a\"".into(),
        "userName eq \"a\")".into(),
        "not userName eq \"a\"".into(),
        "emails[value eq \"a\"".into(),
        "emails[emails[value eq \"a\"]]".into(),
        "emails[value eq \"a\"].value.value eq \"b\"".into(),
        "userName eq 'a'".into(),
        "userName eq \"a\" and".into(),
        "and or not".into(),
        "\"a\" eq userName".into(),
        "userName gt [1]".into(),
        "userName eq \"a\" || 1==1".into(),
        "' OR 1=1 --".into(),
        "userName eq \"' OR '1'='1\"".into(),
        "userName eq \"\"; DROP TABLE members; --\"".into(),
        "userName eq \"<script>alert(1)</script>\"".into(),
        "meta.lastModified gt \"not a date\"".into(),
        "active eq \"maybe\"".into(),
        "userName pr pr".into(),
        "urn:evil:schema:attr eq \"x\"".into(),
        "a.b.c.d.e.f.g eq \"x\"".into(),
        "userName eq \"\u{0}\"".into(),
        "userName eq \"\u{202e}moc.elpmaxe@a\"".into(),
    ];
    for depth in [20, 64, 200, 1000, 2500] {
        f.push(format!("{}userName eq \"a\"{}", "(".repeat(depth), ")".repeat(depth)));
        f.push(format!(
            "{}userName eq \"a\"{}",
            "not (".repeat(depth),
            ")".repeat(depth)
        ));
        f.push(format!("{}userName eq \"a\"", "(".repeat(depth)));
    }
    for n in [50usize, 300, 1000] {
        let ors: Vec<String> = (0..n).map(|i| format!("userName eq \"u{i}@example.com\"")).collect();
        f.push(ors.join(" or "));
        let ands: Vec<String> = (0..n).map(|i| format!("displayName co \"{i}\"")).collect();
        f.push(ands.join(" and "));
        let vp: Vec<String> = (0..n / 10).map(|i| format!("value co \"{i}\"")).collect();
        f.push(format!("emails[{}]", vp.join(" or ")));
    }
    f.push(format!("userName eq \"{}\"", "a".repeat(12_000)));
    f.push(format!("userName co \"{}\"", "%".repeat(3000)));
    f
}

fn traversal_ids(real: &str) -> Vec<String> {
    vec![
        "..".into(),
        "../Groups".into(),
        "..%2fGroups".into(),
        "..%2FGroups".into(),
        "%2e%2e".into(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "..%5c..%5cwindows".into(),
        "%252e%252e%252f".into(),
        "..;".into(),
        ".".into(),
        "%00".into(),
        "abc%00def".into(),
        format!("{real}%00"),
        format!("{real}%2f..%2f"),
        format!("{real}%20"),
        format!("%20{real}"),
        format!("{real}x"),
        "00000000-0000-0000-0000-000000000000".into(),
        "%ff%fe".into(),
        "%c0%ae%c0%ae%c0%af".into(),
        "*".into(),
        "%27%20OR%201%3D1%20--".into(),
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(),
        "a".repeat(5000),
        "%25".into(),
    ]
}

fn redirect_variants() -> Vec<String> {
    vec![
        "https://evil.example/cb".into(),
        format!("{OKTA_CB}/extra"),
        format!("{OKTA_CB}?x=1"),
        format!("{OKTA_CB}#frag"),
        format!("{OKTA_CB}/.."),
        format!("{OKTA_CB}%2F..%2F..%2Fevil"),
        format!("{OKTA_CB}/"),
        format!("{OKTA_CB} "),
        format!(" {OKTA_CB}"),
        format!("{OKTA_CB}\u{0}"),
        OKTA_CB.replace("https://", "http://"),
        OKTA_CB.replace("system-admin.okta.com", "SYSTEM-ADMIN.OKTA.COM"),
        OKTA_CB.replace("system-admin.okta.com", "system-admin.okta.com:443"),
        OKTA_CB.replace("system-admin.okta.com", "system-admin.okta.com.evil.example"),
        OKTA_CB.replace("https://", "https://system-admin.okta.com@evil.example/"),
        OKTA_CB.replace("/oauth/callback", "/oauth/callback/../../../evil"),
        OKTA_CB.replace("roster_1", "roster_2"),
        "javascript:alert(document.domain)//".into(),
        "JaVaScRiPt:alert(1)".into(),
        "data:text/html,<script>alert(1)</script>".into(),
        "//evil.example/cb".into(),
        "/\\evil.example".into(),
        "https:evil.example".into(),
    ]
}

fn next_variants() -> Vec<&'static str> {
    vec![
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/\t/evil.example",
        "/\r\n/evil.example",
        " //evil.example",
        "data:text/html,x",
        "evil.example",
    ]
}

// ------------------------------------------------------------ the suite

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_protocol_errors_and_change_nothing() {
    let started = Instant::now();
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    domain(&s, "example.com", true).await;

    // ---- setup (data that hostile requests must leave alone) ----
    let (tok, _) = connection(&s, "<b>Okta</b><script>alert('conn')</script>").await;
    let seed = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(json!({"schemas": [USER_URN], "userName": "seed1@example.com", "displayName": "Seed"})),
    )
    .await;
    assert_eq!(seed.status, 201, "{seed}");
    let seed_id = seed.body["id"].as_str().unwrap().to_owned();
    let g = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "Seed team", "members": [{"value": seed_id}]})),
    )
    .await;
    assert_eq!(g.status, 201, "{g}");
    let gid = g.body["id"].as_str().unwrap().to_owned();

    // Unicode confusables: a Cyrillic 'а' look-alike of an existing address
    // is not an address (issue 17: addresses are ASCII), so it can never be
    // a second person who reads like the first.
    let latin = "alice@example.com";
    let cyrillic = "\u{0430}lice@example.com";
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(json!({"schemas": [USER_URN], "userName": latin})),
    )
    .await;
    assert_eq!(r.status, 201, "{latin}: {r}");
    let latin_id = r.body["id"].as_str().unwrap().to_owned();
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(json!({"schemas": [USER_URN], "userName": cyrillic})),
    )
    .await;
    assert_eq!(r.status, 400, "{cyrillic}: {r}");
    for (email, want) in [(latin, vec![latin_id.clone()]), (cyrillic, vec![])] {
        let r = scim(
            &s,
            "GET",
            &format!("/Users?filter={}", enc(&format!("userName eq \"{email}\""))),
            Some(&tok),
            None,
        )
        .await;
        assert_eq!(r.ids(), want, "filter {email}: {r}");
    }

    // Injection payloads are valid names: stored as given, shown escaped.
    let xss_name = "<script>alert(\"x\")</script><img src=x onerror=alert(1)>' OR 1=1 --";
    let xss_team = "<svg/onload=alert('team')>\"; DROP TABLE teams; --";
    let xss = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(
            json!({"schemas": [USER_URN], "userName": "xss@example.com", "displayName": xss_name,
            "name": {"givenName": "<b>g</b>", "familyName": "{{7*7}}${7*7}"}}),
        ),
    )
    .await;
    assert_eq!(xss.status, 201, "{xss}");
    assert_eq!(xss.body["displayName"], json!(xss_name), "stored as given");
    let xss_id = xss.body["id"].as_str().unwrap().to_owned();
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": xss_team, "members": [{"value": xss_id}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");

    // OAuth: a client with a hostile name, tokens for the forged-token cases.
    let client = roster::workspace::oauth::register(
        &s.app,
        "<script>alert('client')</script>",
        vec![OKTA_CB.into()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();
    let (cid, csecret) = (client.client.client_id.clone(), client.secret.clone().unwrap());
    let mut admin = admin_web(&s).await;
    let authz = |redirect: &str, state: &str| {
        format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=scim&state={}",
            enc(&cid),
            enc(redirect),
            enc(state)
        )
    };
    let consent = admin.get(&authz(OKTA_CB, "setup")).await;
    assert_eq!(consent.status, 200, "{consent}");
    assert_escaped(&consent, "<script>alert('client')</script>", "consent page");
    let consent_csrf = consent.input("csrf").expect("consent csrf");
    let mut fields: Vec<(String, String)> = [
        "csrf",
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|f| ((*f).to_owned(), consent.input(f).unwrap_or_default()))
    .collect();
    fields.push(("decision".into(), "confirm".into()));
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = admin.post_form("/oauth/authorize", &pairs).await;
    assert_eq!(r.status, 303, "{r}");
    let code = crate::oauth::params_of(&r.location())["code"].clone();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", enc(&cid), enc(&csecret))
        )
    );
    let tokens = send(
        &s,
        &case("setup", "POST", "/oauth/token", Kind::OAuth(&[200]))
            .h("content-type", "application/x-www-form-urlencoded")
            .h("authorization", &basic)
            .body(format!(
                "grant_type=authorization_code&code={}&redirect_uri={}",
                enc(&code),
                enc(OKTA_CB)
            )),
    )
    .await
    .unwrap();
    assert_eq!(tokens.status, 200, "{}", show(&tokens));
    let tv: Value = serde_json::from_slice(&tokens.body).unwrap();
    let access = tv["access_token"].as_str().unwrap().to_owned();
    let refresh = tv["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(scim(&s, "GET", "/Users?count=1", Some(&access), None).await.status, 200);
    // Let the access token expire (it lives an hour); the refresh token,
    // the sessions and everything else stay valid.
    clock.advance_ms(61 * 60 * 1000);
    // A revoked static token.
    let (revoked, _) = connection(&s, "revoked").await;
    roster::workspace::connections::revoke(&s.app, "revoked", Actor::Operator)
        .await
        .unwrap();
    let session = admin.cookie("__Host-roster_session").unwrap().to_owned();
    let admin_cookie = admin.cookie_header();

    // The XSS member signs in and sees their name and team escaped.
    set_password(&s, "xss@example.com", PASSWORD).await;
    let mut xweb = Web::new(&s);
    let r = sign_in(&mut xweb, "xss@example.com", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{r}");
    let home = xweb.get("/").await;
    assert_eq!(home.status, 200, "{home}");
    for payload in [xss_name, xss_team, "<b>Okta</b><script>alert('conn')</script>"] {
        assert_escaped(&home, payload, "home page");
    }
    // A login failure echoes the typed email: escaped too.
    let mut w = Web::new(&s);
    let r = sign_in(&mut w, "\"><script>alert('login')</script>", "x", "/").await;
    assert_eq!(r.status, 401, "{r}");
    assert_escaped(&r, "\"><script>alert('login')</script>", "login page");

    // The pre-sign-in CSRF cookie and field of a fresh login form.
    let mut anon = Web::new(&s);
    let form = anon.get("/login").await;
    let login_csrf = form.input("csrf").unwrap();
    let anon_cookie = anon.cookie_header();

    let before = snapshot(&s, &tok).await;

    // ---- cases ----
    let mut cases: Vec<Case> = Vec::new();
    let user_path = format!("/scim/v2/Users/{seed_id}");
    let group_path = format!("/scim/v2/Groups/{gid}");
    // 1. Bad bodies on every write endpoint.
    let write_targets: Vec<(&str, String)> = vec![
        ("POST", "/scim/v2/Users".into()),
        ("PUT", user_path.clone()),
        ("PATCH", user_path.clone()),
        ("POST", "/scim/v2/Groups".into()),
        ("PATCH", group_path.clone()),
    ];
    for (cat, body) in bad_json_bodies() {
        let kind = if body.len() > 1 << 20 {
            Kind::ScimOrClosed
        } else {
            SCIM_ERR
        };
        for (m, p) in &write_targets {
            cases.push(case(cat, m, p, kind.clone()).bearer(&tok).scim_json(&body));
        }
    }
    for (cat, body) in invalid_resources() {
        let b = serde_json::to_vec(&body).unwrap();
        cases.push(case(cat, "POST", "/scim/v2/Users", SCIM_ERR).bearer(&tok).scim_json(&b));
        cases.push(case(cat, "PUT", &user_path, SCIM_ERR).bearer(&tok).scim_json(&b));
    }
    // (Duplicate keys: see duplicate_json_keys_are_refused_not_last_one_wins.)
    // 2. Wrong content types with an otherwise valid create.
    let valid = serde_json::to_vec(&json!({"schemas": [USER_URN], "userName": "ctype@example.com"})).unwrap();
    for ct in [
        "text/plain",
        "application/xml",
        "text/html",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "application/jsonx",
        "application/scim+jsonx",
        "image/png",
        "*/*",
        "application/scim+xml",
    ] {
        for (m, p) in &write_targets[..2] {
            cases.push(
                case("ctype", m, p, SCIM_ERR)
                    .bearer(&tok)
                    .h("content-type", ct)
                    .body(&valid),
            );
        }
    }
    // 3. Absurd paging and projections.
    for res in ["/scim/v2/Users", "/scim/v2/Groups"] {
        for v in query_values() {
            for k in ["startIndex", "count"] {
                cases.push(case("paging", "GET", &format!("{res}?{k}={v}"), LIST_OK).bearer(&tok));
            }
        }
        for q in [
            "startIndex=-5&count=-5",
            "startIndex=99999999999&count=1000",
            "count=1000000000",
            "startIndex=1&startIndex=2",
            "sortBy=%27%3Bdrop&sortOrder=sideways",
            "sortBy=password",
            "sortOrder=descending&sortBy=a.b.c.d.e",
            "attributes=password",
            "attributes=,,,,",
            "excludedAttributes=id,schemas,meta",
            "attributes=urn:evil:x:y",
        ] {
            cases.push(case("paging", "GET", &format!("{res}?{q}"), LIST_OK).bearer(&tok));
        }
    }
    // 4. Filter bombs.
    for f in filter_bombs() {
        // Over ~14 KiB the query no longer fits the 16 KiB header limit.
        let kind = if enc(&f).len() > 14_000 { Kind::Conn } else { LIST_OK };
        for res in ["/scim/v2/Users", "/scim/v2/Groups"] {
            cases.push(case("filter", "GET", &format!("{res}?filter={}", enc(&f)), kind.clone()).bearer(&tok));
        }
        // In a PATCH path the same text reaches the parser at any length.
        for (p, attr) in [(&group_path, "members"), (&user_path, "emails")] {
            let body = json!({"schemas": [PATCH_URN],
                "Operations": [{"op": "remove", "path": format!("{attr}[{f}]")}]});
            cases.push(
                case("filter", "PATCH", p, Kind::Scim(&[200, 204]))
                    .bearer(&tok)
                    .scim_json(serde_json::to_vec(&body).unwrap()),
            );
        }
    }
    // 5. Path traversal and odd ids, every method, both resources.
    let patch_body = serde_json::to_vec(&json!({"schemas": [PATCH_URN],
        "Operations": [{"op": "replace", "path": "displayName", "value": "traversed"}]}))
    .unwrap();
    let put_body = serde_json::to_vec(&json!({"schemas": [USER_URN], "userName": "traversed@example.com"})).unwrap();
    for (res, real) in [("Users", &seed_id), ("Groups", &gid)] {
        for id in traversal_ids(real) {
            let p = format!("/scim/v2/{res}/{id}");
            cases.push(case("traversal", "GET", &p, SCIM_ERR).bearer(&tok));
            cases.push(case("traversal", "DELETE", &p, SCIM_ERR).bearer(&tok));
            cases.push(case("traversal", "PUT", &p, SCIM_ERR).bearer(&tok).scim_json(&put_body));
            cases.push(
                case("traversal", "PATCH", &p, SCIM_ERR)
                    .bearer(&tok)
                    .scim_json(&patch_body),
            );
        }
    }
    for p in [
        "/scim/v2/../../etc/passwd",
        "/scim/v2/%2e%2e/%2e%2e/etc/passwd",
        "/scim/v2/Users/../../oauth/token",
        "/scim/v2//Users",
        "/scim/v2/Users/",
        "/scim/v2/Users%00",
        "/scim/v2/Schemas/..%2f..%2f",
        "/scim/v2/ResourceTypes/%00",
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User%00",
    ] {
        cases.push(case("traversal", "GET", p, Kind::Scim(&[200])).bearer(&tok));
        cases.push(case("traversal", "DELETE", p, SCIM_ERR).bearer(&tok));
    }
    // 6. Missing, forged, expired and misused tokens.
    let flip = |t: &str| {
        let mut b = t.as_bytes().to_vec();
        let i = b.len() - 10;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let bad_crc = format!("{}000000", &tok[..tok.len() - 6]);
    let other_prefix = roster::secret::new_token(roster::secret::TokenKind::AccessToken, s.app.rng.as_ref());
    let login_shaped = roster::secret::new_token(roster::secret::TokenKind::Login, s.app.rng.as_ref());
    let auths: Vec<(&'static str, Option<String>)> = vec![
        ("none", None),
        ("empty", Some(String::new())),
        ("scheme only", Some("Bearer".into())),
        ("scheme space", Some("Bearer ".into())),
        ("basic", Some(format!("Basic {tok}"))),
        ("digest", Some(format!("Digest {tok}"))),
        ("bad checksum", Some(format!("Bearer {bad_crc}"))),
        ("flipped char", Some(format!("Bearer {}", flip(&tok)))),
        ("truncated", Some(format!("Bearer {}", &tok[..tok.len() - 1]))),
        ("extended", Some(format!("Bearer {tok}x"))),
        ("two tokens", Some(format!("Bearer {tok} {tok}"))),
        ("comma list", Some(format!("Bearer {tok}, Bearer {tok}"))),
        ("unknown rst_at", Some(format!("Bearer {other_prefix}"))),
        ("login-link shaped", Some(format!("Bearer {login_shaped}"))),
        ("refresh token", Some(format!("Bearer {refresh}"))),
        ("expired access token", Some(format!("Bearer {access}"))),
        ("session id", Some(format!("Bearer {session}"))),
        ("client secret", Some(format!("Bearer {csecret}"))),
        ("auth code", Some(format!("Bearer {code}"))),
        ("revoked", Some(format!("Bearer {revoked}"))),
        ("sql", Some("Bearer ' OR '1'='1".into())),
        ("huge", Some(format!("Bearer rst_scim_{}", "A".repeat(8000)))),
    ];
    let auth_targets: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("GET", "/scim/v2/Users".into(), None),
        ("POST", "/scim/v2/Users".into(), Some(valid.clone())),
        ("DELETE", user_path.clone(), None),
        ("PATCH", user_path.clone(), Some(patch_body.clone())),
        ("DELETE", group_path.clone(), None),
        ("GET", "/scim/v2/Nope".into(), None),
    ];
    for (_, a) in &auths {
        for (m, p, b) in &auth_targets {
            let mut c = case("token", m, p, Kind::ScimUnauthorized);
            if let Some(a) = a {
                c = c.h("authorization", a);
            }
            if let Some(b) = b {
                c = c.scim_json(b);
            }
            cases.push(c);
        }
    }
    for p in [
        format!("/scim/v2/Users?access_token={}", enc(&tok)),
        format!("/scim/v2/Users/{seed_id}?access_token={}", enc(&tok)),
    ] {
        cases.push(case("token", "GET", &p, Kind::ScimUnauthorized));
        cases.push(case("token", "DELETE", &p, Kind::ScimUnauthorized));
    }
    cases.push(
        case("token", "POST", "/scim/v2/Users", Kind::ScimUnauthorized)
            .h("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={}", enc(&tok))),
    );
    // 7. Overlong and broken headers: 431 or closed, never 5xx.
    for (name, size) in [
        ("x-big", 17 << 10),
        ("x-big", 64 << 10),
        ("cookie", 20 << 10),
        ("authorization", 40 << 10),
    ] {
        let v = if name == "authorization" {
            format!("Bearer {}", "A".repeat(size))
        } else {
            "a".repeat(size)
        };
        for p in ["/scim/v2/Users", "/login", "/oauth/token", "/"] {
            cases.push(case("headers", "GET", p, Kind::Conn).bearer(&tok).h(name, &v));
        }
    }
    let mut many = case("headers", "GET", "/scim/v2/Users", Kind::Conn).bearer(&tok);
    for i in 0..150 {
        many = many.h(&format!("x-h{i}"), "v");
    }
    cases.push(many);
    cases.push(
        case(
            "headers",
            "GET",
            &format!("/scim/v2/Users?x={}", "a".repeat(20 << 10)),
            Kind::Conn,
        )
        .bearer(&tok),
    );
    cases.push(case(
        "headers",
        "GET",
        &format!("/login?next=/{}", "a".repeat(20 << 10)),
        Kind::Conn,
    ));
    for v in [&b"\xff\xfe"[..], b"\x80abc", b"Bearer \xc3\x28"] {
        cases.push(case("headers", "GET", "/scim/v2/Users", Kind::ScimUnauthorized).h("authorization", v));
    }
    cases.push(
        case("headers", "POST", "/scim/v2/Users", SCIM_ERR)
            .bearer(&tok)
            .h("content-type", &b"application/scim+json; charset=\xff"[..])
            .body(&valid),
    );
    // 8. Odd methods on SCIM and on pages.
    for m in ["TRACE", "PROPFIND", "MKCOL", "CONNECTX", "OPTIONS", "PATCH", "DELETE"] {
        cases.push(case("method", m, "/scim/v2/Users", SCIM_ERR).bearer(&tok));
        cases.push(case("method", m, "/scim/v2/ServiceProviderConfig", SCIM_ERR).bearer(&tok));
        cases.push(case("method", m, "/scim/v2/Bulk", SCIM_ERR).bearer(&tok));
    }
    // 9. The token endpoint (RFC 6749 §5.2 bodies). Kept under its
    //    per-address limit (120 a minute); 429 would still be an RFC error.
    let form = "application/x-www-form-urlencoded";
    let token_bodies: Vec<(&str, Vec<u8>)> = vec![
        (form, Vec::new()),
        (form, b"grant_type=".to_vec()),
        (
            form,
            b"grant_type=password&username=admin%40localhost&password=x".to_vec(),
        ),
        (form, b"grant_type=implicit".to_vec()),
        (
            form,
            b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=x".to_vec(),
        ),
        (form, b"grant_type=authorization_code&grant_type=refresh_token".to_vec()),
        (
            form,
            format!(
                "grant_type=authorization_code&code={}&redirect_uri={}",
                enc(&code),
                enc(OKTA_CB)
            )
            .into_bytes(),
        ),
        (
            form,
            format!(
                "grant_type=authorization_code&code=garbage&redirect_uri={}",
                enc(OKTA_CB)
            )
            .into_bytes(),
        ),
        (
            form,
            format!("grant_type=refresh_token&refresh_token={}", enc(&access)).into_bytes(),
        ),
        (
            form,
            format!("grant_type=refresh_token&refresh_token={}", enc(&bad_crc)).into_bytes(),
        ),
        (form, b"grant_type=refresh_token&refresh_token=".to_vec()),
        (form, b"grant_type=client_credentials&scope=admin".to_vec()),
        (form, b"grant_type[]=authorization_code".to_vec()),
        (
            form,
            b"grant_type=authorization_code&code=%ff%fe&redirect_uri=%c0%af".to_vec(),
        ),
        (form, b"grant_type=authorization_code&code=\xff\xfe".to_vec()),
        (form, b"%%%%%%%".to_vec()),
        (
            form,
            format!("grant_type=refresh_token&refresh_token={}", "A".repeat(500_000)).into_bytes(),
        ),
        (form, "&".repeat(100_000).into_bytes()),
        ("application/json", br#"{"grant_type":"client_credentials"}"#.to_vec()),
        ("text/plain", b"grant_type=client_credentials".to_vec()),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--".to_vec()),
        ("", b"grant_type=client_credentials".to_vec()),
    ];
    let client_auths: Vec<Option<String>> = vec![
        None,
        Some(basic.replace(&basic[6..10], "AAAA")),
        Some("Basic".into()),
        Some("Basic !!!!".into()),
        Some(format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "no-colon")
        )),
        Some(format!("Bearer {tok}")),
    ];
    for (i, (ct, b)) in token_bodies.iter().enumerate() {
        let auths: Vec<&Option<String>> = if i < 3 {
            client_auths.iter().collect()
        } else {
            vec![&client_auths[0], &client_auths[1], &client_auths[5]]
        };
        for a in auths {
            let mut c = case("oauth-token", "POST", "/oauth/token", Kind::OAuth(&[])).body(b);
            if !ct.is_empty() {
                c = c.h("content-type", ct);
            }
            if let Some(a) = a {
                c = c.h("authorization", a);
            }
            cases.push(c);
        }
    }
    for b in [
        format!("token={}", enc(&refresh)),
        "token=".into(),
        format!("token={}&token_type_hint=refresh_token", enc(&tok)),
    ] {
        // Revocation without (or with broken) client authentication.
        cases.push(
            case("oauth-revoke", "POST", "/oauth/revoke", Kind::OAuth(&[]))
                .h("content-type", form)
                .body(&b),
        );
        cases.push(
            case("oauth-revoke", "POST", "/oauth/revoke", Kind::OAuth(&[]))
                .h("content-type", form)
                .h("authorization", "Basic !!!!")
                .body(&b),
        );
    }
    // 10. CSRF-less and forged form posts.
    let csrf_variants: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("nope"),
        Some("0123456789abcdef0123456789abcdef0123456789abcdef"),
    ];
    for cv in &csrf_variants {
        let mut pairs = vec![("next", "/"), ("email", ADMIN), ("password", PASSWORD)];
        if let Some(v) = cv {
            pairs.push(("csrf", v));
        }
        let b = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        // Sign-in: with the form's cookie but a wrong field, and without any cookie.
        cases.push(
            case("csrf", "POST", "/login", Kind::PageNoRedirect)
                .h("content-type", form)
                .h("cookie", &anon_cookie)
                .body(&b),
        );
        cases.push(
            case("csrf", "POST", "/login", Kind::PageNoRedirect)
                .h("content-type", form)
                .body(&b),
        );
        // Sign-out with the admin's session but no valid token.
        let lb = match cv {
            Some(v) => format!("csrf={}", enc(v)),
            None => String::new(),
        };
        cases.push(
            case("csrf", "POST", "/logout", Kind::PageNoRedirect)
                .h("content-type", form)
                .h("cookie", &admin_cookie)
                .body(&lb),
        );
        // Consent with the admin's session but no valid token.
        let mut cb = fields
            .iter()
            .filter(|(k, _)| k != "csrf")
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        if let Some(v) = cv {
            cb.push_str(&format!("&csrf={}", enc(v)));
        }
        cases.push(
            case("csrf", "POST", "/oauth/authorize", Kind::PageNoRedirect)
                .h("content-type", form)
                .h("cookie", &admin_cookie)
                .body(&cb),
        );
    }
    // The right CSRF value, but the cookie it is bound to is missing.
    let b = format!(
        "csrf={}&next=%2F&email={}&password={}",
        enc(&login_csrf),
        enc(ADMIN),
        enc(PASSWORD)
    );
    cases.push(
        case("csrf", "POST", "/login", Kind::PageNoRedirect)
            .h("content-type", form)
            .body(&b),
    );
    // The session's consent CSRF without the session.
    let cb = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    cases.push(
        case("csrf", "POST", "/oauth/authorize", Kind::Page(&[303]))
            .h("content-type", form)
            .body(&cb),
    );
    for p in ["/login/link", "/invite/accept", "/password/set"] {
        for b in [
            "",
            "token=rst_login_garbage",
            "csrf=x&token=x&password=aaaaaaaaaaaa&password2=aaaaaaaaaaaa",
        ] {
            cases.push(case("csrf", "POST", p, Kind::Page(&[])).h("content-type", form).body(b));
        }
        for q in [
            "",
            "?token=",
            "?token=rst_login_AAAA",
            "?token=%3Cscript%3E",
            "?token=%00%ff",
        ] {
            cases.push(case("pages", "GET", &format!("{p}{q}"), Kind::Page(&[200])));
        }
    }
    // Forms with broken bodies: invalid UTF-8, bad escapes, huge (other
    // content types: see page_endpoints_answer_errors_with_html_pages).
    for (ct, b) in [
        (form, b"email=\xff\xfe&password=\xc0\xaf".to_vec()),
        (form, b"%%%=%%%".to_vec()),
        (form, format!("email={}", "a".repeat(900 << 10)).into_bytes()),
    ] {
        for p in ["/login", "/logout", "/oauth/authorize"] {
            cases.push(
                // Sign-out without a session goes to the sign-in page.
                case("csrf", "POST", p, Kind::Page(&[303]))
                    .h("content-type", ct)
                    .h("cookie", &anon_cookie)
                    .body(&b),
            );
        }
    }
    // Forged session cookies.
    for v in [
        "garbage".to_owned(),
        format!("{}000000", &session[..session.len() - 6]),
        "rst_sess_".to_owned(),
        "a".repeat(8000),
    ] {
        cases.push(case("pages", "GET", "/", Kind::Page(&[303])).h("cookie", format!("__Host-roster_session={v}")));
    }
    // 11. Open redirects on /oauth/authorize (signed in, anonymous, and the
    //     consent POST with a valid CSRF token) and /login?next=.
    for rd in redirect_variants() {
        let path = authz(&rd, "x");
        cases.push(case("redirect", "GET", &path, Kind::PageNoRedirect).h("cookie", &admin_cookie));
        cases.push(case("redirect", "GET", &path, Kind::Page(&[303])));
        let mut fb: Vec<(String, String)> = fields.clone();
        for f in fb.iter_mut() {
            if f.0 == "redirect_uri" {
                f.1 = rd.clone();
            }
            if f.0 == "csrf" {
                f.1 = consent_csrf.clone();
            }
        }
        let b = fb
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        cases.push(
            case("redirect", "POST", "/oauth/authorize", Kind::PageNoRedirect)
                .h("content-type", form)
                .h("cookie", &admin_cookie)
                .body(&b),
        );
    }
    for q in [
        format!(
            "response_type=code&client_id=nobody&redirect_uri={}&scope=scim",
            enc(OKTA_CB)
        ),
        format!("response_type=code&redirect_uri={}&scope=scim", enc(OKTA_CB)),
        format!(
            "response_type=code&client_id=%3Cscript%3Ealert(1)%3C%2Fscript%3E&redirect_uri={}",
            enc(OKTA_CB)
        ),
        format!(
            "response_type=code&client_id={0}&client_id={0}&redirect_uri={1}",
            enc(&cid),
            enc(OKTA_CB)
        ),
        format!(
            "response_type=code&client_id={}&redirect_uri={1}&redirect_uri={1}",
            enc(&cid),
            enc(OKTA_CB)
        ),
        "client_id=%00&redirect_uri=%00".into(),
    ] {
        cases.push(
            case(
                "redirect",
                "GET",
                &format!("/oauth/authorize?{q}"),
                Kind::PageNoRedirect,
            )
            .h("cookie", &admin_cookie),
        );
    }
    for n in next_variants() {
        cases.push(case(
            "next",
            "GET",
            &format!("/login?next={}", enc(n)),
            Kind::Page(&[200]),
        ));
        cases.push(
            case(
                "next",
                "GET",
                &format!("/login?next={}", enc(n)),
                Kind::Page(&[200, 303]),
            )
            .h("cookie", &admin_cookie),
        );
    }

    // ---- run ----
    let mut by_cat: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut next_leaks: Vec<String> = Vec::new();
    for c in &cases {
        *by_cat.entry(c.cat).or_default() += 1;
        let r = send(&s, c).await;
        let key = r.as_ref().map_or("closed".to_owned(), |r| r.status.to_string());
        *by_status.entry(key).or_default() += 1;
        if let Err(e) = check(c, &r) {
            failures.push(format!("{}\n    → {e}", c.describe()));
        }
        if let Ok(r) = &r {
            let text = r.text();
            // No page reflects a payload unescaped.
            if header(r, "content-type").starts_with("text/html")
                && (text.contains("<script>alert") || text.contains("<svg/onload") || text.contains("onerror=alert"))
            {
                failures.push(format!("{}\n    → payload reflected unescaped", c.describe()));
            }
            // The login form's hidden `next` is always same-site.
            if c.cat == "next" && r.status == 200 {
                let page = Page {
                    status: r.status,
                    headers: r.headers.clone(),
                    text: text.clone(),
                };
                let n = page.input("next").unwrap_or_default();
                if !n.starts_with('/') || n.starts_with("//") || n.starts_with("/\\") || n.contains('\n') {
                    next_leaks.push(format!("{} → next={n:?}", c.describe()));
                }
            }
            // Redirects go back to the registered client or stay on site.
            let loc = if (300..400).contains(&r.status) {
                header(r, "location")
            } else {
                ""
            };
            let on_site = loc.starts_with('/') && !loc.starts_with("//") && !loc.starts_with("/\\");
            if !loc.is_empty() && !on_site && !loc.starts_with(&format!("{OKTA_CB}?")) {
                failures.push(format!("{}\n    → redirected to {loc}", c.describe()));
            }
        }
    }
    failures.extend(next_leaks);

    // ---- nothing changed ----
    let after = snapshot(&s, &tok).await;
    let changed: Vec<String> = {
        let (b, a) = (&before.0, &after.0);
        let gone = b.iter().filter(|r| !a.contains(r)).map(|r| format!("- {r}"));
        let new = a.iter().filter(|r| !b.contains(r)).map(|r| format!("+ {r}"));
        gone.chain(new).map(|r| r.chars().take(400).collect()).collect()
    };
    // The admin is still signed in (no forged logout worked).
    let home = admin.get("/").await;

    let summary = by_cat
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "hostile: {} cases in {:.1} s ({summary}); answers {by_status:?}; {} failures; {} rows compared",
        cases.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
        before.0.len()
    );
    assert!(cases.len() >= 500, "only {} cases", cases.len());
    if !changed.is_empty() {
        eprintln!("data changed:\n{}", changed.join("\n"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        changed.is_empty(),
        "hostile requests changed the data:\n{}",
        changed.join("\n")
    );
    assert_eq!(before.1, after.1, "SCIM /Users listing changed");
    assert_eq!(before.2, after.2, "SCIM /Groups listing changed");
    assert_eq!(home.status, 200, "the admin's session ended: {home}");
    // The refresh token presented as a bearer did not burn the grant.
    let grants = roster::workspace::oauth::grants(&s.app).await.unwrap();
    assert_eq!(grants.len(), 1);
    s.stop().await;
}

/// `payload` does not occur raw in the page (nor any tag it opens), and
/// does occur once the page's escaping is undone.
#[track_caller]
fn assert_escaped(p: &Page, payload: &str, what: &str) {
    assert!(!p.text.contains(payload), "{what} shows {payload:?} unescaped:\n{p}");
    for (i, _) in payload.match_indices('<') {
        let tag: String = payload[i..].chars().take(8).collect();
        assert!(
            !p.text.contains(&tag),
            "{what} has the raw tag {tag:?} of {payload:?}:\n{p}"
        );
    }
    assert!(
        crate::support::html_unescape(&p.text).contains(payload),
        "{what} does not show {payload:?} at all:\n{p}"
    );
}

/// A JSON object with a member name given twice is ambiguous (RFC 8259
/// §4: "the behavior of software that receives such an object is
/// unpredictable"); a proxy or IdP log may read the first value while the
/// server applies the last. SCIM bodies with duplicate names must be
/// refused with 400 `invalidSyntax` and change nothing.
///
/// FAILS today: roster parses with last-one-wins and applies the request
/// (201/200), e.g. `{"userName":"dup1@…","userName":"dup2@…"}` creates
/// dup2@….
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_are_refused_not_last_one_wins() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;
    let seed = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(json!({"schemas": [USER_URN], "userName": "seed1@example.com", "displayName": "Seed"})),
    )
    .await;
    assert_eq!(seed.status, 201, "{seed}");
    let seed_id = seed.body["id"].as_str().unwrap().to_owned();
    let before = snapshot(&s, &tok).await;
    let mut wrong = Vec::new();
    for (m, p, b) in duplicate_key_bodies(&seed_id) {
        let c = case("dupkey", m, &p, SCIM_ERR).bearer(&tok).scim_json(b);
        let r = send(&s, &c).await;
        if let Err(e) = check(&c, &r).and_then(|()| match &r {
            Ok(r) if r.status == 400 => Ok(()),
            Ok(r) => Err(format!("want 400 invalidSyntax: {}", show(r))),
            Err(e) => Err(e.clone()),
        }) {
            wrong.push(format!("{}\n    → {e}", c.describe()));
        }
    }
    let after = snapshot(&s, &tok).await;
    assert!(wrong.is_empty(), "duplicate keys accepted:\n{}", wrong.join("\n"));
    assert_eq!(before.0, after.0, "duplicate-key requests changed the data");
    s.stop().await;
}

/// Pages answer errors with an HTML page (SPEC §4: they are for people);
/// the SCIM API already turns routing and extractor errors into SCIM
/// bodies, the pages do not.
///
/// FAILS today: `POST /login` and `POST /logout` with a body that is not
/// `application/x-www-form-urlencoded` get axum's plain-text 415 ("Form
/// requests must have `Content-Type: application/x-www-form-urlencoded`"),
/// and `PUT`/`DELETE`/`PATCH /oauth/authorize` an empty 405 with no
/// content type. Nothing is changed or leaked; only the shape is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_endpoints_answer_errors_with_html_pages() {
    let s = TestServer::start().await;
    let mut cases = Vec::new();
    for (ct, b) in [
        ("application/json", &b"{\"email\":\"x\"}"[..]),
        ("text/plain", b"email=x"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ] {
        for p in [
            "/login",
            "/logout",
            "/oauth/authorize",
            "/login/link",
            "/invite/accept",
            "/password/set",
        ] {
            cases.push(
                case("pages", "POST", p, Kind::Page(&[303]))
                    .h("content-type", ct)
                    .body(b),
            );
        }
    }
    for m in ["PUT", "DELETE", "PATCH"] {
        for p in ["/oauth/authorize", "/login", "/logout", "/"] {
            cases.push(case("pages", m, p, Kind::Page(&[])));
        }
    }
    let mut wrong = Vec::new();
    for c in &cases {
        let r = send(&s, c).await;
        if let Err(e) = check(c, &r) {
            wrong.push(format!("{}\n    → {e}", c.describe()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} page errors are not HTML pages:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    s.stop().await;
}

/// Slow-body protection: a client that sends its headers and then dribbles
/// the body is answered 408 (or cut off) once `limits.request_timeout`
/// has passed, on the SCIM API, the token endpoint and the sign-in form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_cut_off_by_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(dir.path());
    config.limits.request_timeout = Duration::from_secs(2);
    let s = TestServer::start_with(dir, config).await;
    let (tok, _) = connection(&s, "Okta").await;
    let before = snapshot(&s, &tok).await;
    let targets = [
        ("/scim/v2/Users", "application/scim+json", Some(tok.as_str())),
        ("/oauth/token", "application/x-www-form-urlencoded", None),
        ("/login", "application/x-www-form-urlencoded", None),
    ];
    for (path, ct, bearer) in targets {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(s.tls(&[&rustls::version::TLS13]))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let (mut rd, mut wr) = tokio::io::split(tls);
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {ct}\r\nContent-Length: 4000\r\n\r\n"
        );
        let started = Instant::now();
        wr.write_all(head.as_bytes()).await.unwrap();
        wr.flush().await.unwrap();
        // One byte every 200 ms: 4000 bytes would take 13 minutes.
        let dribble = tokio::spawn(async move {
            for _ in 0..200 {
                if wr.write_all(b"{").await.is_err() || wr.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if String::from_utf8_lossy(&out).contains("\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        let took = started.elapsed();
        dribble.abort();
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(read.is_ok(), "{path}: slow body still being read after 15 s: {text}");
        assert!(
            took >= Duration::from_millis(1500) && took <= Duration::from_secs(8),
            "{path}: answered after {took:?}, want about the 2 s request timeout: {text}"
        );
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{path}: want 408 or a closed connection, got: {text}"
        );
        if path.starts_with("/scim/") && !text.is_empty() {
            assert!(
                text.to_ascii_lowercase()
                    .contains("content-type: application/scim+json"),
                "{path}: the 408 is not a SCIM error: {text}"
            );
        }
        eprintln!(
            "slow body on {path}: {} after {took:?}",
            text.lines().next().unwrap_or("closed")
        );
    }
    let after = snapshot(&s, &tok).await;
    assert_eq!(before.0, after.0, "a cut-off request changed the data");
    s.stop().await;
}

// ------------------------------------------------------------ abuse limits

/// The token endpoint answers 429 with `Retry-After` and an RFC 6749 body
/// once one address has sent 120 requests in a minute (`TOKEN_PER_ADDRESS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_is_throttled_per_address() {
    let s = TestServer::start().await;
    let c = case("abuse", "POST", "/oauth/token", Kind::OAuth(&[]))
        .h("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=nobody&client_secret=x");
    let limit = roster::ratelimit::TOKEN_PER_ADDRESS.max;
    for i in 0..limit {
        let r = send(&s, &c).await.unwrap();
        assert_eq!(r.status, 401, "request {i}: {}", show(&r));
    }
    let r = send(&s, &c).await;
    check(&c, &r).unwrap();
    let r = r.unwrap();
    assert_eq!(r.status, 429, "{}", show(&r));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], json!("temporarily_unavailable"), "{}", show(&r));
    let retry: u64 = header(&r, "retry-after").parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{}", show(&r));
    s.stop().await;
}

/// Sign-in attempts are throttled per source address too (30 in five
/// minutes), even when every attempt names a different account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_per_address_across_accounts() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let limit = roster::ratelimit::LOGIN_PER_ADDRESS.max;
    let mut web = Web::new(&s);
    for i in 0..limit {
        let r = sign_in(&mut web, &format!("nobody{i}@example.com"), "wrong", "/").await;
        assert_eq!(r.status, 401, "attempt {i}: {r}");
    }
    // The next attempt, for an account never tried and with the right
    // password, is refused with 429 and Retry-After, as a page.
    let r = sign_in(&mut web, ADMIN, PASSWORD, "/").await;
    assert_eq!(r.status, 429, "{r}");
    assert!(
        r.header("content-type").unwrap_or_default().starts_with("text/html"),
        "{r}"
    );
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_default()
        .parse()
        .expect("Retry-After");
    assert!((1..=300).contains(&retry), "{r}");
    assert!(web.cookie("__Host-roster_session").is_none());
    s.stop().await;
}

/// Sessions end after 8 hours without activity, and after 7 days in all
/// however active (ASVS V3.3.2; `[web]` session_idle_minutes / max).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_absolutely() {
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    set_password(&s, ADMIN, PASSWORD).await;
    let idle = s.app.config.session_idle_ms;
    let max = s.app.config.session_max_ms;
    assert_eq!(idle, 8 * 3600 * 1000, "default idle timeout");
    assert_eq!(max, 7 * 24 * 3600 * 1000, "default absolute timeout");

    // Idle: activity just inside the window keeps it; one minute past ends it.
    let mut web = Web::new(&s);
    assert_eq!(sign_in(&mut web, ADMIN, PASSWORD, "/").await.status, 303);
    clock.advance_ms(idle - 60_000);
    assert_eq!(web.get("/").await.status, 200, "still inside the idle window");
    clock.advance_ms(idle - 60_000);
    assert_eq!(web.get("/").await.status, 200, "activity renewed the idle window");
    clock.advance_ms(idle + 60_000);
    let r = web.get("/").await;
    assert_eq!(r.status, 303, "idle session still valid: {r}");
    assert!(r.location().starts_with("/login"), "{r}");

    // Absolute: active every 7 hours, yet over after 7 days.
    let mut web = Web::new(&s);
    assert_eq!(sign_in(&mut web, ADMIN, PASSWORD, "/").await.status, 303);
    let step = 7 * 3600 * 1000;
    let mut elapsed = 0;
    while elapsed + step < max {
        clock.advance_ms(step);
        elapsed += step;
        let r = web.get("/").await;
        assert_eq!(r.status, 200, "active session ended early after {elapsed} ms: {r}");
    }
    clock.advance_ms(max - elapsed + 60_000);
    let r = web.get("/").await;
    assert_eq!(r.status, 303, "session outlived its absolute lifetime: {r}");
    s.stop().await;
}

/// Every page, including error pages and the signed-in home page, sends the
/// ASVS V14.4 headers: a strict CSP with `frame-ancestors 'none'`,
/// `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, HSTS,
/// `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_send_security_headers() {
    let s = TestServer::start().await;
    let mut admin = admin_web(&s).await;
    let mut anon = Web::new(&s);
    let mut pages = vec![
        ("home", admin.get("/").await),
        ("login", anon.get("/login").await),
        ("bad link", anon.get("/login/link?token=rst_login_garbage").await),
        (
            "unknown client",
            admin
                .get("/oauth/authorize?response_type=code&client_id=nobody&scope=scim")
                .await,
        ),
    ];
    pages.push(("csrf-less logout", admin.post_form("/logout", &[("csrf", "x")]).await));
    for (what, p) in &pages {
        assert!(p.status < 500, "{what}: {p}");
        let csp = p.header("content-security-policy").unwrap_or_default();
        for d in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(d), "{what}: CSP lacks {d:?}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}: {csp}"
        );
        assert_eq!(p.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(p.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(p.header("referrer-policy"), Some("no-referrer"), "{what}");
        let hsts = p.header("strict-transport-security").unwrap_or_default();
        let age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(age >= 15_552_000, "{what}: HSTS max-age under 180 days: {hsts:?}");
        assert_eq!(p.header("cache-control"), Some("no-store"), "{what}");
        assert!(p.header("access-control-allow-origin").is_none(), "{what}: CORS");
    }
    s.stop().await;
}

/// Each SCIM connection has its own request budget: over it, 429 with
/// Retry-After and a SCIM error body; other connections are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_requests_are_limited_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(dir.path());
    config.limits.scim_requests_per_minute = 60;
    let s = TestServer::start_with(dir, config).await;
    let a = roster::workspace::connections::create_static_token(&s.app, "a", roster::workspace::model::Actor::Operator)
        .await
        .unwrap()
        .token;
    let b = roster::workspace::connections::create_static_token(&s.app, "b", roster::workspace::model::Actor::Operator)
        .await
        .unwrap()
        .token;
    let get = |tok: &str| {
        hyper::Request::get("/scim/v2/Users?count=1")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {tok}"))
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap()
    };
    for i in 0..60 {
        assert_eq!(s.send(get(&a)).await.status, 200, "request {i} within the budget");
    }
    let r = s.send(get(&a)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.headers.get("retry-after").is_some());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["status"], "429");
    assert_eq!(s.send(get(&b)).await.status, 200, "another connection is not affected");
    s.stop().await;
}
