//! Teams, their name/externalId indexes, listing order and membership rows.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::StoreError;
use super::codec::{decode, encode};
use super::order::OrderIndex;
use super::tables::*;
use crate::workspace::model::Team;

const ORDER: OrderIndex = OrderIndex {
    order: TEAM_ORDER,
    blocks: TEAM_ORDER_BLOCKS,
};

pub fn next_seq(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(META_TEAM_SEQ)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(META_TEAM_SEQ, seq + 1)?;
    Ok(seq)
}

/// Inserts or updates a team and its indexes. The caller has checked name
/// uniqueness; a clash fails the transaction rather than overwrite.
pub fn put(txn: &WriteTransaction, t: &Team) -> Result<(), StoreError> {
    let id = t.id.as_u128();
    let old = get_w(txn, t.id)?;
    {
        let mut by_name = txn.open_table(TEAM_BY_NAME)?;
        if let Some(owner) = by_name.get(t.name.as_str())?.map(|v| v.value())
            && owner != id
        {
            return Err(StoreError::Corrupt(format!("team name {:?} already indexed", t.name)));
        }
        if let Some(o) = &old
            && o.name != t.name
        {
            by_name.remove(o.name.as_str())?;
        }
        by_name.insert(t.name.as_str(), id)?;
    }
    {
        let old_ext = old.as_ref().and_then(|o| o.external_id.clone());
        if old_ext != t.external_id {
            let mut ext = txn.open_table(TEAM_BY_EXTERNAL_ID)?;
            if let Some(e) = &old_ext {
                ext.remove((e.as_str(), id))?;
            }
            if let Some(e) = &t.external_id {
                ext.insert((e.as_str(), id), ())?;
            }
        }
    }
    ORDER.set(txn, id, old.as_ref().map(|o| o.seq), Some(t.seq))?;
    txn.open_table(TEAMS)?.insert(id, encode(t)?.as_slice())?;
    Ok(())
}

/// Deletes a team, its index entries and all its membership rows.
pub fn delete(txn: &WriteTransaction, t: &Team) -> Result<(), StoreError> {
    let id = t.id.as_u128();
    for m in member_ids_w(txn, t.id)? {
        remove_member_row(txn, t.id, m)?;
    }
    txn.open_table(TEAM_BY_NAME)?.remove(t.name.as_str())?;
    if let Some(e) = &t.external_id {
        txn.open_table(TEAM_BY_EXTERNAL_ID)?.remove((e.as_str(), id))?;
    }
    ORDER.set(txn, id, Some(t.seq), None)?;
    txn.open_table(TEAMS)?.remove(id)?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: Uuid) -> Result<Option<Team>, StoreError> {
    let t = txn.open_table(TEAMS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn get_w(txn: &WriteTransaction, id: Uuid) -> Result<Option<Team>, StoreError> {
    let t = txn.open_table(TEAMS)?;
    t.get(id.as_u128())?.map(|v| decode(v.value())).transpose()
}

pub fn id_by_name_w(txn: &WriteTransaction, name: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(txn
        .open_table(TEAM_BY_NAME)?
        .get(name)?
        .map(|v| Uuid::from_u128(v.value())))
}

pub fn by_name(txn: &ReadTransaction, name: &str) -> Result<Option<Team>, StoreError> {
    let Some(id) = txn.open_table(TEAM_BY_NAME)?.get(name)?.map(|v| v.value()) else {
        return Ok(None);
    };
    get(txn, Uuid::from_u128(id))
}

pub fn ids_by_external_id(txn: &ReadTransaction, external_id: &str) -> Result<Vec<Uuid>, StoreError> {
    let t = txn.open_table(TEAM_BY_EXTERNAL_ID)?;
    let mut out = Vec::new();
    for row in t.range((external_id, 0u128)..=(external_id, u128::MAX))? {
        out.push(Uuid::from_u128(row?.0.value().1));
    }
    Ok(out)
}

/// Adds one membership row pair; false if it was already there.
pub fn add_member_row(txn: &WriteTransaction, team: Uuid, member: Uuid) -> Result<bool, StoreError> {
    let (t, m) = (team.as_u128(), member.as_u128());
    let existed = txn.open_table(TEAM_MEMBERS)?.insert((t, m), ())?.is_some();
    txn.open_table(MEMBER_TEAMS)?.insert((m, t), ())?;
    Ok(!existed)
}

/// Removes one membership row pair; false if it was not there.
pub fn remove_member_row(txn: &WriteTransaction, team: Uuid, member: Uuid) -> Result<bool, StoreError> {
    let (t, m) = (team.as_u128(), member.as_u128());
    let existed = txn.open_table(TEAM_MEMBERS)?.remove((t, m))?.is_some();
    txn.open_table(MEMBER_TEAMS)?.remove((m, t))?;
    Ok(existed)
}

pub fn is_member_w(txn: &WriteTransaction, team: Uuid, member: Uuid) -> Result<bool, StoreError> {
    Ok(txn
        .open_table(TEAM_MEMBERS)?
        .get((team.as_u128(), member.as_u128()))?
        .is_some())
}

/// Second halves of `(first, second)` keys whose first half is `first`.
fn seconds(table: &impl ReadableTable<(u128, u128), ()>, first: u128) -> Result<Vec<u128>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((first, 0u128)..=(first, u128::MAX))? {
        out.push(row?.0.value().1);
    }
    Ok(out)
}

fn names_of(
    teams: &impl ReadableTable<u128, &'static [u8]>,
    ids: Vec<u128>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let mut out = Vec::new();
    for tid in ids {
        if let Some(v) = teams.get(tid)? {
            let t: Team = decode(v.value())?;
            out.push((t.id, t.name));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

pub fn member_ids_w(txn: &WriteTransaction, team: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(seconds(&txn.open_table(TEAM_MEMBERS)?, team.as_u128())?
        .into_iter()
        .map(Uuid::from_u128)
        .collect())
}

pub fn member_ids(txn: &ReadTransaction, team: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(seconds(&txn.open_table(TEAM_MEMBERS)?, team.as_u128())?
        .into_iter()
        .map(Uuid::from_u128)
        .collect())
}

/// The teams a member belongs to, as (id, name), by name.
pub fn teams_of(txn: &ReadTransaction, member: Uuid) -> Result<Vec<(Uuid, String)>, StoreError> {
    names_of(
        &txn.open_table(TEAMS)?,
        seconds(&txn.open_table(MEMBER_TEAMS)?, member.as_u128())?,
    )
}

/// Same as [`teams_of`] inside a write transaction, so a write can answer
/// with the member's teams without a second transaction.
pub fn teams_of_w(txn: &WriteTransaction, member: Uuid) -> Result<Vec<(Uuid, String)>, StoreError> {
    names_of(
        &txn.open_table(TEAMS)?,
        seconds(&txn.open_table(MEMBER_TEAMS)?, member.as_u128())?,
    )
}

pub fn count(txn: &ReadTransaction) -> Result<u64, StoreError> {
    ORDER.len(txn)
}

pub fn page(txn: &ReadTransaction, offset: u64, limit: usize) -> Result<Vec<Team>, StoreError> {
    let teams = txn.open_table(TEAMS)?;
    let mut out = Vec::new();
    for id in ORDER.page(txn, offset, limit)? {
        if let Some(v) = teams.get(id)? {
            out.push(decode(v.value())?);
        }
    }
    Ok(out)
}

pub fn scan(txn: &ReadTransaction, mut f: impl FnMut(Team) -> bool) -> Result<(), StoreError> {
    let teams = txn.open_table(TEAMS)?;
    ORDER.scan(txn, |id| match teams.get(id)? {
        Some(v) => Ok(f(decode(v.value())?)),
        None => Ok(true),
    })
}
