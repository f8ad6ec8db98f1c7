//! The mail outbox: every mail is a row written in the same transaction as
//! the change that caused it, so none is lost or sent for a change that did
//! not happen.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::OUTBOX;
use crate::workspace::model::Mail;

pub fn push(txn: &WriteTransaction, mail: &Mail) -> Result<u64, StoreError> {
    let mut t = txn.open_table(OUTBOX)?;
    let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    t.insert(seq, encode(mail)?.as_slice())?;
    Ok(seq)
}

pub fn get(txn: &ReadTransaction, seq: u64) -> Result<Option<Mail>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    t.get(seq)?.map(|v| decode(v.value())).transpose()
}

/// The newest `limit` mails, newest first.
pub fn recent(txn: &ReadTransaction, limit: usize) -> Result<Vec<(u64, Mail)>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    let mut out = Vec::new();
    for row in t.iter()?.rev().take(limit) {
        let (k, v) = row?;
        out.push((k.value(), decode(v.value())?));
    }
    Ok(out)
}
