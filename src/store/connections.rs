//! IdP connections and the SCIM bearer tokens that belong to them.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{CONNECTION_TOKENS, CONNECTIONS, SCIM_TOKENS};
use crate::secret::TokenHash;
use crate::workspace::model::{Connection, ConnectionKind, ScimToken};

pub fn put(txn: &WriteTransaction, c: &Connection) -> Result<(), StoreError> {
    txn.open_table(CONNECTIONS)?
        .insert(c.id.as_u128(), encode(c)?.as_slice())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: Uuid) -> Result<Option<Connection>, StoreError> {
    let t = txn.open_table(CONNECTIONS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn get_w(txn: &WriteTransaction, id: Uuid) -> Result<Option<Connection>, StoreError> {
    let t = txn.open_table(CONNECTIONS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn list(txn: &ReadTransaction) -> Result<Vec<Connection>, StoreError> {
    let t = txn.open_table(CONNECTIONS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    out.sort_by_key(|c: &Connection| c.created_ms);
    Ok(out)
}

/// Whether a static-token connection that is not revoked is called `name`
/// (compared case-insensitively): `roster token revoke NAME` addresses them
/// by name. (OAuth clients' names are unique among clients.)
pub fn live_name_taken(txn: &WriteTransaction, name: &str) -> Result<bool, StoreError> {
    let t = txn.open_table(CONNECTIONS)?;
    let wanted = name.to_lowercase();
    for row in t.iter()? {
        let c: Connection = decode(row?.1.value())?;
        if c.revoked_ms.is_none() && c.kind == ConnectionKind::StaticToken && c.name.to_lowercase() == wanted {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn put_token(txn: &WriteTransaction, hash: &TokenHash, t: &ScimToken) -> Result<(), StoreError> {
    txn.open_table(SCIM_TOKENS)?.insert(hash, encode(t)?.as_slice())?;
    txn.open_table(CONNECTION_TOKENS)?
        .insert((t.connection_id.as_u128(), hash), ())?;
    Ok(())
}

pub fn token(txn: &ReadTransaction, hash: &TokenHash) -> Result<Option<ScimToken>, StoreError> {
    let t = txn.open_table(SCIM_TOKENS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

/// Deletes every token of a connection; returns how many.
pub fn revoke_tokens(txn: &WriteTransaction, connection: Uuid) -> Result<usize, StoreError> {
    super::revoke_owned(txn, CONNECTION_TOKENS, &[SCIM_TOKENS], connection.as_u128())
}
