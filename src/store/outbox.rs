//! The mail outbox: every mail is a row written in the same transaction as
//! the change that caused it, so none is lost or sent for a change that did
//! not happen. Pending mails are also in [`OUTBOX_DUE`], keyed by when they
//! may next be tried, so the delivery worker reads only what is due.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{OUTBOX, OUTBOX_DUE};
use crate::workspace::model::{Mail, MailStatus};

pub fn push(txn: &WriteTransaction, mail: &Mail) -> Result<u64, StoreError> {
    push_all(txn, std::slice::from_ref(mail))?
        .pop()
        .ok_or_else(|| StoreError::Database("no mail was queued".into()))
}

/// Queues `mails` in order (the tables opened once for all of them).
pub fn push_all(txn: &WriteTransaction, mails: &[Mail]) -> Result<Vec<u64>, StoreError> {
    let mut t = txn.open_table(OUTBOX)?;
    let mut due = txn.open_table(OUTBOX_DUE)?;
    let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    let mut seqs = Vec::with_capacity(mails.len());
    for (seq, mail) in (first..).zip(mails) {
        t.insert(seq, encode(mail)?.as_slice())?;
        if mail.status == MailStatus::Pending {
            due.insert((mail.next_attempt_ms, seq), ())?;
        }
        seqs.push(seq);
    }
    Ok(seqs)
}

/// Replaces mail `seq` (which must exist) and keeps the due index in step.
pub fn put(txn: &WriteTransaction, seq: u64, mail: &Mail) -> Result<(), StoreError> {
    let mut t = txn.open_table(OUTBOX)?;
    let old: Option<Mail> = t.get(seq)?.map(|v| decode(v.value())).transpose()?;
    let Some(old) = old else {
        return Err(StoreError::Corrupt(format!("outbox mail {seq} does not exist")));
    };
    t.insert(seq, encode(mail)?.as_slice())?;
    let mut due = txn.open_table(OUTBOX_DUE)?;
    if old.status == MailStatus::Pending {
        due.remove((old.next_attempt_ms, seq))?;
    }
    if mail.status == MailStatus::Pending {
        due.insert((mail.next_attempt_ms, seq), ())?;
    }
    Ok(())
}

pub fn get(txn: &ReadTransaction, seq: u64) -> Result<Option<Mail>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    t.get(seq)?.map(|v| decode(v.value())).transpose()
}

/// [`get`] inside a write transaction.
pub fn get_w(txn: &WriteTransaction, seq: u64) -> Result<Option<Mail>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    t.get(seq)?.map(|v| decode(v.value())).transpose()
}

/// Up to `limit` pending mails whose next attempt is at or before `now_ms`,
/// the longest-waiting first.
pub fn due(txn: &ReadTransaction, now_ms: i64, limit: usize) -> Result<Vec<(u64, Mail)>, StoreError> {
    let idx = txn.open_table(OUTBOX_DUE)?;
    let t = txn.open_table(OUTBOX)?;
    let mut out = Vec::new();
    for row in idx.range((i64::MIN, 0)..=(now_ms, u64::MAX))?.take(limit) {
        let (k, _) = row?;
        let (_, seq) = k.value();
        if let Some(v) = t.get(seq)? {
            out.push((seq, decode(v.value())?));
        }
    }
    Ok(out)
}

/// When the earliest pending mail may be tried (`None`: nothing pending).
pub fn next_due_ms(txn: &ReadTransaction) -> Result<Option<i64>, StoreError> {
    let idx = txn.open_table(OUTBOX_DUE)?;
    Ok(idx.first()?.map(|(k, _)| k.value().0))
}

/// How many mails are pending.
pub fn pending_count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(txn.open_table(OUTBOX_DUE)?.len()?)
}

/// Up to `limit` mails with sequence numbers below `before` (all when
/// `None`), newest first, only those with `status` when given.
pub fn page(
    txn: &ReadTransaction,
    status: Option<MailStatus>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, Mail)>, StoreError> {
    let t = txn.open_table(OUTBOX)?;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let rows = match before {
        Some(b) => t.range(..b)?,
        None => t.range(0..)?,
    };
    for row in rows.rev() {
        let (k, v) = row?;
        let m: Mail = decode(v.value())?;
        if status.is_none_or(|s| s == m.status) {
            out.push((k.value(), m));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The newest `limit` mails, newest first.
pub fn recent(txn: &ReadTransaction, limit: usize) -> Result<Vec<(u64, Mail)>, StoreError> {
    page(txn, None, None, limit)
}
