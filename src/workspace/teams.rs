//! Team rules of SPEC.md §1: teams from groups (rule 6), group changes
//! (rule 7), source of truth (rule 8), audit (rule 9). Functions run inside
//! the caller's write transaction; a refusal rolls back what they wrote.

use redb::WriteTransaction;
use serde_json::json;
use uuid::Uuid;

use super::ScimCtx;
use super::members::RuleError;
use super::model::*;
use crate::store::{self, StoreError};

type Rule<T> = Result<Result<T, RuleError>, StoreError>;

/// Who is changing a team: an IdP connection over SCIM, or a person
/// (console / CLI), whose changes to managed teams are allowed but will be
/// replaced by the IdP's next write.
#[derive(Debug, Clone)]
pub enum Editor {
    Scim(ScimCtx),
    Person(Actor),
}

impl Editor {
    fn actor(&self) -> Actor {
        match self {
            Editor::Scim(c) => c.actor(),
            Editor::Person(a) => a.clone(),
        }
    }
    fn connection(&self) -> Option<Uuid> {
        match self {
            Editor::Scim(c) => Some(c.connection().id),
            Editor::Person(_) => None,
        }
    }
}

/// One change to a team, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamOp {
    Rename(String),
    SetExternalId(Option<String>),
    /// Member ids as the client sent them; unknown ones are skipped.
    AddMembers(Vec<String>),
    RemoveMembers(Vec<String>),
    RemoveAllMembers,
    ReplaceMembers(Vec<String>),
}

pub fn validate_name(name: &str) -> Result<(), RuleError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(RuleError::Invalid(
            "displayName must be 1 to 200 characters without control characters".into(),
        ));
    }
    Ok(())
}

fn audit(
    txn: &WriteTransaction,
    now: i64,
    editor: &Editor,
    team: Uuid,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    store::audit::append(
        txn,
        &AuditEntry {
            at_ms: now,
            actor: editor.actor(),
            target: format!("team:{team}"),
            action: action.to_owned(),
            detail,
        },
    )?;
    Ok(())
}

/// Rule 6: SCIM create. A name exactly equal to an unmanaged team's links
/// that team (its members are kept and the request's added); a name held by
/// a managed team is a conflict; otherwise a new managed team.
/// Returns the team and whether it was linked.
pub fn create(
    txn: &WriteTransaction,
    editor: &Editor,
    name: &str,
    external_id: Option<String>,
    members: Vec<String>,
    new_id: Uuid,
    now: i64,
) -> Rule<(Team, bool)> {
    if let Err(e) = validate_name(name) {
        return Ok(Err(e));
    }
    let management = match editor.connection() {
        Some(c) => Management::Managed(c),
        None => Management::Unmanaged,
    };
    if let Some(existing_id) = store::teams::id_by_name_w(txn, name)? {
        let existing = store::teams::get_w(txn, existing_id)?
            .ok_or_else(|| StoreError::Corrupt(format!("team index points at missing team {existing_id}")))?;
        let linkable = existing.management == Management::Unmanaged && editor.connection().is_some();
        if !linkable {
            let detail = match (existing.management, editor.connection()) {
                (Management::Managed(c), Some(me)) if c == me => {
                    format!(
                        "a group named {name:?} is already provisioned by this connection (id {})",
                        existing.id
                    )
                }
                (Management::Managed(_), Some(_)) => {
                    format!("a team named {name:?} is managed by another identity provider connection")
                }
                _ => format!("a team named {name:?} already exists"),
            };
            return Ok(Err(RuleError::Uniqueness(detail)));
        }
        let mut team = existing.clone();
        team.management = management;
        if external_id.is_some() {
            team.external_id = external_id;
        }
        team.version = existing.version + 1;
        team.updated_ms = now;
        store::teams::put(txn, &team)?;
        audit(txn, now, editor, team.id, "team.linked", json!({"name": team.name}))?;
        let team = apply_ops(txn, editor, team, &[TeamOp::AddMembers(members)], now, true)?;
        return Ok(team.map(|t| (t, true)));
    }
    let team = Team {
        id: new_id,
        seq: store::teams::next_seq(txn)?,
        name: name.to_owned(),
        external_id,
        management,
        member_count: 0,
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    store::teams::put(txn, &team)?;
    audit(txn, now, editor, team.id, "team.created", json!({"name": team.name}))?;
    let team = apply_ops(txn, editor, team, &[TeamOp::AddMembers(members)], now, true)?;
    Ok(team.map(|t| (t, false)))
}

/// Loads a team a connection may change (PUT/PATCH): a team managed by
/// another connection is refused; an unmanaged team found by an IdP (e.g.
/// Okta's "Link Group") is linked by this first write. Checks `If-Match`.
pub fn load_for_write(txn: &WriteTransaction, editor: &Editor, id: Uuid, if_match: Option<&str>) -> Rule<Team> {
    let Some(t) = store::teams::get_w(txn, id)? else {
        return Ok(Err(RuleError::NotFound { kind: "Group", id }));
    };
    if let (Management::Managed(c), Some(me)) = (t.management, editor.connection())
        && c != me
    {
        return Ok(Err(RuleError::ManagedElsewhere(format!(
            "team {:?} is managed by another identity provider connection; only that connection can change it",
            t.name
        ))));
    }
    if let Some(expected) = if_match
        && !super::members::version_matches(expected, t.version)
    {
        return Ok(Err(RuleError::VersionMismatch {
            expected: expected.to_owned(),
        }));
    }
    Ok(Ok(t))
}

/// Resolves client-sent member references: workspace members that are not
/// removed. The rest are returned separately (ignored, audited).
fn resolve(txn: &WriteTransaction, refs: &[String]) -> Result<(Vec<Uuid>, Vec<String>), StoreError> {
    let mut ok = Vec::new();
    let mut ignored = Vec::new();
    for r in refs {
        let found = match Uuid::parse_str(r.trim()) {
            Ok(id) => store::members::get_w(txn, id)?
                .filter(|m| m.status != Status::Removed)
                .map(|m| m.id),
            Err(_) => None,
        };
        match found {
            Some(id) if !ok.contains(&id) => ok.push(id),
            Some(_) => {}
            None => ignored.push(r.clone()),
        }
    }
    Ok((ok, ignored))
}

/// Bumps the version of members whose team list changed.
fn touch_members(txn: &WriteTransaction, ids: &[Uuid], now: i64) -> Result<(), StoreError> {
    for id in ids {
        if let Some(mut m) = store::members::get_w(txn, *id)? {
            m.version += 1;
            m.updated_ms = now;
            store::members::put(txn, &m)?;
        }
    }
    Ok(())
}

/// Rule 7: applies changes in order. Membership changes touch one row pair
/// per member. A SCIM editor also takes over an unmanaged team (linking).
pub fn apply_ops(
    txn: &WriteTransaction,
    editor: &Editor,
    current: Team,
    ops: &[TeamOp],
    now: i64,
    created_now: bool,
) -> Rule<Team> {
    let mut team = current.clone();
    let mut added: Vec<Uuid> = Vec::new();
    let mut removed: Vec<Uuid> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let mut renamed_from = None;
    for op in ops {
        match op {
            TeamOp::Rename(name) => {
                if let Err(e) = validate_name(name) {
                    return Ok(Err(e));
                }
                if *name != team.name {
                    if let Some(owner) = store::teams::id_by_name_w(txn, name)?
                        && owner != team.id
                    {
                        return Ok(Err(RuleError::Uniqueness(format!(
                            "another team is already named {name:?}"
                        ))));
                    }
                    renamed_from.get_or_insert_with(|| team.name.clone());
                    team.name = name.clone();
                }
            }
            TeamOp::SetExternalId(e) => team.external_id = e.clone(),
            TeamOp::AddMembers(refs) => {
                let (ids, bad) = resolve(txn, refs)?;
                ignored.extend(bad);
                for id in ids {
                    if store::teams::add_member_row(txn, team.id, id)? {
                        team.member_count += 1;
                        removed.retain(|x| *x != id);
                        added.push(id);
                    }
                }
            }
            TeamOp::RemoveMembers(refs) => {
                for r in refs {
                    let Ok(id) = Uuid::parse_str(r.trim()) else {
                        // Not an id of ours: nothing to remove (Okta does
                        // not retry after an error, so a stale id must not
                        // fail the whole request).
                        continue;
                    };
                    if store::teams::remove_member_row(txn, team.id, id)? {
                        team.member_count = team.member_count.saturating_sub(1);
                        added.retain(|x| *x != id);
                        removed.push(id);
                    }
                }
            }
            TeamOp::RemoveAllMembers => {
                for id in store::teams::member_ids_w(txn, team.id)? {
                    store::teams::remove_member_row(txn, team.id, id)?;
                    added.retain(|x| *x != id);
                    removed.push(id);
                }
                team.member_count = 0;
            }
            TeamOp::ReplaceMembers(refs) => {
                let (want, bad) = resolve(txn, refs)?;
                ignored.extend(bad);
                for id in store::teams::member_ids_w(txn, team.id)? {
                    if !want.contains(&id) && store::teams::remove_member_row(txn, team.id, id)? {
                        team.member_count = team.member_count.saturating_sub(1);
                        added.retain(|x| *x != id);
                        removed.push(id);
                    }
                }
                for id in want {
                    if store::teams::add_member_row(txn, team.id, id)? {
                        team.member_count += 1;
                        removed.retain(|x| *x != id);
                        added.push(id);
                    }
                }
            }
        }
    }
    let linked = match (team.management, editor.connection()) {
        (Management::Unmanaged, Some(c)) => {
            team.management = Management::Managed(c);
            true
        }
        _ => false,
    };
    if !ignored.is_empty() {
        // Rule 6: references to people who are not members are not errors,
        // but admins can see them in the audit log.
        audit(
            txn,
            now,
            editor,
            team.id,
            "team.members_ignored",
            json!({"unknown_members": ignored}),
        )?;
    }
    let changed = team != current || !added.is_empty() || !removed.is_empty();
    if !changed {
        return Ok(Ok(current));
    }
    if !created_now {
        team.version = current.version + 1;
        team.updated_ms = now;
    }
    store::teams::put(txn, &team)?;
    // A member's `groups` is part of their representation: their version
    // (ETag) must move when it changes. A rename changes every member's.
    if renamed_from.is_some() {
        touch_members(txn, &store::teams::member_ids_w(txn, team.id)?, now)?;
        touch_members(txn, &removed, now)?;
    } else {
        touch_members(txn, &added, now)?;
        touch_members(txn, &removed, now)?;
    }
    if linked {
        audit(txn, now, editor, team.id, "team.linked", json!({"name": team.name}))?;
    }
    if let Some(from) = renamed_from {
        audit(
            txn,
            now,
            editor,
            team.id,
            "team.renamed",
            json!({"from": from, "to": team.name}),
        )?;
    }
    if current.external_id != team.external_id {
        audit(
            txn,
            now,
            editor,
            team.id,
            "team.updated",
            json!({"changed": ["externalId"]}),
        )?;
    }
    if !added.is_empty() {
        let ids: Vec<String> = added.iter().map(Uuid::to_string).collect();
        audit(txn, now, editor, team.id, "team.members_added", json!({"members": ids}))?;
    }
    if !removed.is_empty() {
        let ids: Vec<String> = removed.iter().map(Uuid::to_string).collect();
        audit(
            txn,
            now,
            editor,
            team.id,
            "team.members_removed",
            json!({"members": ids}),
        )?;
    }
    Ok(Ok(team))
}

/// Rule 7: deletes the team; its members stay in the workspace. SCIM may
/// only delete teams it manages (an unmanaged team was never the IdP's).
pub fn delete(txn: &WriteTransaction, editor: &Editor, id: Uuid, if_match: Option<&str>, now: i64) -> Rule<Team> {
    let team = match load_for_write(txn, editor, id, if_match)? {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if team.management == Management::Unmanaged && editor.connection().is_some() {
        return Ok(Err(RuleError::ManagedElsewhere(format!(
            "team {:?} is not managed by an identity provider; an admin deletes it in roster",
            team.name
        ))));
    }
    let members = store::teams::member_ids_w(txn, team.id)?;
    store::teams::delete(txn, &team)?;
    touch_members(txn, &members, now)?;
    audit(
        txn,
        now,
        editor,
        team.id,
        "team.deleted",
        json!({"name": team.name, "members": team.member_count}),
    )?;
    Ok(Ok(team))
}

/// Errors of the person-facing team operations (CLI, console).
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("no team named or with id {0:?}")]
    NoTeam(String),
    #[error("no member with email {0:?}")]
    NoMember(String),
    #[error("{0} was removed from the workspace; restore them first")]
    RemovedMember(String),
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A team by id or exact name. An id wins: a team *named* like another
/// team's id (an IdP can name a group anything) must not capture commands
/// aimed at that id, such as the console's, which always sends ids.
fn find_team_w(txn: &WriteTransaction, key: &str) -> Result<Option<Team>, StoreError> {
    if let Ok(id) = Uuid::parse_str(key.trim())
        && let Some(t) = store::teams::get_w(txn, id)?
    {
        return Ok(Some(t));
    }
    match store::teams::id_by_name_w(txn, key)? {
        Some(id) => store::teams::get_w(txn, id),
        None => Ok(None),
    }
}

/// Person edits go through the same rules as SCIM ones.
pub async fn person_edit(app: &crate::App, actor: Actor, team: &str, ops: Vec<PersonOp>) -> Result<Team, TeamError> {
    let key = team.to_owned();
    let now = app.clock.now_ms();
    let editor = Editor::Person(actor);
    app.store
        .write(move |txn| {
            let Some(current) = find_team_w(txn, &key)? else {
                return Ok(Err(TeamError::NoTeam(key.clone())));
            };
            let mut team_ops = Vec::new();
            for op in &ops {
                match op {
                    PersonOp::Rename(n) => team_ops.push(TeamOp::Rename(n.clone())),
                    PersonOp::Add(email) | PersonOp::Remove(email) => {
                        let Some(id) = store::members::id_by_email_w(txn, email)? else {
                            return Ok(Err(TeamError::NoMember(email.clone())));
                        };
                        // A removed member is not in the workspace: adding
                        // them would be skipped (rule 6), so say so instead.
                        if matches!(op, PersonOp::Add(_))
                            && store::members::get_w(txn, id)?.is_none_or(|m| m.status == Status::Removed)
                        {
                            return Ok(Err(TeamError::RemovedMember(email.clone())));
                        }
                        team_ops.push(match op {
                            PersonOp::Add(_) => TeamOp::AddMembers(vec![id.to_string()]),
                            _ => TeamOp::RemoveMembers(vec![id.to_string()]),
                        });
                    }
                }
            }
            Ok(apply_ops(txn, &editor, current, &team_ops, now, false)?.map_err(TeamError::from))
        })
        .await?
}

/// What a person can do to a team besides create/delete.
#[derive(Debug, Clone)]
pub enum PersonOp {
    Rename(String),
    /// Member email.
    Add(String),
    Remove(String),
}

pub async fn person_create(app: &crate::App, actor: Actor, name: &str) -> Result<Team, TeamError> {
    let name = name.to_owned();
    let now = app.clock.now_ms();
    let id = crate::clock::new_uuid_v7(now, app.rng.as_ref());
    let editor = Editor::Person(actor);
    app.store
        .write(move |txn| {
            Ok(create(txn, &editor, &name, None, Vec::new(), id, now)?
                .map(|(t, _)| t)
                .map_err(TeamError::from))
        })
        .await?
}

pub async fn person_delete(app: &crate::App, actor: Actor, team: &str) -> Result<Team, TeamError> {
    let key = team.to_owned();
    let now = app.clock.now_ms();
    let editor = Editor::Person(actor);
    app.store
        .write(move |txn| {
            let Some(t) = find_team_w(txn, &key)? else {
                return Ok(Err(TeamError::NoTeam(key.clone())));
            };
            Ok(delete(txn, &editor, t.id, None, now)?.map_err(TeamError::from))
        })
        .await?
}

pub async fn list(app: &crate::App) -> Result<Vec<Team>, StoreError> {
    app.store
        .read(|txn| {
            let mut out = Vec::new();
            store::teams::scan(txn, |t| {
                out.push(t);
                true
            })?;
            Ok(out)
        })
        .await
}
