//! `GET/POST /oauth/authorize`: the authorization-code front channel.
//!
//! Client and redirect URI are checked first and their errors shown on a
//! page, never redirected (RFC 6749 §4.1.2.1). Everything after that goes
//! back to the client as `error=...&state=...&iss=...` (RFC 9207). The
//! consent decision is a CSRF-protected POST answered with 303 (RFC 9700
//! §4.12: never 307).

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::SCOPE_SCIM;
use crate::secret::{TokenKind, hash_token, new_token};
use crate::web::session::{self, SignedIn};
use crate::web::{message, render, workspace_name};
use crate::workspace::model::{Actor, AuditEntry, AuthCode, ClientKind, OAuthClient, Role};
use crate::{App, paths, store};

/// Why an authorization request cannot go on.
enum Problem {
    /// Shown to the person; the client or redirect URI cannot be trusted.
    Page(String),
    /// Sent back to the client's redirect URI.
    Redirect { error: &'static str, description: String },
}

/// A request that passed validation.
struct Valid {
    client: OAuthClient,
    redirect_uri: String,
    explicit_redirect: bool,
    scope: String,
    state: Option<String>,
    challenge: Option<String>,
}

/// Parameters, refusing any given twice (RFC 6749 §3.1).
fn params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the parameter {k:?} is given more than once"));
        }
    }
    Ok(out)
}

fn valid_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn validate(app: &App, p: &HashMap<String, String>) -> Result<Valid, (Option<Box<Valid>>, Problem)> {
    let page = |m: &str| Err((None, Problem::Page(m.to_owned())));
    let Some(client_id) = p.get("client_id").filter(|s| !s.is_empty()) else {
        return page("The request does not name an application (client_id is missing).");
    };
    let client = {
        let id = client_id.clone();
        match app.store.read(move |txn| store::oauth::client(txn, &id)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "client lookup failed");
                return page("Something went wrong; try again.");
            }
        }
    };
    let Some(client) = client else {
        return page("The application that sent you here is not registered with this roster.");
    };
    if client.kind == ClientKind::Service {
        return page(
            "This application is registered for server-to-server access only and cannot ask people to sign in.",
        );
    }
    let (redirect_uri, explicit) = match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => (r.clone(), true),
        Some(_) => return page("The address this application wants to return to is not one registered for it."),
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return page("The request does not say where to return to (redirect_uri is missing)."),
    };
    let state = p.get("state").cloned();
    let partial = |client: OAuthClient| Valid {
        client,
        redirect_uri: redirect_uri.clone(),
        explicit_redirect: explicit,
        scope: String::new(),
        state: state.clone(),
        challenge: None,
    };
    let fail = |client: OAuthClient, error, description: &str| {
        Err((
            Some(Box::new(partial(client))),
            Problem::Redirect {
                error,
                description: description.to_owned(),
            },
        ))
    };
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        None | Some("") => return fail(client, "invalid_request", "response_type is required"),
        Some(_) => {
            return fail(
                client,
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    let requested: Vec<&str> = p
        .get("scope")
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    if let Some(bad) = requested.iter().find(|s| **s != SCOPE_SCIM && **s != "offline_access") {
        let d = format!("unknown scope {bad:?}; roster grants \"scim\"");
        return fail(client, "invalid_scope", &d);
    }
    if !requested.is_empty() && !requested.contains(&SCOPE_SCIM) {
        return fail(client, "invalid_scope", "the scope must include \"scim\"");
    }
    // Empty values count as absent: the consent form always posts both.
    let challenge = p.get("code_challenge").filter(|c| !c.is_empty()).cloned();
    let method = p
        .get("code_challenge_method")
        .map(String::as_str)
        .filter(|m| !m.is_empty());
    match (method, &challenge) {
        (None, None) => {}
        (Some("S256"), Some(c)) if valid_challenge(c) => {}
        (Some("S256"), Some(_)) => {
            return fail(
                client,
                "invalid_request",
                "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]",
            );
        }
        (Some("S256"), None) => {
            return fail(
                client,
                "invalid_request",
                "code_challenge_method was given without code_challenge",
            );
        }
        // Absent method means "plain" (RFC 7636 §4.3), which is refused.
        (_, _) => {
            return fail(
                client,
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            );
        }
    }
    if client.kind == ClientKind::Public && challenge.is_none() {
        return fail(
            client,
            "invalid_request",
            "this client must use PKCE (code_challenge with S256)",
        );
    }
    let mut v = partial(client);
    v.scope = SCOPE_SCIM.to_owned();
    v.challenge = challenge;
    Ok(v)
}

/// `redirect_uri` plus query parameters (keeping any query it has).
fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

fn back_to_client<'a>(app: &'a App, v: &'a Valid, mut pairs: Vec<(&'a str, &'a str)>) -> Response {
    if let Some(s) = &v.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &app.config.public_url));
    let mut r = Redirect::to(&redirect_to(&v.redirect_uri, &pairs)).into_response();
    r.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn problem(app: &App, partial: Option<Box<Valid>>, p: Problem) -> Response {
    match (p, partial) {
        (Problem::Redirect { error, description }, Some(v)) => {
            back_to_client(app, &v, vec![("error", error), ("error_description", &description)])
        }
        (Problem::Redirect { description, .. }, None) | (Problem::Page(description), _) => {
            let ws = workspace_name(app).await;
            message(
                &ws,
                StatusCode::BAD_REQUEST,
                "This connection request cannot be used",
                &[
                    &description,
                    "Start again from your identity provider, or ask the roster admin to check the application's registration.",
                ],
                None,
            )
        }
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    workspace: String,
    email: String,
    client: String,
    client_id: String,
    redirect_uri: String,
    redirect_host: String,
    scope: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
    csrf: String,
}

/// `scheme://authority` of a URI, for the consent page's `form-action`.
fn origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    Some(format!("{scheme}://{authority}"))
}

fn only_admins(ws: &str) -> Response {
    message(
        ws,
        StatusCode::FORBIDDEN,
        "Only workspace admins can connect an identity provider",
        &[
            "You are signed in, but connecting an identity provider to this workspace needs an admin. Ask an admin of the workspace to do it.",
        ],
        Some(("/", "Go to your home page")),
    )
}

pub async fn show(State(app): State<App>, signed: Option<SignedIn>, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let p = match params(raw.as_bytes()) {
        Ok(p) => p,
        Err(e) => return problem(&app, None, Problem::Page(e)).await,
    };
    let v = match validate(&app, &p).await {
        Ok(v) => v,
        Err((partial, pr)) => return problem(&app, partial, pr).await,
    };
    let Some(SignedIn(live)) = signed else {
        let next = format!("{}?{raw}", paths::AUTHORIZE);
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish();
        return Redirect::to(&format!("{}?{q}", paths::LOGIN)).into_response();
    };
    let ws = workspace_name(&app).await;
    if live.member.role != Role::Admin {
        return only_admins(&ws);
    }
    let page = ConsentPage {
        workspace: ws,
        email: live.member.email.clone(),
        client: v.client.name.clone(),
        client_id: v.client.client_id.clone(),
        redirect_uri: v.redirect_uri.clone(),
        redirect_host: origin(&v.redirect_uri).unwrap_or_default(),
        scope: v.scope.clone(),
        state: v.state.clone().unwrap_or_default(),
        code_challenge: v.challenge.clone().unwrap_or_default(),
        code_challenge_method: if v.challenge.is_some() {
            "S256".into()
        } else {
            String::new()
        },
        csrf: live.session.csrf.clone(),
    };
    let mut resp = render(StatusCode::OK, &page);
    // Browsers apply form-action to the redirect that follows the POST, so
    // the client's origin (and only it) is allowed besides our own.
    let csp = crate::web::CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin(&v.redirect_uri).unwrap_or_default()),
    );
    if let Ok(h) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, h);
    }
    resp
}

pub async fn decide(State(app): State<App>, signed: Option<SignedIn>, headers: HeaderMap, body: Bytes) -> Response {
    let ws = workspace_name(&app).await;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let p = match (is_form, params(&body)) {
        (true, Ok(p)) => p,
        (false, _) => return problem(&app, None, Problem::Page("The form was not sent as a form.".into())).await,
        (_, Err(e)) => return problem(&app, None, Problem::Page(e)).await,
    };
    let Some(SignedIn(live)) = signed else {
        return message(
            &ws,
            StatusCode::FORBIDDEN,
            "Your session has ended",
            &["Start again from your identity provider."],
            Some((paths::LOGIN, "Sign in")),
        );
    };
    if !p.get("csrf").is_some_and(|c| session::equal(c, &live.session.csrf)) {
        return message(
            &ws,
            StatusCode::FORBIDDEN,
            "This form has expired",
            &["Start again from your identity provider."],
            None,
        );
    }
    let v = match validate(&app, &p).await {
        Ok(v) => v,
        Err((partial, pr)) => return problem(&app, partial, pr).await,
    };
    if live.member.role != Role::Admin {
        return only_admins(&ws);
    }
    match p.get("decision").map(String::as_str) {
        Some("confirm") => {}
        Some("cancel") => {
            return back_to_client(
                &app,
                &v,
                vec![
                    ("error", "access_denied"),
                    ("error_description", "the admin cancelled the connection"),
                ],
            );
        }
        _ => {
            return problem(
                &app,
                None,
                Problem::Page("The form did not say Confirm or Cancel.".into()),
            )
            .await;
        }
    }
    let code = new_token(TokenKind::AuthCode, app.rng.as_ref());
    let hash = hash_token(&code);
    let now = app.clock.now_ms();
    let record = AuthCode {
        client_id: v.client.client_id.clone(),
        redirect_uri: v.redirect_uri.clone(),
        member_id: live.member.id,
        scope: v.scope.clone(),
        redirect_uri_explicit: v.explicit_redirect,
        challenge: v.challenge.clone(),
        expires_ms: now + app.config.oauth.code_ms,
        exchanged_for: None,
    };
    let actor = Actor::Admin {
        id: live.member.id,
        email: live.member.email.clone(),
    };
    let client_name = v.client.name.clone();
    let written = app
        .store
        .write(move |txn| {
            store::oauth::put_code(txn, &hash, &record)?;
            store::audit::append(
                txn,
                &AuditEntry {
                    at_ms: now,
                    actor: actor.clone(),
                    target: format!("client:{}", record.client_id),
                    action: "oauth.consent_granted".into(),
                    detail: json!({"client": client_name, "scope": record.scope}),
                },
            )?;
            Ok(Ok::<(), ()>(()))
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "could not store an authorization code");
        // RFC 6749 §4.1.2.1: `temporarily_unavailable` when it may work on
        // a retry (storage failed), `server_error` otherwise.
        let code = match e {
            store::StoreError::Storage(_) | store::StoreError::Closed => "temporarily_unavailable",
            _ => "server_error",
        };
        return back_to_client(&app, &v, vec![("error", code)]);
    }
    back_to_client(&app, &v, vec![("code", &code)])
}
