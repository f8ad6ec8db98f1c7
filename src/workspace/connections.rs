//! IdP connections and static SCIM tokens: issue, list, revoke, and the
//! bearer check that turns a token into a [`ScimCtx`].

use serde_json::json;
use uuid::Uuid;

use super::ScimCtx;
use super::model::*;
use crate::App;
use crate::secret::{TokenKind, hash_token, new_token, well_formed};
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("name must be 1 to 100 printable characters")]
    BadName,
    #[error(
        "a connection named {0:?} already exists; choose another name (e.g. with the date), or revoke the old one first"
    )]
    NameTaken(String),
    #[error("no connection with id or name {0:?}")]
    NotFound(String),
    #[error("{0:?} matches more than one connection; use its id")]
    Ambiguous(String),
    #[error("connection {0:?} is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly issued static token: shown once, stored only as a hash.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub connection: Connection,
    pub token: String,
}

/// Creates a connection with one static SCIM bearer token (Entra's "Secret
/// Token", Okta's "HTTP Header" auth). Static tokens do not expire: Entra
/// quarantines a provisioning job whose token expires.
pub async fn create_static_token(app: &App, name: &str, actor: Actor) -> Result<IssuedToken, ConnectionError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ConnectionError::BadName);
    }
    let now = app.clock.now_ms();
    let connection = Connection {
        id: crate::clock::new_uuid(app.rng.as_ref()),
        name,
        kind: ConnectionKind::StaticToken,
        created_ms: now,
        revoked_ms: None,
        last_used_ms: None,
    };
    let token = new_token(TokenKind::Scim, app.rng.as_ref());
    let hash = hash_token(&token);
    let c = connection.clone();
    app.store
        .write(move |txn| {
            // Commands address connections by name (`roster token revoke
            // NAME`): two live ones with one name would make that ambiguous.
            if store::connections::live_name_taken(txn, &c.name)? {
                return Ok(Err(ConnectionError::NameTaken(c.name.clone())));
            }
            store::connections::put(txn, &c)?;
            store::connections::put_token(
                txn,
                &hash,
                &ScimToken {
                    connection_id: c.id,
                    created_ms: now,
                    expires_ms: None,
                },
            )?;
            store::audit::append(
                txn,
                &AuditEntry {
                    at_ms: now,
                    actor: actor.clone(),
                    target: format!("connection:{}", c.id),
                    action: "connection.created".into(),
                    detail: json!({"name": c.name, "kind": c.kind}),
                },
            )?;
            Ok(Ok::<(), ConnectionError>(()))
        })
        .await??;
    Ok(IssuedToken { connection, token })
}

pub async fn list(app: &App) -> Result<Vec<Connection>, StoreError> {
    app.store.read(store::connections::list).await
}

/// Revokes a connection by id or unique name: its tokens stop working on the
/// next request. Members it manages stay managed by it (and visible as such)
/// until an admin or another connection takes them over.
pub async fn revoke(app: &App, id_or_name: &str, actor: Actor) -> Result<Connection, ConnectionError> {
    let key = id_or_name.trim().to_owned();
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            let all = {
                let mut v = Vec::new();
                let t = txn.open_table(store::tables::CONNECTIONS)?;
                for row in redb::ReadableTable::iter(&t)? {
                    let (_, val) = row?;
                    v.push(store::codec::decode::<Connection>(val.value())?);
                }
                v
            };
            // An id wins over a name that happens to look like one.
            let by_id = Uuid::parse_str(&key).ok();
            let exact: Vec<&Connection> = all.iter().filter(|c| Some(c.id) == by_id).collect();
            let hits: Vec<&Connection> = if exact.is_empty() {
                all.iter().filter(|c| c.name == key).collect()
            } else {
                exact
            };
            let mut c = match hits.as_slice() {
                [] => return Ok(Err(ConnectionError::NotFound(key.clone()))),
                [one] => (*one).clone(),
                _ => {
                    // Prefer the one live connection of that name, and
                    // among live ones the static token (`token revoke` is
                    // about static tokens; their names are unique).
                    let live: Vec<&Connection> = hits.iter().copied().filter(|c| c.revoked_ms.is_none()).collect();
                    let live_static: Vec<&Connection> = live
                        .iter()
                        .copied()
                        .filter(|c| c.kind == ConnectionKind::StaticToken)
                        .collect();
                    match (live.as_slice(), live_static.as_slice()) {
                        ([one], _) | (_, [one]) => (*one).clone(),
                        _ => return Ok(Err(ConnectionError::Ambiguous(key.clone()))),
                    }
                }
            };
            if c.revoked_ms.is_some() {
                return Ok(Err(ConnectionError::AlreadyRevoked(c.name.clone())));
            }
            c.revoked_ms = Some(now);
            store::connections::put(txn, &c)?;
            let n = store::connections::revoke_tokens(txn, c.id)?;
            store::audit::append(
                txn,
                &AuditEntry {
                    at_ms: now,
                    actor: actor.clone(),
                    target: format!("connection:{}", c.id),
                    action: "connection.revoked".into(),
                    detail: json!({"name": c.name, "tokens_revoked": n}),
                },
            )?;
            Ok(Ok(c))
        })
        .await?
}

/// Recently checked bearer tokens: SHA-256 of the token → what it proved,
/// valid while the store's generation is unchanged (any committed write,
/// a revocation included, empties it in effect) and the token unexpired.
/// A SCIM read then costs one store hop instead of two.
#[derive(Default)]
pub struct AuthCache {
    entries: std::sync::Mutex<std::collections::HashMap<crate::secret::TokenHash, Cached>>,
}

#[derive(Clone)]
struct Cached {
    generation: u64,
    ctx: ScimCtx,
    expires_ms: Option<i64>,
    used: UseRecord,
    last_used_ms: Option<i64>,
}

/// Where a token's "last used" time is kept.
#[derive(Clone, Copy)]
enum UseRecord {
    Connection(Uuid),
    Grant(Uuid),
}

/// Entries kept at most; the cache is emptied when full (tokens are few:
/// one or two per identity provider).
const AUTH_CACHE_MAX: usize = 4096;

impl AuthCache {
    fn get(&self, hash: &crate::secret::TokenHash, generation: u64, now: i64) -> Option<Cached> {
        let map = self.entries.lock().ok()?;
        map.get(hash)
            .filter(|c| c.generation == generation && c.expires_ms.is_none_or(|e| now < e))
            .cloned()
    }

    fn put(&self, hash: crate::secret::TokenHash, c: Cached) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
            map.insert(hash, c);
        }
    }
}

/// The bearer check: a static SCIM token or an OAuth access token (scope
/// scim), well-formed, known, unexpired, of a live grant and connection.
/// Malformed tokens are rejected before any lookup.
pub async fn authenticate(app: &App, bearer: &str) -> Result<Option<ScimCtx>, StoreError> {
    let access = well_formed(bearer, TokenKind::AccessToken);
    if !access && !well_formed(bearer, TokenKind::Scim) {
        return Ok(None);
    }
    let hash = hash_token(bearer);
    let now = app.clock.now_ms();
    // Read the generation before the store, so a write that lands after
    // the read below makes this entry stale.
    let generation = app.store.generation();
    let found = match app.auth_cache.get(&hash, generation, now) {
        Some(c) => Some(c),
        None => {
            let found = if access {
                lookup_access_token(app, hash, now).await?
            } else {
                lookup_static_token(app, hash, now).await?
            };
            let Some((ctx, expires_ms, used, last_used_ms)) = found else {
                return Ok(None);
            };
            let c = Cached {
                generation,
                ctx,
                expires_ms,
                used,
                last_used_ms,
            };
            app.auth_cache.put(hash, c.clone());
            Some(c)
        }
    };
    let Some(c) = found else {
        return Ok(None);
    };
    if c.last_used_ms.is_none_or(|t| now - t >= LAST_USED_EVERY_MS) {
        // The write bumps the generation, so the next request re-reads and
        // caches the new time.
        record_use(app, c.used, now);
    }
    Ok(Some(c.ctx))
}

type Found = Option<(ScimCtx, Option<i64>, UseRecord, Option<i64>)>;

async fn lookup_static_token(app: &App, hash: crate::secret::TokenHash, now: i64) -> Result<Found, StoreError> {
    app.store
        .read_point(move |txn| {
            let Some(t) = store::connections::token(txn, &hash)? else {
                return Ok(None);
            };
            if t.expires_ms.is_some_and(|e| e <= now) {
                return Ok(None);
            }
            let Some(c) = store::connections::get(txn, t.connection_id)? else {
                return Ok(None);
            };
            if c.revoked_ms.is_some() {
                return Ok(None);
            }
            let (used, last) = (UseRecord::Connection(c.id), c.last_used_ms);
            Ok(Some((ScimCtx::new(c), t.expires_ms, used, last)))
        })
        .await
}

async fn lookup_access_token(app: &App, hash: crate::secret::TokenHash, now: i64) -> Result<Found, StoreError> {
    app.store
        .read_point(move |txn| {
            let Some(t) = store::oauth::access(txn, &hash)? else {
                return Ok(None);
            };
            if t.expires_ms <= now {
                return Ok(None);
            }
            let Some(g) = store::oauth::grant(txn, t.grant_id)? else {
                return Ok(None);
            };
            if g.revoked_ms.is_some() || !g.scope.split(' ').any(|s| s == "scim") {
                return Ok(None);
            }
            let Some(c) = store::connections::get(txn, g.connection_id)? else {
                return Ok(None);
            };
            if c.revoked_ms.is_some() {
                return Ok(None);
            }
            Ok(Some((
                ScimCtx::new(c),
                Some(t.expires_ms),
                UseRecord::Grant(g.id),
                g.last_used_ms,
            )))
        })
        .await
}

/// "Last used" is recorded at most this often, so SCIM traffic does not
/// turn into a write per request.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// Records a use in the background; the request does not wait for it.
fn record_use(app: &App, used: UseRecord, now: i64) {
    let store = app.store.clone();
    tokio::spawn(async move {
        let r = store
            .write(move |txn| {
                match used {
                    UseRecord::Connection(id) => {
                        if let Some(mut c) = store::connections::get_w(txn, id)?
                            && c.revoked_ms.is_none()
                        {
                            c.last_used_ms = Some(now);
                            store::connections::put(txn, &c)?;
                        }
                    }
                    UseRecord::Grant(id) => {
                        if let Some(mut g) = store::oauth::grant_w(txn, id)?
                            && g.revoked_ms.is_none()
                        {
                            g.last_used_ms = Some(now);
                            store::oauth::put_grant(txn, &g)?;
                        }
                    }
                }
                Ok(Ok::<(), ()>(()))
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record a token's use");
        }
    });
}
