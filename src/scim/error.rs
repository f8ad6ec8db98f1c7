//! SCIM error responses (RFC 7644 §3.12): every failure under `/scim/v2`,
//! including auth, routing and size limits, is this JSON body with
//! `status` as a string and `scimType` where the RFC defines one. Internal
//! errors are logged with the request id and never described to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;
use crate::workspace::members::RuleError;

pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_JSON: &str = "application/scim+json";
/// `Retry-After` on 503s: long enough for an operator to restart roster
/// after a storage failure, short enough for a restart on upgrade.
pub const RETRY_AFTER_SECS: &str = "30";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub fn unauthorized() -> ScimError {
        ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required: Authorization: Bearer <token>",
        )
    }
    pub fn internal() -> ScimError {
        ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; the server log has the details under this request's x-request-id",
        )
    }
}

/// The error body for any status; used for errors raised outside handlers
/// (body limit, timeouts, unknown routes) too.
pub fn body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut v = json!({
        "schemas": [ERROR_URN],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        v["scimType"] = json!(t);
    }
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Both causes (shutting down, storage failed) are worth retrying.
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"roster\", error=\"invalid_token\""),
        );
    }
    resp
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        body(self.status, self.scim_type, &self.detail)
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> ScimError {
        match e {
            StoreError::Closed => ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "server is shutting down"),
            StoreError::TimedOut => ScimError::new(StatusCode::REQUEST_TIMEOUT, None, e.to_string()),
            // The store logged the cause once; one line per request would
            // bury it.
            StoreError::Storage(e) => {
                tracing::warn!(error = %e, "SCIM request refused: storage unavailable");
                ScimError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the server cannot store changes right now (storage failure); nothing was changed; retry later",
                )
            }
            e => {
                tracing::error!(error = %e, "SCIM request failed in the store");
                ScimError::internal()
            }
        }
    }
}

impl From<RuleError> for ScimError {
    fn from(e: RuleError) -> ScimError {
        let detail = e.to_string();
        match e {
            RuleError::Uniqueness(_) => ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), detail),
            RuleError::LastAdmin(_) => ScimError::new(StatusCode::CONFLICT, None, detail),
            RuleError::NotFound { .. } => ScimError::not_found(detail),
            RuleError::ManagedElsewhere(_) => ScimError::new(StatusCode::FORBIDDEN, None, detail),
            RuleError::VersionMismatch { .. } => ScimError::new(StatusCode::PRECONDITION_FAILED, None, detail),
            RuleError::Invalid(_) => ScimError::bad("invalidValue", detail),
        }
    }
}

impl From<super::filter::FilterError> for ScimError {
    fn from(e: super::filter::FilterError) -> ScimError {
        ScimError::bad(e.scim_type(), format!("invalid filter: {e}"))
    }
}

impl From<super::patch::PatchError> for ScimError {
    fn from(e: super::patch::PatchError) -> ScimError {
        ScimError::bad(e.scim_type(), e.to_string())
    }
}
