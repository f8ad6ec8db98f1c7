//! `/scim/v2/Users`: parse and validate the request, run the workspace rule
//! in one write transaction, render the result.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query as RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::error::{SCIM_JSON, ScimError};
use super::filter::{self, IndexAttr};
use super::list::{Query, list_response};
use super::model::{self, render_user, user_location};
use super::patch;
use super::schema::USER;
use crate::App;
use crate::store::{self, StoreError};
use crate::workspace::ScimCtx;
use crate::workspace::members::{self as rules, Fresh, RuleError, etag};
use crate::workspace::model::{Member, SyncError};

/// Why a write was refused: a workspace rule (recorded as a sync error when
/// admins should see it) or the protocol itself.
pub(crate) enum Refused {
    Rule(RuleError),
    Protocol(ScimError),
}

impl From<RuleError> for Refused {
    fn from(e: RuleError) -> Self {
        Refused::Rule(e)
    }
}
impl From<ScimError> for Refused {
    fn from(e: ScimError) -> Self {
        Refused::Protocol(e)
    }
}

/// A SCIM JSON response with the resource's ETag.
pub fn resource_response(
    status: StatusCode,
    resource: Value,
    version: Option<u64>,
    location: Option<&str>,
) -> Response {
    write_response(status, &resource, version, location)
}

/// Serialises straight into the body bytes (`to_vec`, not `Display`, which
/// goes through `fmt::Write` for every fragment).
fn write_response(status: StatusCode, resource: &Value, version: Option<u64>, location: Option<&str>) -> Response {
    bytes_response(
        status,
        serde_json::to_vec(resource).unwrap_or_default(),
        version,
        location,
    )
}

/// A SCIM JSON response from an already serialised body.
pub(super) fn bytes_response(
    status: StatusCode,
    body: Vec<u8>,
    version: Option<u64>,
    location: Option<&str>,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(v) = version
        && let Ok(e) = HeaderValue::from_str(&etag(v))
    {
        h.insert(header::ETAG, e);
    }
    if let Some(l) = location
        && let Ok(l) = HeaderValue::from_str(l)
    {
        h.insert(header::LOCATION, l);
    }
    resp
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    write_response(status, v, None, None)
}

/// Reads a JSON request body: `application/scim+json` or `application/json`
/// (or no content type at all); anything else is 415.
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime != "application/scim+json" && mime != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                format!("content type {ct:?} is not supported; send application/scim+json or application/json"),
            ));
        }
    }
    if body.is_empty() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the request body is empty; a JSON object is required",
        ));
    }
    super::json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the request body is not valid JSON: {e}")))
}

/// Bodies above this are parsed and checked on the blocking pool: a body
/// near the 1 MiB limit costs milliseconds of CPU, which on an async worker
/// would stall every other request it serves (issue 17).
const INLINE_BODY_BYTES: usize = 64 << 10;

/// Runs `f` (parsing and validating a request body of `len` bytes) where it
/// cannot delay other requests: inline when small, else on the blocking pool.
pub(crate) async fn off_worker<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    if len <= INLINE_BODY_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "body parsing task failed");
        ScimError::internal()
    })?
}

/// Ids are accepted only in the form roster writes them (hyphenated), not
/// the braced, URN or simple forms the uuid parser also knows.
pub(crate) fn canonical_id(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id)
        .ok()
        .filter(|u| u.hyphenated().to_string().eq_ignore_ascii_case(id))
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    canonical_id(id).ok_or_else(|| ScimError::not_found(format!("no User with id {:?}", truncate(id))))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Hashes a password on the blocking pool when the operator opted in to
/// storing IdP-sent passwords; otherwise it is dropped (never echoed).
async fn maybe_hash(app: &App, password: Option<String>) -> Result<Option<String>, ScimError> {
    let Some(pw) = password else { return Ok(None) };
    if !app.config.scim_accept_passwords {
        return Ok(None);
    }
    let rng = app.rng.clone();
    tokio::task::spawn_blocking(move || crate::password::hash(&pw, rng.as_ref()))
        .await
        .map_err(|_| ScimError::internal())?
        .map(Some)
        .map_err(|e| ScimError::bad("invalidValue", e.to_string()))
}

/// Writes a refusal admins must see (last admin, conflicts, foreign
/// management) to the sync-error list; failures here are only logged.
pub(crate) async fn record_sync_error(app: &App, ctx: &ScimCtx, operation: &str, target: &str, e: &RuleError) {
    if matches!(
        e,
        RuleError::NotFound { .. } | RuleError::VersionMismatch { .. } | RuleError::Invalid(_)
    ) {
        return;
    }
    tracing::warn!(connection = %ctx.connection().name, operation, target, detail = %e, "SCIM request refused by a workspace rule");
    let entry = SyncError {
        at_ms: app.clock.now_ms(),
        connection_id: ctx.connection().id,
        connection_name: ctx.connection().name.clone(),
        operation: operation.to_owned(),
        target: target.to_owned(),
        detail: e.to_string(),
    };
    let r = app
        .store
        .write(move |txn| {
            store::sync_errors::push(txn, &entry)?;
            Ok(Ok::<(), ()>(()))
        })
        .await;
    if let Err(err) = r {
        tracing::error!(error = %err, "could not record a sync error");
    }
}

/// Turns a write's outcome into the handler's result, recording rule
/// refusals as sync errors.
pub(crate) async fn finish<T>(
    app: &App,
    ctx: &ScimCtx,
    operation: &str,
    target: &str,
    r: Result<Result<T, Refused>, StoreError>,
) -> Result<T, ScimError> {
    match r? {
        Ok(m) => Ok(m),
        Err(Refused::Protocol(e)) => Err(e),
        Err(Refused::Rule(e)) => {
            record_sync_error(app, ctx, operation, target, &e).await;
            Err(e.into())
        }
    }
}

/// A member and their teams, read or written in one transaction.
type WithTeams = (Member, Vec<(Uuid, String)>);

/// Renders a member with the teams read in the same transaction (one
/// blocking-pool hop per request, not two).
fn respond(app: &App, q: &Query, (m, teams): &WithTeams, status: StatusCode) -> Response {
    let location = user_location(&app.config.public_url, &m.id);
    if q.attributes.is_empty()
        && q.excluded.is_empty()
        && let Some(body) = super::render::user_default(m, &app.config.public_url, teams)
    {
        return bytes_response(status, body, Some(m.version), Some(&location));
    }
    let full = render_user(m, &app.config.public_url, teams);
    resource_response(status, q.project_owned(full, &USER), Some(m.version), Some(&location))
}

/// Adds the member's teams to a successful write, inside its transaction.
fn with_teams(
    txn: &redb::WriteTransaction,
    r: Result<Member, Refused>,
) -> Result<Result<WithTeams, Refused>, StoreError> {
    match r {
        Ok(m) => {
            let teams = store::teams::teams_of_w(txn, m.id)?;
            Ok(Ok((m, teams)))
        }
        Err(e) => Ok(Err(e)),
    }
}

fn render_in(txn: &redb::ReadTransaction, m: &Member, public_url: &str) -> Result<Value, StoreError> {
    Ok(render_user(m, public_url, &store::teams::teams_of(txn, m.id)?))
}

pub async fn create(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &USER, false)?;
    let ingested = off_worker(body.len(), move || {
        model::ingest_body(&json_body(&headers, &body)?, None)
    })
    .await?;
    let mut input = ingested.input;
    input.password_hash = maybe_hash(&app, ingested.password).await?;
    let fresh = Fresh::new(&app);
    let target = input.user_name.clone();
    let c = ctx.clone();
    let r = app
        .store
        .write(move |txn| {
            match rules::provision(txn, &c, &input, &fresh)? {
                // A member created just now is in no team yet.
                Ok(p) if !p.linked => Ok(Ok((p.member, Vec::new()))),
                r => with_teams(txn, r.map(|p| p.member).map_err(Refused::from)),
            }
        })
        .await;
    let m = finish(&app, &ctx, "create User", &target, r).await?;
    Ok(respond(&app, &q, &m, StatusCode::CREATED))
}

pub async fn get(
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &USER, false)?;
    let uid = parse_id(&id)?;
    let found = app
        .store
        .read_point(
            move |txn| match store::members::get(txn, uid)?.filter(Member::is_listed) {
                Some(m) => Ok(Some((m, store::teams::teams_of(txn, uid)?))),
                None => Ok(None),
            },
        )
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no User with id {uid}")))?;
    let m = &found.0;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && inm
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/").trim_matches('"') == m.version.to_string())
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(e) = HeaderValue::from_str(&etag(m.version)) {
            resp.headers_mut().insert(header::ETAG, e);
        }
        return Ok(resp);
    }
    Ok(respond(&app, &q, &found, StatusCode::OK))
}

pub async fn replace(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &USER, false)?;
    let uid = parse_id(&id)?;
    let own = uid.to_string();
    let (expected, h) = (if_match(&headers), headers);
    let ingested = off_worker(body.len(), move || {
        model::ingest_body(&json_body(&h, &body)?, Some(&own))
    })
    .await?;
    let mut input = ingested.input;
    input.password_hash = maybe_hash(&app, ingested.password).await?;
    let fresh = Fresh::new(&app);
    let c = ctx.clone();
    let r = app
        .store
        .write(move |txn| {
            let current = match rules::load_for_write(txn, &c, uid, expected.as_deref())? {
                Ok(m) => m,
                Err(e) => return Ok(Err(e.into())),
            };
            let r = rules::replace(txn, &c, current, &input, &fresh)?.map_err(Refused::from);
            with_teams(txn, r)
        })
        .await;
    let m = finish(&app, &ctx, "replace User", &uid.to_string(), r).await?;
    Ok(respond(&app, &q, &m, StatusCode::OK))
}

pub async fn modify(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &USER, false)?;
    let uid = parse_id(&id)?;
    let (expected, h) = (if_match(&headers), headers);
    let ops = off_worker(body.len(), move || {
        let ops = patch::parse_patch(&json_body(&h, &body)?)?;
        // Sizes and characters are checked here, before the writer: the
        // batch only applies and stores (issue 17).
        for op in &ops {
            if let Some(v) = &op.value {
                model::check_values(v, &model::value_path(op.path.as_ref()))?;
            }
        }
        Ok::<_, ScimError>(ops)
    })
    .await?;
    let password_hash = maybe_hash(&app, model::patch_password(&ops)).await?;
    let fresh = Fresh::new(&app);
    let public_url = app.config.public_url.clone();
    let c = ctx.clone();
    let r = app
        .store
        .write(move |txn| {
            let current = match rules::load_for_write(txn, &c, uid, expected.as_deref())? {
                Ok(m) => m,
                Err(e) => return Ok(Err(e.into())),
            };
            let mut resource = render_user(&current, &public_url, &[]);
            if let Err(e) = patch::apply(&mut resource, &ops, &USER) {
                return Ok(Err(ScimError::from(e).into()));
            }
            let ingested = match model::from_resource(&resource) {
                Ok(i) => i,
                Err(e) => return Ok(Err(e.into())),
            };
            let mut input = ingested.input;
            input.password_hash = ingested.password.and(password_hash.clone());
            let r = rules::replace(txn, &c, current, &input, &fresh)?.map_err(Refused::from);
            with_teams(txn, r)
        })
        .await;
    let m = finish(&app, &ctx, "patch User", &uid.to_string(), r).await?;
    Ok(respond(&app, &q, &m, StatusCode::OK))
}

pub async fn delete(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let uid = parse_id(&id)?;
    let expected = if_match(&headers);
    let now = app.clock.now_ms();
    let c = ctx.clone();
    let r = app
        .store
        .write(move |txn| Ok(rules::remove(txn, &c, uid, expected.as_deref(), now)?.map_err(Refused::from)))
        .await;
    finish(&app, &ctx, "delete User", &uid.to_string(), r).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(
    State(app): State<App>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &USER, true)?;
    let public_url = app.config.public_url.clone();
    let q2 = q.clone();
    let read = move |txn: &redb::ReadTransaction| select(txn, &q2, &public_url);
    // `userName eq` (Okta's and Entra's lookup before a create), `id eq` and
    // `externalId eq` read one or a few members through an index: a point
    // read. Everything else may scan.
    let point = q
        .filter
        .as_ref()
        .and_then(filter::index_lookup)
        .is_some_and(|h| matches!(h.attr, IndexAttr::Id | IndexAttr::UserName | IndexAttr::ExternalId));
    let (total, page) = if point {
        app.store.read_point(read).await?
    } else {
        app.store.read(read).await?
    };
    let resources = page.into_iter().map(|r| q.project_owned(r, &USER)).collect();
    Ok(json_response(
        StatusCode::OK,
        &list_response(total, q.offset, resources),
    ))
}

/// The members a listing returns: (totalResults, rendered page).
fn select(txn: &redb::ReadTransaction, q: &Query, public_url: &str) -> Result<(u64, Vec<Value>), StoreError> {
    if q.filter.is_none() && q.sort_by.is_none() {
        let total = store::members::listed_count(txn)?;
        let page = store::members::page(txn, q.offset, q.count)?;
        let rendered = page
            .iter()
            .map(|m| render_in(txn, m, public_url))
            .collect::<Result<_, _>>()?;
        return Ok((total, rendered));
    }
    let window = |i: u64| i >= q.offset && i < q.offset + q.count as u64;
    let mut total = 0u64;
    let mut kept: Vec<Value> = Vec::new();
    let mut consider = |m: &Member| -> Result<(), StoreError> {
        if !m.is_listed() {
            return Ok(());
        }
        let r = render_in(txn, m, public_url)?;
        if q.filter.as_ref().is_none_or(|f| filter::matches(f, &r, &USER)) {
            if q.sort_by.is_some() || window(total) {
                kept.push(r);
            }
            total += 1;
        }
        Ok(())
    };
    match q.filter.as_ref().map(|f| candidates(txn, f)).transpose()?.flatten() {
        Some(ms) => {
            for m in &ms {
                consider(m)?;
            }
        }
        None => {
            let mut err = None;
            store::members::scan(txn, |m| match consider(&m) {
                Ok(()) => true,
                Err(e) => {
                    err = Some(e);
                    false
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    if let Some(sort_by) = &q.sort_by {
        kept.sort_by(|a, b| super::list::compare(a, b, &USER, sort_by, q.descending));
        kept = kept
            .into_iter()
            .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
            .take(q.count)
            .collect();
    }
    Ok((total, kept))
}

/// Candidate members from an index when the filter pins an indexed
/// attribute, in listing order; `None` means "scan".
fn candidates(txn: &redb::ReadTransaction, f: &filter::Filter) -> Result<Option<Vec<Member>>, StoreError> {
    let Some(hint) = filter::index_lookup(f) else {
        return Ok(None);
    };
    let ids: Vec<Uuid> = match hint.attr {
        IndexAttr::Id => Uuid::parse_str(&hint.value).into_iter().collect(),
        IndexAttr::UserName => store::members::by_email(txn, &hint.value)?
            .map(|m| m.id)
            .into_iter()
            .collect(),
        IndexAttr::ExternalId => store::members::ids_by_external_id(txn, &hint.value)?,
        IndexAttr::EmailValue => store::members::ids_by_any_email(txn, &hint.value)?,
        IndexAttr::DisplayName => return Ok(None),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(m) = store::members::get(txn, id)? {
            out.push(m);
        }
    }
    out.sort_by_key(|m| m.seq);
    out.dedup_by_key(|m| m.id);
    Ok(Some(out))
}
