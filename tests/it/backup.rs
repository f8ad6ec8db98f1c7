//! Online backup, verify and restore through the real CLI.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;

use crate::support::*;

/// A snapshot taken while SCIM writes keep arriving holds every write that
/// was acknowledged before the snapshot began, and restores into a database
/// that opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_under_concurrent_writes_restores_every_acknowledged_write() {
    let s = TestServer::start().await;
    let token =
        roster::workspace::connections::create_static_token(&s.app, "okta", roster::workspace::model::Actor::Operator)
            .await
            .unwrap()
            .token;
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
        let addr = s.addr;
        let tls = s.tls(&[&rustls::version::TLS13]);
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 400 {
                let email = format!("w{w}-{i}@example.com");
                let body = serde_json::json!({"userName": email}).to_string();
                let req = hyper::Request::post("/scim/v2/Users")
                    .header("host", "localhost")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/scim+json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let r = roster::client::request(tls.clone(), addr, "localhost", req)
                    .await
                    .unwrap();
                assert_eq!(r.status, 201, "{}", r.text());
                acked.lock().unwrap().push(email);
                i += 1;
            }
        }));
    }
    // Let writes flow, then note what is acknowledged and snapshot at once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    assert!(!before.is_empty(), "no write was acknowledged before the snapshot");
    let out = s.dir.path().join("snap.redb");
    let data_dir = s.app.config.data_dir.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let out = out.clone();
        let d = data_dir.clone();
        move || {
            run_bin(
                d.parent().unwrap(),
                &["backup", "--data-dir", d.to_str().unwrap(), out.to_str().unwrap()],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout:{stdout}\nstderr:{stderr}");
    assert!(stdout.contains("consistent snapshot"), "{stdout}");
    // Writes kept going during and after the snapshot.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(total > before.len(), "writes did not continue during the snapshot");

    // Restore refuses while the server runs.
    let (code, _, err) = run_bin(
        s.dir.path(),
        &[
            "restore",
            "--data-dir",
            data_dir.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_one_line_error(code, &err, "running");
    let _dir = s.stop().await;

    // verify, then restore into a fresh data dir and open it.
    let (code, stdout, err) = run_bin(std::path::Path::new("/"), &["verify", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains(": ok (schema version"), "{stdout}");
    let fresh = tempfile::tempdir().unwrap();
    let restored_dir = fresh.path().join("data");
    let (code, stdout, err) = run_bin(
        fresh.path(),
        &[
            "restore",
            "--data-dir",
            restored_dir.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let store = tokio::task::spawn_blocking({
        let p = restored_dir.join("roster.redb");
        move || roster::store::Store::open(&p)
    })
    .await
    .unwrap()
    .expect("restored database opens");
    let missing: Vec<String> = {
        let want = before.clone();
        store
            .read(move |txn| {
                let mut missing = Vec::new();
                for e in &want {
                    if roster::store::members::by_email(txn, e)?.is_none() {
                        missing.push(e.clone());
                    }
                }
                Ok(missing)
            })
            .await
            .unwrap()
    };
    assert!(
        missing.is_empty(),
        "acknowledged before the snapshot but missing: {missing:?}"
    );
    store.close().await;
}

#[test]
fn restore_keeps_the_previous_database_and_verify_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = run_bin(
        dir.path(),
        &["init", "--data-dir", data.to_str().unwrap(), "--admin-email", "a@x.com"],
    );
    assert_eq!(code, 0, "{err}");
    let snap = dir.path().join("snap.redb");
    let (code, out, err) = run_bin(
        dir.path(),
        &["backup", "--data-dir", data.to_str().unwrap(), snap.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    // A backup never overwrites a file.
    let (code, _, err) = run_bin(
        dir.path(),
        &["backup", "--data-dir", data.to_str().unwrap(), snap.to_str().unwrap()],
    );
    assert_one_line_error(code, &err, "exists");

    let (code, out, err) = run_bin(
        dir.path(),
        &["restore", "--data-dir", data.to_str().unwrap(), snap.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("previous database is kept"), "{out}");
    let kept = std::fs::read_dir(&data).unwrap().filter_map(Result::ok).any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("roster.redb.before-restore-")
    });
    assert!(kept, "previous database not kept");

    let garbage = write_file(&dir.path().join("garbage.redb"), "this is not a database");
    let before = sha256_file(&garbage);
    let (code, _, err) = run_bin(dir.path(), &["verify", garbage.to_str().unwrap()]);
    assert_one_line_error(code, &err, "garbage.redb");
    assert_eq!(sha256_file(&garbage), before, "verify modified the file");
    let (code, _, err) = run_bin(
        dir.path(),
        &[
            "restore",
            "--data-dir",
            data.to_str().unwrap(),
            garbage.to_str().unwrap(),
        ],
    );
    assert_one_line_error(code, &err, "garbage.redb");
}
