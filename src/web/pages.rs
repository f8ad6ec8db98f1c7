//! Sign-in, sign-out, one-time links (first-admin login, invitation,
//! set password) and the member home page.
//!
//! One-time links are never consumed by a GET: mail scanners fetch links,
//! so the GET shows a page whose button (a CSRF-protected POST) uses it.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, PreCsrf, SESSION_COOKIE, SignedIn};
use super::{message, render, unavailable, workspace_name};
use crate::ratelimit::{LOGIN_PER_ACCOUNT, LOGIN_PER_ADDRESS};
use crate::server::forwarded::ClientIp;
use crate::workspace::model::{LinkPurpose, Management, Role, Status};
use crate::workspace::sessions::{self, LinkError, NewSession};
use crate::{App, paths, store};

/// Only same-site paths may be a post-sign-in destination (no open
/// redirect): `/x`, never `//host`, `/\\host` or a URL with a scheme.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 4096
        && !next.chars().any(|c| c.is_control());
    if ok { next } else { "/" }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Redirect into a fresh session.
fn signed_in(new: &NewSession, to: &str, max_age_ms: i64) -> Response {
    with_cookie(
        Redirect::to(safe_next(to)).into_response(),
        Some(session::set_cookie(SESSION_COOKIE, &new.token, Some(max_age_ms / 1000))),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    workspace: String,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_form(
    State(app): State<App>,
    signed: Option<SignedIn>,
    csrf: PreCsrf,
    Query(q): Query<NextQuery>,
) -> Response {
    if signed.is_some() {
        return see_other(safe_next(&q.next));
    }
    let page = LoginPage {
        workspace: workspace_name(&app).await,
        csrf: csrf.value.clone(),
        next: safe_next(&q.next).to_owned(),
        email: String::new(),
        error: None,
    };
    with_cookie(render(StatusCode::OK, &page), csrf.set_cookie())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

fn too_many(workspace: &str, retry_after: u64) -> Response {
    let mut r = message(
        workspace,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        &["Wait a few minutes, then try again."],
        Some((paths::LOGIN, "Back to sign-in")),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub async fn login(
    State(app): State<App>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    csrf: PreCsrf,
    Form(f): Form<LoginForm>,
) -> Response {
    let ws = workspace_name(&app).await;
    if !csrf.accepts(&f.csrf) {
        return with_cookie(
            message(
                &ws,
                StatusCode::FORBIDDEN,
                "This form has expired",
                &["Reload the sign-in page and try again."],
                Some((paths::LOGIN, "Sign in")),
            ),
            csrf.set_cookie(),
        );
    }
    let now = app.clock.now_ms();
    let ip_key = format!("login-ip:{client}");
    let account_key = format!("login-account:{}", f.email.trim().to_lowercase());
    let wait = app
        .throttle
        .blocked(&ip_key, LOGIN_PER_ADDRESS, now)
        .or_else(|| app.throttle.blocked(&account_key, LOGIN_PER_ACCOUNT, now));
    if let Some(secs) = wait {
        return too_many(&ws, secs);
    }
    app.throttle.hit(&ip_key, LOGIN_PER_ADDRESS, now);
    let member = match sessions::check_password(&app, &f.email, &f.password).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed in the store");
            return unavailable(&ws, "Sign-in is unavailable");
        }
    };
    let started = match &member {
        Some(m) => match sessions::start(&app, m, "session.signed_in").await {
            Ok(s) => s,
            // The password was right but the session could not be stored
            // (disk full): not a failed sign-in.
            Err(e) => {
                tracing::warn!(error = %e, "could not store a new session");
                return unavailable(&ws, "Sign-in is unavailable");
            }
        },
        None => None,
    };
    match started {
        Some(new) => {
            app.throttle.clear(&account_key);
            signed_in(&new, &f.next, app.config.session_max_ms)
        }
        None => {
            app.throttle.hit(&account_key, LOGIN_PER_ACCOUNT, now);
            // One message for every failure: no account enumeration.
            let page = LoginPage {
                workspace: ws,
                csrf: csrf.value.clone(),
                next: safe_next(&f.next).to_owned(),
                email: f.email.clone(),
                error: Some("Email or password is incorrect.".into()),
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(State(app): State<App>, signed: Option<SignedIn>, Form(f): Form<CsrfForm>) -> Response {
    let clear = session::set_cookie(SESSION_COOKIE, "", Some(0));
    if let Some(SignedIn(live)) = signed {
        if !session::equal(&live.session.csrf, &f.csrf) {
            let ws = workspace_name(&app).await;
            return message(
                &ws,
                StatusCode::FORBIDDEN,
                "This form has expired",
                &["Reload the page and try again."],
                Some(("/", "Home")),
            );
        }
        if let Err(e) = sessions::end(&app, &live).await {
            tracing::error!(error = %e, "sign-out failed");
        }
    }
    with_cookie(see_other(paths::LOGIN), Some(clear))
}

#[derive(Template)]
#[template(path = "confirm_link.html")]
struct LinkPage {
    workspace: String,
    title: String,
    lead: String,
    action: &'static str,
    csrf: String,
    token: String,
    with_password: bool,
    button: &'static str,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

struct LinkKind {
    purpose: LinkPurpose,
    action: &'static str,
    with_password: bool,
    button: &'static str,
}

const LOGIN_LINK: LinkKind = LinkKind {
    purpose: LinkPurpose::Login,
    action: paths::LOGIN_LINK,
    with_password: false,
    button: "Sign in",
};
const INVITE: LinkKind = LinkKind {
    purpose: LinkPurpose::Invite,
    action: paths::INVITE_ACCEPT,
    with_password: true,
    button: "Accept and join",
};
const SET_PASSWORD: LinkKind = LinkKind {
    purpose: LinkPurpose::SetPassword,
    action: paths::SET_PASSWORD,
    with_password: true,
    button: "Set password and sign in",
};

fn invalid_link(ws: &str) -> Response {
    message(
        ws,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        &[&LinkError::Invalid.to_string()],
        Some((paths::LOGIN, "Go to sign-in")),
    )
}

async fn link_page(app: &App, kind: &LinkKind, token: &str, csrf: &PreCsrf, error: Option<String>) -> Response {
    let ws = workspace_name(app).await;
    let member = match sessions::peek(app, token, kind.purpose).await {
        Ok(Some(m)) => m,
        Ok(None) => return invalid_link(&ws),
        Err(e) => {
            tracing::error!(error = %e, "link lookup failed");
            return invalid_link(&ws);
        }
    };
    let (title, lead) = match kind.purpose {
        LinkPurpose::Login => ("Sign in".to_owned(), format!("Continue as {} to {ws}.", member.email)),
        LinkPurpose::Invite => (
            format!("Join {ws}"),
            format!("You were invited as {}. Choose a password to accept.", member.email),
        ),
        LinkPurpose::SetPassword => (
            "Choose your password".to_owned(),
            format!("For {} in {ws}.", member.email),
        ),
    };
    let page = LinkPage {
        workspace: ws,
        title,
        lead,
        action: kind.action,
        csrf: csrf.value.clone(),
        token: token.to_owned(),
        with_password: kind.with_password,
        button: kind.button,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = with_cookie(render(status, &page), csrf.set_cookie());
    // The token is in this page's URL: never leak it in a Referer.
    resp.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

async fn link_use_with(app: &App, kind: &LinkKind, csrf: &PreCsrf, f: &LinkForm) -> Response {
    let ws = workspace_name(app).await;
    if !csrf.accepts(&f.csrf) {
        return with_cookie(
            message(
                &ws,
                StatusCode::FORBIDDEN,
                "This form has expired",
                &["Open the link from your mail again."],
                None,
            ),
            csrf.set_cookie(),
        );
    }
    let password_hash = if kind.with_password {
        if f.password != f.password2 {
            return link_page(app, kind, &f.token, csrf, Some(LinkError::Mismatch.to_string())).await;
        }
        match sessions::hash_new_password(app, &f.password).await {
            Ok(h) => Some(h),
            Err(e) => return link_page(app, kind, &f.token, csrf, Some(e.to_string())).await,
        }
    } else {
        None
    };
    match sessions::use_link(app, &f.token, kind.purpose, password_hash).await {
        Ok(Ok((_, new))) => signed_in(&new, "/", app.config.session_max_ms),
        Ok(Err(LinkError::Suspended)) => message(
            &ws,
            StatusCode::FORBIDDEN,
            "Access suspended",
            &[&LinkError::Suspended.to_string()],
            None,
        ),
        Ok(Err(_)) => invalid_link(&ws),
        Err(e) => {
            tracing::error!(error = %e, "using a link failed");
            unavailable(&ws, "Something went wrong")
        }
    }
}

pub async fn link_form(State(app): State<App>, csrf: PreCsrf, Query(q): Query<TokenQuery>) -> Response {
    link_page(&app, &LOGIN_LINK, &q.token, &csrf, None).await
}
pub async fn link_use(State(app): State<App>, csrf: PreCsrf, Form(f): Form<LinkForm>) -> Response {
    link_use_with(&app, &LOGIN_LINK, &csrf, &f).await
}
pub async fn invite_form(State(app): State<App>, csrf: PreCsrf, Query(q): Query<TokenQuery>) -> Response {
    link_page(&app, &INVITE, &q.token, &csrf, None).await
}
pub async fn invite_use(State(app): State<App>, csrf: PreCsrf, Form(f): Form<LinkForm>) -> Response {
    link_use_with(&app, &INVITE, &csrf, &f).await
}
pub async fn set_password_form(State(app): State<App>, csrf: PreCsrf, Query(q): Query<TokenQuery>) -> Response {
    link_page(&app, &SET_PASSWORD, &q.token, &csrf, None).await
}
pub async fn set_password_use(State(app): State<App>, csrf: PreCsrf, Form(f): Form<LinkForm>) -> Response {
    link_use_with(&app, &SET_PASSWORD, &csrf, &f).await
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    workspace: String,
    csrf: String,
    name: String,
    email: String,
    is_admin: bool,
    status: &'static str,
    managed_by: String,
    teams: Vec<String>,
}

pub async fn home(State(app): State<App>, signed: Option<SignedIn>) -> Response {
    let Some(SignedIn(live)) = signed else {
        return see_other(&format!("{}?next=/", paths::LOGIN));
    };
    let m = live.member.clone();
    let (teams, managed_by) = {
        let id = m.id;
        let mgmt = m.management;
        let r = app
            .store
            .read(move |txn| {
                let teams = store::teams::teams_of(txn, id)?;
                let conn = match mgmt {
                    Management::Managed(c) => store::connections::get(txn, c)?.map(|c| c.name),
                    Management::Unmanaged => None,
                };
                Ok((teams, conn))
            })
            .await;
        match r {
            Ok((t, c)) => (
                t.into_iter().map(|(_, n)| n).collect(),
                c.map(|n| format!("{n} (identity provider)"))
                    .unwrap_or_else(|| "roster".into()),
            ),
            Err(e) => {
                tracing::error!(error = %e, "home page read failed");
                (Vec::new(), "roster".into())
            }
        }
    };
    let page = HomePage {
        workspace: workspace_name(&app).await,
        csrf: live.session.csrf.clone(),
        name: m
            .display_name
            .clone()
            .or_else(|| match (&m.given_name, &m.family_name) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (Some(g), None) => Some(g.clone()),
                _ => None,
            })
            .unwrap_or_else(|| m.email.clone()),
        email: m.email.clone(),
        is_admin: m.role == Role::Admin,
        status: match m.status {
            Status::Active => "Active",
            Status::Invited => "Invited",
            Status::Suspended => "Suspended",
            Status::Removed => "Removed",
        },
        managed_by,
        teams,
    };
    render(StatusCode::OK, &page)
}
