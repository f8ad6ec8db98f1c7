//! SCIM requests refused by a workspace rule, for admins to see.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::SYNC_ERRORS;
use crate::workspace::model::SyncError;

pub fn push(txn: &WriteTransaction, e: &SyncError) -> Result<u64, StoreError> {
    let mut t = txn.open_table(SYNC_ERRORS)?;
    let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    t.insert(seq, encode(e)?.as_slice())?;
    Ok(seq)
}

/// The newest `limit` sync errors, newest first.
pub fn recent(txn: &ReadTransaction, limit: usize) -> Result<Vec<(u64, SyncError)>, StoreError> {
    let t = txn.open_table(SYNC_ERRORS)?;
    let mut out = Vec::new();
    for row in t.iter()?.rev().take(limit) {
        let (k, v) = row?;
        out.push((k.value(), decode(v.value())?));
    }
    Ok(out)
}

/// Entries older than `before` (all when `None`), newest first, until `f`
/// returns false.
pub fn scan_back(
    txn: &ReadTransaction,
    before: Option<u64>,
    f: impl FnMut(u64, SyncError) -> bool,
) -> Result<(), StoreError> {
    super::scan_log_back(txn, SYNC_ERRORS, before, f)
}
