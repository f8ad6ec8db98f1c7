//! One-time links, keyed by [`crate::secret::link_key`] of their token (the
//! plain SHA-256 for links issued before that), with a per-member index so
//! deprovisioning revokes all of a member's links at once. Lookups take the
//! token's candidate keys ([`crate::secret::link_keys`]) and use the first
//! that has a row.

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

pub fn get(txn: &ReadTransaction, keys: &[TokenHash]) -> Result<Option<OneTimeLink>, StoreError> {
    let t = txn.open_table(ONE_TIME_LINKS)?;
    for key in keys {
        if let Some(v) = t.get(key)? {
            return decode(v.value()).map(Some);
        }
    }
    Ok(None)
}

/// Removes and returns the link: a one-time link is consumed by its use.
pub fn take(txn: &WriteTransaction, keys: &[TokenHash]) -> Result<Option<OneTimeLink>, StoreError> {
    let found: Option<(OneTimeLink, &TokenHash)> = {
        let mut t = txn.open_table(ONE_TIME_LINKS)?;
        let mut found = None;
        for key in keys {
            if let Some(v) = t.remove(key)? {
                found = Some((decode(v.value())?, key));
                break;
            }
        }
        found
    };
    let Some((link, key)) = found else {
        return Ok(None);
    };
    txn.open_table(MEMBER_LINKS)?.remove((link.member_id.as_u128(), key))?;
    Ok(Some(link))
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
