//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and
//! Schemas, describing exactly what this server supports.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ScimError;
use super::list::{MAX_COUNT, list_response};
use super::schema::{self, ResourceDef, SchemaDef};
use super::users::json_response;
use crate::{App, paths};

static RESOURCE_TYPES: [&ResourceDef; 2] = [&schema::USER, &schema::GROUP];
static SCHEMAS: [&SchemaDef; 4] = [
    &schema::USER_SCHEMA,
    &schema::ENTERPRISE_SCHEMA,
    &schema::ROSTER_SCHEMA,
    &schema::GROUP_SCHEMA,
];

/// Resource types served today.
pub fn resource_types() -> &'static [&'static ResourceDef] {
    &RESOURCE_TYPES
}

/// Schemas served today.
pub fn schemas() -> &'static [&'static SchemaDef] {
    &SCHEMAS
}

fn base(app: &App) -> String {
    format!("{}{}", app.config.public_url, paths::SCIM)
}

/// RFC 7644 §4: discovery ignores paging and answers a filter with 403.
fn refuse_filter(params: &HashMap<String, String>) -> Result<(), ScimError> {
    if params.keys().any(|k| k.eq_ignore_ascii_case("filter")) {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "filtering is not supported on discovery endpoints",
        ));
    }
    Ok(())
}

pub async fn service_provider_config(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    refuse_filter(&params)?;
    let base = base(&app);
    let v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": format!("{}/", app.config.public_url),
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A static SCIM token issued by a roster admin, or an OAuth 2.0 access token with scope scim",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    Ok(json_response(StatusCode::OK, &v))
}

fn resource_type_doc(def: &ResourceDef, base: &str) -> Value {
    let mut v = schema::resource_type_json(def, base);
    // Only advertise the extensions we serve.
    if let Some(exts) = v.get_mut("schemaExtensions").and_then(Value::as_array_mut) {
        exts.retain(|e| {
            e.get("schema")
                .and_then(Value::as_str)
                .is_some_and(|u| schemas().iter().any(|s| s.id == u))
        });
    }
    v
}

pub async fn list_resource_types(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    refuse_filter(&params)?;
    let base = base(&app);
    let all: Vec<Value> = resource_types().iter().map(|d| resource_type_doc(d, &base)).collect();
    Ok(json_response(StatusCode::OK, &list_response(all.len() as u64, 0, all)))
}

pub async fn get_resource_type(State(app): State<App>, Path(name): Path<String>) -> Result<Response, ScimError> {
    let base = base(&app);
    resource_types()
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&name))
        .map(|d| json_response(StatusCode::OK, &resource_type_doc(d, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

pub async fn list_schemas(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    refuse_filter(&params)?;
    let base = base(&app);
    let all: Vec<Value> = schemas().iter().map(|s| schema::schema_json(s, &base)).collect();
    Ok(json_response(StatusCode::OK, &list_response(all.len() as u64, 0, all)))
}

pub async fn get_schema(State(app): State<App>, Path(urn): Path<String>) -> Result<Response, ScimError> {
    let base = base(&app);
    schemas()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&urn))
        .map(|s| json_response(StatusCode::OK, &schema::schema_json(s, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no schema {urn:?}")))
}

/// `/Me` and `/Bulk` are not built (ServiceProviderConfig says so).
pub async fn not_implemented() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "this endpoint is not supported by roster",
    )
}
