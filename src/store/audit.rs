//! The append-only audit log. Entries are written in the same transaction
//! as the change they describe.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::AUDIT;
use crate::workspace::model::AuditEntry;

pub fn append(txn: &WriteTransaction, entry: &AuditEntry) -> Result<u64, StoreError> {
    let mut t = txn.open_table(AUDIT)?;
    let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    t.insert(seq, encode(entry)?.as_slice())?;
    Ok(seq)
}

/// The newest `limit` entries, newest first.
pub fn recent(txn: &ReadTransaction, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
    let t = txn.open_table(AUDIT)?;
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
    f: impl FnMut(u64, AuditEntry) -> bool,
) -> Result<(), StoreError> {
    super::scan_log_back(txn, AUDIT, before, f)
}
