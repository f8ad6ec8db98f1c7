//! Member rules of SPEC.md §1: provision (rule 1), link (2), roles (3),
//! deprovision and restore (4), last admin (5), source of truth (8), audit
//! (9). Every function here runs inside the caller's write transaction and
//! returns `Ok(Err(rule))` when a rule refuses, in which case the store rolls
//! back whatever it wrote.

use redb::WriteTransaction;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::*;
use super::{ScimCtx, mail};
use crate::secret::{TokenHash, link_key, new_link_token};
use crate::store::{self, StoreError};

/// How long invite and set-password links stay valid.
pub const INVITE_TTL_MS: i64 = 14 * 24 * 60 * 60 * 1000;
pub const SET_PASSWORD_TTL_MS: i64 = 3 * 24 * 60 * 60 * 1000;

/// Why a rule refused an operation. The SCIM layer maps each to its wire
/// error; the message is shown to IdP admins, so it says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    LastAdmin(String),
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: Uuid },
    #[error("{0}")]
    ManagedElsewhere(String),
    #[error("the member was changed since version {expected}; fetch it again")]
    VersionMismatch { expected: String },
    #[error("{0}")]
    Invalid(String),
}

type Rule<T> = Result<Result<T, RuleError>, StoreError>;

/// What a surface parsed out of a request: the member's fields and every
/// other attribute as sent. `None` means "absent from the request".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberInput {
    pub user_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub locale: Option<String>,
    pub external_id: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Already hashed (argon2id) outside the transaction, if accepted.
    pub password_hash: Option<String>,
    pub attributes: Map<String, Value>,
}

/// Values drawn before the transaction (it may run more than once).
#[derive(Debug, Clone)]
pub struct Fresh {
    pub now_ms: i64,
    pub member_id: Uuid,
    /// Raw token for the invite or set-password link a new member gets.
    pub link_token: String,
    pub public_url: String,
}

impl Fresh {
    pub fn new(app: &crate::App) -> Fresh {
        let now_ms = app.clock.now_ms();
        Fresh {
            now_ms,
            member_id: crate::clock::new_uuid_v7(now_ms, app.rng.as_ref()),
            link_token: new_link_token(now_ms, app.rng.as_ref()),
            public_url: app.config.public_url.clone(),
        }
    }
}

/// What a create did.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub member: Member,
    /// True when an existing member was linked instead of created (rule 2).
    pub linked: bool,
}

fn email_domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.to_lowercase())
        .unwrap_or_default()
}

pub(super) fn domain_verified(ws: &Workspace, email: &str) -> bool {
    let d = email_domain(email);
    ws.domains.iter().any(|x| x.verified && x.name == d)
}

pub(super) fn audit(
    txn: &WriteTransaction,
    now: i64,
    actor: &Actor,
    member: Uuid,
    action: &str,
    detail: Value,
) -> Result<(), StoreError> {
    store::audit::append(
        txn,
        &AuditEntry {
            at_ms: now,
            actor: actor.clone(),
            target: format!("member:{member}"),
            action: action.to_owned(),
            detail,
        },
    )?;
    Ok(())
}

fn validate(input: &MemberInput) -> Result<(), RuleError> {
    if !super::plausible_email(&input.user_name) {
        return Err(RuleError::Invalid(format!(
            "userName: {}; roster identifies members by email",
            super::email_refusal(&input.user_name)
        )));
    }
    Ok(())
}

/// Issues a one-time link of `purpose` for `member` and returns its URL.
pub(super) fn issue_link(
    txn: &WriteTransaction,
    fresh: &Fresh,
    member: Uuid,
    purpose: LinkPurpose,
) -> Result<String, StoreError> {
    let ttl = match purpose {
        LinkPurpose::Invite => INVITE_TTL_MS,
        LinkPurpose::SetPassword => SET_PASSWORD_TTL_MS,
        LinkPurpose::Login => super::LOGIN_LINK_TTL_MS,
    };
    let key: TokenHash = link_key(&fresh.link_token);
    store::links::put(
        txn,
        &key,
        &OneTimeLink {
            member_id: member,
            purpose,
            created_ms: fresh.now_ms,
            expires_ms: fresh.now_ms + ttl,
        },
    )?;
    let path = match purpose {
        LinkPurpose::Invite => crate::paths::INVITE_ACCEPT,
        LinkPurpose::SetPassword => crate::paths::SET_PASSWORD,
        LinkPurpose::Login => crate::paths::LOGIN_LINK,
    };
    Ok(format!("{}{}?token={}", fresh.public_url, path, fresh.link_token))
}

/// Rule 1: the mails a brand-new member gets, in the creating transaction.
/// Active (verified domain): "added" (by `by`) and a welcome mail with a
/// set-password link; invited: an invitation with an accept link. Returns
/// the link.
pub(super) fn first_mails(
    txn: &WriteTransaction,
    ws: &Workspace,
    member: &Member,
    fresh: &Fresh,
    by: &str,
) -> Result<String, StoreError> {
    if member.status == Status::Active {
        let url = issue_link(txn, fresh, member.id, LinkPurpose::SetPassword)?;
        store::outbox::push_all(
            txn,
            &[
                mail::added(ws, member, by, fresh.now_ms),
                mail::welcome(ws, member, &url, fresh.now_ms),
            ],
        )?;
        Ok(url)
    } else {
        let url = issue_link(txn, fresh, member.id, LinkPurpose::Invite)?;
        store::outbox::push(txn, &mail::invite(ws, member, &url, fresh.now_ms))?;
        Ok(url)
    }
}

/// Rule 1 and 2: a SCIM create. Creates a new member, or links an existing
/// unmanaged (or removed) member with the same email.
pub fn provision(txn: &WriteTransaction, ctx: &ScimCtx, input: &MemberInput, fresh: &Fresh) -> Rule<Provisioned> {
    if let Err(e) = validate(input) {
        return Ok(Err(e));
    }
    let ws = store::workspace::get_w(txn)?.ok_or_else(|| StoreError::Corrupt("no workspace".into()))?;
    let actor = ctx.actor();
    if let Some(existing_id) = store::members::id_by_email_w(txn, &input.user_name)? {
        let existing = store::members::get_w(txn, existing_id)?
            .ok_or_else(|| StoreError::Corrupt(format!("index points at missing member {existing_id}")))?;
        match existing.management {
            Management::Managed(c) if existing.status != Status::Removed => {
                let detail = if c == ctx.connection.id {
                    format!(
                        "a member with userName {:?} is already provisioned by this connection (id {})",
                        existing.email, existing.id
                    )
                } else {
                    format!(
                        "a member with userName {:?} is managed by another identity provider connection",
                        existing.email
                    )
                };
                return Ok(Err(RuleError::Uniqueness(detail)));
            }
            _ => {}
        }
        // Linking keeps the member's id, history and (if `roles` is absent)
        // role: linking adopts a person, it does not create one.
        let linked = match apply(txn, ctx, existing, input, fresh, true)? {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        return Ok(Ok(Provisioned {
            member: linked,
            linked: true,
        }));
    }

    let verified = domain_verified(&ws, &input.user_name);
    let suspended = input.active == Some(false);
    let status = match (suspended, verified) {
        (true, _) => Status::Suspended,
        (false, true) => Status::Active,
        (false, false) => Status::Invited,
    };
    let member = Member {
        id: fresh.member_id,
        seq: store::members::next_seq(txn)?,
        email: input.user_name.clone(),
        display_name: input.display_name.clone(),
        given_name: input.given_name.clone(),
        family_name: input.family_name.clone(),
        locale: input.locale.clone(),
        external_id: input.external_id.clone(),
        role: input.role.unwrap_or(Role::Member),
        status,
        accepted: verified && !suspended,
        management: Management::Managed(ctx.connection.id),
        password_hash: input.password_hash.clone(),
        attributes: input.attributes.clone(),
        created_ms: fresh.now_ms,
        updated_ms: fresh.now_ms,
        version: 1,
    };
    if let Some(other) = clashing_external_id(txn, ctx, &member)? {
        return Ok(Err(other));
    }
    store::members::put(txn, &member)?;
    audit(
        txn,
        fresh.now_ms,
        &actor,
        member.id,
        "member.created",
        json!({"email": member.email, "role": member.role, "status": member.status}),
    )?;
    if !suspended {
        first_mails(txn, &ws, &member, fresh, mail::BY_IDP)?;
    }
    Ok(Ok(Provisioned { member, linked: false }))
}

/// externalId is this connection's handle for a person: two members of the
/// same connection must not share one.
fn clashing_external_id(txn: &WriteTransaction, ctx: &ScimCtx, m: &Member) -> Result<Option<RuleError>, StoreError> {
    let Some(ext) = &m.external_id else {
        return Ok(None);
    };
    let table = txn.open_table(store::tables::MEMBER_BY_EXTERNAL_ID)?;
    for row in redb::ReadableTable::range(&table, (ext.as_str(), 0u128)..=(ext.as_str(), u128::MAX))? {
        let (k, _) = row?;
        let other = Uuid::from_u128(k.value().1);
        if other == m.id {
            continue;
        }
        if let Some(o) = store::members::get_w(txn, other)?
            && o.management == Management::Managed(ctx.connection.id)
            && o.status != Status::Removed
        {
            return Ok(Some(RuleError::Uniqueness(format!(
                "externalId {ext:?} already belongs to another member of this connection ({})",
                o.email
            ))));
        }
    }
    Ok(None)
}

/// Loads a member a connection may write: not removed (404), and managed by
/// it or unmanaged (which the write then links). Checks `If-Match`.
pub fn load_for_write(txn: &WriteTransaction, ctx: &ScimCtx, id: Uuid, if_match: Option<&str>) -> Rule<Member> {
    let Some(m) = store::members::get_w(txn, id)? else {
        return Ok(Err(RuleError::NotFound { kind: "User", id }));
    };
    if m.status == Status::Removed {
        return Ok(Err(RuleError::NotFound { kind: "User", id }));
    }
    if let Management::Managed(c) = m.management
        && c != ctx.connection.id
    {
        return Ok(Err(RuleError::ManagedElsewhere(format!(
            "member {} is managed by another identity provider connection; only that connection can change it",
            m.email
        ))));
    }
    if let Some(expected) = if_match
        && !version_matches(expected, m.version)
    {
        return Ok(Err(RuleError::VersionMismatch {
            expected: expected.to_owned(),
        }));
    }
    Ok(Ok(m))
}

/// The weak ETag of a version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// `If-Match` semantics: `*` or any listed tag equal to ours (weak compare).
pub(crate) fn version_matches(header: &str, version: u64) -> bool {
    let ours = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == ours)
}

/// Rule 3/4/5/8: a full replace (SCIM PUT, or the result of a PATCH).
/// Absent `roles` keeps the role, absent `active` keeps the status.
pub fn replace(
    txn: &WriteTransaction,
    ctx: &ScimCtx,
    current: Member,
    input: &MemberInput,
    fresh: &Fresh,
) -> Rule<Member> {
    if let Err(e) = validate(input) {
        return Ok(Err(e));
    }
    apply(txn, ctx, current, input, fresh, false)
}

fn apply(
    txn: &WriteTransaction,
    ctx: &ScimCtx,
    current: Member,
    input: &MemberInput,
    fresh: &Fresh,
    linking: bool,
) -> Rule<Member> {
    let actor = ctx.actor();
    let mut next = current.clone();
    if store::members::email_key(&input.user_name) != store::members::email_key(&current.email)
        && let Some(owner) = store::members::id_by_email_w(txn, &input.user_name)?
        && owner != current.id
    {
        return Ok(Err(RuleError::Uniqueness(format!(
            "userName {:?} belongs to another member",
            input.user_name
        ))));
    }
    next.email = input.user_name.clone();
    next.display_name = input.display_name.clone();
    next.given_name = input.given_name.clone();
    next.family_name = input.family_name.clone();
    next.locale = input.locale.clone();
    next.external_id = input.external_id.clone();
    next.attributes = input.attributes.clone();
    if let Some(role) = input.role {
        next.role = role;
    }
    if input.password_hash.is_some() {
        next.password_hash = input.password_hash.clone();
    }
    let was_managed = current.management == Management::Managed(ctx.connection.id);
    next.management = Management::Managed(ctx.connection.id);

    // A removed member linked by a new create comes back like a restore.
    let reactivate = linking && current.status == Status::Removed;
    match input.active {
        Some(false) => next.status = Status::Suspended,
        Some(true) => next.status = restored_status(&current),
        None if reactivate => next.status = restored_status(&current),
        None => {}
    }

    if current.is_active_admin() && !next.is_active_admin() && store::members::active_admin_count_w(txn)? <= 1 {
        let what = if next.role != Role::Admin {
            "downgrade"
        } else {
            "suspend"
        };
        return Ok(Err(RuleError::LastAdmin(format!(
            "refusing to {what} {}: they are the workspace's last active admin. Make another member an admin in roster first.",
            current.email
        ))));
    }
    if let Some(e) = clashing_external_id(txn, ctx, &next)? {
        return Ok(Err(e));
    }

    let changed = changes(&current, &next);
    if changed.is_empty() && was_managed {
        return Ok(Ok(current));
    }
    next.version = current.version + 1;
    next.updated_ms = fresh.now_ms;
    if next.status == Status::Suspended && current.status != Status::Suspended {
        revoke_access(txn, next.id)?;
    }
    super::oauth::revoke_grants_of_former_admin(txn, &current, &next, fresh.now_ms, &actor)?;
    store::members::put(txn, &next)?;
    if !was_managed {
        audit(
            txn,
            fresh.now_ms,
            &actor,
            next.id,
            "member.linked",
            json!({"email": next.email}),
        )?;
    }
    if !changed.is_empty() {
        let action = match (current.status, next.status) {
            (a, Status::Suspended) if a != Status::Suspended => "member.suspended",
            (Status::Suspended | Status::Removed, Status::Active | Status::Invited) => "member.restored",
            _ => "member.updated",
        };
        audit(
            txn,
            fresh.now_ms,
            &actor,
            next.id,
            action,
            json!({ "changed": changed }),
        )?;
    }
    Ok(Ok(next))
}

/// `active=true` brings a member back to active, or to invited if they never
/// accepted their invitation.
pub(super) fn restored_status(m: &Member) -> Status {
    match m.status {
        Status::Active | Status::Invited => m.status,
        Status::Suspended | Status::Removed => {
            if m.accepted {
                Status::Active
            } else {
                Status::Invited
            }
        }
    }
}

/// Ends every session and outstanding one-time link of a member.
pub(super) fn revoke_access(txn: &WriteTransaction, member: Uuid) -> Result<(), StoreError> {
    store::sessions::revoke_for_member(txn, member)?;
    store::links::revoke_for_member(txn, member)?;
    Ok(())
}

/// Names of the fields that differ, for the audit row.
fn changes(a: &Member, b: &Member) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.email != b.email {
        out.push("userName");
    }
    if a.display_name != b.display_name {
        out.push("displayName");
    }
    if a.given_name != b.given_name || a.family_name != b.family_name {
        out.push("name");
    }
    if a.locale != b.locale {
        out.push("locale");
    }
    if a.external_id != b.external_id {
        out.push("externalId");
    }
    if a.role != b.role {
        out.push("role");
    }
    if a.status != b.status {
        out.push("status");
    }
    if a.attributes != b.attributes {
        out.push("attributes");
    }
    if a.password_hash != b.password_hash {
        out.push("password");
    }
    out
}

/// Rule 4: SCIM DELETE. Suspends access at once and marks the member
/// removed; nothing is destroyed and an admin can restore them.
pub fn remove(txn: &WriteTransaction, ctx: &ScimCtx, id: Uuid, if_match: Option<&str>, now_ms: i64) -> Rule<Member> {
    let current = match load_for_write(txn, ctx, id, if_match)? {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    // Rule 8: deleting is not linking; an IdP deletes only whom it manages.
    if current.management == Management::Unmanaged {
        return Ok(Err(RuleError::ManagedElsewhere(format!(
            "member {} is not managed by an identity provider; provision or update them from your IdP first, or remove them in roster",
            current.email
        ))));
    }
    if current.is_active_admin() && store::members::active_admin_count_w(txn)? <= 1 {
        return Ok(Err(RuleError::LastAdmin(format!(
            "refusing to remove {}: they are the workspace's last active admin. Make another member an admin in roster first.",
            current.email
        ))));
    }
    let mut next = current.clone();
    next.status = Status::Removed;
    next.management = Management::Managed(ctx.connection.id);
    next.version = current.version + 1;
    next.updated_ms = now_ms;
    revoke_access(txn, id)?;
    super::oauth::revoke_grants_of_former_admin(txn, &current, &next, now_ms, &ctx.actor())?;
    store::members::put(txn, &next)?;
    audit(
        txn,
        now_ms,
        &ctx.actor(),
        id,
        "member.removed",
        json!({"email": next.email, "previous_status": current.status}),
    )?;
    Ok(Ok(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert!(version_matches("W/\"3\"", 3));
        assert!(version_matches("\"3\"", 3));
        assert!(version_matches("*", 9));
        assert!(version_matches("W/\"1\", W/\"3\"", 3));
        assert!(!version_matches("W/\"2\"", 3));
    }
}
