//! OAuth clients and grants as workspace objects: registration (redirect
//! URIs checked per RFC 9700), secret rotation, removal, grant listing and
//! revocation. The HTTP endpoints live in `crate::oauth`.

use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::App;
use crate::secret::{TokenKind, hash_token, new_token};
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("name must be 1 to 100 printable characters")]
    BadName,
    #[error("an OAuth client named {0:?} already exists; choose another name")]
    NameTaken(String),
    #[error("redirect URI {0:?}: {1}")]
    BadRedirect(String, &'static str),
    #[error("a client that signs people in needs at least one --redirect-uri")]
    NoRedirect,
    #[error("no OAuth client {0:?}")]
    NotFound(String),
    #[error("no grant {0:?}")]
    NoGrant(String),
    #[error("a {0} client has no secret to rotate")]
    NoSecret(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a redirect URI for registration: absolute, no fragment, `https`
/// — or `http` only on a loopback host or when explicitly allowed (Okta's
/// `http://system-admin.okta1.com:1802/...` preview callback).
pub fn check_redirect(uri: &str, allow_insecure: bool) -> Result<(), ClientError> {
    let bad = |why| Err(ClientError::BadRedirect(uri.to_owned(), why));
    if uri.len() > 2048 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must be a single URL without spaces, at most 2048 characters");
    }
    if uri.contains('#') {
        return bad("must not contain a fragment (#)");
    }
    let (scheme, rest) = match uri.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => return bad("must be an absolute URL (https://...)"),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return bad("needs a host and no user information");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme.as_str() {
        "https" => Ok(()),
        "http" if loopback || allow_insecure => Ok(()),
        "http" => bad("plain http is refused unless the host is loopback or --allow-insecure-redirect is given"),
        _ => bad("must use https"),
    }
}

/// A registered client and its secret (shown once; `None` for public
/// clients).
#[derive(Debug, Clone)]
pub struct Registered {
    pub client: OAuthClient,
    pub secret: Option<String>,
}

fn audit(
    txn: &redb::WriteTransaction,
    now: i64,
    actor: &Actor,
    target: String,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    store::audit::append(
        txn,
        &AuditEntry {
            at_ms: now,
            actor: actor.clone(),
            target,
            action: action.to_owned(),
            detail,
        },
    )?;
    Ok(())
}

pub async fn register(
    app: &App,
    name: &str,
    redirect_uris: Vec<String>,
    kind: ClientKind,
    allow_insecure_redirect: bool,
    actor: Actor,
) -> Result<Registered, ClientError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ClientError::BadName);
    }
    for u in &redirect_uris {
        check_redirect(u, allow_insecure_redirect)?;
    }
    if redirect_uris.is_empty() && kind != ClientKind::Service {
        return Err(ClientError::NoRedirect);
    }
    let now = app.clock.now_ms();
    let mut id_bytes = [0u8; 12];
    app.rng.fill(&mut id_bytes);
    let client_id = format!("rc_{}", id_bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let secret = (kind != ClientKind::Public).then(|| new_token(TokenKind::ClientSecret, app.rng.as_ref()));
    let connection = Connection {
        id: crate::clock::new_uuid(app.rng.as_ref()),
        name: name.clone(),
        kind: ConnectionKind::OAuthGrant,
        created_ms: now,
        revoked_ms: None,
        last_used_ms: None,
    };
    let client = OAuthClient {
        client_id,
        name,
        kind,
        redirect_uris,
        secrets: secret
            .iter()
            .map(|s| ClientSecret {
                hash: hash_token(s),
                created_ms: now,
            })
            .collect(),
        connection_id: connection.id,
        allow_insecure_redirect,
        created_ms: now,
    };
    let c = client.clone();
    app.store
        .write(move |txn| {
            if store::oauth::client_name_taken(txn, &c.name)? {
                return Ok(Err(ClientError::NameTaken(c.name.clone())));
            }
            store::connections::put(txn, &connection)?;
            store::oauth::put_client(txn, &c)?;
            audit(
                txn,
                now,
                &actor,
                format!("client:{}", c.client_id),
                "oauth.client_registered",
                json!({"name": c.name, "kind": c.kind, "redirect_uris": c.redirect_uris}),
            )?;
            Ok(Ok(()))
        })
        .await??;
    Ok(Registered { client, secret })
}

pub async fn list(app: &App) -> Result<Vec<OAuthClient>, StoreError> {
    app.store.read(store::oauth::clients).await
}

/// Adds a new secret; the client then holds it and its newest old one, so
/// the IdP can switch over without downtime. Returns the new secret.
pub async fn rotate_secret(app: &App, client_id: &str, actor: Actor) -> Result<String, ClientError> {
    let id = client_id.to_owned();
    let secret = new_token(TokenKind::ClientSecret, app.rng.as_ref());
    let hash = hash_token(&secret);
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            let Some(mut c) = store::oauth::client_w(txn, &id)? else {
                return Ok(Err(ClientError::NotFound(id.clone())));
            };
            if c.kind == ClientKind::Public {
                return Ok(Err(ClientError::NoSecret("public")));
            }
            c.secrets.sort_by_key(|s| s.created_ms);
            c.secrets = c.secrets.split_off(c.secrets.len().saturating_sub(1));
            c.secrets.push(ClientSecret { hash, created_ms: now });
            store::oauth::put_client(txn, &c)?;
            audit(
                txn,
                now,
                &actor,
                format!("client:{id}"),
                "oauth.secret_rotated",
                json!({}),
            )?;
            Ok(Ok(()))
        })
        .await??;
    Ok(secret)
}

fn revoke_grant_in(txn: &redb::WriteTransaction, g: &mut Grant, now: i64) -> Result<usize, StoreError> {
    // Counted when the transaction runs; a rolled-back batch re-runs it,
    // so the counter can over-count in that rare case.
    crate::metrics::grant_revoked(if g.authorized_by.is_some() {
        "authorization_code"
    } else {
        "client_credentials"
    });
    g.revoked_ms = Some(now);
    store::oauth::put_grant(txn, g)?;
    store::oauth::revoke_grant_tokens(txn, g.id)
}

/// Removes a client: its grants are revoked and its tokens stop working;
/// its connection is marked revoked (members it manages stay, marked as
/// managed by that connection).
pub async fn remove(app: &App, client_id: &str, actor: Actor) -> Result<OAuthClient, ClientError> {
    let id = client_id.to_owned();
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            let Some(c) = store::oauth::client_w(txn, &id)? else {
                return Ok(Err(ClientError::NotFound(id.clone())));
            };
            let grants: Vec<Grant> = {
                let t = txn.open_table(store::tables::OAUTH_GRANTS)?;
                let mut v = Vec::new();
                for row in redb::ReadableTable::iter(&t)? {
                    let g: Grant = store::codec::decode(row?.1.value())?;
                    if g.client_id == id && g.revoked_ms.is_none() {
                        v.push(g);
                    }
                }
                v
            };
            for mut g in grants {
                revoke_grant_in(txn, &mut g, now)?;
            }
            if let Some(mut conn) = store::connections::get_w(txn, c.connection_id)? {
                conn.revoked_ms = Some(now);
                store::connections::put(txn, &conn)?;
            }
            store::oauth::remove_client(txn, &id)?;
            audit(
                txn,
                now,
                &actor,
                format!("client:{id}"),
                "oauth.client_removed",
                json!({"name": c.name}),
            )?;
            Ok(Ok(c))
        })
        .await?
}

/// A grant with what the console and CLI show about it.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub grant: Grant,
    pub client_name: String,
    pub authorized_by: Option<String>,
}

pub async fn grants(app: &App) -> Result<Vec<GrantView>, StoreError> {
    app.store
        .read(|txn| {
            let mut out = Vec::new();
            for g in store::oauth::grants(txn)? {
                let client_name = store::oauth::client(txn, &g.client_id)?
                    .map(|c| c.name)
                    .unwrap_or_else(|| format!("{} (removed)", g.client_id));
                let authorized_by = match g.authorized_by {
                    Some(m) => store::members::get(txn, m)?.map(|m| m.email),
                    None => None,
                };
                out.push(GrantView {
                    grant: g,
                    client_name,
                    authorized_by,
                });
            }
            out.sort_by_key(|v| v.grant.created_ms);
            Ok(out)
        })
        .await
}

/// Revokes a grant at once: every token issued under it stops working.
pub async fn revoke_grant(app: &App, grant_id: &str, actor: Actor) -> Result<Grant, ClientError> {
    let Ok(id) = Uuid::parse_str(grant_id.trim()) else {
        return Err(ClientError::NoGrant(grant_id.to_owned()));
    };
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            let Some(mut g) = store::oauth::grant_w(txn, id)? else {
                return Ok(Err(ClientError::NoGrant(id.to_string())));
            };
            if g.revoked_ms.is_none() {
                let n = revoke_grant_in(txn, &mut g, now)?;
                audit(
                    txn,
                    now,
                    &actor,
                    format!("grant:{id}"),
                    "oauth.grant_revoked",
                    json!({"tokens_revoked": n}),
                )?;
            }
            Ok(Ok(g))
        })
        .await?
}

/// A grant is only as good as its grantor (issue 17): when `before` was an
/// active admin and `after` is not (suspended, removed or made a member,
/// by SCIM, the console or the CLI), every grant they authorised is
/// revoked in the same transaction, its access and refresh tokens stop
/// working at once, and an audit row says why. Their unused authorization
/// codes are refused at the token endpoint, which checks the consenting
/// admin again. Restoring the admin later brings no grant back: an admin
/// authenticates the IdP again. Returns how many grants were revoked.
pub(crate) fn revoke_grants_of_former_admin(
    txn: &redb::WriteTransaction,
    before: &Member,
    after: &Member,
    now: i64,
    actor: &Actor,
) -> Result<usize, StoreError> {
    if !before.is_active_admin() || after.is_active_admin() {
        return Ok(0);
    }
    let grants = store::oauth::live_grants_authorized_by(txn, after.id)?;
    let why = format!(
        "{} who authorised it is no longer an active admin ({})",
        after.email,
        if after.role != Role::Admin {
            "made a member"
        } else if after.status == Status::Removed {
            "removed"
        } else {
            "suspended"
        }
    );
    for mut g in grants.iter().cloned() {
        g.revoked_reason = Some(why.clone());
        let n = revoke_grant_in(txn, &mut g, now)?;
        audit(
            txn,
            now,
            actor,
            format!("grant:{}", g.id),
            "oauth.grant_revoked",
            json!({"reason": why, "tokens_revoked": n, "client_id": g.client_id}),
        )?;
    }
    Ok(grants.len())
}

/// Revocation inside another operation's transaction (token endpoint:
/// code replay, refresh-token reuse).
pub fn revoke_grant_txn(txn: &redb::WriteTransaction, grant: Uuid, now: i64, why: &str) -> Result<(), StoreError> {
    if let Some(mut g) = store::oauth::grant_w(txn, grant)?
        && g.revoked_ms.is_none()
    {
        let n = revoke_grant_in(txn, &mut g, now)?;
        audit(
            txn,
            now,
            &Actor::System,
            format!("grant:{grant}"),
            "oauth.grant_revoked",
            json!({"reason": why, "tokens_revoked": n}),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_redirect;

    #[test]
    fn redirect_rules() {
        assert!(
            check_redirect(
                "https://system-admin.okta.com/admin/app/cpc/roster_app/oauth/callback",
                false
            )
            .is_ok()
        );
        assert!(
            check_redirect(
                "https://system-admin.okta-emea.com/admin/app/cpc/x/oauth/callback",
                false
            )
            .is_ok()
        );
        assert!(check_redirect("http://127.0.0.1:9000/cb", false).is_ok());
        assert!(check_redirect("http://[::1]:9000/cb", false).is_ok());
        assert!(check_redirect("http://localhost/cb", false).is_ok());
        assert!(
            check_redirect(
                "http://system-admin.okta1.com:1802/admin/app/cpc/x/oauth/callback",
                false
            )
            .is_err()
        );
        assert!(
            check_redirect(
                "http://system-admin.okta1.com:1802/admin/app/cpc/x/oauth/callback",
                true
            )
            .is_ok()
        );
        assert!(check_redirect("https://x/cb#frag", false).is_err());
        assert!(check_redirect("/relative", false).is_err());
        assert!(check_redirect("javascript:alert(1)", false).is_err());
        assert!(check_redirect("https://user@x/cb", false).is_err());
        assert!(check_redirect("ftp://x/cb", false).is_err());
    }
}
