//! The OAuth 2.0 authorization server for "Authenticate with roster":
//! authorization code (with optional PKCE S256; required for public
//! clients), refresh tokens that rotate, client credentials for service
//! clients, revocation (RFC 7009) and metadata (RFC 8414). One file per
//! endpoint; each maps its own errors to the RFC 6749 wire format.

pub mod authorize;
pub mod metadata;
pub mod revoke;
pub mod token;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;

use crate::secret::{TokenKind, hash_token, hashes_equal, well_formed};
use crate::workspace::model::{ClientKind, OAuthClient};
use crate::{App, paths, store};

/// The only scope roster grants; `offline_access` is accepted and ignored
/// (refresh tokens are always issued to code-flow clients).
pub const SCOPE_SCIM: &str = "scim";

pub fn routes(app: App) -> Router<App> {
    Router::new()
        .route(paths::AUTHORIZE, get(authorize::show).post(authorize::decide))
        .route(paths::TOKEN, post(token::token))
        .route(paths::REVOKE, post(revoke::revoke))
        .route(paths::AS_METADATA, get(metadata::metadata))
        .layer(axum::middleware::from_fn_with_state(app, crate::web::html_errors))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Ask for HTTP Basic (the client tried it and failed).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub fn invalid_client(basic: bool) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".into(),
            basic_challenge: basic,
        }
    }
    pub fn server() -> OAuthError {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "internal error; see the server log".into(),
            basic_challenge: false,
        }
    }
}

/// JSON with the no-store headers token responses need (RFC 6749 §5.1).
pub fn no_store_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = no_store_json(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(crate::scim::error::RETRY_AFTER_SECS),
            );
        }
        if self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"roster\", charset=\"UTF-8\""),
            );
        }
        r
    }
}

impl From<store::StoreError> for OAuthError {
    fn from(e: store::StoreError) -> OAuthError {
        match e {
            // RFC 6749 §5.2 has no code for this; `temporarily_unavailable`
            // (§4.1.2.1) is what clients already know to retry.
            store::StoreError::Storage(_) | store::StoreError::Closed => {
                tracing::warn!(error = %e, "OAuth request refused: storage unavailable");
                OAuthError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: "temporarily_unavailable",
                    description: "the server cannot store tokens right now; retry later".into(),
                    basic_challenge: false,
                }
            }
            e => {
                tracing::error!(error = %e, "OAuth endpoint failed in the store");
                OAuthError::server()
            }
        }
    }
}

/// Parses an `application/x-www-form-urlencoded` body; a parameter given
/// twice is an error (RFC 6749 §3.1).
pub fn form(headers: &HeaderMap, body: &[u8]) -> Result<std::collections::HashMap<String, String>, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    {
        return Err(OAuthError::new(
            "invalid_request",
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let mut out = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter {k:?} is repeated"),
            ));
        }
    }
    Ok(out)
}

/// Authenticates the client of a token or revocation request:
/// `client_secret_basic` or `client_secret_post` (not both), or a public
/// client's bare `client_id`.
pub async fn authenticate_client(
    app: &App,
    headers: &HeaderMap,
    params: &std::collections::HashMap<String, String>,
) -> Result<OAuthClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b)| b.trim().to_owned());
    let (id, secret, used_basic) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not both",
            ));
        }
        (Some(b), None) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::invalid_client(true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client(true))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded first.
            let unescape = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if params.get("client_id").is_some_and(|p| *p != unescape(id)) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id differs from the authenticated client",
                ));
            }
            (unescape(id), Some(unescape(secret)), true)
        }
        (None, secret) => {
            let id = params
                .get("client_id")
                .cloned()
                .ok_or_else(|| OAuthError::invalid_client(false))?;
            (id, secret.cloned(), false)
        }
    };
    let client = {
        let id = id.clone();
        app.store.read(move |txn| store::oauth::client(txn, &id)).await?
    };
    let Some(client) = client else {
        return Err(OAuthError::invalid_client(used_basic));
    };
    match (client.kind, secret) {
        (ClientKind::Public, None) => Ok(client),
        (ClientKind::Public, Some(_)) => Err(OAuthError::invalid_client(used_basic)),
        (_, None) => Err(OAuthError::invalid_client(used_basic)),
        (_, Some(s)) => {
            if !well_formed(&s, TokenKind::ClientSecret) {
                return Err(OAuthError::invalid_client(used_basic));
            }
            let h = hash_token(&s);
            // Compare against every stored secret (rotation keeps two),
            // without stopping early.
            let ok = client
                .secrets
                .iter()
                .fold(false, |acc, stored| hashes_equal(&stored.hash, &h) | acc);
            if ok {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client(used_basic))
            }
        }
    }
}
