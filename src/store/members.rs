//! Members and their unique lower-cased email index.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{MEMBER_BY_EMAIL, MEMBERS};
use crate::workspace::model::Member;

pub fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// Inserts or updates a member, keeping the email index in step. The caller
/// has checked uniqueness; a clash here is reported, not overwritten.
pub fn put(txn: &WriteTransaction, m: &Member) -> Result<(), StoreError> {
    let mut members = txn.open_table(MEMBERS)?;
    let mut by_email = txn.open_table(MEMBER_BY_EMAIL)?;
    let key = email_key(&m.email);
    if let Some(owner) = by_email.get(key.as_str())?.map(|v| v.value())
        && owner != m.id.as_u128()
    {
        return Err(StoreError::Corrupt(format!(
            "email {key} already indexed for another member"
        )));
    }
    let old = members
        .get(m.id.as_u128())?
        .map(|v| decode::<Member>(v.value()))
        .transpose()?;
    if let Some(old) = old {
        let old_key = email_key(&old.email);
        if old_key != key {
            by_email.remove(old_key.as_str())?;
        }
    }
    members.insert(m.id.as_u128(), encode(m)?.as_slice())?;
    by_email.insert(key.as_str(), m.id.as_u128())?;
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

pub fn count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let members = txn.open_table(MEMBERS)?;
    Ok(members.len()?)
}
