//! Consistent snapshots of the live database. redb locks its file and a
//! copy taken while writing can be torn, so a backup is made inside the
//! process that holds the database: one read transaction (an MVCC snapshot,
//! which does not block writers) is copied table by table into a new redb
//! file, written to a temp name, fsync'd and renamed.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};

use super::tables::*;
use super::{StoreError, migrate};

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let from = match src.open_table(def) {
        Ok(t) => t,
        // A table no migration has created yet (older file): nothing to copy.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut to = dst.open_table(def)?;
    let mut n = 0;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// Copies every table roster defines; returns (table, rows) for each.
/// `tests` compare this list with the tables a real database holds, so a
/// table added without adding it here fails the suite.
pub fn copy_all(src: &ReadTransaction, dst: &WriteTransaction) -> Result<Vec<(&'static str, u64)>, StoreError> {
    macro_rules! tables {
        ($($t:ident),* $(,)?) => {
            vec![$((stringify!($t), copy(src, dst, $t)?)),*]
        };
    }
    Ok(tables![
        META,
        WORKSPACE,
        MEMBERS,
        MEMBER_BY_EMAIL,
        ONE_TIME_LINKS,
        AUDIT,
        MEMBER_ORDER,
        MEMBER_ORDER_BLOCKS,
        MEMBER_BY_EXTERNAL_ID,
        MEMBER_BY_ANY_EMAIL,
        ACTIVE_ADMINS,
        MEMBER_LINKS,
        SESSIONS,
        MEMBER_SESSIONS,
        CONNECTIONS,
        SCIM_TOKENS,
        CONNECTION_TOKENS,
        OUTBOX,
        OUTBOX_DUE,
        SYNC_ERRORS,
        TEAMS,
        TEAM_BY_NAME,
        TEAM_BY_EXTERNAL_ID,
        TEAM_MEMBERS,
        MEMBER_TEAMS,
        TEAM_ORDER,
        TEAM_ORDER_BLOCKS,
        OAUTH_CLIENTS,
        OAUTH_CODES,
        OAUTH_GRANTS,
        ACCESS_TOKENS,
        REFRESH_TOKENS,
        GRANT_TOKENS,
    ])
}

/// What a snapshot holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub schema_version: u64,
    pub rows: u64,
    pub bytes: u64,
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// Writes a consistent snapshot of `db` to `out` (temp file, durable
/// commit, fsync, rename). Blocking: run it on the blocking pool.
pub fn snapshot(db: &Database, out: &Path) -> Result<Snapshot, StoreError> {
    let err = |m: String| StoreError::Open {
        path: out.to_owned(),
        message: m,
    };
    let src = db.begin_read()?;
    let file_name = out
        .file_name()
        .ok_or_else(|| err("the output path has no file name".into()))?
        .to_string_lossy()
        .into_owned();
    let tmp = out.with_file_name(format!(".{file_name}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let dst = Database::builder()
            .set_cache_size(16 << 20)
            .create(&tmp)
            .map_err(|e| err(e.to_string()))?;
        let mut txn = dst.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let copied = copy_all(&src, &txn)?;
        txn.commit()?;
        drop(dst);
        Ok::<_, StoreError>(copied)
    })();
    let copied = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::File::open(&tmp).map_err(|e| err(e.to_string()))?;
        f.sync_all().map_err(|e| err(e.to_string()))?;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&tmp, out).map_err(|e| err(format!("cannot move the snapshot into place: {e}")))?;
    sync_dir(out);
    let schema_version = {
        let t = src.open_table(META)?;
        t.get(META_SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0)
    };
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Snapshot {
        path: out.to_owned(),
        schema_version,
        rows: copied.iter().map(|(_, n)| n).sum(),
        bytes,
    })
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub schema_version: u64,
    pub members: u64,
    pub teams: u64,
    pub audit_rows: u64,
}

/// Checks a snapshot (or a stopped database): redb's own integrity check on
/// a private copy (so the file itself is never written), then the schema
/// version, then that every member row decodes and its indexes point back.
pub fn verify(path: &Path) -> Result<Verified, StoreError> {
    let err = |m: String| StoreError::Open {
        path: path.to_owned(),
        message: m,
    };
    let dir = tempfile_dir(path)?;
    let copy_path = dir.join("verify.redb");
    std::fs::copy(path, &copy_path).map_err(|e| err(format!("cannot read: {e}")))?;
    let result = (|| {
        let mut db = Database::open(&copy_path).map_err(|e| err(e.to_string()))?;
        if !db.check_integrity().map_err(|e| err(e.to_string()))? {
            return Err(StoreError::Corrupt(
                "redb integrity check failed (the file was repaired in a scratch copy only)".into(),
            ));
        }
        let txn = db.begin_read()?;
        let version = match txn.open_table(META) {
            Ok(t) => t.get(META_SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        if version == 0 {
            return Err(StoreError::Corrupt("not a roster database (no schema version)".into()));
        }
        if version > migrate::CURRENT {
            return Err(StoreError::TooNew {
                found: version,
                supported: migrate::CURRENT,
            });
        }
        let mut members = 0;
        let by_email = txn.open_table(MEMBER_BY_EMAIL)?;
        for row in txn.open_table(MEMBERS)?.iter()? {
            let (k, v) = row?;
            let m: crate::workspace::model::Member = super::codec::decode(v.value())?;
            let key = super::members::email_key(&m.email);
            if by_email.get(key.as_str())?.map(|x| x.value()) != Some(k.value()) {
                return Err(StoreError::Corrupt(format!(
                    "member {} is missing from the email index",
                    m.id
                )));
            }
            members += 1;
        }
        let teams = match txn.open_table(TEAMS) {
            Ok(t) => redb::ReadableTableMetadata::len(&t)?,
            Err(_) => 0,
        };
        let audit_rows = redb::ReadableTableMetadata::len(&txn.open_table(AUDIT)?)?;
        Ok(Verified {
            schema_version: version,
            members,
            teams,
            audit_rows,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A private scratch directory next to `path` (same filesystem, so the
/// copy is cheap) or in the system temp dir.
fn tempfile_dir(path: &Path) -> Result<PathBuf, StoreError> {
    let base = std::env::temp_dir();
    let name = format!(
        "roster-verify-{}-{}",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::Open {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableHandle;

    /// Every table a fully migrated database holds is in `copy_all`.
    #[test]
    fn backup_covers_every_table() {
        let dir = std::env::temp_dir().join(format!("roster-backup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.redb");
        let store = crate::store::Store::open(&path).unwrap();
        store.close_blocking();
        drop(store);
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let mut live: Vec<String> = txn.list_tables().unwrap().map(|h| h.name().to_owned()).collect();
        live.sort();
        let out = Database::create(dir.join("copy.redb")).unwrap();
        let w = out.begin_write().unwrap();
        copy_all(&txn, &w).unwrap();
        w.commit().unwrap();
        let copied_txn = out.begin_read().unwrap();
        let mut copied: Vec<String> = copied_txn.list_tables().unwrap().map(|h| h.name().to_owned()).collect();
        copied.sort();
        assert_eq!(live, copied, "a table exists that backup does not copy");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
