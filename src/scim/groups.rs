//! `/scim/v2/Groups`: SCIM groups are workspace teams. PATCH is translated
//! into team operations instead of rendering the whole group, so adding one
//! member to a 10,000-member team costs one membership row, not a rewrite.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query as RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redb::{ReadTransaction, WriteTransaction};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ScimError;
use super::filter::{self, CompValue, CompareOp, Filter, IndexAttr};
use super::list::{Query, list_response};
use super::patch::{self, Op, PatchOperation};
use super::schema::{self, GROUP, GROUP_URN};
use super::users::{Refused, finish, if_match, json_body, json_response, resource_response};
use crate::App;
use crate::clock::rfc3339;
use crate::store::{self, StoreError};
use crate::workspace::ScimCtx;
use crate::workspace::members::etag;
use crate::workspace::model::{Status, Team};
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

/// The member elements of a team: listed (not removed) members only.
fn member_elements(txn: &ReadTransaction, team: Uuid, public_url: &str) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    for id in store::teams::member_ids(txn, team)? {
        if let Some(m) = store::members::get(txn, id)?
            && m.status != Status::Removed
        {
            out.push(json!({
                "value": m.id.to_string(),
                "display": m.display_name.clone().unwrap_or_else(|| m.email.clone()),
                "$ref": super::model::user_location(public_url, &m.id),
                "type": "User",
            }));
        }
    }
    Ok(out)
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
    let t = team.clone();
    let v = app
        .store
        .read(move |txn| read_team(txn, &t, &public_url, with_members))
        .await?;
    Ok(rendered(app, q, &team, v, status))
}

/// The response for a team rendered as `v`: projected, with its ETag and
/// Location.
fn rendered(app: &App, q: &Query, team: &Team, v: Value, status: StatusCode) -> Response {
    let location = group_location(&app.config.public_url, &team.id);
    resource_response(status, q.project_owned(v, &GROUP), Some(team.version), Some(&location))
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
    let public_url = app.config.public_url.clone();
    let read = move |txn: &ReadTransaction| -> Result<Option<(Team, Value)>, StoreError> {
        let Some(team) = store::teams::get(txn, tid)? else {
            return Ok(None);
        };
        let v = read_team(txn, &team, &public_url, with_members)?;
        Ok(Some((team, v)))
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
    let read = move |txn: &ReadTransaction| select(txn, &q2, &public_url);
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
    let (total, page) = if point {
        app.store.read_point(read).await?
    } else {
        app.store.read(read).await?
    };
    let resources = page.into_iter().map(|r| q.project_owned(r, &GROUP)).collect();
    Ok(json_response(
        StatusCode::OK,
        &list_response(total, q.offset, resources),
    ))
}

fn select(txn: &ReadTransaction, q: &Query, public_url: &str) -> Result<(u64, Vec<Value>), StoreError> {
    let with_members = wants_members(q);
    let window = |i: u64| i >= q.offset && i < q.offset + q.count as u64;
    if q.filter.is_none() && q.sort_by.is_none() {
        let total = store::teams::count(txn)?;
        let page = store::teams::page(txn, q.offset, q.count)?;
        let rendered = page
            .iter()
            .map(|t| read_team(txn, t, public_url, with_members))
            .collect::<Result<_, _>>()?;
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
        .map(|(t, r)| {
            if with_members && r.get("members").is_none() {
                read_team(txn, &t, public_url, true)
            } else {
                Ok(r)
            }
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((total, page))
}
