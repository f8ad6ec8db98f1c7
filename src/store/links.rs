//! One-time links, keyed by the SHA-256 of their token.

use redb::{ReadTransaction, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::ONE_TIME_LINKS;
use crate::secret::TokenHash;
use crate::workspace::model::OneTimeLink;

pub fn put(txn: &WriteTransaction, hash: &TokenHash, link: &OneTimeLink) -> Result<(), StoreError> {
    let mut t = txn.open_table(ONE_TIME_LINKS)?;
    t.insert(hash, encode(link)?.as_slice())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, hash: &TokenHash) -> Result<Option<OneTimeLink>, StoreError> {
    let t = txn.open_table(ONE_TIME_LINKS)?;
    t.get(hash)?.map(|v| decode(v.value())).transpose()
}

/// Removes and returns the link: a one-time link is consumed by its use.
pub fn take(txn: &WriteTransaction, hash: &TokenHash) -> Result<Option<OneTimeLink>, StoreError> {
    let mut t = txn.open_table(ONE_TIME_LINKS)?;
    let v = t.remove(hash)?;
    v.map(|v| decode(v.value())).transpose()
}
