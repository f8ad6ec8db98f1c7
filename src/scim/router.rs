//! Routes under `/scim/v2`, the bearer-token check in front of them, and the
//! rewrite that turns every non-SCIM error response under `/scim/` (body
//! limit, timeout, unknown route, wrong method) into a SCIM error body.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::error::{self, SCIM_JSON, ScimError};
use super::{discovery, groups, users};
use crate::App;
use crate::workspace::connections;

pub fn routes(app: App) -> Router<App> {
    Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::modify)
                .delete(groups::delete),
        )
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::list_resource_types))
        .route("/ResourceTypes/{name}", get(discovery::get_resource_type))
        .route("/Schemas", get(discovery::list_schemas))
        .route("/Schemas/{urn}", get(discovery::get_schema))
        .route("/Me", any(discovery::not_implemented))
        .route("/Bulk", any(discovery::not_implemented))
        .fallback(unknown)
        // A layer (not route_layer) so unknown paths ask for a token too:
        // anonymous callers learn nothing about which routes exist.
        .layer(middleware::from_fn_with_state(app, require_bearer))
}

async fn unknown() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

/// The token from `Authorization: Bearer <token>`, or the bare token Okta's
/// "HTTP Header" mode sends as `Authorization: <token>`.
fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
        Some(_) => None,
        None => Some(v),
    }
}

async fn require_bearer(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return ScimError::unauthorized().into_response();
    };
    match connections::authenticate(&app, token).await {
        Ok(Some(ctx)) => {
            // Per-connection budget: generous by default, it stops a runaway
            // IdP loop from starving everyone else.
            let limit = crate::ratelimit::Limit {
                max: app.config.limits.scim_requests_per_minute,
                window_ms: 60_000,
            };
            let key = format!("scim:{}", ctx.connection().id);
            let now = app.clock.now_ms();
            if let Some(secs) = app.throttle.blocked(&key, limit, now) {
                let mut r = ScimError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    format!(
                        "this connection exceeded {} requests per minute; retry later",
                        limit.max
                    ),
                )
                .into_response();
                if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            app.throttle.hit(&key, limit, now);
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Ok(None) => ScimError::unauthorized().into_response(),
        Err(e) => ScimError::from(e).into_response(),
    }
}

/// Outer middleware: a response for a `/scim/` path that is an error but
/// not already a SCIM body (413 from the body limit, 408 from the timeout,
/// 405 from routing, 400 from a failed extractor) becomes one.
pub async fn scim_error_bodies(req: Request, next: Next) -> Response {
    let is_scim = req.uri().path().starts_with(crate::paths::SCIM);
    let resp = next.run(req).await;
    if !is_scim || resp.status().as_u16() < 400 {
        return resp;
    }
    let already = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(SCIM_JSON));
    if already {
        return resp;
    }
    let status = resp.status();
    let (scim_type, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (None, "the request body is larger than the server accepts".to_owned()),
        StatusCode::REQUEST_TIMEOUT => (None, "the request took too long".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (None, "this method is not allowed on this endpoint".to_owned()),
        StatusCode::NOT_FOUND => (None, "no such SCIM endpoint".to_owned()),
        StatusCode::BAD_REQUEST => (Some("invalidSyntax"), "the request could not be parsed".to_owned()),
        s => (None, s.canonical_reason().unwrap_or("error").to_owned()),
    };
    let mut out = error::body(status, scim_type, &detail);
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
