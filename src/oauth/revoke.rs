//! `POST /oauth/revoke` (RFC 7009). Revoking a refresh token ends its whole
//! grant (with its access tokens); an access token is revoked alone. Unknown
//! tokens get 200 too, so the endpoint reveals nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{OAuthError, authenticate_client, form, no_store_json};
use crate::App;
use crate::secret::{TokenKind, hash_token, well_formed};
use crate::store;
use crate::workspace::oauth::revoke_grant_txn;

pub async fn revoke(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let p = form(&headers, &body)?;
        let client = authenticate_client(&app, &headers, &p).await?;
        let token = p
            .get("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?
            .clone();
        let is_refresh = well_formed(&token, TokenKind::RefreshToken);
        if !is_refresh && !well_formed(&token, TokenKind::AccessToken) {
            return Ok(());
        }
        let hash = hash_token(&token);
        let now = app.clock.now_ms();
        app.store
            .write(move |txn| {
                let grant_id = if is_refresh {
                    store::oauth::refresh_w(txn, &hash)?.map(|r| r.grant_id)
                } else {
                    store::oauth::access_w(txn, &hash)?.map(|a| a.grant_id)
                };
                let Some(grant_id) = grant_id else { return Ok(Ok(())) };
                let Some(grant) = store::oauth::grant_w(txn, grant_id)? else {
                    return Ok(Ok(()));
                };
                // A client may only revoke its own tokens (RFC 7009 §2.1).
                if grant.client_id != client.client_id {
                    return Ok(Ok(()));
                }
                if is_refresh {
                    revoke_grant_txn(txn, grant_id, now, "refresh token revoked by the client")?;
                } else {
                    txn.open_table(store::tables::ACCESS_TOKENS)?.remove(&hash)?;
                    txn.open_table(store::tables::GRANT_TOKENS)?
                        .remove((grant_id.as_u128(), &hash))?;
                }
                Ok(Ok::<(), OAuthError>(()))
            })
            .await??;
        Ok::<(), OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => no_store_json(StatusCode::OK, &serde_json::json!({})),
        Err(e) => e.into_response(),
    }
}
