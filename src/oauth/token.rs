//! `POST /oauth/token` (RFC 6749 §4.1.3, §6, §4.4): authorization codes
//! (single use; a replay revokes what the code produced), refresh tokens
//! (rotated on every use; re-use after a short grace revokes the grant) and
//! client credentials (service clients only). Every response is no-store.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use uuid::Uuid;

use super::{OAuthError, SCOPE_SCIM, authenticate_client, form, no_store_json};
use crate::App;
use crate::ratelimit::TOKEN_PER_ADDRESS;
use crate::secret::{TokenHash, TokenKind, hash_token, new_token, well_formed};
use crate::server::forwarded::ClientIp;
use crate::store::{self, StoreError};
use crate::workspace::model::{
    AccessToken, Actor, AuditEntry, ClientKind, Grant, OAuthClient, RefreshToken, Role, Status,
};
use crate::workspace::oauth::revoke_grant_txn;

/// Tokens drawn before the transaction (it may run more than once).
struct Fresh {
    now: i64,
    grant_id: Uuid,
    access: String,
    refresh: String,
}

impl Fresh {
    fn new(app: &App) -> Fresh {
        Fresh {
            now: app.clock.now_ms(),
            grant_id: crate::clock::new_uuid(app.rng.as_ref()),
            access: new_token(TokenKind::AccessToken, app.rng.as_ref()),
            refresh: new_token(TokenKind::RefreshToken, app.rng.as_ref()),
        }
    }
}

/// What was issued.
struct Issued {
    access: String,
    access_ttl_ms: i64,
    refresh: Option<String>,
    scope: String,
}

fn issued_response(i: &Issued) -> Response {
    let mut body = json!({
        "access_token": i.access,
        "token_type": "Bearer",
        "expires_in": i.access_ttl_ms / 1000,
        "scope": i.scope,
    });
    if let Some(r) = &i.refresh {
        body["refresh_token"] = json!(r);
    }
    no_store_json(StatusCode::OK, &body)
}

fn grant_audit(g: &Grant, now: i64, action: &str, actor: Actor) -> AuditEntry {
    AuditEntry {
        at_ms: now,
        actor,
        target: format!("grant:{}", g.id),
        action: action.to_owned(),
        detail: json!({"client": g.client_id, "scope": g.scope}),
    }
}

/// Stores an access token (and a refresh token) for a grant.
fn issue(
    txn: &redb::WriteTransaction,
    grant: &Grant,
    fresh: &Fresh,
    access_ttl_ms: i64,
    refresh_idle_ms: Option<i64>,
) -> Result<Issued, StoreError> {
    store::oauth::put_access(
        txn,
        &hash_token(&fresh.access),
        &AccessToken {
            grant_id: grant.id,
            expires_ms: fresh.now + access_ttl_ms,
        },
    )?;
    let refresh = match refresh_idle_ms {
        Some(idle) => {
            store::oauth::put_refresh(
                txn,
                &hash_token(&fresh.refresh),
                &RefreshToken {
                    grant_id: grant.id,
                    expires_ms: fresh.now + idle,
                    rotated_ms: None,
                },
            )?;
            Some(fresh.refresh.clone())
        }
        None => None,
    };
    Ok(Issued {
        access: fresh.access.clone(),
        access_ttl_ms,
        refresh,
        scope: grant.scope.clone(),
    })
}

fn pkce_ok(challenge: &str, verifier: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !valid {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    crate::web::session::equal(&computed, challenge)
}

async fn authorization_code(app: &App, client: OAuthClient, p: &HashMap<String, String>) -> Result<Issued, OAuthError> {
    if client.kind == ClientKind::Service {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may only use client_credentials",
        ));
    }
    let code = p
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?
        .clone();
    if !well_formed(&code, TokenKind::AuthCode) {
        return Err(OAuthError::new("invalid_grant", "the authorization code is not valid"));
    }
    let hash: TokenHash = hash_token(&code);
    let redirect_uri = p.get("redirect_uri").cloned();
    let verifier = p.get("code_verifier").cloned();
    let fresh = Fresh::new(app);
    let (access_ttl, refresh_idle) = (app.config.oauth.access_token_ms, app.config.oauth.refresh_idle_ms);
    app.store
        .write(move |txn| {
            let invalid = |d: &str| Ok(Err(OAuthError::new("invalid_grant", d)));
            let Some(mut c) = store::oauth::code_w(txn, &hash)? else {
                return invalid("the authorization code is not valid");
            };
            if let Some(grant) = c.exchanged_for {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                // The revocation must commit, so this is a success of the
                // transaction carrying an error for the client.
                revoke_grant_txn(txn, grant, fresh.now, "authorization code replayed")?;
                return Ok(Ok(Err(OAuthError::new(
                    "invalid_grant",
                    "the authorization code was already used; its tokens are revoked",
                ))));
            }
            if c.expires_ms <= fresh.now {
                return invalid("the authorization code has expired");
            }
            if c.client_id != client.client_id {
                return invalid("the authorization code was issued to another client");
            }
            match (&redirect_uri, c.redirect_uri_explicit) {
                (Some(r), _) if *r != c.redirect_uri => {
                    return invalid("redirect_uri does not match the authorization request");
                }
                (None, true) => return Ok(Err(OAuthError::new("invalid_request", "redirect_uri is required"))),
                _ => {}
            }
            match (&c.challenge, &verifier) {
                (Some(ch), Some(v)) if pkce_ok(ch, v) => {}
                (Some(_), Some(_)) => return invalid("code_verifier does not match the code_challenge"),
                (Some(_), None) => return invalid("code_verifier is required"),
                // A verifier without a challenge is a PKCE downgrade attempt.
                (None, Some(_)) => return invalid("no code_challenge was sent for this code"),
                (None, None) => {}
            }
            // The admin who consented must still be an active admin.
            match store::members::get_w(txn, c.member_id)? {
                Some(m) if m.role == Role::Admin && m.status == Status::Active => {}
                _ => return invalid("the admin who authorised this connection can no longer do so"),
            }
            let grant = Grant {
                id: fresh.grant_id,
                client_id: client.client_id.clone(),
                connection_id: client.connection_id,
                authorized_by: Some(c.member_id),
                revoked_reason: None,
                scope: c.scope.clone(),
                created_ms: fresh.now,
                last_used_ms: None,
                revoked_ms: None,
            };
            store::oauth::put_grant(txn, &grant)?;
            c.exchanged_for = Some(grant.id);
            store::oauth::put_code(txn, &hash, &c)?;
            let issued = issue(txn, &grant, &fresh, access_ttl, Some(refresh_idle))?;
            store::audit::append(
                txn,
                &grant_audit(&grant, fresh.now, "oauth.grant_created", Actor::System),
            )?;
            Ok(Ok(Ok(issued)))
        })
        .await??
}

async fn refresh_token(app: &App, client: OAuthClient, p: &HashMap<String, String>) -> Result<Issued, OAuthError> {
    if client.kind == ClientKind::Service {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may only use client_credentials",
        ));
    }
    let token = p
        .get("refresh_token")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required"))?
        .clone();
    if !well_formed(&token, TokenKind::RefreshToken) {
        return Err(OAuthError::new("invalid_grant", "the refresh token is not valid"));
    }
    if let Some(scope) = p.get("scope")
        && scope
            .split(' ')
            .any(|s| !s.is_empty() && s != SCOPE_SCIM && s != "offline_access")
    {
        return Err(OAuthError::new(
            "invalid_scope",
            "a refresh can only keep or narrow the granted scope",
        ));
    }
    let hash = hash_token(&token);
    let fresh = Fresh::new(app);
    let cfg = app.config.oauth.clone();
    app.store
        .write(move |txn| {
            let invalid = |d: &str| Ok(Err(OAuthError::new("invalid_grant", d)));
            let Some(mut rt) = store::oauth::refresh_w(txn, &hash)? else {
                return invalid("the refresh token is not valid");
            };
            let Some(grant) = store::oauth::grant_w(txn, rt.grant_id)? else {
                return invalid("the refresh token is not valid");
            };
            if grant.revoked_ms.is_some() {
                return invalid("the grant was revoked");
            }
            if grant.client_id != client.client_id {
                return invalid("the refresh token was issued to another client");
            }
            if let Some(rotated) = rt.rotated_ms {
                if fresh.now - rotated > cfg.refresh_grace_ms {
                    // RFC 9700 §4.14.2: a rotated token used again means it
                    // leaked; end the whole grant (committed, then refused).
                    revoke_grant_txn(txn, grant.id, fresh.now, "rotated refresh token re-used")?;
                    return Ok(Ok(Err(OAuthError::new(
                        "invalid_grant",
                        "the refresh token was already used; the grant is revoked",
                    ))));
                }
                // Within the grace window (a concurrent double refresh):
                // hand out another pair, keep the grant.
            } else if rt.expires_ms <= fresh.now {
                return invalid("the refresh token has expired");
            } else {
                rt.rotated_ms = Some(fresh.now);
                store::oauth::put_refresh(txn, &hash, &rt)?;
            }
            let mut g = grant.clone();
            g.last_used_ms = Some(fresh.now);
            store::oauth::put_grant(txn, &g)?;
            Ok(Ok(Ok(issue(
                txn,
                &g,
                &fresh,
                cfg.access_token_ms,
                Some(cfg.refresh_idle_ms),
            )?)))
        })
        .await??
}

async fn client_credentials(app: &App, client: OAuthClient, p: &HashMap<String, String>) -> Result<Issued, OAuthError> {
    if client.kind != ClientKind::Service {
        return Err(OAuthError::new(
            "unauthorized_client",
            "client_credentials is only for clients registered as service clients",
        ));
    }
    if let Some(scope) = p.get("scope")
        && scope.split(' ').any(|s| !s.is_empty() && s != SCOPE_SCIM)
    {
        return Err(OAuthError::new("invalid_scope", "roster grants the scope \"scim\""));
    }
    let fresh = Fresh::new(app);
    let ttl = app.config.oauth.client_credentials_token_ms;
    app.store
        .write(move |txn| {
            // One live grant per service client: it is what the console lists
            // and what revocation ends. It has no member: its subject is the
            // client, which can never collide with a member id.
            let existing = {
                let t = txn.open_table(store::tables::OAUTH_GRANTS)?;
                let mut found = None;
                for row in redb::ReadableTable::iter(&t)? {
                    let g: Grant = store::codec::decode(row?.1.value())?;
                    if g.client_id == client.client_id && g.revoked_ms.is_none() && g.authorized_by.is_none() {
                        found = Some(g);
                        break;
                    }
                }
                found
            };
            let grant = match existing {
                Some(mut g) => {
                    g.last_used_ms = Some(fresh.now);
                    g
                }
                None => Grant {
                    id: fresh.grant_id,
                    client_id: client.client_id.clone(),
                    connection_id: client.connection_id,
                    authorized_by: None,
                    revoked_reason: None,
                    scope: SCOPE_SCIM.into(),
                    created_ms: fresh.now,
                    last_used_ms: Some(fresh.now),
                    revoked_ms: None,
                },
            };
            let new = grant.created_ms == fresh.now && grant.id == fresh.grant_id;
            store::oauth::put_grant(txn, &grant)?;
            if new {
                store::audit::append(
                    txn,
                    &grant_audit(&grant, fresh.now, "oauth.grant_created", Actor::System),
                )?;
            }
            Ok(Ok::<_, OAuthError>(issue(txn, &grant, &fresh, ttl, None)?))
        })
        .await?
}

pub async fn token(
    State(app): State<App>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = app.clock.now_ms();
    let key = format!("token-ip:{client}");
    if let Some(secs) = app.throttle.blocked(&key, TOKEN_PER_ADDRESS, now) {
        let mut r = OAuthError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "temporarily_unavailable",
            description: "too many token requests; retry later".into(),
            basic_challenge: false,
        }
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    app.throttle.hit(&key, TOKEN_PER_ADDRESS, now);
    let result = async {
        let p = form(&headers, &body)?;
        let client = authenticate_client(&app, &headers, &p).await?;
        let issued = match p.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let i = authorization_code(&app, client, &p).await?;
                crate::metrics::token_issued("authorization_code");
                i
            }
            Some("refresh_token") => {
                let i = refresh_token(&app, client, &p).await?;
                crate::metrics::token_issued("refresh_token");
                i
            }
            Some("client_credentials") => {
                let i = client_credentials(&app, client, &p).await?;
                crate::metrics::token_issued("client_credentials");
                i
            }
            None | Some("") => return Err(OAuthError::new("invalid_request", "grant_type is required")),
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!("grant_type {other:?} is not supported"),
                ));
            }
        };
        Ok::<_, OAuthError>(issued)
    }
    .await;
    match result {
        Ok(i) => issued_response(&i),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::pkce_ok;

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert!(pkce_ok(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!pkce_ok(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "wrong-verifier-wrong-verifier-wrong-verifier"
        ));
        assert!(!pkce_ok("x", "short"));
    }
}
