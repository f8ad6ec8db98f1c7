//! OAuth clients, codes, grants and tokens. Tokens and codes are keyed by
//! the SHA-256 of their value; a per-grant index revokes them together.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::*;
use crate::secret::TokenHash;
use crate::workspace::model::{AccessToken, AuthCode, Grant, OAuthClient, RefreshToken};

pub fn put_client(txn: &WriteTransaction, c: &OAuthClient) -> Result<(), StoreError> {
    txn.open_table(OAUTH_CLIENTS)?
        .insert(c.client_id.as_str(), encode(c)?.as_slice())?;
    Ok(())
}

pub fn client(txn: &ReadTransaction, id: &str) -> Result<Option<OAuthClient>, StoreError> {
    let t = txn.open_table(OAUTH_CLIENTS)?;
    t.get(id)?.map(|v| decode(v.value())).transpose()
}

pub fn client_w(txn: &WriteTransaction, id: &str) -> Result<Option<OAuthClient>, StoreError> {
    let t = txn.open_table(OAUTH_CLIENTS)?;
    t.get(id)?.map(|v| decode(v.value())).transpose()
}

pub fn remove_client(txn: &WriteTransaction, id: &str) -> Result<bool, StoreError> {
    Ok(txn.open_table(OAUTH_CLIENTS)?.remove(id)?.is_some())
}

pub fn clients(txn: &ReadTransaction) -> Result<Vec<OAuthClient>, StoreError> {
    let t = txn.open_table(OAUTH_CLIENTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(decode(row?.1.value())?);
    }
    Ok(out)
}

/// Whether a registered client is called `name` (case-insensitively).
pub fn client_name_taken(txn: &WriteTransaction, name: &str) -> Result<bool, StoreError> {
    let t = txn.open_table(OAUTH_CLIENTS)?;
    let wanted = name.to_lowercase();
    for row in t.iter()? {
        let c: OAuthClient = decode(row?.1.value())?;
        if c.name.to_lowercase() == wanted {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn put_code(txn: &WriteTransaction, hash: &TokenHash, c: &AuthCode) -> Result<(), StoreError> {
    txn.open_table(OAUTH_CODES)?.insert(hash, encode(c)?.as_slice())?;
    Ok(())
}

pub fn code_w(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<AuthCode>, StoreError> {
    let t = txn.open_table(OAUTH_CODES)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

pub fn put_grant(txn: &WriteTransaction, g: &Grant) -> Result<(), StoreError> {
    txn.open_table(OAUTH_GRANTS)?
        .insert(g.id.as_u128(), encode(g)?.as_slice())?;
    Ok(())
}

pub fn grant(txn: &ReadTransaction, id: Uuid) -> Result<Option<Grant>, StoreError> {
    let t = txn.open_table(OAUTH_GRANTS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn grant_w(txn: &WriteTransaction, id: Uuid) -> Result<Option<Grant>, StoreError> {
    let t = txn.open_table(OAUTH_GRANTS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

/// Live grants that `member` authorised (a scan: an installation has a
/// handful of grants).
pub fn live_grants_authorized_by(txn: &WriteTransaction, member: Uuid) -> Result<Vec<Grant>, StoreError> {
    let t = txn.open_table(OAUTH_GRANTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let g: Grant = decode(row?.1.value())?;
        if g.authorized_by == Some(member) && g.revoked_ms.is_none() {
            out.push(g);
        }
    }
    Ok(out)
}

pub fn grants(txn: &ReadTransaction) -> Result<Vec<Grant>, StoreError> {
    let t = txn.open_table(OAUTH_GRANTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(decode(row?.1.value())?);
    }
    Ok(out)
}

pub fn put_access(txn: &WriteTransaction, hash: &TokenHash, t: &AccessToken) -> Result<(), StoreError> {
    txn.open_table(ACCESS_TOKENS)?.insert(hash, encode(t)?.as_slice())?;
    txn.open_table(GRANT_TOKENS)?.insert((t.grant_id.as_u128(), hash), ())?;
    Ok(())
}

pub fn access(txn: &ReadTransaction, hash: &TokenHash) -> Result<Option<AccessToken>, StoreError> {
    let t = txn.open_table(ACCESS_TOKENS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

pub fn access_w(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<AccessToken>, StoreError> {
    let t = txn.open_table(ACCESS_TOKENS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

pub fn put_refresh(txn: &WriteTransaction, hash: &TokenHash, t: &RefreshToken) -> Result<(), StoreError> {
    txn.open_table(REFRESH_TOKENS)?.insert(hash, encode(t)?.as_slice())?;
    txn.open_table(GRANT_TOKENS)?.insert((t.grant_id.as_u128(), hash), ())?;
    Ok(())
}

pub fn refresh_w(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<RefreshToken>, StoreError> {
    let t = txn.open_table(REFRESH_TOKENS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

/// Deletes every access and refresh token of a grant; returns how many.
pub fn revoke_grant_tokens(txn: &WriteTransaction, grant: Uuid) -> Result<usize, StoreError> {
    super::revoke_owned(txn, GRANT_TOKENS, &[ACCESS_TOKENS, REFRESH_TOKENS], grant.as_u128())
}
