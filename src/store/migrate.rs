//! Schema versions and the migrations between them. Each migration is a
//! named function run in its own write transaction together with the bump of
//! `schema_version`, so a crash leaves the file at one version or the next.

use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, WriteTransaction};

use super::StoreError;
use super::tables::*;

struct Migration {
    name: &'static str,
    run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Index `i` migrates from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "initial tables",
        run: m0001_initial_tables,
    },
    Migration {
        name: "SCIM users: member indexes, connections, tokens, sessions, outbox",
        run: m0002_scim_users,
    },
    Migration {
        name: "teams: SCIM groups and membership",
        run: m0003_teams,
    },
    Migration {
        name: "OAuth: clients, codes, grants, tokens",
        run: m0004_oauth,
    },
    Migration {
        name: "mail delivery: index of pending outbox mails",
        run: m0005_outbox_due,
    },
];

/// The schema version this build writes.
pub const CURRENT: u64 = MIGRATIONS.len() as u64;

fn m0001_initial_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(WORKSPACE)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(MEMBER_BY_EMAIL)?;
    txn.open_table(ONE_TIME_LINKS)?;
    txn.open_table(AUDIT)?;
    Ok(())
}

/// Creates the v2 tables and gives existing members (v1 had only the first
/// admin) a listing position and their index entries.
fn m0002_scim_users(txn: &WriteTransaction) -> Result<(), StoreError> {
    for t in [MEMBER_LINKS, MEMBER_SESSIONS, CONNECTION_TOKENS] {
        txn.open_table(t)?;
    }
    for t in [SESSIONS, SCIM_TOKENS] {
        txn.open_table(t)?;
    }
    txn.open_table(CONNECTIONS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(SYNC_ERRORS)?;
    txn.open_table(MEMBER_BY_EXTERNAL_ID)?;
    txn.open_table(MEMBER_BY_ANY_EMAIL)?;
    txn.open_table(ACTIVE_ADMINS)?;
    txn.open_table(MEMBER_ORDER)?;
    txn.open_table(MEMBER_ORDER_BLOCKS)?;
    let mut old: Vec<crate::workspace::model::Member> = Vec::new();
    {
        let members = txn.open_table(MEMBERS)?;
        for row in members.iter()? {
            let (_, v) = row?;
            old.push(super::codec::decode(v.value())?);
        }
    }
    // v1 had no creation order; keep the order of creation time.
    old.sort_by_key(|m| (m.created_ms, m.id));
    for mut m in old {
        m.seq = super::members::next_seq(txn)?;
        m.accepted = m.status == crate::workspace::model::Status::Active;
        super::members::put(txn, &m)?;
    }
    Ok(())
}

fn m0003_teams(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(TEAMS)?;
    txn.open_table(TEAM_BY_NAME)?;
    txn.open_table(TEAM_BY_EXTERNAL_ID)?;
    txn.open_table(TEAM_MEMBERS)?;
    txn.open_table(MEMBER_TEAMS)?;
    txn.open_table(TEAM_ORDER)?;
    txn.open_table(TEAM_ORDER_BLOCKS)?;
    Ok(())
}

fn m0004_oauth(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(OAUTH_CLIENTS)?;
    txn.open_table(OAUTH_CODES)?;
    txn.open_table(OAUTH_GRANTS)?;
    txn.open_table(ACCESS_TOKENS)?;
    txn.open_table(REFRESH_TOKENS)?;
    txn.open_table(GRANT_TOKENS)?;
    Ok(())
}

/// Creates the index the delivery worker reads and enters every mail that
/// is still pending (before v5 nothing delivered them, so usually all).
fn m0005_outbox_due(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut pending = Vec::new();
    {
        let outbox = txn.open_table(OUTBOX)?;
        for row in outbox.iter()? {
            let (k, v) = row?;
            let m: crate::workspace::model::Mail = super::codec::decode(v.value())?;
            if m.status == crate::workspace::model::MailStatus::Pending {
                pending.push((m.next_attempt_ms, k.value()));
            }
        }
    }
    let mut due = txn.open_table(OUTBOX_DUE)?;
    for key in pending {
        due.insert(key, ())?;
    }
    Ok(())
}

/// The version recorded in a file opened read-only (0 for a file without a
/// meta table, i.e. one that was never initialised).
pub fn version_of(db: &ReadOnlyDatabase) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(META_SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0))
}

fn version_rw(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(META_SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0))
}

/// Brings the database up to [`CURRENT`]; returns the names of the
/// migrations that ran.
pub fn run(db: &Database) -> Result<Vec<&'static str>, StoreError> {
    let mut ran = Vec::new();
    loop {
        let version = version_rw(db)?;
        if version > CURRENT {
            return Err(StoreError::TooNew {
                found: version,
                supported: CURRENT,
            });
        }
        let Some(m) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            return Ok(ran);
        };
        let txn = db.begin_write()?;
        (m.run)(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            // Guards against a concurrent migrator: the version must still be
            // the one this migration starts from.
            let now = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0);
            if now != version {
                return Err(StoreError::Corrupt(format!(
                    "schema version changed from {version} to {now} during migration"
                )));
            }
            meta.insert(META_SCHEMA_VERSION, version + 1)?;
        }
        txn.commit()?;
        tracing::info!(
            from = version,
            to = version + 1,
            migration = m.name,
            "database migrated"
        );
        ran.push(m.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::model::{Mail, MailKind, MailStatus};

    fn mail(status: MailStatus) -> Mail {
        Mail {
            to: "a@example.com".into(),
            kind: MailKind::Invite,
            subject: "s".into(),
            body: "b".into(),
            created_ms: 5,
            status,
            attempts: 0,
            last_error: None,
            next_attempt_ms: 0,
            sent_ms: None,
        }
    }

    /// Mails queued before v5 (nothing delivered them) must not be stranded
    /// outside the due index.
    #[test]
    fn m0005_indexes_mails_already_pending() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("m.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(OUTBOX).unwrap();
            for (seq, status) in [
                (1, MailStatus::Pending),
                (2, MailStatus::Sent),
                (3, MailStatus::Pending),
            ] {
                t.insert(seq, super::super::codec::encode(&mail(status)).unwrap().as_slice())
                    .unwrap();
            }
        }
        m0005_outbox_due(&txn).unwrap();
        let due = txn.open_table(OUTBOX_DUE).unwrap();
        let keys: Vec<(i64, u64)> = due.iter().unwrap().map(|r| r.unwrap().0.value()).collect();
        assert_eq!(keys, vec![(0, 1), (0, 3)]);
    }
}
