//! The rules of SPEC.md §1. Surfaces (SCIM, OAuth, web, CLI) translate their
//! input into these operations; each operation is one write transaction that
//! also appends its audit row.

pub mod admin;
pub mod connections;
pub mod domains;
pub mod housekeeping;
pub mod mail;
pub mod members;
pub mod model;
pub mod oauth;
pub mod sessions;
pub mod teams;
pub mod views;

use crate::clock::{new_uuid_v7, rfc3339};
use crate::secret::{TokenKind, link_key, link_keys, new_link_token};
use crate::store::{self, Store, StoreError};
use crate::{App, paths};
use model::*;

/// Proof that a request was authenticated as an IdP connection: only the
/// SCIM auth code can make one (the constructor is crate-private), and every
/// SCIM-driven workspace operation demands it.
#[derive(Debug, Clone)]
pub struct ScimCtx {
    pub(crate) connection: Connection,
}

impl ScimCtx {
    pub(crate) fn new(connection: Connection) -> ScimCtx {
        ScimCtx { connection }
    }
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
    pub fn actor(&self) -> Actor {
        Actor::Connection {
            id: self.connection.id,
            name: self.connection.name.clone(),
        }
    }
}

/// How long the one-time login link printed at first start stays valid.
pub const LOGIN_LINK_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// Why `s` is refused as an address, for an error message.
pub fn email_refusal(s: &str) -> String {
    if s.is_ascii() {
        format!("{s:?} is not an email address")
    } else {
        format!(
            "{s:?} is not accepted: roster takes ASCII email addresses only (an internationalised domain in its xn-- form), so that a look-alike character cannot make a second member who reads like another"
        )
    }
}

/// A shape check of an address: one `@`; a local part of RFC 5322 "atext"
/// characters and dots; a domain of ASCII letters, digits, hyphens and dots
/// (an internationalised domain in its `xn--` form). No spaces, quotes,
/// angle brackets or other markup. Deliverability is the mail system's job.
///
/// ASCII only (issue 17): uniqueness compares addresses case-insensitively,
/// and with Unicode allowed `ａdmin@…` (fullwidth), `admın@…` (dotless i)
/// or a KELVIN SIGN would each be a second member who reads like the first
/// in the console and in mails. IdPs send IDN domains as `xn--` labels;
/// non-ASCII local parts (RFC 6531) are refused.
pub fn plausible_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("this data directory already holds the workspace {0:?}; nothing was changed")]
    AlreadyInitialised(String),
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    #[error("workspace name must be 1 to 200 characters")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What bootstrap made: the first admin and their one-time login link.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub workspace: String,
    pub admin: Member,
    pub login_url: String,
    pub expires_at: String,
}

/// Creates the workspace and its first admin with a one-time login link, in
/// one transaction. Refuses if the workspace already exists.
pub async fn bootstrap(app: &App, name: &str, admin_email: &str) -> Result<Bootstrapped, BootstrapError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(BootstrapError::BadName);
    }
    if !plausible_email(admin_email) {
        return Err(BootstrapError::BadEmail(admin_email.to_owned()));
    }
    let now = app.clock.now_ms();
    let admin = Member {
        id: new_uuid_v7(now, app.rng.as_ref()),
        seq: 0,
        email: admin_email.to_owned(),
        display_name: None,
        given_name: None,
        family_name: None,
        locale: None,
        external_id: None,
        role: Role::Admin,
        status: Status::Active,
        accepted: true,
        management: Management::Unmanaged,
        password_hash: None,
        attributes: serde_json::Map::new(),
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    let token = new_link_token(now, app.rng.as_ref());
    let key = link_key(&token);
    let link = OneTimeLink {
        member_id: admin.id,
        purpose: LinkPurpose::Login,
        created_ms: now,
        expires_ms: now + LOGIN_LINK_TTL_MS,
    };
    let ws = Workspace {
        name: name.clone(),
        created_ms: now,
        domains: Vec::new(),
    };
    let (a, l) = (admin.clone(), link.clone());
    app.store
        .write(move |txn| {
            if let Some(existing) = store::workspace::get_w(txn)? {
                return Ok(Err(BootstrapError::AlreadyInitialised(existing.name)));
            }
            store::workspace::put(txn, &ws)?;
            let mut a = a.clone();
            a.seq = store::members::next_seq(txn)?;
            store::members::put(txn, &a)?;
            store::links::put(txn, &key, &l)?;
            let audit = |target: String, action: &str, detail: serde_json::Value| AuditEntry {
                at_ms: now,
                actor: Actor::System,
                target,
                action: action.to_owned(),
                detail,
            };
            store::audit::append(
                txn,
                &audit(
                    "workspace".into(),
                    "workspace.created",
                    serde_json::json!({ "name": ws.name }),
                ),
            )?;
            store::audit::append(
                txn,
                &audit(
                    format!("member:{}", a.id),
                    "member.created",
                    serde_json::json!({ "email": a.email, "role": "admin", "status": "active" }),
                ),
            )?;
            Ok(Ok(()))
        })
        .await??;
    Ok(Bootstrapped {
        workspace: name,
        login_url: format!("{}{}?token={}", app.config.public_url, paths::LOGIN_LINK, token),
        expires_at: rfc3339(link.expires_ms),
        admin,
    })
}

/// The workspace, if it has been created.
pub async fn get(store: &Store) -> Result<Option<Workspace>, StoreError> {
    store.read(store::workspace::get).await
}

/// Looks a one-time link up without consuming it (the login page consumes
/// it in the OAuth issue); `None` when unknown or expired.
pub async fn peek_link(app: &App, token: &str) -> Result<Option<(OneTimeLink, Member)>, StoreError> {
    if !crate::secret::well_formed(token, TokenKind::Login) {
        return Ok(None);
    }
    let keys = link_keys(token);
    let now = app.clock.now_ms();
    app.store
        .read(move |txn| {
            let Some(link) = store::links::get(txn, &keys)? else {
                return Ok(None);
            };
            if link.expires_ms <= now {
                return Ok(None);
            }
            Ok(store::members::get(txn, link.member_id)?.map(|m| (link, m)))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::plausible_email;

    #[test]
    fn email_shapes() {
        assert!(plausible_email("admin@localhost"));
        assert!(plausible_email("a.b+c@example.com"));
        assert!(!plausible_email("no-at-sign"));
        assert!(!plausible_email("@example.com"));
        assert!(!plausible_email("a@"));
        assert!(!plausible_email("a b@example.com"));
        assert!(!plausible_email("a@b@c"));
        // Look-alikes of admin@localhost are not addresses (issue 17).
        assert!(!plausible_email("jürgen@bücher.example"));
        assert!(plausible_email("juergen@xn--bcher-kva.example"));
        assert!(!plausible_email("\u{ff41}dmin@localhost"), "fullwidth a");
        assert!(!plausible_email("adm\u{131}n@localhost"), "dotless i");
        assert!(!plausible_email("ADM\u{130}N@localhost"), "dotted capital I");
        assert!(!plausible_email("\u{212a}im@localhost"), "KELVIN SIGN");
        assert!(!plausible_email("admin@l\u{043e}calhost"), "Cyrillic o in the domain");
        assert!(!plausible_email("<script>alert(1)</script>@example.com"));
        assert!(!plausible_email("a@example.com\"><"));
        assert!(!plausible_email("a..@example.com."));
        assert!(!plausible_email("a@-x.com"));
    }
}
