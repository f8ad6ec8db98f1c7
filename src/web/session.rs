//! Session and CSRF plumbing for pages: the `__Host-` cookies, the
//! signed-in member extractor, and CSRF checks (per-session token once
//! signed in; a double-submit cookie before, for the sign-in form).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use crate::App;
use crate::workspace::sessions::{self, Live};

pub const SESSION_COOKIE: &str = "__Host-roster_session";
pub const CSRF_COOKIE: &str = "__Host-roster_csrf";

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a secure, host-only, HttpOnly cookie. `max_age` None =
/// browser-session cookie; `Some(0)` deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    let v = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{age}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The signed-in member, from the session cookie.
pub struct SignedIn(pub Live);

impl OptionalFromRequestParts<App> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Option<Self>, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        match sessions::resolve(app, token).await {
            Ok(Some(live)) => {
                sessions::touch(app, &live).await;
                Ok(Some(SignedIn(live)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Ok(None)
            }
        }
    }
}

/// The pre-sign-in CSRF value: the cookie's if present and sane, else new.
pub struct PreCsrf {
    pub value: String,
    pub fresh: bool,
}

impl FromRequestParts<App> for PreCsrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        if let Some(v) = cookie(&parts.headers, CSRF_COOKIE)
            && v.len() == 48
            && v.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(PreCsrf {
                value: v.to_owned(),
                fresh: false,
            });
        }
        let mut b = [0u8; 24];
        app.rng.fill(&mut b);
        Ok(PreCsrf {
            value: b.iter().map(|x| format!("{x:02x}")).collect(),
            fresh: true,
        })
    }
}

impl PreCsrf {
    /// The `Set-Cookie` to send along with a form, when the value is new.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        self.fresh.then(|| set_cookie(CSRF_COOKIE, &self.value, None))
    }
    /// Whether a submitted form's token matches the cookie.
    pub fn accepts(&self, submitted: &str) -> bool {
        !self.fresh && equal(&self.value, submitted)
    }
}
