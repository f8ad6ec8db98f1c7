//! Browser sessions, keyed by the SHA-256 of the session id, with a
//! per-member index so deprovisioning ends all of a member's sessions.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{MEMBER_SESSIONS, SESSIONS};
use crate::secret::TokenHash;
use crate::workspace::model::Session;

pub fn put(txn: &WriteTransaction, hash: &TokenHash, s: &Session) -> Result<(), StoreError> {
    txn.open_table(SESSIONS)?.insert(hash, encode(s)?.as_slice())?;
    txn.open_table(MEMBER_SESSIONS)?
        .insert((s.member_id.as_u128(), hash), ())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
    let t = txn.open_table(SESSIONS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

pub fn get_w(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
    let t = txn.open_table(SESSIONS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

/// Deletes one session (sign-out).
pub fn remove(txn: &WriteTransaction, hash: &TokenHash) -> Result<(), StoreError> {
    let s: Option<Session> = {
        let mut t = txn.open_table(SESSIONS)?;
        let v = t.remove(hash)?;
        v.map(|v| decode(v.value())).transpose()?
    };
    if let Some(s) = s {
        txn.open_table(MEMBER_SESSIONS)?.remove((s.member_id.as_u128(), hash))?;
    }
    Ok(())
}

/// Ends every session of a member; returns how many.
pub fn revoke_for_member(txn: &WriteTransaction, member: Uuid) -> Result<usize, StoreError> {
    super::revoke_owned(txn, MEMBER_SESSIONS, &[SESSIONS], member.as_u128())
}

/// Sessions of a member (expired ones included until the housekeeping
/// sweep deletes them, `workspace::housekeeping`).
pub fn count_for_member(txn: &ReadTransaction, member: Uuid) -> Result<usize, StoreError> {
    let id = member.as_u128();
    let idx = txn.open_table(MEMBER_SESSIONS)?;
    Ok(idx.range((id, &[0u8; 32])..=(id, &[0xffu8; 32]))?.count())
}
