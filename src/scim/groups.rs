//! `/scim/v2/Groups`: SCIM groups are workspace teams. PATCH is translated
//! into team operations instead of rendering the whole group, so adding one
//! member to a 10,000-member team costs one membership row, not a rewrite.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query as RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redb::{ReadTransaction, WriteTransaction};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ScimError;
use super::filter::{self, CompValue, CompareOp, Filter, IndexAttr};
use super::list::{Query, list_bytes, list_response};
use super::patch::{self, Op, PatchOperation};
use super::render::{Meta, Reference};
use super::schema::{self, GROUP, GROUP_URN};
use super::users::{Refused, bytes_response, finish, if_match, json_body, json_response, resource_response};
use crate::App;
use crate::clock::rfc3339;
use crate::store::{self, StoreError};
use crate::workspace::ScimCtx;
use crate::workspace::members::etag;
use crate::workspace::model::Team;
use crate::workspace::teams::{self as rules, Editor, TeamOp};

pub fn group_location(public_url: &str, id: &Uuid) -> String {
    format!("{public_url}{}/Groups/{id}", crate::paths::SCIM)
}

/// Whether a response with this projection shows `members` (so whether to
/// load them at all: Entra always sends `excludedAttributes=members`).
fn wants_members(q: &Query) -> bool {
    let is_members = |p: &filter::AttrPath| p.name.eq_ignore_ascii_case("members");
    if q.excluded.iter().any(|p| is_members(p) && p.sub.is_none()) {
        return false;
    }
    q.attributes.is_empty() || q.attributes.iter().any(is_members)
}

/// Whether a filter refers to `members` (then candidates need them loaded).
fn mentions_members(f: &Filter) -> bool {
    match f {
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
            p.name.eq_ignore_ascii_case("members")
        }
        Filter::Not(inner) => mentions_members(inner),
        Filter::And(v) | Filter::Or(v) => v.iter().any(mentions_members),
    }
}

/// A team's listed (not removed) members, as its member list shows them.
fn team_members(txn: &ReadTransaction, team: Uuid) -> Result<Vec<store::members::Shown>, StoreError> {
    store::members::shown(txn, &store::teams::member_ids(txn, team)?)
}

/// One element of a team's `members`.
fn member_ref<'a>(m: &'a store::members::Shown, public_url: &str) -> Reference<'a> {
    Reference {
        reference: super::model::user_location(public_url, &m.id),
        display: &m.display,
        kind: "User",
        value: m.id.to_string(),
    }
}

/// The member elements of a team, as `Value`s (to filter and project).
fn member_elements(txn: &ReadTransaction, team: Uuid, public_url: &str) -> Result<Vec<Value>, StoreError> {
    team_members(txn, team)?
        .iter()
        .map(|m| serde_json::to_value(member_ref(m, public_url)).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

/// Whether a request asks for the default attribute set (neither
/// `attributes` nor `excludedAttributes`): then a team is written straight
/// to bytes ([`write_group`]) instead of through `serde_json::Value`.
fn default_set(q: &Query) -> bool {
    q.attributes.is_empty() && q.excluded.is_empty()
}

// Field order is key order: these serialise exactly as `render_group`'s
// objects do (serde_json's map is sorted).
#[derive(Serialize)]
struct GroupOut<'a> {
    #[serde(rename = "displayName")]
    display_name: &'a str,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<MembersOut<'a>>,
    meta: Meta,
    schemas: [&'static str; 1],
}

/// A team's member list, written element by element as it is serialised.
struct MembersOut<'a> {
    shown: &'a [store::members::Shown],
    public_url: &'a str,
}

impl Serialize for MembersOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.shown.iter().map(|m| member_ref(m, self.public_url)))
    }
}

/// The JSON bytes of `project_owned(render_group(t, public_url, members),
/// GROUP, [], [])` (the tests compare them), without a `Value` per member:
/// a team of 100,000 members is a 15 MB answer, and as `Value`s it took
/// ten times that in memory.
fn write_group(t: &Team, public_url: &str, members: Option<&[store::members::Shown]>) -> Vec<u8> {
    let out = GroupOut {
        display_name: &t.name,
        external_id: t.external_id.as_deref(),
        id: t.id.to_string(),
        members: members.map(|shown| MembersOut { shown, public_url }),
        meta: Meta {
            created: rfc3339(t.created_ms),
            last_modified: rfc3339(t.updated_ms),
            location: group_location(public_url, &t.id),
            resource_type: "Group",
            version: etag(t.version),
        },
        schemas: [GROUP_URN],
    };
    let capacity = 256 + members.map_or(0, |m| m.len() * 160);
    let mut bytes = Vec::with_capacity(capacity);
    // Writing into a Vec cannot fail, and every field serialises.
    let _ = serde_json::to_writer(&mut bytes, &out);
    bytes
}

/// [`write_group`] of a stored team, with its members.
fn group_bytes(txn: &ReadTransaction, t: &Team, public_url: &str) -> Result<Vec<u8>, StoreError> {
    Ok(write_group(t, public_url, Some(&team_members(txn, t.id)?)))
}

pub fn render_group(t: &Team, public_url: &str, members: Option<Vec<Value>>) -> Value {
    let mut obj = Map::new();
    obj.insert("schemas".into(), json!([GROUP_URN]));
    obj.insert("id".into(), json!(t.id.to_string()));
    if let Some(e) = &t.external_id {
        obj.insert("externalId".into(), json!(e));
    }
    obj.insert("displayName".into(), json!(t.name));
    if let Some(m) = members {
        obj.insert("members".into(), Value::Array(m));
    }
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": rfc3339(t.created_ms),
            "lastModified": rfc3339(t.updated_ms),
            "location": group_location(public_url, &t.id),
            "version": etag(t.version),
        }),
    );
    Value::Object(obj)
}

fn read_team(txn: &ReadTransaction, t: &Team, public_url: &str, with_members: bool) -> Result<Value, StoreError> {
    let members = if with_members {
        Some(member_elements(txn, t.id, public_url)?)
    } else {
        None
    };
    Ok(render_group(t, public_url, members))
}

/// What a POST/PUT body says about a group.
struct GroupBody {
    name: String,
    external_id: Option<String>,
    members: Vec<String>,
}

/// Member references from a `members` value: objects with `value`, or bare
/// id strings.
fn member_refs(v: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => match schema::key_ci(o, "value").and_then(|k| o.get(&k)) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ScimError::bad(
                    "invalidValue",
                    "each member needs a string \"value\" (the member's id)",
                )),
            },
            _ => Err(ScimError::bad(
                "invalidValue",
                "members must be objects with a \"value\"",
            )),
        })
        .collect()
}

fn opt_string(v: &Value, key: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ScimError::bad("invalidValue", format!("{key} must be a string"))),
    }
}

fn parse_body(body: &Value, own_id: Option<&Uuid>) -> Result<GroupBody, ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the request body must be a JSON object",
        ));
    };
    let mut name = None;
    let mut external_id = None;
    let mut members = Vec::new();
    for (k, v) in obj {
        let key = k
            .rsplit_once(':')
            .filter(|(urn, _)| urn.eq_ignore_ascii_case(GROUP_URN))
            .map_or(k.as_str(), |(_, a)| a);
        match key.to_ascii_lowercase().as_str() {
            "displayname" => name = opt_string(v, "displayName")?,
            "externalid" => external_id = opt_string(v, "externalId")?,
            "members" => members = member_refs(v)?,
            "id" => {
                if let Some(own) = own_id
                    && v.as_str() != Some(own.to_string().as_str())
                {
                    return Err(ScimError::bad("mutability", "id is read-only and cannot be changed"));
                }
            }
            // Read-only or informational; ignored as RFC 7644 §3.3 says.
            "schemas" | "meta" => {}
            _ => {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("{k:?} is not an attribute of Group (displayName, externalId, members)"),
                ));
            }
        }
    }
    let name = name.ok_or_else(|| ScimError::bad("invalidValue", "displayName is required"))?;
    Ok(GroupBody {
        name,
        external_id,
        members,
    })
}

/// The member ids a `members[...]` filter selects. `value eq "x"` (and `or`
/// chains of them) are read directly; anything else is evaluated against
/// the current members.
fn filtered_members(txn: &WriteTransaction, team: Uuid, f: &Filter) -> Result<Vec<String>, StoreError> {
    fn direct(f: &Filter, out: &mut Vec<String>) -> bool {
        match f {
            Filter::Compare(p, CompareOp::Eq, CompValue::String(s))
                if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() =>
            {
                out.push(s.clone());
                true
            }
            Filter::Or(items) => items.iter().all(|i| direct(i, out)),
            _ => false,
        }
    }
    let mut ids = Vec::new();
    if direct(f, &mut ids) {
        return Ok(ids);
    }
    let Some((_, members_def)) = GROUP.find_attr("members") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in store::teams::member_ids_w(txn, team)? {
        let display = store::members::get_w(txn, id)?
            .map(|m| m.display_name.unwrap_or(m.email))
            .unwrap_or_default();
        let el = json!({"value": id.to_string(), "display": display, "type": "User"});
        if filter::matches_element(f, &el, members_def) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// Translates PATCH operations (Okta, Entra and RFC dialects) into team
/// operations. Runs inside the write transaction because a filtered member
/// path may need the current members.
fn translate(
    txn: &WriteTransaction,
    team: &Team,
    ops: &[PatchOperation],
) -> Result<Result<Vec<TeamOp>, ScimError>, StoreError> {
    let mut out = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let at = |msg: String| format!("operation {}: {msg}", n + 1);
        match &op.path {
            None => {
                let Some(Value::Object(obj)) = &op.value else {
                    return Ok(Err(ScimError::bad(
                        "invalidValue",
                        at("a path-less operation needs an object value".into()),
                    )));
                };
                if op.op == Op::Remove {
                    return Ok(Err(ScimError::bad("noTarget", at("remove needs a path".into()))));
                }
                for (k, v) in obj {
                    let key = k
                        .rsplit_once(':')
                        .filter(|(urn, _)| urn.eq_ignore_ascii_case(GROUP_URN))
                        .map_or(k.as_str(), |(_, a)| a);
                    match key.to_ascii_lowercase().as_str() {
                        "displayname" => match opt_string(v, "displayName") {
                            Ok(Some(name)) => out.push(TeamOp::Rename(name)),
                            Ok(None) => {
                                return Ok(Err(ScimError::bad(
                                    "invalidValue",
                                    at("displayName is required".into()),
                                )));
                            }
                            Err(e) => return Ok(Err(e)),
                        },
                        "externalid" => match opt_string(v, "externalId") {
                            Ok(e) => out.push(TeamOp::SetExternalId(e)),
                            Err(e) => return Ok(Err(e)),
                        },
                        "members" => match member_refs(v) {
                            Ok(refs) if op.op == Op::Add => out.push(TeamOp::AddMembers(refs)),
                            Ok(refs) => out.push(TeamOp::ReplaceMembers(refs)),
                            Err(e) => return Ok(Err(e)),
                        },
                        // Okta sends the group's own id with every rename.
                        "id" => {
                            if v.as_str() != Some(team.id.to_string().as_str()) {
                                return Ok(Err(ScimError::bad("mutability", at("id is read-only".into()))));
                            }
                        }
                        "schemas" | "meta" => {}
                        _ => {
                            return Ok(Err(ScimError::bad(
                                "invalidPath",
                                at(format!("{k:?} is not an attribute of Group")),
                            )));
                        }
                    }
                }
            }
            Some(path) => {
                let urn_ok = path
                    .attr
                    .urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(GROUP_URN));
                let name = path.attr.name.to_ascii_lowercase();
                let plain = path.filter.is_none() && path.attr.sub.is_none() && path.sub_after_filter.is_none();
                match (urn_ok, name.as_str()) {
                    (true, "displayname") if plain => match (op.op, op.value.as_ref()) {
                        (Op::Remove, _) => {
                            return Ok(Err(ScimError::bad(
                                "invalidValue",
                                at("displayName is required and cannot be removed".into()),
                            )));
                        }
                        (_, Some(v)) => match opt_string(v, "displayName") {
                            Ok(Some(name)) => out.push(TeamOp::Rename(name)),
                            Ok(None) => {
                                return Ok(Err(ScimError::bad(
                                    "invalidValue",
                                    at("displayName is required".into()),
                                )));
                            }
                            Err(e) => return Ok(Err(e)),
                        },
                        (_, None) => return Ok(Err(ScimError::bad("invalidValue", at("a value is required".into())))),
                    },
                    (true, "externalid") if plain => match (op.op, op.value.as_ref()) {
                        (Op::Remove, _) | (_, None) => out.push(TeamOp::SetExternalId(None)),
                        (_, Some(v)) => match opt_string(v, "externalId") {
                            Ok(e) => out.push(TeamOp::SetExternalId(e)),
                            Err(e) => return Ok(Err(e)),
                        },
                    },
                    (true, "members") if path.attr.sub.is_none() && path.sub_after_filter.is_none() => {
                        match (&path.filter, op.op) {
                            (None, Op::Add) => match op.value.as_ref().map(member_refs).unwrap_or(Ok(Vec::new())) {
                                Ok(refs) => out.push(TeamOp::AddMembers(refs)),
                                Err(e) => return Ok(Err(e)),
                            },
                            (None, Op::Replace) => match op.value.as_ref().map(member_refs).unwrap_or(Ok(Vec::new())) {
                                Ok(refs) => out.push(TeamOp::ReplaceMembers(refs)),
                                Err(e) => return Ok(Err(e)),
                            },
                            // Entra's default dialect: remove with a value
                            // array removes only those members.
                            (None, Op::Remove) => match &op.value {
                                Some(v) if !v.is_null() => match member_refs(v) {
                                    Ok(refs) => out.push(TeamOp::RemoveMembers(refs)),
                                    Err(e) => return Ok(Err(e)),
                                },
                                _ => out.push(TeamOp::RemoveAllMembers),
                            },
                            (Some(f), Op::Remove) => {
                                out.push(TeamOp::RemoveMembers(filtered_members(txn, team.id, f)?))
                            }
                            // Member elements have nothing writable but
                            // their value; a filtered add/replace adds the
                            // given members.
                            (Some(_), _) => match op.value.as_ref().map(member_refs).unwrap_or(Ok(Vec::new())) {
                                Ok(refs) => out.push(TeamOp::AddMembers(refs)),
                                Err(e) => return Ok(Err(e)),
                            },
                        }
                    }
                    _ => {
                        return Ok(Err(ScimError::bad(
                            "invalidPath",
                            at(format!(
                                "{path} is not a writable attribute of Group (displayName, externalId, members)"
                            )),
                        )));
                    }
                }
            }
        }
    }
    Ok(Ok(out))
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id).map_err(|_| {
        ScimError::not_found(format!(
            "no Group with id {:?}",
            id.chars().take(64).collect::<String>()
        ))
    })
}

/// Reads the team back (with members if the response shows them) and
/// answers with it.
async fn respond(app: &App, q: &Query, team: Team, status: StatusCode) -> Result<Response, ScimError> {
    let public_url = app.config.public_url.clone();
    let with_members = wants_members(q);
    let default = default_set(q);
    let t = team.clone();
    let body = app
        .store
        .read(move |txn| read_body(txn, &t, &public_url, default, with_members))
        .await?;
    Ok(rendered(app, q, &team, body, status))
}

/// A team's body for a response: bytes in the default attribute set, else
/// the `Value` to project (with members only when they are wanted).
fn read_body(
    txn: &ReadTransaction,
    t: &Team,
    public_url: &str,
    default: bool,
    with_members: bool,
) -> Result<Body, StoreError> {
    Ok(if default {
        Body::Bytes(group_bytes(txn, t, public_url)?)
    } else {
        Body::Value(read_team(txn, t, public_url, with_members)?)
    })
}

/// A team read for a response: written straight to bytes (default
/// attribute set) or rendered to be projected.
enum Body {
    Bytes(Vec<u8>),
    Value(Value),
}

/// The response for a team: projected when it is a `Value`, with its ETag
/// and Location.
fn rendered(app: &App, q: &Query, team: &Team, body: Body, status: StatusCode) -> Response {
    let location = group_location(&app.config.public_url, &team.id);
    match body {
        Body::Bytes(b) => bytes_response(status, b, Some(team.version), Some(&location)),
        Body::Value(v) => resource_response(status, q.project_owned(v, &GROUP), Some(team.version), Some(&location)),
    }
}

pub async fn create(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &GROUP, false)?;
    let body = parse_body(&json_body(&headers, &body)?, None)?;
    let now = app.clock.now_ms();
    let new_id = crate::clock::new_uuid_v7(now, app.rng.as_ref());
    let editor = Editor::Scim(ctx.clone());
    let target = body.name.clone();
    let r = app
        .store
        .write(move |txn| {
            Ok(rules::create(
                txn,
                &editor,
                &body.name,
                body.external_id.clone(),
                body.members.clone(),
                new_id,
                now,
            )?
            .map(|(t, _)| t)
            .map_err(Refused::Rule))
        })
        .await;
    let team = finish(&app, &ctx, "create Group", &target, r).await?;
    respond(&app, &q, team, StatusCode::CREATED).await
}

pub async fn get(
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &GROUP, false)?;
    let tid = parse_id(&id)?;
    // The team and its members from one read transaction, so the ETag and
    // the members describe the same version. Without members (Entra always
    // reads groups with excludedAttributes=members) it is a point read of
    // a few keys; a member list can be 10,000 rows and goes to the pool.
    let with_members = wants_members(&q);
    let default = default_set(&q);
    let public_url = app.config.public_url.clone();
    let read = move |txn: &ReadTransaction| -> Result<Option<(Team, Body)>, StoreError> {
        let Some(team) = store::teams::get(txn, tid)? else {
            return Ok(None);
        };
        let body = read_body(txn, &team, &public_url, default, with_members)?;
        Ok(Some((team, body)))
    };
    let found = if with_members {
        app.store.read(read).await?
    } else {
        app.store.read_point(read).await?
    };
    let (team, v) = found.ok_or_else(|| ScimError::not_found(format!("no Group with id {tid}")))?;
    Ok(rendered(&app, &q, &team, v, StatusCode::OK))
}

pub async fn replace(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &GROUP, false)?;
    let tid = parse_id(&id)?;
    let body = parse_body(&json_body(&headers, &body)?, Some(&tid))?;
    let now = app.clock.now_ms();
    let expected = if_match(&headers);
    let editor = Editor::Scim(ctx.clone());
    let r = app
        .store
        .write(move |txn| {
            let current = match rules::load_for_write(txn, &editor, tid, expected.as_deref())? {
                Ok(t) => t,
                Err(e) => return Ok(Err(Refused::Rule(e))),
            };
            let ops = [
                TeamOp::Rename(body.name.clone()),
                TeamOp::SetExternalId(body.external_id.clone()),
                TeamOp::ReplaceMembers(body.members.clone()),
            ];
            Ok(rules::apply_ops(txn, &editor, current, &ops, now, false)?.map_err(Refused::Rule))
        })
        .await;
    let team = finish(&app, &ctx, "replace Group", &tid.to_string(), r).await?;
    respond(&app, &q, team, StatusCode::OK).await
}

pub async fn modify(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &GROUP, false)?;
    let tid = parse_id(&id)?;
    let body = json_body(&headers, &body)?;
    let ops = patch::parse_patch(&body)?;
    let now = app.clock.now_ms();
    let expected = if_match(&headers);
    let editor = Editor::Scim(ctx.clone());
    let r = app
        .store
        .write(move |txn| {
            let current = match rules::load_for_write(txn, &editor, tid, expected.as_deref())? {
                Ok(t) => t,
                Err(e) => return Ok(Err(Refused::Rule(e))),
            };
            let team_ops = match translate(txn, &current, &ops)? {
                Ok(o) => o,
                Err(e) => return Ok(Err(Refused::Protocol(e))),
            };
            Ok(rules::apply_ops(txn, &editor, current, &team_ops, now, false)?.map_err(Refused::Rule))
        })
        .await;
    let team = finish(&app, &ctx, "patch Group", &tid.to_string(), r).await?;
    // Entra asks for 204 on group PATCH and large member lists should not be
    // echoed; a request that names `attributes` gets the resource (§3.5.2).
    if q.attributes.is_empty() && q.excluded.is_empty() {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Ok(e) = HeaderValue::from_str(&etag(team.version)) {
            resp.headers_mut().insert(header::ETAG, e);
        }
        return Ok(resp);
    }
    respond(&app, &q, team, StatusCode::OK).await
}

pub async fn delete(
    State(app): State<App>,
    Extension(ctx): Extension<ScimCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let tid = parse_id(&id)?;
    let now = app.clock.now_ms();
    let expected = if_match(&headers);
    let editor = Editor::Scim(ctx.clone());
    let r = app
        .store
        .write(move |txn| Ok(rules::delete(txn, &editor, tid, expected.as_deref(), now)?.map_err(Refused::Rule)))
        .await;
    finish(&app, &ctx, "delete Group", &tid.to_string(), r).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(
    State(app): State<App>,
    RawQuery(params): RawQuery<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let q = Query::parse(&params, &GROUP, true)?;
    let public_url = app.config.public_url.clone();
    let q2 = q.clone();
    let read = move |txn: &ReadTransaction| -> Result<ListBody, StoreError> {
        if default_set(&q2) {
            let (total, page) = select(txn, &q2, &public_url, |t, _| group_bytes(txn, t, &public_url))?;
            Ok(ListBody::Bytes(list_bytes(total, q2.offset, &page)))
        } else {
            let with_members = wants_members(&q2);
            // A candidate rendered for the filter is reused unless it lacks
            // members that are wanted.
            let (total, page) = select(txn, &q2, &public_url, |t, rendered| match rendered {
                Some(r) if !with_members || r.get("members").is_some() => Ok(r),
                _ => read_team(txn, t, &public_url, with_members),
            })?;
            Ok(ListBody::Values(total, page))
        }
    };
    // `displayName eq` without members (Okta's check before it pushes a
    // group, Entra's match with excludedAttributes=members), `id eq` and
    // `externalId eq` read one or a few teams through an index: a point
    // read. Member lists (up to every member of the workspace) and
    // everything else may scan.
    let point = !wants_members(&q)
        && q.filter.as_ref().is_some_and(|f| {
            !mentions_members(f)
                && filter::index_lookup(f)
                    .is_some_and(|h| matches!(h.attr, IndexAttr::Id | IndexAttr::DisplayName | IndexAttr::ExternalId))
        });
    let body = if point {
        app.store.read_point(read).await?
    } else {
        app.store.read(read).await?
    };
    Ok(match body {
        ListBody::Bytes(b) => bytes_response(StatusCode::OK, b, None, None),
        ListBody::Values(total, page) => {
            let resources = page.into_iter().map(|r| q.project_owned(r, &GROUP)).collect();
            json_response(StatusCode::OK, &list_response(total, q.offset, resources))
        }
    })
}

/// A listing read: the whole body in the default attribute set, or the
/// total and the rendered page to project.
enum ListBody {
    Bytes(Vec<u8>),
    Values(u64, Vec<Value>),
}

/// The teams a listing returns: (totalResults, the page, each team
/// rendered by `render`, which gets the team's `Value` when the filter
/// already rendered it).
fn select<R>(
    txn: &ReadTransaction,
    q: &Query,
    public_url: &str,
    render: impl Fn(&Team, Option<Value>) -> Result<R, StoreError>,
) -> Result<(u64, Vec<R>), StoreError> {
    let window = |i: u64| i >= q.offset && i < q.offset + q.count as u64;
    if q.filter.is_none() && q.sort_by.is_none() {
        let total = store::teams::count(txn)?;
        let page = store::teams::page(txn, q.offset, q.count)?;
        let rendered = page.iter().map(|t| render(t, None)).collect::<Result<_, _>>()?;
        return Ok((total, rendered));
    }
    // Members are rendered for every candidate only when the filter needs
    // them; otherwise just for the page that is returned.
    let eval_members = q.filter.as_ref().is_some_and(mentions_members);
    let mut matched: Vec<(Team, Value)> = Vec::new();
    let mut total = 0u64;
    let mut consider = |t: Team| -> Result<(), StoreError> {
        let r = read_team(txn, &t, public_url, eval_members)?;
        if q.filter.as_ref().is_none_or(|f| filter::matches(f, &r, &GROUP)) {
            if q.sort_by.is_some() || window(total) {
                matched.push((t, r));
            }
            total += 1;
        }
        Ok(())
    };
    match q.filter.as_ref().and_then(filter::index_lookup) {
        Some(hint) => {
            let ids: Vec<Uuid> = match hint.attr {
                IndexAttr::Id => Uuid::parse_str(&hint.value).into_iter().collect(),
                IndexAttr::DisplayName => store::teams::by_name(txn, &hint.value)?
                    .map(|t| t.id)
                    .into_iter()
                    .collect(),
                IndexAttr::ExternalId => store::teams::ids_by_external_id(txn, &hint.value)?,
                IndexAttr::UserName | IndexAttr::EmailValue => Vec::new(),
            };
            let mut teams: Vec<Team> = Vec::new();
            for id in ids {
                if let Some(t) = store::teams::get(txn, id)? {
                    teams.push(t);
                }
            }
            teams.sort_by_key(|t| t.seq);
            for t in teams {
                consider(t)?;
            }
        }
        None => {
            let mut err = None;
            store::teams::scan(txn, |t| match consider(t) {
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
        matched.sort_by(|(_, a), (_, b)| super::list::compare(a, b, &GROUP, sort_by, q.descending));
        matched = matched
            .into_iter()
            .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
            .take(q.count)
            .collect();
    }
    let page = matched
        .into_iter()
        .map(|(t, r)| render(&t, Some(r)))
        .collect::<Result<_, StoreError>>()?;
    Ok((total, page))
}

#[cfg(test)]
mod tests {
    use super::super::project::project_owned;
    use super::*;
    use crate::store::members::Shown;
    use crate::workspace::model::Management;

    fn team(seed: u64) -> Team {
        Team {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(seed)),
            seq: seed,
            name: ["Ops", "Dev \"core\" ✓", "a\\b/c\n\t", "Everyone"][(seed % 4) as usize].to_owned(),
            external_id: (!seed.is_multiple_of(3)).then(|| format!("ext-{seed} \"x\"")),
            management: Management::Unmanaged,
            member_count: seed,
            created_ms: 1_700_000_000_123,
            updated_ms: 1_700_000_000_456 + seed as i64,
            version: seed + 1,
        }
    }

    fn shown(n: u64) -> Vec<Shown> {
        (0..n)
            .map(|i| Shown {
                id: Uuid::from_u128(u128::from(i) * 7919),
                display: ["Ada", "Bob \"B\" Ünal", "x@example.com", ""][(i % 4) as usize].to_owned(),
            })
            .collect()
    }

    /// What the general path makes of a team: render to `Value`, default
    /// projection, serialise.
    fn general(t: &Team, members: Option<&[Shown]>) -> Vec<u8> {
        let url = "https://r.example";
        // The members as the json! object the Value path built before it
        // used `member_ref`, so the test pins the wire shape.
        let members = members.map(|m| {
            m.iter()
                .map(|m| {
                    json!({
                        "value": m.id.to_string(),
                        "display": m.display,
                        "$ref": super::super::model::user_location(url, &m.id),
                        "type": "User",
                    })
                })
                .collect()
        });
        serde_json::to_vec(&project_owned(render_group(t, url, members), &GROUP, &[], &[])).unwrap()
    }

    #[test]
    fn group_bytes_are_the_general_paths_bytes() {
        for seed in 0..40u64 {
            let t = team(seed);
            let members = shown(seed * 3);
            for m in [None, Some(&members[..])] {
                let fast = write_group(&t, "https://r.example", m);
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(general(&t, m)).unwrap(),
                    "team {seed}, members {:?}",
                    m.map(<[Shown]>::len)
                );
            }
        }
    }

    #[test]
    fn list_bytes_are_list_responses_bytes() {
        for n in [0u64, 1, 3] {
            let teams: Vec<Team> = (0..n).map(team).collect();
            let bytes: Vec<Vec<u8>> = teams
                .iter()
                .map(|t| write_group(t, "https://r.example", None))
                .collect();
            let values: Vec<Value> = bytes.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
            let expected = serde_json::to_vec(&list_response(10_000, 200, values)).unwrap();
            assert_eq!(
                String::from_utf8(list_bytes(10_000, 200, &bytes)).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
