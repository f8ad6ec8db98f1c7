//! RFC 8414 authorization server metadata.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{SCOPE_SCIM, no_store_json};
use crate::{App, paths};

pub async fn metadata(State(app): State<App>) -> Response {
    let base = &app.config.public_url;
    let mut r = no_store_json(
        StatusCode::OK,
        &json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}{}", paths::AUTHORIZE),
            "token_endpoint": format!("{base}{}", paths::TOKEN),
            "revocation_endpoint": format!("{base}{}", paths::REVOKE),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": [SCOPE_SCIM, "offline_access"],
            "authorization_response_iss_parameter_supported": true,
            "service_documentation": format!("{base}/"),
        }),
    );
    // Public metadata may be cached briefly.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().remove(axum::http::header::PRAGMA);
    r
}
