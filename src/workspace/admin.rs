//! What a workspace admin does to members in the console (and an operator
//! at the command line): invite by hand, change role, suspend, restore,
//! remove, send a new sign-in link. The same rules as SCIM apply (last
//! admin, deprovisioning revokes access in the same transaction, audit in
//! the same transaction); managed members may be changed, and the IdP's
//! next write replaces the change (SPEC rule 8).

use serde_json::json;
use uuid::Uuid;

use super::members::{
    Fresh, RuleError, audit, domain_verified, first_mails, issue_link, restored_status, revoke_access,
};
use super::model::*;
use super::{mail, plausible_email};
use crate::App;
use crate::store::{self, StoreError};

/// Proof that a request comes from an active workspace admin (built only by
/// the session code from a live session) or from the operator at the
/// command line. Every function here demands one.
#[derive(Debug, Clone)]
pub struct AdminCtx {
    actor: Actor,
    member: Option<Uuid>,
}

impl AdminCtx {
    /// An admin signed in to the console; `None` unless they are an
    /// active admin right now.
    pub(crate) fn from_member(m: &Member) -> Option<AdminCtx> {
        m.is_active_admin().then(|| AdminCtx {
            actor: Actor::Admin {
                id: m.id,
                email: m.email.clone(),
            },
            member: Some(m.id),
        })
    }
    /// The operator at the command line (control socket or direct open).
    pub(crate) fn operator() -> AdminCtx {
        AdminCtx {
            actor: Actor::Operator,
            member: None,
        }
    }
    pub fn actor(&self) -> Actor {
        self.actor.clone()
    }
    /// The admin's own member id (none for the operator).
    pub fn member_id(&self) -> Option<Uuid> {
        self.member
    }
}

type Rule<T> = Result<Result<T, RuleError>, StoreError>;

/// A person invited by hand.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
}

/// What an invitation did: the member, and whether they were added at once
/// (their domain is verified) or must accept first.
#[derive(Debug, Clone)]
pub struct Invited {
    pub member: Member,
    pub link_url: String,
}

fn clean_name(name: Option<&str>) -> Result<Option<String>, RuleError> {
    let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(RuleError::Invalid(
            "the name must be at most 200 characters, without control characters".into(),
        ));
    }
    Ok(Some(n.to_owned()))
}

/// Invites a person: an unmanaged member who is `active` at once (with the
/// "added" and welcome mails) when their email domain is verified, else
/// `invited` with an invitation mail whose link makes them active.
pub async fn invite(app: &App, ctx: &AdminCtx, inv: Invitation) -> Rule<Invited> {
    let email = inv.email.trim().to_owned();
    if !plausible_email(&email) {
        return Ok(Err(RuleError::Invalid(super::email_refusal(&email))));
    }
    let display_name = match clean_name(inv.display_name.as_deref()) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    let fresh = Fresh::new(app);
    let actor = ctx.actor();
    app.store
        .write(move |txn| {
            let ws = store::workspace::get_w(txn)?.ok_or_else(|| StoreError::Corrupt("no workspace".into()))?;
            if let Some(id) = store::members::id_by_email_w(txn, &email)? {
                let existing = store::members::get_w(txn, id)?;
                let what = match existing.map(|m| m.status) {
                    Some(Status::Removed) => {
                        "was removed; open their page (filter by status \"removed\") to restore them"
                    }
                    Some(Status::Suspended) => "is already a member and is suspended; restore them from their page",
                    _ => "is already a member of this workspace",
                };
                return Ok(Err(RuleError::Uniqueness(format!("{email} {what}"))));
            }
            let verified = domain_verified(&ws, &email);
            let member = Member {
                id: fresh.member_id,
                seq: store::members::next_seq(txn)?,
                email: email.clone(),
                display_name: display_name.clone(),
                given_name: None,
                family_name: None,
                locale: None,
                external_id: None,
                role: inv.role,
                status: if verified { Status::Active } else { Status::Invited },
                accepted: verified,
                management: Management::Unmanaged,
                password_hash: None,
                attributes: serde_json::Map::new(),
                created_ms: fresh.now_ms,
                updated_ms: fresh.now_ms,
                version: 1,
            };
            store::members::put(txn, &member)?;
            audit(
                txn,
                fresh.now_ms,
                &actor,
                member.id,
                if verified { "member.created" } else { "member.invited" },
                json!({"email": member.email, "role": member.role, "status": member.status}),
            )?;
            let link_url = first_mails(txn, &ws, &member, &fresh, mail::BY_ADMIN)?;
            Ok(Ok(Invited { member, link_url }))
        })
        .await
}

/// A change an admin makes to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Role(Role),
    Suspend,
    Restore,
    Remove,
}

/// Applies one change to a member. `expected_version` (from the page the
/// admin looked at) refuses a change to a member that changed meanwhile.
pub async fn change(
    app: &App,
    ctx: &AdminCtx,
    id: Uuid,
    expected_version: Option<u64>,
    what: MemberChange,
) -> Rule<Member> {
    let now = app.clock.now_ms();
    let actor = ctx.actor();
    app.store
        .write(move |txn| {
            let Some(current) = store::members::get_w(txn, id)? else {
                return Ok(Err(RuleError::NotFound { kind: "member", id }));
            };
            if let Some(v) = expected_version
                && v != current.version
            {
                return Ok(Err(RuleError::VersionMismatch {
                    expected: v.to_string(),
                }));
            }
            let mut next = current.clone();
            let action = match what {
                MemberChange::Role(r) => {
                    next.role = r;
                    "member.role_changed"
                }
                MemberChange::Suspend => {
                    if current.status == Status::Removed {
                        return Ok(Err(RuleError::Invalid(
                            "this member was removed; restore them first".into(),
                        )));
                    }
                    next.status = Status::Suspended;
                    "member.suspended"
                }
                MemberChange::Restore => {
                    next.status = restored_status(&current);
                    "member.restored"
                }
                MemberChange::Remove => {
                    next.status = Status::Removed;
                    "member.removed"
                }
            };
            if next.role == current.role && next.status == current.status {
                return Ok(Ok(current));
            }
            if current.is_active_admin() && !next.is_active_admin() && store::members::active_admin_count_w(txn)? <= 1 {
                let verb = match what {
                    MemberChange::Role(_) => "make",
                    MemberChange::Suspend => "suspend",
                    _ => "remove",
                };
                let rest = match what {
                    MemberChange::Role(_) => " a member",
                    _ => "",
                };
                return Ok(Err(RuleError::LastAdmin(format!(
                    "You cannot {verb} {}{rest}: they are the workspace's last active admin. Make another member an admin first.",
                    current.email
                ))));
            }
            next.version = current.version + 1;
            next.updated_ms = now;
            let losing_access = matches!(next.status, Status::Suspended | Status::Removed)
                && !matches!(current.status, Status::Suspended | Status::Removed);
            if losing_access {
                revoke_access(txn, id)?;
            }
            super::oauth::revoke_grants_of_former_admin(txn, &current, &next, now, &actor)?;
            store::members::put(txn, &next)?;
            let detail = match what {
                MemberChange::Role(r) => json!({"email": next.email, "from": current.role, "to": r}),
                _ => json!({"email": next.email, "from": current.status, "to": next.status}),
            };
            audit(txn, now, &actor, id, action, detail)?;
            Ok(Ok(next))
        })
        .await
}

/// Sends a member a new link: an invited member a new invitation (the old
/// one stops working), an active member a set-password link.
pub async fn send_link(app: &App, ctx: &AdminCtx, id: Uuid) -> Rule<(Member, String)> {
    let fresh = Fresh::new(app);
    let actor = ctx.actor();
    app.store
        .write(move |txn| {
            let ws = store::workspace::get_w(txn)?.ok_or_else(|| StoreError::Corrupt("no workspace".into()))?;
            let Some(m) = store::members::get_w(txn, id)? else {
                return Ok(Err(RuleError::NotFound { kind: "member", id }));
            };
            let (purpose, action) = match m.status {
                Status::Invited => (LinkPurpose::Invite, "member.invite_resent"),
                Status::Active => (LinkPurpose::SetPassword, "member.password_link_sent"),
                Status::Suspended | Status::Removed => {
                    return Ok(Err(RuleError::Invalid(
                        "this member has no access; restore them before sending a link".into(),
                    )));
                }
            };
            store::links::revoke_for_member(txn, id)?;
            let url = issue_link(txn, &fresh, id, purpose)?;
            let mail = match purpose {
                LinkPurpose::Invite => mail::invite(&ws, &m, &url, fresh.now_ms),
                _ => mail::set_password(&ws, &m, &url, fresh.now_ms),
            };
            store::outbox::push(txn, &mail)?;
            audit(txn, fresh.now_ms, &actor, id, action, json!({"email": m.email}))?;
            Ok(Ok((m, url)))
        })
        .await
}

/// A fresh one-time sign-in link for an admin.
#[derive(Debug, Clone)]
pub struct LoginLink {
    pub member: Member,
    pub url: String,
    pub expires_at: String,
}

/// Issues a one-time sign-in link for an existing active admin, so an admin
/// who lost the first link, or whose session ended before they set a
/// password, is never locked out (`roster admin login-link EMAIL`, and each
/// start while the first admin has no password). Earlier links keep their
/// own expiry; the link works once, for 24 hours. Audit-logged.
pub async fn login_link(app: &App, ctx: &AdminCtx, email: &str) -> Rule<LoginLink> {
    let email = email.trim().to_owned();
    let fresh = Fresh::new(app);
    let actor = ctx.actor();
    app.store
        .write(move |txn| {
            let found = match store::members::id_by_email_w(txn, &email)? {
                Some(id) => store::members::get_w(txn, id)?,
                None => None,
            };
            let Some(m) = found else {
                return Ok(Err(RuleError::Invalid(format!("no member has the email {email}"))));
            };
            if !m.is_active_admin() {
                return Ok(Err(RuleError::Invalid(format!(
                    "{email} is not an active admin (status {:?}, role {:?}); a sign-in link is only for active admins",
                    m.status, m.role
                ))));
            }
            let url = issue_link(txn, &fresh, m.id, LinkPurpose::Login)?;
            audit(
                txn,
                fresh.now_ms,
                &actor,
                m.id,
                "member.login_link_issued",
                json!({"email": m.email}),
            )?;
            Ok(Ok(LoginLink {
                expires_at: crate::clock::rfc3339(fresh.now_ms + super::LOGIN_LINK_TTL_MS),
                member: m,
                url,
            }))
        })
        .await
}
