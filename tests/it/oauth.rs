//! The OAuth 2.0 authorization server over real HTTPS: Okta's
//! authorization-code dance, Entra's client credentials, the error paths of
//! RFC 6749 §4.1.2.1 and §5.2, code replay, refresh-token rotation and
//! reuse detection (RFC 9700 §4.14), PKCE (RFC 7636), metadata (RFC 8414),
//! revocation (RFC 7009), and the consent page's protections.

use std::collections::HashMap;

use base64::Engine;
use roster::workspace::model::{Actor, ClientKind};
use roster::workspace::oauth::{Registered, register};
use serde_json::{Value, json};

use crate::scim_support::{PATCH_URN, ROSTER_URN, USER_URN, connection, domain, scim};
use crate::support::{Page, TestServer, Web, fake_clock_now};

pub const OKTA_CB: &str = "https://system-admin.okta.com/admin/app/cpc/roster_1/oauth/callback";
pub const ADMIN: &str = "admin@localhost";
pub const PASSWORD: &str = "correct horse battery";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

// ---------------------------------------------------------------- helpers

/// Gives `email` (an existing member) the login password `pw`.
pub async fn set_password(s: &TestServer, email: &str, pw: &str) {
    let h = roster::password::hash(pw, &roster::clock::SystemRng::default()).unwrap();
    let email = email.to_owned();
    s.app
        .store
        .write(move |txn| {
            let id = roster::store::members::id_by_email_w(txn, &email)?.expect("member exists");
            let mut m = roster::store::members::get_w(txn, id)?.expect("member row");
            m.password_hash = Some(h.clone());
            roster::store::members::put(txn, &m)?;
            Ok(Ok::<(), ()>(()))
        })
        .await
        .unwrap()
        .unwrap();
}

/// GET /login?next=NEXT, then POST the form; returns the POST's answer.
pub async fn sign_in(web: &mut Web<'_>, email: &str, pw: &str, next: &str) -> Page {
    let form = web.get(&format!("/login?next={}", enc(next))).await;
    assert_eq!(form.status, 200, "login form: {form}");
    let csrf = form.input("csrf").expect("login form has a csrf field");
    let next_field = form.input("next").expect("login form has a next field");
    web.post_form(
        "/login",
        &[
            ("csrf", &csrf),
            ("next", &next_field),
            ("email", email),
            ("password", pw),
        ],
    )
    .await
}

/// A cookie jar signed in as the first admin.
pub async fn admin_web(s: &TestServer) -> Web<'_> {
    set_password(s, ADMIN, PASSWORD).await;
    let mut web = Web::new(s);
    let r = sign_in(&mut web, ADMIN, PASSWORD, "/").await;
    assert_eq!(r.status, 303, "admin sign-in: {r}");
    web
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The query parameters of a redirect target.
pub fn params_of(location: &str) -> HashMap<String, String> {
    let q = location.split_once('?').map(|x| x.1).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The usual Okta authorization request for `client`.
pub fn authz(client: &str, redirect: &str, state: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "scim"),
        ("state", state),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect()
}

fn authz_path(pairs: &[(String, String)]) -> String {
    let p: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    format!("/oauth/authorize?{}", query(&p))
}

const CONSENT_FIELDS: [&str; 8] = [
    "csrf",
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Posts the consent form of `page` with `decision`, as a browser would.
async fn submit_consent(web: &mut Web<'_>, page: &Page, decision: &str) -> Page {
    assert_eq!(page.status, 200, "consent page: {page}");
    let values: Vec<(&str, String)> = CONSENT_FIELDS
        .iter()
        .map(|f| {
            (
                *f,
                page.input(f)
                    .unwrap_or_else(|| panic!("consent form lacks {f}: {page}")),
            )
        })
        .collect();
    let mut pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("decision", decision));
    web.post_form("/oauth/authorize", &pairs).await
}

/// Consent as the signed-in `web` and return the code from the redirect.
pub async fn code_via(web: &mut Web<'_>, pairs: &[(String, String)]) -> String {
    let page = web.get(&authz_path(pairs)).await;
    let r = submit_consent(web, &page, "confirm").await;
    assert_eq!(r.status, 303, "consent confirm: {r}");
    let p = params_of(&r.location());
    p.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {}", r.location()))
}

async fn okta_client(s: &TestServer) -> (String, String) {
    // Client names are unique (issue 18): a second Okta app gets a number.
    let n = roster::workspace::oauth::list(&s.app).await.unwrap().len();
    let name = if n == 0 {
        "Okta".to_owned()
    } else {
        format!("Okta {}", n + 1)
    };
    let r = register(
        &s.app,
        &name,
        vec![OKTA_CB.into()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();
    (r.client.client_id, r.secret.expect("confidential clients get a secret"))
}

async fn client_of(s: &TestServer, name: &str, kind: ClientKind, redirects: &[&str]) -> Registered {
    register(
        &s.app,
        name,
        redirects.iter().map(|r| (*r).to_owned()).collect(),
        kind,
        false,
        Actor::Operator,
    )
    .await
    .unwrap()
}

/// A token-endpoint (or revocation-endpoint) answer.
#[derive(Debug)]
pub struct Tok {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Tok {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
    fn s(&self, k: &str) -> String {
        self.body[k]
            .as_str()
            .unwrap_or_else(|| panic!("no string {k:?} in {self}"))
            .to_owned()
    }
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {:?}\n{}", self.status, self.headers, self.text)
    }
}

/// `Authorization: Basic` per RFC 6749 §2.3.1 (both parts form-encoded).
fn basic(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

async fn post_raw(s: &TestServer, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Tok {
    let mut b = hyper::Request::post(path).header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = s
        .send(
            b.body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                .unwrap(),
        )
        .await;
    let text = r.text();
    Tok {
        status: r.status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers: r.headers,
        text,
    }
}

/// POSTs a form to `path`, with HTTP Basic client auth when `auth` is given.
async fn post(s: &TestServer, path: &str, pairs: &[(&str, &str)], auth: Option<(&str, &str)>) -> Tok {
    let auth_header = auth.map(|(i, sec)| basic(i, sec));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth_header {
        headers.push(("authorization", a.as_str()));
    }
    post_raw(s, path, &headers, query(pairs).into_bytes()).await
}

async fn token(s: &TestServer, pairs: &[(&str, &str)], auth: Option<(&str, &str)>) -> Tok {
    post(s, "/oauth/token", pairs, auth).await
}

pub async fn exchange(s: &TestServer, code: &str, id: &str, secret: &str) -> Tok {
    token(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", OKTA_CB),
        ],
        Some((id, secret)),
    )
    .await
}

async fn refresh(s: &TestServer, rt: &str, id: &str, secret: &str) -> Tok {
    token(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id),
            ("client_secret", secret),
        ],
        None,
    )
    .await
}

/// Asserts an RFC 6749 §5.2 error body.
#[track_caller]
fn assert_oauth_error(t: &Tok, status: u16, error: &str) {
    assert_eq!(t.status, status, "want {status} {error}; got {t}");
    assert_eq!(t.body["error"], json!(error), "error code: {t}");
    assert!(
        t.body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
        "error_description: {t}"
    );
    assert!(
        t.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "content-type: {t}"
    );
    assert_eq!(t.header("cache-control"), Some("no-store"), "cache-control: {t}");
}

#[track_caller]
fn assert_tokens(t: &Tok, with_refresh: bool) {
    assert_eq!(t.status, 200, "token response: {t}");
    assert!(t.s("access_token").starts_with("rst_at_"), "{t}");
    assert_eq!(t.body["token_type"], json!("Bearer"), "{t}");
    assert_eq!(t.body["scope"], json!("scim"), "{t}");
    assert_eq!(t.header("cache-control"), Some("no-store"), "{t}");
    if with_refresh {
        assert!(t.s("refresh_token").starts_with("rst_rt_"), "{t}");
    } else {
        assert!(t.body.get("refresh_token").is_none(), "no refresh token expected: {t}");
    }
}

async fn scim_status(s: &TestServer, token: &str) -> u16 {
    scim(s, "GET", "/Users", Some(token), None).await.status
}

/// The signed-in admin confirms for Okta; returns (client id, secret, code).
async fn okta_code(s: &TestServer, web: &mut Web<'_>) -> (String, String, String) {
    let (id, secret) = okta_client(s).await;
    let code = code_via(web, &authz(&id, OKTA_CB, "st")).await;
    (id, secret, code)
}

/// A full Okta connection: (client id, secret, token response).
async fn okta_tokens(s: &TestServer, web: &mut Web<'_>) -> (String, String, Tok) {
    let (id, secret, code) = okta_code(s, web).await;
    let t = exchange(s, &code, &id, &secret).await;
    assert_tokens(&t, true);
    (id, secret, t)
}

fn assert_not_redirected(p: &Page, status: u16) {
    assert_eq!(p.status, status, "{p}");
    assert!(p.header("location").is_none(), "must not redirect: {p}");
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn okta_dance_consent_code_tokens_refresh_and_revoke() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let (id, secret) = okta_client(&s).await;
    let mut web = Web::new(&s);

    // Not signed in: to the login page, carrying the request along.
    let authorize = authz_path(&authz(&id, OKTA_CB, "xyz-state"));
    let r = web.get(&authorize).await;
    assert_eq!(r.status, 303, "{r}");
    let to_login = r.location();
    assert!(to_login.starts_with("/login?"), "{to_login}");
    let next = params_of(&to_login)["next"].clone();
    assert_eq!(next, authorize, "next carries the authorize request");

    // Sign in with that `next`: back to the authorization request.
    let form = web.get(&to_login).await;
    assert_eq!(form.status, 200, "{form}");
    assert!(web.cookie("__Host-roster_csrf").is_some(), "pre-sign-in CSRF cookie");
    let csrf = form.input("csrf").unwrap();
    assert_eq!(form.input("next").as_deref(), Some(authorize.as_str()), "{form}");
    let r = web
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("next", &next),
                ("email", ADMIN),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.location(), authorize);

    // The consent page.
    let page = web.get(&authorize).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.text.contains("Okta"), "names the client: {page}");
    assert!(page.text.contains("My workspace"), "names the workspace: {page}");
    let csp = page.header("content-security-policy").unwrap_or_default().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let form_action = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action"))
        .unwrap_or_default();
    assert!(
        form_action.contains("'self'") && form_action.contains("https://system-admin.okta.com"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("access-control-allow-origin").is_none(), "no CORS: {page}");

    // Confirm: 303 (RFC 9700 §4.12) with code, state and iss (RFC 9207).
    let r = submit_consent(&mut web, &page, "confirm").await;
    assert_eq!(r.status, 303, "{r}");
    let loc = r.location();
    assert!(loc.starts_with(&format!("{OKTA_CB}?")), "{loc}");
    let p = params_of(&loc);
    assert_eq!(p["state"], "xyz-state");
    assert_eq!(p["iss"], s.app.config.public_url);
    assert!(!p.contains_key("error"), "{loc}");
    let code = p["code"].clone();
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{r}");

    // Token, client_secret_basic.
    let t = exchange(&s, &code, &id, &secret).await;
    assert_tokens(&t, true);
    assert_eq!(t.body["expires_in"], json!(3600), "{t}");
    let (at1, rt1) = (t.s("access_token"), t.s("refresh_token"));
    assert_eq!(scim_status(&s, &at1).await, 200);

    // Refresh, client_secret_post: a new pair; the old access token lives on.
    let t2 = refresh(&s, &rt1, &id, &secret).await;
    assert_tokens(&t2, true);
    let (at2, rt2) = (t2.s("access_token"), t2.s("refresh_token"));
    assert_ne!(at2, at1);
    assert_ne!(rt2, rt1, "refresh tokens rotate");
    assert_eq!(scim_status(&s, &at1).await, 200, "old access token valid until expiry");
    assert_eq!(scim_status(&s, &at2).await, 200);

    // RFC 7009: revoking the refresh token ends the grant.
    let rv = post(&s, "/oauth/revoke", &[("token", &rt2)], Some((&id, &secret))).await;
    assert_eq!(rv.status, 200, "{rv}");
    assert_eq!(scim_status(&s, &at1).await, 401);
    assert_eq!(scim_status(&s, &at2).await, 401);
}

#[tokio::test]
async fn cancel_redirects_access_denied_with_state_and_iss() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, _) = okta_client(&s).await;
    let page = web.get(&authz_path(&authz(&id, OKTA_CB, "s-cancel"))).await;
    let r = submit_consent(&mut web, &page, "cancel").await;
    assert_eq!(r.status, 303, "{r}");
    let loc = r.location();
    assert!(loc.starts_with(OKTA_CB), "{loc}");
    let p = params_of(&loc);
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"), "{loc}");
    assert_eq!(p.get("state").map(String::as_str), Some("s-cancel"), "{loc}");
    assert_eq!(p.get("iss"), Some(&s.app.config.public_url), "{loc}");
    assert!(!p.contains_key("code"), "{loc}");
}

#[tokio::test]
async fn entra_client_credentials_for_service_clients_only() {
    let s = TestServer::start().await;
    // A redirect URI is registered, so only the kind stops the code flow.
    let svc = client_of(&s, "Entra", ClientKind::Service, &[OKTA_CB]).await;
    let (sid, ssec) = (svc.client.client_id.clone(), svc.secret.clone().unwrap());

    // client_secret_basic.
    let t = token(&s, &[("grant_type", "client_credentials")], Some((&sid, &ssec))).await;
    assert_tokens(&t, false);
    let ttl = t.body["expires_in"].as_i64().unwrap_or_default();
    assert!((3600..=21600).contains(&ttl), "Entra wants 60 min - 6 h: {t}");
    // client_secret_post.
    let t2 = token(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &sid),
            ("client_secret", &ssec),
        ],
        None,
    )
    .await;
    assert_tokens(&t2, false);

    // The token works on SCIM and what it creates is managed.
    let at = t.s("access_token");
    let body = json!({"schemas": [USER_URN], "userName": "ent@example.com",
        "emails": [{"value": "ent@example.com", "primary": true}]});
    let r = scim(&s, "POST", "/Users", Some(&at), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body[ROSTER_URN]["managed"], json!(true), "{r}");
    assert_eq!(scim_status(&s, &t2.s("access_token")).await, 200);

    // A confidential client may not use client_credentials.
    let (cid, csec) = okta_client(&s).await;
    let t = token(&s, &[("grant_type", "client_credentials")], Some((&cid, &csec))).await;
    assert_oauth_error(&t, 400, "unauthorized_client");

    // A service client may not use authorization_code.
    let t = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", "rst_ac_whatever"),
            ("redirect_uri", OKTA_CB),
        ],
        Some((&sid, &ssec)),
    )
    .await;
    assert_oauth_error(&t, 400, "unauthorized_client");

    // Nor send people to /oauth/authorize: a page, never a redirect.
    let mut web = admin_web(&s).await;
    let p = web.get(&authz_path(&authz(&sid, OKTA_CB, "x"))).await;
    assert_not_redirected(&p, 400);
    assert!(p.text.contains("server-to-server"), "{p}");
}

#[tokio::test]
async fn authorization_request_errors_follow_rfc6749_4_1_2_1() {
    let s = TestServer::start().await;
    let (id, _) = okta_client(&s).await;
    let public = client_of(&s, "Native", ClientKind::Public, &[OKTA_CB]).await;
    let mut web = Web::new(&s);

    // Client or redirect URI problems: a page, never a redirect.
    let p = web
        .get(&authz_path(&authz("rc_000000000000000000000000", OKTA_CB, "a")))
        .await;
    assert_not_redirected(&p, 400);
    assert!(
        p.header("content-type").unwrap_or_default().starts_with("text/html"),
        "{p}"
    );
    let p = web.get(&authz_path(&authz(&id, "https://evil.example/cb", "a"))).await;
    assert_not_redirected(&p, 400);
    assert!(!p.text.contains("evil.example/cb\""), "{p}");
    // A parameter given twice (RFC 6749 §3.1).
    let p = web
        .get(&format!("{}&state=second", authz_path(&authz(&id, OKTA_CB, "first"))))
        .await;
    assert_not_redirected(&p, 400);

    // Everything else goes back to the client, with state and iss.
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing response_type",
            authz(&id, OKTA_CB, "s1")
                .into_iter()
                .filter(|(k, _)| k != "response_type")
                .collect(),
            "invalid_request",
        ),
        (
            "response_type=token",
            authz(&id, OKTA_CB, "s1")
                .into_iter()
                .map(|(k, v)| {
                    if k == "response_type" {
                        (k, "token".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "unsupported_response_type",
        ),
        (
            "scope=admin",
            authz(&id, OKTA_CB, "s1")
                .into_iter()
                .map(|(k, v)| if k == "scope" { (k, "admin".into()) } else { (k, v) })
                .collect(),
            "invalid_scope",
        ),
        (
            "code_challenge_method=plain",
            {
                let mut v = authz(&id, OKTA_CB, "s1");
                v.push(("code_challenge".into(), VERIFIER.into()));
                v.push(("code_challenge_method".into(), "plain".into()));
                v
            },
            "invalid_request",
        ),
        (
            "public client without PKCE",
            authz(&public.client.client_id, OKTA_CB, "s1"),
            "invalid_request",
        ),
    ];
    for (what, pairs, error) in cases {
        let r = web.get(&authz_path(&pairs)).await;
        assert_eq!(r.status, 303, "{what}: {r}");
        let loc = r.location();
        assert!(loc.starts_with(&format!("{OKTA_CB}?")), "{what}: {loc}");
        let p = params_of(&loc);
        assert_eq!(p.get("error").map(String::as_str), Some(error), "{what}: {loc}");
        assert_eq!(p.get("state").map(String::as_str), Some("s1"), "{what}: {loc}");
        assert_eq!(p.get("iss"), Some(&s.app.config.public_url), "{what}: {loc}");
        assert!(!p.contains_key("code"), "{what}: {loc}");
    }
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749_5_2() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, secret, code) = okta_code(&s, &mut web).await;
    let (bid, bsec) = okta_client(&s).await;
    let code_pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", OKTA_CB),
    ];

    // Wrong secret via Basic: 401 and a Basic challenge (§5.2).
    let t = token(
        &s,
        &code_pairs,
        Some((&id, "rst_cs_wrongwrongwrongwrongwrongwrongwrongwrong")),
    )
    .await;
    assert_oauth_error(&t, 401, "invalid_client");
    assert!(
        t.header("www-authenticate").unwrap_or_default().starts_with("Basic"),
        "{t}"
    );
    // Wrong secret in the body: 401 too.
    let mut p = code_pairs.to_vec();
    p.extend([("client_id", id.as_str()), ("client_secret", "not-the-secret")]);
    let t = token(&s, &p, None).await;
    assert_oauth_error(&t, 401, "invalid_client");
    // Unknown client.
    let t = token(&s, &code_pairs, Some(("rc_nobody", &secret))).await;
    assert_oauth_error(&t, 401, "invalid_client");
    // Two authentication methods at once.
    let mut p = code_pairs.to_vec();
    p.push(("client_secret", &secret));
    let t = token(&s, &p, Some((&id, &secret))).await;
    assert_oauth_error(&t, 400, "invalid_request");
    // Missing grant_type.
    let t = token(&s, &[("code", &code), ("redirect_uri", OKTA_CB)], Some((&id, &secret))).await;
    assert_oauth_error(&t, 400, "invalid_request");
    // Unsupported grant type.
    let t = token(
        &s,
        &[("grant_type", "password"), ("username", ADMIN), ("password", PASSWORD)],
        Some((&id, &secret)),
    )
    .await;
    assert_oauth_error(&t, 400, "unsupported_grant_type");
    // Body not form-encoded.
    let t = post_raw(
        &s,
        "/oauth/token",
        &[
            ("content-type", "application/json"),
            ("authorization", &basic(&id, &secret)),
        ],
        serde_json::to_vec(&json!({"grant_type": "authorization_code", "code": code, "redirect_uri": OKTA_CB}))
            .unwrap(),
    )
    .await;
    assert_oauth_error(&t, 400, "invalid_request");
    // The code used by another client.
    let t = token(&s, &code_pairs, Some((&bid, &bsec))).await;
    assert_oauth_error(&t, 400, "invalid_grant");
    // The wrong redirect_uri.
    let t = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            (
                "redirect_uri",
                "https://system-admin.okta.com/admin/app/cpc/other/oauth/callback",
            ),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_oauth_error(&t, 400, "invalid_grant");
    // An unknown code.
    let t = exchange(&s, "rst_ac_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &id, &secret).await;
    assert_oauth_error(&t, 400, "invalid_grant");

    // None of that consumed the code: the rightful exchange still works.
    let t = exchange(&s, &code, &id, &secret).await;
    assert_tokens(&t, true);
}

#[tokio::test]
async fn code_replay_is_refused_and_revokes_the_first_exchange() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, secret, code) = okta_code(&s, &mut web).await;
    let first = exchange(&s, &code, &id, &secret).await;
    assert_tokens(&first, true);
    let at = first.s("access_token");
    assert_eq!(scim_status(&s, &at).await, 200);

    let again = exchange(&s, &code, &id, &secret).await;
    assert_oauth_error(&again, 400, "invalid_grant");
    assert_eq!(
        scim_status(&s, &at).await,
        401,
        "tokens from the replayed code are revoked"
    );
    let r = refresh(&s, &first.s("refresh_token"), &id, &secret).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let grants = roster::workspace::oauth::grants(&s.app).await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert!(grants[0].grant.revoked_ms.is_some(), "{grants:?}");
}

#[tokio::test]
async fn refresh_reuse_within_grace_is_tolerated_after_it_revokes_the_grant() {
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    let mut web = admin_web(&s).await;
    let (id, secret, t1) = okta_tokens(&s, &mut web).await;
    let rt1 = t1.s("refresh_token");

    let t2 = refresh(&s, &rt1, &id, &secret).await;
    assert_tokens(&t2, true);
    // A concurrent double refresh: RT1 again inside the grace window.
    let t3 = refresh(&s, &rt1, &id, &secret).await;
    assert_tokens(&t3, true);
    for t in [&t1, &t2, &t3] {
        assert_eq!(scim_status(&s, &t.s("access_token")).await, 200);
    }

    clock.advance_ms(31_000);
    let t4 = refresh(&s, &rt1, &id, &secret).await;
    assert_oauth_error(&t4, 400, "invalid_grant");
    for t in [&t1, &t2, &t3] {
        assert_eq!(scim_status(&s, &t.s("access_token")).await, 401, "grant revoked");
    }
    for rt in [t2.s("refresh_token"), t3.s("refresh_token")] {
        assert_oauth_error(&refresh(&s, &rt, &id, &secret).await, 400, "invalid_grant");
    }
    let grants = roster::workspace::oauth::grants(&s.app).await.unwrap();
    assert!(grants.iter().all(|g| g.grant.revoked_ms.is_some()), "{grants:?}");
}

#[tokio::test]
async fn pkce_s256_is_enforced_and_cannot_be_downgraded() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let public = client_of(&s, "Native", ClientKind::Public, &[OKTA_CB]).await;
    let pid = public.client.client_id.clone();
    let with_pkce = |state: &str| {
        let mut v = authz(&pid, OKTA_CB, state);
        v.push(("code_challenge".into(), CHALLENGE.into()));
        v.push(("code_challenge_method".into(), "S256".into()));
        v
    };
    let pub_exchange = |code: String, verifier: Option<&'static str>| {
        let pid = pid.clone();
        let s = &s;
        async move {
            let mut p = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", OKTA_CB.to_owned()),
                ("client_id", pid),
            ];
            if let Some(v) = verifier {
                p.push(("code_verifier", v.to_owned()));
            }
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(s, &p, None).await
        }
    };

    let code = code_via(&mut web, &with_pkce("p1")).await;
    let t = pub_exchange(code, Some(VERIFIER)).await;
    assert_tokens(&t, true);

    let code = code_via(&mut web, &with_pkce("p2")).await;
    let t = pub_exchange(code, Some("wrong-verifier-wrong-verifier-wrong-verifier-00")).await;
    assert_oauth_error(&t, 400, "invalid_grant");

    let code = code_via(&mut web, &with_pkce("p3")).await;
    let t = pub_exchange(code, None).await;
    assert_oauth_error(&t, 400, "invalid_grant");

    // A confidential client's code issued without a challenge, redeemed
    // with a verifier: a downgrade attempt (RFC 9700 §4.8.2).
    let (id, secret, code) = okta_code(&s, &mut web).await;
    let t = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", OKTA_CB),
            ("code_verifier", VERIFIER),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_oauth_error(&t, 400, "invalid_grant");
}

#[tokio::test]
async fn codes_expire_after_a_minute_and_access_tokens_after_an_hour() {
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    let mut web = admin_web(&s).await;
    let (id, secret, code) = okta_code(&s, &mut web).await;
    clock.advance_ms(61_000);
    let t = exchange(&s, &code, &id, &secret).await;
    assert_oauth_error(&t, 400, "invalid_grant");

    let code = code_via(&mut web, &authz(&id, OKTA_CB, "fresh")).await;
    let t = exchange(&s, &code, &id, &secret).await;
    assert_tokens(&t, true);
    let at = t.s("access_token");
    assert_eq!(scim_status(&s, &at).await, 200);
    clock.advance_ms(3_599_000);
    assert_eq!(scim_status(&s, &at).await, 200, "still inside its hour");
    clock.advance_ms(2_000);
    assert_eq!(scim_status(&s, &at).await, 401, "expired after 3600 s");
}

/// Rows per table: (sessions, member→session index, links, member→link
/// index, codes, access tokens, refresh tokens, grant→token index).
async fn row_counts(s: &TestServer) -> [u64; 8] {
    use roster::store::tables::*;
    s.app
        .store
        .read(|txn| {
            let n = |len: Result<u64, redb::StorageError>| len.map_err(roster::store::StoreError::from);
            use redb::ReadableTableMetadata as M;
            Ok([
                n(M::len(&txn.open_table(SESSIONS)?))?,
                n(M::len(&txn.open_table(MEMBER_SESSIONS)?))?,
                n(M::len(&txn.open_table(ONE_TIME_LINKS)?))?,
                n(M::len(&txn.open_table(MEMBER_LINKS)?))?,
                n(M::len(&txn.open_table(OAUTH_CODES)?))?,
                n(M::len(&txn.open_table(ACCESS_TOKENS)?))?,
                n(M::len(&txn.open_table(REFRESH_TOKENS)?))?,
                n(M::len(&txn.open_table(GRANT_TOKENS)?))?,
            ])
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn housekeeping_deletes_expired_rows_with_their_index_rows_and_keeps_live_ones() {
    use roster::workspace::housekeeping::{Swept, sweep};
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    let mut web = admin_web(&s).await;
    let (id, secret, t1) = okta_tokens(&s, &mut web).await;
    // A member provisioned on a verified domain: a 3-day set-password link.
    domain(&s, "example.org", true).await;
    let (static_tok, _) = connection(&s, "Entra static").await;
    let body = json!({"schemas": [USER_URN], "userName": "lee@example.org"});
    assert_eq!(
        scim(&s, "POST", "/Users", Some(&static_tok), Some(body)).await.status,
        201
    );

    // Nothing has expired: nothing goes.
    let before = row_counts(&s).await;
    assert_eq!(sweep(&s.app).await.unwrap(), Swept::default());
    assert_eq!(row_counts(&s).await, before);
    let [sessions, _, links, _, _, access, refreshes, _] = before;
    assert!(
        sessions >= 1 && links >= 1 && access >= 1 && refreshes >= 1,
        "{before:?}"
    );

    // Two hours on: the access token (1 h) and the code (60 s) have
    // expired; the session (8 h idle), the link and the refresh token live.
    clock.advance_ms(2 * 3_600_000);
    let swept = sweep(&s.app).await.unwrap();
    assert_eq!(swept.access_tokens, 1, "{swept:?}");
    assert_eq!(
        (swept.sessions, swept.links, swept.refresh_tokens),
        (0, 0, 0),
        "{swept:?}"
    );
    let after = row_counts(&s).await;
    assert_eq!(after[5], access - 1, "{after:?}");
    assert_eq!(
        after[7],
        after[5] + after[6],
        "grant index rows follow the tokens: {after:?}"
    );
    assert_eq!(scim_status(&s, &t1.s("access_token")).await, 401);
    let t2 = refresh(&s, &t1.s("refresh_token"), &id, &secret).await;
    assert_tokens(&t2, true);
    assert_eq!(scim_status(&s, &t2.s("access_token")).await, 200);
    assert_eq!(web.get("/").await.status, 200, "the admin's session still works");

    // Eight days on: sessions (7 days at most) and the 3-day link are gone
    // too, each with its index row; a second sweep finds nothing.
    clock.advance_ms(8 * 24 * 3_600_000);
    let swept = sweep(&s.app).await.unwrap();
    assert!(
        swept.sessions >= 1 && swept.links >= 1 && swept.access_tokens >= 1,
        "{swept:?}"
    );
    let [
        sessions,
        member_sessions,
        links,
        member_links,
        _,
        access,
        refreshes,
        grant_tokens,
    ] = row_counts(&s).await;
    assert_eq!((sessions, member_sessions), (0, 0));
    assert_eq!(links, member_links, "link index rows follow the links");
    assert_eq!(grant_tokens, access + refreshes, "grant index rows follow the tokens");
    assert_eq!(sweep(&s.app).await.unwrap(), Swept::default());
    let r = web.get("/").await;
    assert!(
        r.status == 303 || r.status == 302,
        "signed out once the session is gone: {r}"
    );
}

/// A member (role member) on a verified domain, created over SCIM, with a password.
pub async fn plain_member(s: &TestServer, email: &str) -> (String, String) {
    let dom = email.split('@').nth(1).unwrap().to_owned();
    domain(s, &dom, true).await;
    let (tok, _) = connection(s, "Okta static").await;
    let body = json!({"schemas": [USER_URN], "userName": email,
        "emails": [{"value": email, "primary": true}]});
    let r = scim(s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    set_password(s, email, PASSWORD).await;
    (tok, r.body["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn non_admins_cannot_connect_an_identity_provider() {
    let s = TestServer::start().await;
    let (id, _) = okta_client(&s).await;
    plain_member(&s, "mia@example.com").await;
    let mut web = Web::new(&s);
    let r = sign_in(&mut web, "mia@example.com", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{r}");

    let pairs = authz(&id, OKTA_CB, "m");
    let p = web.get(&authz_path(&pairs)).await;
    assert_not_redirected(&p, 403);
    assert!(
        p.text
            .contains("Only workspace admins can connect an identity provider"),
        "{p}"
    );

    // Posting the consent form anyway.
    let home = web.get("/").await;
    let csrf = home.input("csrf").expect("home page carries the session csrf");
    let mut form: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend([("csrf", csrf.as_str()), ("decision", "confirm")]);
    let r = web.post_form("/oauth/authorize", &form).await;
    assert_not_redirected(&r, 403);
    assert!(!r.text.contains("code="), "{r}");
}

#[tokio::test]
async fn consent_and_login_forms_require_csrf() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, _) = okta_client(&s).await;
    let pairs = authz(&id, OKTA_CB, "c");
    let page = web.get(&authz_path(&pairs)).await;
    assert_eq!(page.status, 200, "{page}");
    let mut form: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.push(("decision", "confirm"));
    let r = web.post_form("/oauth/authorize", &form).await;
    assert_not_redirected(&r, 403);
    form.push(("csrf", "0123456789abcdef0123456789abcdef0123456789abcdef"));
    let r = web.post_form("/oauth/authorize", &form).await;
    assert_not_redirected(&r, 403);
    assert!(roster::workspace::oauth::grants(&s.app).await.unwrap().is_empty());

    // Sign-in without the double-submit cookie.
    let mut other = Web::new(&s);
    let f = other.get("/login").await;
    let csrf = f.input("csrf").unwrap();
    let mut bare = Web::new(&s);
    let r = bare
        .post_form(
            "/login",
            &[("csrf", &csrf), ("next", "/"), ("email", ADMIN), ("password", PASSWORD)],
        )
        .await;
    assert_not_redirected(&r, 403);
    assert!(bare.cookie("__Host-roster_session").is_none());
}

#[tokio::test]
async fn metadata_rfc8414() {
    let s = TestServer::start().await;
    let r = s.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(r.status, 200);
    let m: Value = serde_json::from_slice(&r.body).unwrap();
    let base = s.app.config.public_url.clone();
    assert_eq!(m["issuer"], json!(base));
    assert_eq!(m["authorization_endpoint"], json!(format!("{base}/oauth/authorize")));
    assert_eq!(m["token_endpoint"], json!(format!("{base}/oauth/token")));
    assert_eq!(m["revocation_endpoint"], json!(format!("{base}/oauth/revoke")));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    let grants = m["grant_types_supported"].as_array().cloned().unwrap_or_default();
    for g in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grants.contains(&json!(g)), "{m}");
    }
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], json!(true));
    let auth = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(auth.contains(&json!("client_secret_basic")) && auth.contains(&json!("client_secret_post")));
}

#[tokio::test]
async fn grants_are_listed_with_last_use_and_revocable() {
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    let mut web = admin_web(&s).await;
    let (_, _, t) = okta_tokens(&s, &mut web).await;
    let at = t.s("access_token");

    let gs = roster::workspace::oauth::grants(&s.app).await.unwrap();
    assert_eq!(gs.len(), 1, "{gs:?}");
    assert_eq!(gs[0].client_name, "Okta");
    assert_eq!(gs[0].authorized_by.as_deref(), Some(ADMIN));
    assert!(gs[0].grant.revoked_ms.is_none());
    let grant_id = gs[0].grant.id;

    async fn last_used(s: &TestServer) -> Option<i64> {
        roster::workspace::oauth::grants(&s.app).await.unwrap()[0]
            .grant
            .last_used_ms
    }
    async fn wait_last_used(s: &TestServer, want: i64) -> Option<i64> {
        for _ in 0..100 {
            if last_used(s).await == Some(want) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        last_used(s).await
    }
    use roster::clock::Clock;
    assert_eq!(scim_status(&s, &at).await, 200);
    let t1 = clock.now_ms();
    assert_eq!(wait_last_used(&s, t1).await, Some(t1), "last_used after a SCIM call");
    clock.advance_ms(61_000);
    assert_eq!(scim_status(&s, &at).await, 200);
    let t2 = clock.now_ms();
    assert_eq!(wait_last_used(&s, t2).await, Some(t2), "last_used moves on");

    roster::workspace::oauth::revoke_grant(&s.app, &grant_id.to_string(), Actor::Operator)
        .await
        .unwrap();
    assert_eq!(scim_status(&s, &at).await, 401, "revocation takes effect at once");
}

#[tokio::test]
async fn okta_callback_urls_are_registrable() {
    let s = TestServer::start().await;
    let https = [
        "https://system-admin.okta.com/admin/app/cpc/roster_1/oauth/callback",
        "https://system-admin.okta-emea.com/admin/app/cpc/roster_1/oauth/callback",
        "https://system-admin.oktapreview.com/admin/app/cpc/roster_1/oauth/callback",
        "https://system-admin.trexcloud.com/admin/app/cpc/roster_1/oauth/callback",
    ];
    let insecure = "http://system-admin.okta1.com:1802/admin/app/cpc/roster_1/oauth/callback";
    let c = client_of(&s, "Okta all regions", ClientKind::Confidential, &https).await;
    assert_eq!(c.client.redirect_uris, https.to_vec());

    let refused = register(
        &s.app,
        "Okta preview",
        vec![insecure.into()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await;
    assert!(refused.is_err(), "plain http needs allow_insecure_redirect");
    let ok = register(
        &s.app,
        "Okta preview",
        vec![insecure.into()],
        ClientKind::Confidential,
        true,
        Actor::Operator,
    )
    .await
    .expect("http okta1 callback with allow_insecure_redirect");

    // And the flow works to each of them.
    let mut web = admin_web(&s).await;
    for cb in https {
        let page = web.get(&authz_path(&authz(&c.client.client_id, cb, "r"))).await;
        let r = submit_consent(&mut web, &page, "confirm").await;
        assert!(r.location().starts_with(&format!("{cb}?code=")), "{r}");
    }
    let page = web.get(&authz_path(&authz(&ok.client.client_id, insecure, "r"))).await;
    let r = submit_consent(&mut web, &page, "confirm").await;
    assert!(r.location().starts_with(&format!("{insecure}?code=")), "{r}");
}

#[tokio::test]
async fn awkward_state_round_trips_exactly_and_is_escaped_on_the_page() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, secret) = okta_client(&s).await;
    let state = "\"><script>alert(1)</script> a&b=c%20d/é+?";
    // Okta may send no scope: roster grants "scim".
    let pairs: Vec<(String, String)> = authz(&id, OKTA_CB, state)
        .into_iter()
        .filter(|(k, _)| k != "scope")
        .collect();
    let page = web.get(&authz_path(&pairs)).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(!page.text.contains("<script>alert(1)"), "state must be escaped: {page}");
    let r = submit_consent(&mut web, &page, "confirm").await;
    assert_eq!(r.status, 303, "{r}");
    let p = params_of(&r.location());
    assert_eq!(p.get("state").map(String::as_str), Some(state), "{}", r.location());
    let t = exchange(&s, &p["code"], &id, &secret).await;
    assert_tokens(&t, true);
}

#[tokio::test]
async fn two_client_secrets_live_during_rotation() {
    let s = TestServer::start().await;
    let svc = client_of(&s, "Entra", ClientKind::Service, &[]).await;
    let id = svc.client.client_id.clone();
    let s1 = svc.secret.clone().unwrap();
    let cc = |sec: String| {
        let id = id.clone();
        let s = &s;
        async move { token(s, &[("grant_type", "client_credentials")], Some((&id, &sec))).await }
    };
    let s2 = roster::workspace::oauth::rotate_secret(&s.app, &id, Actor::Operator)
        .await
        .unwrap();
    assert_tokens(&cc(s1.clone()).await, false);
    assert_tokens(&cc(s2.clone()).await, false);
    let s3 = roster::workspace::oauth::rotate_secret(&s.app, &id, Actor::Operator)
        .await
        .unwrap();
    assert_oauth_error(&cc(s1).await, 401, "invalid_client");
    assert_tokens(&cc(s2).await, false);
    assert_tokens(&cc(s3).await, false);
}

#[tokio::test]
async fn revocation_rfc7009_only_touches_the_callers_own_tokens() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let (id, secret, t) = okta_tokens(&s, &mut web).await;
    let (oid, osec) = okta_client(&s).await;
    let at = t.s("access_token");

    // Another client cannot revoke it (answered 200, nothing happens).
    let r = post(&s, "/oauth/revoke", &[("token", &at)], Some((&oid, &osec))).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(scim_status(&s, &at).await, 200);
    // Unknown tokens: 200 too.
    let r = post(
        &s,
        "/oauth/revoke",
        &[("token", "rst_at_unknown")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    // Bad client authentication: 401 invalid_client.
    let r = post(&s, "/oauth/revoke", &[("token", &at)], Some((&id, "wrong"))).await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert_eq!(scim_status(&s, &at).await, 200);

    // The owner revokes the access token alone: the refresh token lives on.
    let r = post(
        &s,
        "/oauth/revoke",
        &[("token", &at), ("token_type_hint", "access_token")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(scim_status(&s, &at).await, 401);
    let t2 = refresh(&s, &t.s("refresh_token"), &id, &secret).await;
    assert_tokens(&t2, true);
    assert_eq!(scim_status(&s, &t2.s("access_token")).await, 200);
}

/// Sends `n` token requests with a bad client, each claiming to come from
/// `xff`; returns the statuses.
async fn token_burst(s: &TestServer, xff: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = post_raw(
            s,
            "/oauth/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-forwarded-for", xff),
            ],
            b"grant_type=client_credentials&client_id=nobody&client_secret=x".to_vec(),
        )
        .await;
        out.push(r.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    // No trusted proxies: X-Forwarded-For is ignored, so a client cannot
    // dodge the per-address throttle by inventing addresses.
    let s = TestServer::start().await;
    let mut statuses = Vec::new();
    for i in 0..121 {
        statuses.extend(token_burst(&s, &format!("198.51.100.{}", i % 250), 1).await);
    }
    assert!(statuses[..120].iter().all(|c| *c == 401), "{statuses:?}");
    assert_eq!(statuses[120], 429, "the 121st request from one TCP peer is throttled");
    s.stop().await;

    // 127.0.0.1 is a trusted proxy: each forwarded client has its own
    // budget, and a spoofed left-most hop does not change whose it is.
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(dir.path());
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let s = TestServer::start_with(dir, config).await;
    let first = token_burst(&s, "203.0.113.1", 120).await;
    assert!(first.iter().all(|c| *c == 401), "{first:?}");
    assert_eq!(token_burst(&s, "203.0.113.1", 1).await, vec![429]);
    assert_eq!(
        token_burst(&s, "203.0.113.1, 203.0.113.1", 1).await,
        vec![429],
        "repeating the hop changes nothing"
    );
    assert_eq!(
        token_burst(&s, "9.9.9.9, 203.0.113.1", 1).await,
        vec![429],
        "a client-supplied left-most hop is not believed"
    );
    assert_eq!(
        token_burst(&s, "203.0.113.2", 1).await,
        vec![401],
        "another client behind the proxy has its own budget"
    );
    s.stop().await;
}

/// How an admin stops being one in the issue-17 grant tests.
#[derive(Debug, Clone, Copy)]
enum Demotion {
    /// Another admin makes them a member in the console.
    ConsoleRole,
    /// Another admin removes them in the console.
    ConsoleRemove,
    /// The IdP suspends them (`active=false`; the first PATCH links them).
    ScimSuspend,
}

/// Issue 17 (finding 3): a grant is only as good as its grantor. When the
/// admin who confirmed an OAuth connection is made a member, removed or
/// suspended — in the console or by SCIM — the grants they authorised are
/// revoked in the same transaction: the access token gets 401, the refresh
/// token `invalid_grant`, an unused code `invalid_grant`; an audit row says
/// why and the console asks for the IdP to be authenticated again.
#[tokio::test]
async fn r17_grants_die_with_their_grantors_admin_rights() {
    for how in [Demotion::ConsoleRole, Demotion::ConsoleRemove, Demotion::ScimSuspend] {
        let s = TestServer::start().await;
        // A second admin, so the first is not the last one.
        domain(&s, "example.com", true).await;
        let (static_tok, _) = connection(&s, "Okta static").await;
        let body = json!({"schemas": [USER_URN], "userName": "boss@example.com", "roles": ["admin"]});
        let r = scim(&s, "POST", "/Users", Some(&static_tok), Some(body)).await;
        assert_eq!(r.status, 201, "{r}");
        set_password(&s, "boss@example.com", PASSWORD).await;

        // The first admin connects Okta and confirms a second time (a code
        // not yet exchanged).
        let mut web = admin_web(&s).await;
        let (id, secret, t) = okta_tokens(&s, &mut web).await;
        let unused = code_via(&mut web, &authz(&id, OKTA_CB, "again")).await;
        let (at, rt) = (t.s("access_token"), t.s("refresh_token"));
        assert_eq!(scim_status(&s, &at).await, 200);
        let first = crate::scim_support::admin(&s).await.id;

        match how {
            Demotion::ConsoleRole | Demotion::ConsoleRemove => {
                let mut boss = Web::new(&s);
                assert_eq!(sign_in(&mut boss, "boss@example.com", PASSWORD, "/").await.status, 303);
                let path = format!("/admin/members/{first}");
                let p = boss.get(&path).await;
                assert_eq!(p.status, 200, "{p}");
                let (csrf, version) = (p.input("csrf").unwrap(), p.input("version").unwrap());
                let mut form = vec![("csrf", csrf.as_str()), ("version", version.as_str())];
                if matches!(how, Demotion::ConsoleRole) {
                    form.extend([("action", "role"), ("role", "member")]);
                } else {
                    form.push(("action", "remove"));
                }
                let r = boss.post_form(&path, &form).await;
                assert_eq!(r.status, 303, "{how:?}: {r}");
            }
            Demotion::ScimSuspend => {
                let body = json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "active", "value": false}]});
                let r = scim(&s, "PATCH", &format!("/Users/{first}"), Some(&static_tok), Some(body)).await;
                assert_eq!(r.status, 200, "{r}");
            }
        }

        assert_eq!(scim_status(&s, &at).await, 401, "{how:?}: access token still works");
        assert_oauth_error(&refresh(&s, &rt, &id, &secret).await, 400, "invalid_grant");
        assert_oauth_error(&exchange(&s, &unused, &id, &secret).await, 400, "invalid_grant");
        let gs = roster::workspace::oauth::grants(&s.app).await.unwrap();
        assert!(gs.iter().all(|g| g.grant.revoked_ms.is_some()), "{how:?}: {gs:?}");
        let reason = gs[0].grant.revoked_reason.clone().unwrap_or_default();
        assert!(reason.contains(ADMIN), "{how:?}: reason {reason:?}");
        let rows = crate::scim_support::audit(&s).await;
        assert!(
            rows.iter()
                .any(|a| a.action == "oauth.grant_revoked" && a.detail["reason"].as_str() == Some(reason.as_str())),
            "{how:?}: no audit row for the revocation"
        );

        // The other admin sees it on the connections page.
        let mut boss = Web::new(&s);
        assert_eq!(sign_in(&mut boss, "boss@example.com", PASSWORD, "/").await.status, 303);
        let p = boss.get("/admin/connections").await;
        assert_eq!(p.status, 200, "{p}");
        assert!(p.text.contains("Okta must be authenticated again"), "{how:?}: {p}");
        s.stop().await;
    }
}
