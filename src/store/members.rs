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

/// Lower-cased `emails[].value` addresses other than the userName: the
/// rows a member has in [`MEMBER_BY_ANY_EMAIL`]. The userName is found
/// through the unique [`MEMBER_BY_EMAIL`] index, so the usual member (whose
/// only email is their userName) costs no row here: one random-key B-tree
/// insert less per create, on the single writer thread.
fn other_emails(m: &Member) -> Vec<String> {
    let user_name = email_key(&m.email);
    let mut out: Vec<String> = Vec::new();
    // A set beside the list: linear in the number of emails, also for a
    // member stored before SCIM capped multi-valued attributes.
    let mut seen = std::collections::HashSet::new();
    if let Some(serde_json::Value::Array(emails)) = m.attributes.get("emails") {
        for e in emails {
            if let Some(v) = e.get("value").and_then(|v| v.as_str()) {
                let k = email_key(v);
                if k != user_name && seen.insert(k.clone()) {
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
    // Opened once for the read of the old row and the write of the new one
    // (each `open_table` looks the table up and checks its types).
    let mut members = txn.open_table(MEMBERS)?;
    let old: Option<Member> = members.get(id)?.map(|v| decode(v.value())).transpose()?;

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
        let new = other_emails(m);
        let had = old.as_ref().map(other_emails).unwrap_or_default();
        // Rows written before the userName left this index hold the
        // userName too; harmless while it stays the userName (the lookup
        // finds that member anyway), stale once it changes: remove it then.
        let stale = old
            .as_ref()
            .map(|o| email_key(&o.email))
            .filter(|k| *k != email_key(&m.email));
        let (new_set, had_set): (std::collections::HashSet<&String>, std::collections::HashSet<&String>) =
            (new.iter().collect(), had.iter().collect());
        let gone: Vec<&String> = had
            .iter()
            .chain(stale.as_ref())
            .filter(|k| !new_set.contains(k))
            .collect();
        let added: Vec<&String> = new.iter().filter(|k| !had_set.contains(k)).collect();
        if !gone.is_empty() || !added.is_empty() {
            let mut any = txn.open_table(MEMBER_BY_ANY_EMAIL)?;
            for k in gone {
                any.remove((k.as_str(), id))?;
            }
            for k in added {
                any.insert((k.as_str(), id), ())?;
            }
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

/// A member as a team's member list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub id: Uuid,
    /// The display name, or the email when there is none.
    pub display: String,
}

/// The fields of a member row that [`shown`] needs; serde skips the rest
/// (the SCIM attributes the IdP sent) without building them.
#[derive(serde::Deserialize)]
struct ShownRow {
    email: String,
    #[serde(default)]
    display_name: Option<String>,
    status: crate::workspace::model::Status,
}

/// The listed (not removed) members among `ids`, in that order, as a
/// team's member list shows them. One table open for all of them, and each
/// row decoded into three fields instead of a whole [`Member`]: a team can
/// have every member of the workspace.
pub fn shown(txn: &ReadTransaction, ids: &[Uuid]) -> Result<Vec<Shown>, StoreError> {
    let members = txn.open_table(MEMBERS)?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let Some(v) = members.get(id.as_u128())? else { continue };
        let row: ShownRow = decode(v.value())?;
        if row.status != crate::workspace::model::Status::Removed {
            out.push(Shown {
                id,
                display: row.display_name.unwrap_or(row.email),
            });
        }
    }
    Ok(out)
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
    let key = email_key(email);
    let mut ids = ids_with_prefix(&txn.open_table(MEMBER_BY_ANY_EMAIL)?, &key)?;
    if let Some(owner) = txn.open_table(MEMBER_BY_EMAIL)?.get(key.as_str())? {
        let owner = Uuid::from_u128(owner.value());
        if !ids.contains(&owner) {
            ids.push(owner);
        }
    }
    Ok(ids)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(email: &str, emails: &[&str]) -> Member {
        let mut attributes = serde_json::Map::new();
        let list: Vec<serde_json::Value> = emails.iter().map(|e| serde_json::json!({"value": e})).collect();
        attributes.insert("emails".into(), serde_json::Value::Array(list));
        Member {
            attributes,
            ..Member::sample(42, email)
        }
    }

    fn any_rows(txn: &WriteTransaction) -> Vec<(String, u128)> {
        let t = txn.open_table(MEMBER_BY_ANY_EMAIL).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, _) = r.unwrap();
                let (e, id) = k.value();
                (e.to_owned(), id)
            })
            .collect()
    }

    /// A member stored before the userName left the any-email index has a
    /// row for it; the row goes when the userName changes.
    #[test]
    fn a_row_for_an_old_user_name_goes_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("m.redb")).unwrap();
        super::super::migrate::run(&db).unwrap();
        let txn = db.begin_write().unwrap();
        put(&txn, &member("a@x.org", &["a@x.org", "b@x.org"])).unwrap();
        assert_eq!(any_rows(&txn), vec![("b@x.org".into(), 42)]);
        // The row an older roster wrote for the userName.
        txn.open_table(MEMBER_BY_ANY_EMAIL)
            .unwrap()
            .insert(("a@x.org", 42u128), ())
            .unwrap();
        // Same userName: left alone (it names the same member).
        put(&txn, &member("a@x.org", &["a@x.org", "b@x.org", "c@x.org"])).unwrap();
        assert_eq!(any_rows(&txn).len(), 3);
        // New userName: the old one is no longer an address, its row goes.
        put(&txn, &member("d@x.org", &["d@x.org", "c@x.org"])).unwrap();
        assert_eq!(any_rows(&txn), vec![("c@x.org".into(), 42)]);
    }
}
