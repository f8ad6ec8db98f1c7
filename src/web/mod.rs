//! Server-rendered pages: sign-in, one-time links, member home. Templates
//! (askama, auto-escaping) and the stylesheet are compiled into the binary.
//! Every page carries strict security headers; every form carries a CSRF
//! token; nothing needs JavaScript.

pub mod console;
pub mod pages;
pub mod session;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::{App, paths};

const STYLE: &str = include_str!("../../assets/style.css");

/// The default Content-Security-Policy of pages. Pages that post to another
/// origin's redirect (consent) widen `form-action` for themselves.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes(app: App) -> Router<App> {
    Router::new()
        .route("/", get(pages::home))
        .route(paths::LOGIN, get(pages::login_form).post(pages::login))
        .route(paths::LOGOUT, axum::routing::post(pages::logout))
        .route(paths::LOGIN_LINK, get(pages::link_form).post(pages::link_use))
        .route(paths::INVITE_ACCEPT, get(pages::invite_form).post(pages::invite_use))
        .route(
            paths::SET_PASSWORD,
            get(pages::set_password_form).post(pages::set_password_use),
        )
        .route(paths::STYLE, get(style))
        .route(paths::ADMIN, get(console::index))
        .route(paths::ADMIN_MEMBERS, get(console::members))
        .route(paths::ADMIN_INVITE, get(console::invite_form).post(console::invite))
        .route("/admin/members/{id}", get(console::member).post(console::member_action))
        .route(paths::ADMIN_TEAMS, get(console::teams).post(console::team_create))
        .route("/admin/teams/{id}", get(console::team).post(console::team_action))
        .route(
            paths::ADMIN_CONNECTIONS,
            get(console::connections_list).post(console::connections_action),
        )
        .route(
            paths::ADMIN_CLIENTS,
            get(console::clients_list).post(console::clients_action),
        )
        .route(
            paths::ADMIN_DOMAINS,
            get(console::domains_list).post(console::domains_action),
        )
        .route(paths::ADMIN_AUDIT, get(console::audit))
        .route(paths::ADMIN_MAIL, get(console::mail_list))
        .route("/admin/mail/{seq}", get(console::mail_show).post(console::mail_action))
        .route(paths::ADMIN_SYNC_ERRORS, get(console::sync_errors))
        .layer(middleware::from_fn_with_state(app, html_errors))
        .layer(middleware::from_fn(security_headers))
}

/// Pages answer errors with a page: a response for a page route that is an
/// error without an HTML body (axum's 405 for a wrong method, 415 for a
/// non-form POST, 400 for a form it cannot read) becomes one. The JSON
/// endpoints of the OAuth server keep their RFC 6749 bodies.
pub async fn html_errors(axum::extract::State(app): axum::extract::State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let json_endpoint = path == paths::TOKEN || path == paths::REVOKE || path == paths::AS_METADATA;
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    if json_endpoint || is_html || resp.status().as_u16() < 400 {
        return resp;
    }
    let status = resp.status();
    let (title, text) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "This page cannot do that",
            "The request used a method this page does not accept.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ("The form could not be read", "Go back, reload the page and try again.")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("Too much data", "The form sent more data than the server accepts."),
        StatusCode::REQUEST_TIMEOUT => ("The request took too long", "Try again."),
        StatusCode::NOT_FOUND => ("Page not found", "There is no page at this address."),
        _ => ("Something went wrong", "Try again in a moment."),
    };
    let ws = workspace_name(&app).await;
    let mut out = message(&ws, status, title, &[text], Some(("/", "Go to the start page")));
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// Headers every page response gets unless the handler set its own.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    apply_security_headers(&mut resp);
    resp
}

/// The page headers of [`security_headers`], for responses made outside
/// the page router (the HTML 404 of unknown addresses).
pub fn apply_security_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    let defaults: [(HeaderName, &str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (k, v) in defaults {
        if !h.contains_key(&k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages carry CSRF tokens and personal data.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Renders a template, or a plain 500 page if rendering fails (it cannot
/// fail on our own templates, but a panic is never the answer).
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub workspace: String,
    pub title: String,
    pub paragraphs: Vec<String>,
    pub link: Option<(String, String)>,
}

/// A page that says what happened (errors included), with an optional link.
pub fn message(
    app_workspace: &str,
    status: StatusCode,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        &MessagePage {
            workspace: app_workspace.to_owned(),
            title: title.to_owned(),
            paragraphs: paragraphs.iter().map(|p| (*p).to_owned()).collect(),
            link: link.map(|(a, b)| (a.to_owned(), b.to_owned())),
        },
    )
}

/// The 503 page for a change the store could not make (storage failed or
/// shutting down), with `Retry-After` like the SCIM and OAuth 503s.
pub fn unavailable(app_workspace: &str, title: &str) -> Response {
    let mut r = message(
        app_workspace,
        StatusCode::SERVICE_UNAVAILABLE,
        title,
        &["The server cannot save changes right now. Nothing was changed; try again in a moment."],
        None,
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(crate::scim::error::RETRY_AFTER_SECS),
    );
    r
}

/// The workspace name for page headers.
pub async fn workspace_name(app: &App) -> String {
    crate::workspace::get(&app.store)
        .await
        .ok()
        .flatten()
        .map(|w| w.name)
        .unwrap_or_else(|| "roster".to_owned())
}
