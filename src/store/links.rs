//! One-time links, keyed by the SHA-256 of their token, with a per-member
//! index so deprovisioning revokes all of a member's links at once.

use redb::{ReadTransaction, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{MEMBER_LINKS, ONE_TIME_LINKS};
use crate::secret::TokenHash;
use crate::workspace::model::OneTimeLink;

pub fn put(txn: &WriteTransaction, hash: &TokenHash, link: &OneTimeLink) -> Result<(), StoreError> {
    txn.open_table(ONE_TIME_LINKS)?.insert(hash, encode(link)?.as_slice())?;
    txn.open_table(MEMBER_LINKS)?
        .insert((link.member_id.as_u128(), hash), ())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, hash: &TokenHash) -> Result<Option<OneTimeLink>, StoreError> {
    let t = txn.open_table(ONE_TIME_LINKS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

/// Removes and returns the link: a one-time link is consumed by its use.
pub fn take(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<OneTimeLink>, StoreError> {
    let link: Option<OneTimeLink> = {
        let mut t = txn.open_table(ONE_TIME_LINKS)?;
        let v = t.remove(hash)?;
        v.map(|v| decode(v.value())).transpose()?
    };
    if let Some(l) = &link {
        txn.open_table(MEMBER_LINKS)?.remove((l.member_id.as_u128(), hash))?;
    }
    Ok(link)
}

/// Deletes every outstanding link of a member; returns how many.
pub fn revoke_for_member(txn: &WriteTransaction, member: Uuid) -> Result<usize, StoreError> {
    super::revoke_owned(txn, MEMBER_LINKS, &[ONE_TIME_LINKS], member.as_u128())
}

/// Outstanding links of a member (for tests and the console).
pub fn count_for_member(txn: &ReadTransaction, member: Uuid) -> Result<usize, StoreError> {
    let id = member.as_u128();
    let idx = txn.open_table(MEMBER_LINKS)?;
    Ok(idx.range((id, &[0u8; 32])..=(id, &[0xffu8; 32]))?.count())
}
