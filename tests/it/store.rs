//! The database file: schema versions, refusing newer files, group commit.

use redb::ReadableDatabase;
use roster::store::{Store, StoreError, migrate, tables};

use crate::support::*;

fn bump_version(path: &std::path::Path, to: u64) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(tables::META)
        .unwrap()
        .insert(tables::META_SCHEMA_VERSION, to)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn new_database_records_current_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let store = Store::open(&path).unwrap();
    store.close_blocking();
    drop(store);
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    assert_eq!(migrate::version_of(&db).unwrap(), migrate::CURRENT);
    let txn = db.begin_read().unwrap();
    // Every table of the current schema exists.
    txn.open_table(tables::MEMBERS).unwrap();
    txn.open_table(tables::AUDIT).unwrap();
}

#[test]
fn database_from_newer_roster_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    Store::open(&path).unwrap().close_blocking();
    bump_version(&path, migrate::CURRENT + 1);
    let before = sha256_file(&path);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();

    match Store::open(&path) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!(found, migrate::CURRENT + 1);
            assert_eq!(supported, migrate::CURRENT);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(sha256_file(&path), before, "file modified");
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    // The binary says so in one line and exits non-zero.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&path, data.join("roster.redb")).unwrap();
    let (code, _, err) = run_bin(
        dir.path(),
        &["serve", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    assert_one_line_error(code, &err, "newer roster");
    assert_eq!(sha256_file(&data.join("roster.redb")), before);
}

#[test]
fn second_process_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let store = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(e @ StoreError::Locked { .. }) => assert!(e.to_string().contains("in use"), "{e}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    store.close_blocking();
}

/// Concurrent writes are batched; one that refuses itself after writing
/// leaves no trace while the others in its batch commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_write_in_a_batch_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = tokio::task::spawn_blocking({
        let p = dir.path().join("r.redb");
        move || Store::open(&p)
    })
    .await
    .unwrap()
    .unwrap();
    const T: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("test_v1");
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(move |txn| {
                    txn.open_table(T)?.insert(i, i * 10)?;
                    // Every third operation writes, then refuses.
                    if i % 3 == 0 { Ok(Err("refused")) } else { Ok(Ok(i)) }
                })
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.is_err(), i % 3 == 0, "op {i}: {r:?}");
    }
    let rows = store
        .read(|txn| {
            let t = txn.open_table(T)?;
            let mut v = Vec::new();
            for row in redb::ReadableTable::iter(&t)? {
                let (k, _) = row?;
                v.push(k.value());
            }
            Ok(v)
        })
        .await
        .unwrap();
    let want: Vec<u64> = (0..200).filter(|i| i % 3 != 0).collect();
    assert_eq!(rows, want);
    store.close().await;
}

/// A database written by schema v1 (the first release) opens, migrates to
/// the current version, and keeps its data with the new indexes filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_v1_file_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.redb");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema-v1.redb");
    std::fs::copy(fixture, &path).unwrap();
    let store = tokio::task::spawn_blocking({
        let p = path.clone();
        move || Store::open(&p)
    })
    .await
    .unwrap()
    .unwrap();
    let (ws, admin, listed, page) = store
        .read(|txn| {
            Ok((
                roster::store::workspace::get(txn)?,
                roster::store::members::by_email(txn, "FIRST.ADMIN@example.com")?,
                roster::store::members::listed_count(txn)?,
                roster::store::members::page(txn, 0, 10)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(ws.unwrap().name, "Fixture v1");
    let admin = admin.expect("admin kept");
    assert!(admin.is_active_admin());
    assert!(admin.accepted);
    assert_eq!(listed, 1);
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, admin.id);
    let found = store
        .read(|txn| roster::store::members::ids_by_any_email(txn, "first.admin@EXAMPLE.com"))
        .await
        .unwrap();
    assert_eq!(found, vec![admin.id]);
    store.close().await;
    drop(store);
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    assert_eq!(migrate::version_of(&db).unwrap(), migrate::CURRENT);
    // The upgrade kept an exact copy of the v1 file first.
    let kept = dir.path().join("roster.redb.before-upgrade-v1");
    assert_eq!(
        sha256_file(&kept),
        sha256_file(std::path::Path::new(fixture)),
        "pre-upgrade copy differs"
    );
}

/// Point reads see every acknowledged write, survive a read that panics,
/// and run alongside writes from many tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_see_acknowledged_writes_and_survive_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.redb")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.write(move |txn| {
                txn.open_table(tables::OUTBOX)?.insert(i + 1, b"x".as_slice())?;
                Ok(Ok::<(), ()>(()))
            })
            .await
            .unwrap()
            .unwrap();
            // Acknowledged: a point read right after must see it.
            let seen = s
                .read_point(move |txn| Ok(txn.open_table(tables::OUTBOX)?.get(i + 1)?.is_some()))
                .await
                .unwrap();
            assert!(seen, "write {i} acknowledged but not visible to a point read");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let panicked = store
        .read_point(|_txn| -> Result<(), StoreError> { panic!("a read that panics") })
        .await;
    assert!(matches!(panicked, Err(StoreError::Database(_))), "{panicked:?}");
    let n = store
        .read_point(|txn| Ok(redb::ReadableTableMetadata::len(&txn.open_table(tables::OUTBOX)?)?))
        .await
        .unwrap();
    assert_eq!(n, 64, "the reader thread goes on after a panic");
    store.close().await;
}

/// More expired rows than one sweep chunk (1,000), interleaved by key with
/// live ones: every expired row and its index row go, every live one stays.
#[tokio::test]
async fn housekeeping_sweeps_past_one_chunk_and_keeps_live_rows_between() {
    use roster::workspace::model::{LinkPurpose, OneTimeLink};
    let clock = fake_clock_now();
    let s = TestServer::start_with_clock(clock.clone()).await;
    let now = roster::clock::Clock::now_ms(clock.as_ref());
    let member = uuid::Uuid::from_u128(42);
    let (expired, live) = (2_500u32, 700u32);
    s.app
        .store
        .write(move |txn| {
            for i in 0..expired + live {
                // Keys spread over the key space, expired and live mixed.
                let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &i.to_le_bytes())
                    .as_ref()
                    .try_into()
                    .unwrap();
                let link = OneTimeLink {
                    member_id: member,
                    purpose: LinkPurpose::SetPassword,
                    created_ms: now - 10,
                    expires_ms: if i < expired { now - 1 } else { now + 60_000 },
                };
                roster::store::links::put(txn, &key, &link)?;
            }
            Ok(Ok::<(), ()>(()))
        })
        .await
        .unwrap()
        .unwrap();
    let swept = roster::workspace::housekeeping::sweep(&s.app).await.unwrap();
    assert_eq!(swept.links, expired as usize, "{swept:?}");
    let left = s
        .app
        .store
        .read(move |txn| roster::store::links::count_for_member(txn, member))
        .await
        .unwrap();
    assert_eq!(left, live as usize, "live links and their index rows stay");
    let rows = s
        .app
        .store
        .read(|txn| {
            Ok(redb::ReadableTableMetadata::len(
                &txn.open_table(tables::ONE_TIME_LINKS)?,
            )?)
        })
        .await
        .unwrap();
    assert!(
        rows >= u64::from(live) && rows < u64::from(live) + 10,
        "{rows} link rows"
    );
}
