//! Signing in: password login, one-time links (first-admin login,
//! invitation acceptance, set password), sessions and sign-out. Sessions
//! live in the database so deprovisioning can end them at once.

use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::App;
use crate::secret::{TokenHash, TokenKind, hash_token, new_token, well_formed};
use crate::store::{self, StoreError};

/// A session just created: the raw cookie value and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

/// A live session with its member.
#[derive(Debug, Clone)]
pub struct Live {
    pub hash: TokenHash,
    pub session: Session,
    pub member: Member,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("This link is not valid. It may have been used already or have expired; ask an admin for a new one.")]
    Invalid,
    #[error("Your access to this workspace is suspended.")]
    Suspended,
    #[error("The passwords do not match.")]
    Mismatch,
    #[error("Choose a password of at least 10 characters.")]
    TooShort,
}

pub const MIN_PASSWORD_CHARS: usize = 10;

fn new_session(app: &App, member_id: Uuid) -> (NewSession, TokenHash, Session) {
    let token = new_token(TokenKind::Session, app.rng.as_ref());
    let mut csrf_bytes = [0u8; 24];
    app.rng.fill(&mut csrf_bytes);
    let csrf: String = csrf_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now = app.clock.now_ms();
    let s = Session {
        member_id,
        created_ms: now,
        last_seen_ms: now,
        expires_ms: now + app.config.session_max_ms,
        csrf: csrf.clone(),
    };
    (
        NewSession {
            token: token.clone(),
            csrf,
        },
        hash_token(&token),
        s,
    )
}

fn audit(member: Uuid, now: i64, actor: Actor, action: &str) -> AuditEntry {
    audit_with(member, now, actor, action, json!({}))
}

fn audit_with(member: Uuid, now: i64, actor: Actor, action: &str, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        at_ms: now,
        actor,
        target: format!("member:{member}"),
        action: action.to_owned(),
        detail,
    }
}

/// Looks a session cookie up: unknown, expired (idle or absolute) or
/// belonging to a member who is no longer active → `None`.
pub async fn resolve(app: &App, cookie: &str) -> Result<Option<Live>, StoreError> {
    if !well_formed(cookie, TokenKind::Session) {
        return Ok(None);
    }
    let hash = hash_token(cookie);
    let now = app.clock.now_ms();
    let idle = app.config.session_idle_ms;
    app.store
        .read(move |txn| {
            let Some(s) = store::sessions::get(txn, &hash)? else {
                return Ok(None);
            };
            if s.expired(now, idle) {
                return Ok(None);
            }
            let Some(m) = store::members::get(txn, s.member_id)? else {
                return Ok(None);
            };
            if m.status != Status::Active {
                return Ok(None);
            }
            Ok(Some(Live {
                hash,
                session: s,
                member: m,
            }))
        })
        .await
}

/// Records activity at most once a minute (the idle limit needs it; a write
/// per page view would not be worth it).
pub async fn touch(app: &App, live: &Live) {
    let now = app.clock.now_ms();
    if now - live.session.last_seen_ms < 60_000 {
        return;
    }
    let (hash, mut s) = (live.hash, live.session.clone());
    s.last_seen_ms = now;
    let r = app
        .store
        .write(move |txn| {
            // Only if it still exists: a revoked session stays revoked.
            if store::sessions::get_w(txn, &hash)?.is_some() {
                store::sessions::put(txn, &hash, &s)?;
            }
            Ok(Ok::<(), ()>(()))
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not record session activity");
    }
}

/// Starts a session for a member who proved their password.
pub async fn start(app: &App, member: &Member, how: &'static str) -> Result<Option<NewSession>, StoreError> {
    let (new, hash, s) = new_session(app, member.id);
    let id = member.id;
    let email = member.email.clone();
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            // Re-check inside the transaction: suspension may have just landed.
            match store::members::get_w(txn, id)? {
                Some(m) if m.status == Status::Active => {}
                _ => return Ok(Err(())),
            }
            store::sessions::put(txn, &hash, &s)?;
            store::audit::append(
                txn,
                &audit(
                    id,
                    now,
                    Actor::Member {
                        id,
                        email: email.clone(),
                    },
                    how,
                ),
            )?;
            Ok(Ok(()))
        })
        .await
        .map(|r| r.ok().map(|()| new))
}

/// Ends a session (sign-out).
pub async fn end(app: &App, live: &Live) -> Result<(), StoreError> {
    let hash = live.hash;
    let id = live.member.id;
    let email = live.member.email.clone();
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            store::sessions::remove(txn, &hash)?;
            store::audit::append(
                txn,
                &audit(
                    id,
                    now,
                    Actor::Member {
                        id,
                        email: email.clone(),
                    },
                    "session.signed_out",
                ),
            )?;
            Ok(Ok::<(), ()>(()))
        })
        .await?
        .ok();
    Ok(())
}

/// What a link is for, as the page that shows it asks.
pub async fn peek(app: &App, token: &str, purpose: LinkPurpose) -> Result<Option<Member>, StoreError> {
    Ok(super::peek_link(app, token)
        .await?
        .filter(|(l, m)| l.purpose == purpose && matches!(m.status, Status::Active | Status::Invited))
        .map(|(_, m)| m))
}

/// Uses a one-time link: consumes it, applies what it is for (accepting an
/// invitation makes the member active; set-password and invite links set the
/// password), and starts a session — all in one transaction.
pub async fn use_link(
    app: &App,
    token: &str,
    purpose: LinkPurpose,
    password_hash: Option<String>,
) -> Result<Result<(Member, NewSession), LinkError>, StoreError> {
    if !well_formed(token, TokenKind::Login) {
        return Ok(Err(LinkError::Invalid));
    }
    let keys = crate::secret::link_keys(token);
    let now = app.clock.now_ms();
    let fresh_session = new_session(app, Uuid::nil());
    app.store
        .write(move |txn| {
            let Some(link) = store::links::take(txn, &keys)? else {
                return Ok(Err(LinkError::Invalid));
            };
            if link.expires_ms <= now || link.purpose != purpose {
                return Ok(Err(LinkError::Invalid));
            }
            let Some(mut m) = store::members::get_w(txn, link.member_id)? else {
                return Ok(Err(LinkError::Invalid));
            };
            let actor = Actor::Member {
                id: m.id,
                email: m.email.clone(),
            };
            match (m.status, purpose) {
                (Status::Suspended | Status::Removed, _) => return Ok(Err(LinkError::Suspended)),
                (Status::Invited, LinkPurpose::Invite) => {
                    m.status = Status::Active;
                    m.accepted = true;
                    store::audit::append(txn, &audit(m.id, now, actor.clone(), "member.invite_accepted"))?;
                }
                (Status::Invited, _) => return Ok(Err(LinkError::Invalid)),
                (Status::Active, _) => {}
            }
            if let Some(h) = &password_hash {
                m.password_hash = Some(h.clone());
                // A new password ends every other session of the member
                // (ASVS V3.3.3): whoever signed in with the old one is out.
                // The session started below is the only one left.
                let ended = store::sessions::revoke_for_member(txn, m.id)?;
                store::audit::append(
                    txn,
                    &audit_with(
                        m.id,
                        now,
                        actor.clone(),
                        "member.password_set",
                        json!({"other_sessions_ended": ended}),
                    ),
                )?;
            }
            m.version += 1;
            m.updated_ms = now;
            store::members::put(txn, &m)?;
            let (new, shash, mut s) = fresh_session.clone();
            s.member_id = m.id;
            store::sessions::put(txn, &shash, &s)?;
            store::audit::append(txn, &audit(m.id, now, actor, "session.signed_in_with_link"))?;
            Ok(Ok((m, new)))
        })
        .await
}

/// A real argon2id hash of a random secret, verified when the account does
/// not exist or has no password, so every failed login costs the same.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash(rng: &dyn crate::clock::Rng) -> &'static str {
    DUMMY_HASH.get_or_init(|| {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        let secret: String = b.iter().map(|x| format!("{x:02x}")).collect();
        crate::password::hash(&secret, rng).unwrap_or_default()
    })
}

/// Checks an email and password. Runs argon2 on the blocking pool, also for
/// unknown emails (no account enumeration by timing). `None` = no entry.
pub async fn check_password(app: &App, email: &str, password: &str) -> Result<Option<Member>, StoreError> {
    let e = email.trim().to_owned();
    let member = app.store.read(move |txn| store::members::by_email(txn, &e)).await?;
    let stored = member.as_ref().and_then(|m| m.password_hash.clone());
    let pw = password.to_owned();
    let rng = app.rng.clone();
    let _permit = app.hash_permits.acquire().await.map_err(|_| StoreError::Closed)?;
    let ok = tokio::task::spawn_blocking(move || {
        let phc = stored.as_deref().unwrap_or_else(|| dummy_hash(rng.as_ref()));
        crate::password::verify(&pw, phc) && stored.is_some()
    })
    .await
    .map_err(|e| StoreError::Database(e.to_string()))?;
    Ok(member.filter(|m| ok && m.status == Status::Active))
}

/// Hashes a new password on the blocking pool, bounded by the hash permits.
pub async fn hash_new_password(app: &App, password: &str) -> Result<String, LinkError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(LinkError::TooShort);
    }
    let pw = password.to_owned();
    let rng = app.rng.clone();
    let _permit = app.hash_permits.acquire().await.map_err(|_| LinkError::Invalid)?;
    tokio::task::spawn_blocking(move || crate::password::hash(&pw, rng.as_ref()))
        .await
        .map_err(|_| LinkError::Invalid)?
        .map_err(|_| LinkError::TooShort)
}
