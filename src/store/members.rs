//! Members and every index derived from them. [`put`] is the only writer:
//! it diffs the old and new record and updates the unique email index, the
//! any-email and externalId indexes, the active-admin set and the listing
//! order in the same transaction, so indexes never drift from the rows.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::order::OrderIndex;
use super::tables::*;
use crate::workspace::model::Member;

const ORDER: OrderIndex = OrderIndex {
    order: MEMBER_ORDER,
    blocks: MEMBER_ORDER_BLOCKS,
};

pub fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// Lower-cased addresses a member can be found by: userName plus every
/// `emails[].value`.
fn all_emails(m: &Member) -> Vec<String> {
    let mut out = vec![email_key(&m.email)];
    if let Some(serde_json::Value::Array(emails)) = m.attributes.get("emails") {
        for e in emails {
            if let Some(v) = e.get("value").and_then(|v| v.as_str()) {
                let k = email_key(v);
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out
}

/// Allocates the next listing position.
pub fn next_seq(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(META_MEMBER_SEQ)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(META_MEMBER_SEQ, seq + 1)?;
    Ok(seq)
}

/// Inserts or updates a member with all its index entries. A userName that
/// another member holds is a caller bug (rules check first) and fails the
/// transaction rather than overwrite the index.
pub fn put(txn: &WriteTransaction, m: &Member) -> Result<(), StoreError> {
    let id = m.id.as_u128();
    let old: Option<Member> = {
        let members = txn.open_table(MEMBERS)?;
        members.get(id)?.map(|v| decode(v.value())).transpose()?
    };

    {
        let mut by_email = txn.open_table(MEMBER_BY_EMAIL)?;
        let key = email_key(&m.email);
        if let Some(owner) = by_email.get(key.as_str())?.map(|v| v.value())
            && owner != id
        {
            return Err(StoreError::Corrupt(format!(
                "userName {key} already indexed for another member"
            )));
        }
        if let Some(old) = &old {
            let old_key = email_key(&old.email);
            if old_key != key {
                by_email.remove(old_key.as_str())?;
            }
        }
        by_email.insert(key.as_str(), id)?;
    }
    {
        let mut any = txn.open_table(MEMBER_BY_ANY_EMAIL)?;
        let new = all_emails(m);
        if let Some(old) = &old {
            for k in all_emails(old) {
                if !new.contains(&k) {
                    any.remove((k.as_str(), id))?;
                }
            }
        }
        for k in &new {
            any.insert((k.as_str(), id), ())?;
        }
    }
    {
        let mut ext = txn.open_table(MEMBER_BY_EXTERNAL_ID)?;
        let old_ext = old.as_ref().and_then(|o| o.external_id.clone());
        if old_ext != m.external_id {
            if let Some(e) = &old_ext {
                ext.remove((e.as_str(), id))?;
            }
            if let Some(e) = &m.external_id {
                ext.insert((e.as_str(), id), ())?;
            }
        }
    }
    {
        let mut admins = txn.open_table(ACTIVE_ADMINS)?;
        if m.is_active_admin() {
            admins.insert(id, ())?;
        } else {
            admins.remove(id)?;
        }
    }
    ORDER.set(txn, id, old.as_ref().map(|o| o.seq), m.is_listed().then_some(m.seq))?;
    let mut members = txn.open_table(MEMBERS)?;
    members.insert(id, encode(m)?.as_slice())?;
    Ok(())
}

pub fn get_w(txn: &WriteTransaction, id: Uuid) -> Result<Option<Member>, StoreError> {
    let members = txn.open_table(MEMBERS)?;
    members.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn get(txn: &ReadTransaction, id: Uuid) -> Result<Option<Member>, StoreError> {
    let members = txn.open_table(MEMBERS)?;
    members.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn id_by_email_w(txn: &WriteTransaction, email: &str) -> Result<Option<Uuid>, StoreError> {
    let by_email = txn.open_table(MEMBER_BY_EMAIL)?;
    Ok(by_email
        .get(email_key(email).as_str())?
        .map(|v| Uuid::from_u128(v.value())))
}

pub fn by_email(txn: &ReadTransaction, email: &str) -> Result<Option<Member>, StoreError> {
    let by_email = txn.open_table(MEMBER_BY_EMAIL)?;
    let Some(id) = by_email.get(email_key(email).as_str())?.map(|v| v.value()) else {
        return Ok(None);
    };
    get(txn, Uuid::from_u128(id))
}

fn ids_with_prefix(table: &redb::ReadOnlyTable<(&'static str, u128), ()>, key: &str) -> Result<Vec<Uuid>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((key, 0u128)..=(key, u128::MAX))? {
        let (k, _) = row?;
        out.push(Uuid::from_u128(k.value().1));
    }
    Ok(out)
}

/// Members whose externalId is exactly `external_id`.
pub fn ids_by_external_id(txn: &ReadTransaction, external_id: &str) -> Result<Vec<Uuid>, StoreError> {
    ids_with_prefix(&txn.open_table(MEMBER_BY_EXTERNAL_ID)?, external_id)
}

/// Members with `email` as userName or in `emails` (case-insensitive).
pub fn ids_by_any_email(txn: &ReadTransaction, email: &str) -> Result<Vec<Uuid>, StoreError> {
    ids_with_prefix(&txn.open_table(MEMBER_BY_ANY_EMAIL)?, &email_key(email))
}

/// Number of active admins, for the last-admin rule.
pub fn active_admin_count_w(txn: &WriteTransaction) -> Result<u64, StoreError> {
    Ok(txn.open_table(ACTIVE_ADMINS)?.len()?)
}

/// Number of active admins, in a read transaction.
pub fn active_admin_count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(txn.open_table(ACTIVE_ADMINS)?.len()?)
}

/// Number of listed (not removed) members.
pub fn listed_count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    ORDER.len(txn)
}

pub fn count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(txn.open_table(MEMBERS)?.len()?)
}

/// Listed members in creation order, skipping `offset` and returning at
/// most `limit`, at a cost proportional to the page (see [`OrderIndex`]).
pub fn page(txn: &ReadTransaction, offset: u64, limit: usize) -> Result<Vec<Member>, StoreError> {
    let members = txn.open_table(MEMBERS)?;
    let mut out = Vec::new();
    for id in ORDER.page(txn, offset, limit)? {
        if let Some(v) = members.get(id)? {
            out.push(decode(v.value())?);
        }
    }
    Ok(out)
}

/// Calls `f` on every listed member in creation order until it returns
/// false (filtered listings that no index answers).
pub fn scan(txn: &ReadTransaction, mut f: impl FnMut(Member) -> bool) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    ORDER.scan(txn, |id| match members.get(id)? {
        Some(v) => Ok(f(decode(v.value())?)),
        None => Ok(true),
    })
}

/// Listed members from position `offset` on, in creation order, until `f`
/// returns false (the console's filtered listing resumes where it stopped).
pub fn scan_from(txn: &ReadTransaction, offset: u64, mut f: impl FnMut(Member) -> bool) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    ORDER.scan_from(txn, offset, |id| match members.get(id)? {
        Some(v) => Ok(f(decode(v.value())?)),
        None => Ok(true),
    })
}

/// Every member (removed ones included) with an id after `after`, in id
/// order, until `f` returns false.
pub fn scan_all_after(
    txn: &ReadTransaction,
    after: Option<Uuid>,
    mut f: impl FnMut(Member) -> bool,
) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    let start = after.map(|a| a.as_u128().saturating_add(1)).unwrap_or(0);
    for row in members.range(start..)? {
        let (_, v) = row?;
        if !f(decode(v.value())?) {
            break;
        }
    }
    Ok(())
}
