//! Disk full / read-only data directory (issue #10): writes fail with a 503
//! in each surface's own error shape and one `error` log line, reads keep
//! working, nothing is half-applied, and after a restart every acknowledged
//! write is there.
//!
//! redb 4.6 latches the first failed write, resize or sync of its file
//! (`CheckedBackend::io_failed` in `tree_store/page_store/cached_file.rs`):
//! every later write transaction fails with `PreviousIo` until the database
//! is reopened, even when the disk has room again. So the server cannot
//! recover by itself; it reports not-ready and says a restart is needed.
//!
//! Two ways in: the store's test hook (`Store::inject_write_errors`, real
//! redb reacting to an injected `ENOSPC`/`EROFS` from its storage backend;
//! always runs) and a real full tmpfs (runs where `mount` is allowed, skips
//! with the reason printed where it is not).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use roster::App;
use roster::workspace::model::{Actor, ClientKind};
use serde_json::{Value, json};

use crate::scim_support::{
    assert_scim_error, connection, create, domain, filter_path, get_user, id_of, patch, scim, user_body,
};
use crate::support::{TestServer, Web, test_config};

const ENOSPC: i32 = 28;
const EROFS: i32 = 30;

// ---------------------------------------------------------------- log capture

/// Error lines from `roster::store`, from every test in this process; each
/// test picks its own by the database path in the line.
fn store_errors() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let lines = LINES.get_or_init(|| Mutex::new(Vec::new()));
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let sink = Capture;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("off,roster::store=error"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || sink.clone()),
            );
        // Another module may have installed one first; then lines are not
        // captured and the log assertions below say so.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    lines
}

#[derive(Clone)]
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if let Ok(mut v) = store_errors().lock() {
            v.extend(text.lines().map(str::to_owned));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn failure_lines(db: &Path) -> Vec<String> {
    let needle = db.display().to_string();
    store_errors()
        .lock()
        .map(|v| {
            v.iter()
                .filter(|l| l.contains(&needle) && l.contains("storage failed"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- helpers

/// Starts a server on `dir` again, waiting while the previous one's database
/// handle is still being released (a `Locked` open).
async fn restart(dir: tempfile::TempDir, data_dir: &Path) -> TestServer {
    let mut config = test_config(dir.path());
    config.data_dir = data_dir.to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match App::open(config.clone()).await {
            Ok(app) => {
                // Only a probe that the file is free again.
                app.store.close().await;
                drop(app);
                return TestServer::start_with(dir, config).await;
            }
            Err(roster::StartError::Store(roster::store::StoreError::Locked { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("database does not open after the failure: {e}"),
        }
    }
}

/// Reopens the database with the library and waits until it is free.
async fn consistent(db: &Path) -> (usize, usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = db.to_owned();
        let locked = tokio::task::spawn_blocking(move || match roster::store::Store::open(&path) {
            Ok(store) => {
                store.close_blocking();
                false
            }
            Err(roster::store::StoreError::Locked { .. }) => true,
            Err(e) => panic!("database does not open after the failure: {e}"),
        })
        .await
        .unwrap();
        if !locked || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::crash::check_consistent(db).await
}

async fn oauth_token(s: &TestServer, id: &str, secret: &str) -> (u16, hyper::HeaderMap, Value) {
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        crate::scim_support::enc(id),
        crate::scim_support::enc(secret)
    );
    let r = s
        .send(
            hyper::Request::post("/oauth/token")
                .header("host", "localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                .unwrap(),
        )
        .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, r.headers, v)
}

#[track_caller]
fn assert_retry_after(headers: &hyper::HeaderMap, what: &str) {
    let v = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        v.parse::<u64>().is_ok_and(|n| n > 0),
        "{what}: want Retry-After seconds, got {v:?} in {headers:?}"
    );
}

async fn readyz(s: &TestServer) -> (u16, String) {
    let r = s.get("/readyz").await;
    (r.status, r.text())
}

/// A workspace with a verified domain, a SCIM token, one member in one team,
/// an Entra-style OAuth service client and an admin password; returns
/// (token, member id, team id, (client id, secret)).
async fn workspace(s: &TestServer) -> (String, String, String, (String, String)) {
    domain(s, "example.com", true).await;
    let (token, _) = connection(s, "IdP").await;
    let a = create(s, &token, "ann@example.com", json!({"displayName": "Before"})).await;
    let a = id_of(&a);
    let g = scim(
        s,
        "POST",
        "/Groups",
        Some(&token),
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Engineering", "members": [{"value": a}]})),
    )
    .await;
    assert_eq!(g.status, 201, "{g}");
    let g = id_of(&g.body);
    let c =
        roster::workspace::oauth::register(&s.app, "Entra", Vec::new(), ClientKind::Service, false, Actor::Operator)
            .await
            .unwrap();
    let client = (c.client.client_id, c.secret.expect("service clients get a secret"));
    crate::oauth::set_password(s, "admin@localhost", "correct horse battery").await;
    (token, a, g, client)
}

/// Every write surface answers 503 in its own shape and changes nothing;
/// every read answers 200 with the data from before.
async fn assert_writes_refused_reads_work(s: &TestServer, token: &str, a: &str, g: &str, client: &(String, String)) {
    // SCIM writes: create, PATCH, PUT, DELETE, group PATCH, group create.
    let attempts = [
        (
            "POST",
            "/Users".to_owned(),
            Some(user_body("bob@example.com", json!({}))),
        ),
        (
            "PATCH",
            format!("/Users/{a}"),
            Some(patch(
                json!([{"op": "replace", "path": "displayName", "value": "After"}]),
            )),
        ),
        (
            "PUT",
            format!("/Users/{a}"),
            Some(user_body("ann@example.com", json!({"displayName": "Put"}))),
        ),
        ("DELETE", format!("/Users/{a}"), None),
        (
            "PATCH",
            format!("/Groups/{g}"),
            Some(patch(json!([{"op": "remove", "path": "members"}]))),
        ),
        (
            "POST",
            "/Groups".to_owned(),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"})),
        ),
    ];
    for (method, path, body) in attempts {
        let r = scim(s, method, &path, Some(token), body).await;
        assert_scim_error(&r, 503, None);
        assert_retry_after(&r.headers, &format!("{method} {path}"));
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.contains("os error") && !detail.contains("redb"),
            "internal details leak to the client: {r}"
        );
    }

    // OAuth token endpoint: RFC 6749-shaped JSON, never cached.
    let (status, headers, body) = oauth_token(s, &client.0, &client.1).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], json!("temporarily_unavailable"), "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json")),
        "{headers:?}"
    );
    assert_retry_after(&headers, "/oauth/token");

    // Pages: signing in with the right password needs a session row.
    let mut web = Web::new(s);
    let form = web.get("/login").await;
    assert_eq!(form.status, 200, "the sign-in form is a read: {form}");
    let csrf = form.input("csrf").expect("csrf field");
    let p = web
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("next", "/"),
                ("email", "admin@localhost"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(p.status, 503, "{p}");
    assert!(
        p.header("content-type").is_some_and(|c| c.starts_with("text/html")),
        "{p}"
    );
    assert!(p.text.contains("<html") || p.text.contains("<!DOCTYPE"), "{p}");
    assert!(
        p.set_cookies().iter().all(|c| !c.starts_with("__Host-roster_session")),
        "no session without a stored session row: {p}"
    );
    assert_retry_after(&p.headers, "POST /login");

    // Reads.
    let r = get_user(s, token, a).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], json!("Before"), "{r}");
    let r = scim(
        s,
        "GET",
        &filter_path("userName eq \"ann@example.com\""),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    let r = scim(
        s,
        "GET",
        &filter_path("userName eq \"bob@example.com\""),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(0), "the failed create left nothing: {r}");
    let r = scim(s, "GET", "/Users?startIndex=1&count=200", Some(token), None).await;
    assert_eq!(r.status, 200, "{r}");
    let r = scim(s, "GET", &format!("/Groups/{g}"), Some(token), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["members"][0]["value"], json!(a), "{r}");
    let r = scim(
        s,
        "GET",
        "/Groups?filter=displayName%20eq%20%22Sales%22",
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
}

/// After a restart on the same files: what was acknowledged is there, what
/// was refused is not, and writes work again.
async fn assert_recovered(s: &TestServer, token: &str, a: &str, g: &str, client: &(String, String)) {
    let (status, text) = readyz(s).await;
    assert_eq!(status, 200, "{text}");
    let r = get_user(s, token, a).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], json!("Before"), "{r}");
    let r = scim(
        s,
        "GET",
        &filter_path("userName eq \"bob@example.com\""),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    let r = scim(s, "GET", &format!("/Groups/{g}"), Some(token), None).await;
    assert_eq!(r.body["members"][0]["value"], json!(a), "{r}");

    let b = create(s, token, "bob@example.com", json!({})).await;
    let r = scim(
        s,
        "PATCH",
        &format!("/Users/{a}"),
        Some(token),
        Some(patch(
            json!([{"op": "replace", "path": "displayName", "value": "After"}]),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(get_user(s, token, &id_of(&b)).await.status, 200);
    let (status, _, body) = oauth_token(s, &client.0, &client.1).await;
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------- tests

/// ENOSPC from the database file under a running server, through the
/// store's hook: redb sees the error from its storage backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_writes_with_503_keeps_reads_and_recovers_on_restart() {
    let _ = store_errors();
    let s = TestServer::start().await;
    let (token, a, g, client) = workspace(&s).await;
    let db = s.app.store.path().to_owned();
    let data_dir = s.app.config.data_dir.clone();
    assert_eq!(readyz(&s).await.0, 200);

    s.app.store.inject_write_errors(Some(ENOSPC));
    assert_writes_refused_reads_work(&s, &token, &a, &g, &client).await;
    let why = s.app.store.storage_failure().map(str::to_owned);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("No space left on device")),
        "the store should know why: {why:?}"
    );
    let (status, text) = readyz(&s).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("restart"), "{text}");

    // The disk has room again, but redb has latched the error: writes stay
    // refused until the database is reopened.
    s.app.store.inject_write_errors(None);
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&token),
        Some(user_body("cy@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 503, None);
    assert_eq!(readyz(&s).await.0, 503);

    let lines = failure_lines(&db);
    assert_eq!(
        lines.len(),
        1,
        "want exactly one error line saying the storage failed, whatever the number of refused requests: {lines:#?}"
    );
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("No space left on device") && lines[0].contains("restart"),
        "{}",
        lines[0]
    );

    // Restart: the file opens (redb repairs it), nothing is half-applied.
    let dir = s.stop().await;
    let (members, teams, _) = consistent(&db).await;
    assert_eq!((members, teams), (2, 1), "the admin and ann, one team");
    let s = restart(dir, &data_dir).await;
    assert_recovered(&s, &token, &a, &g, &client).await;
    s.stop().await;
}

/// The same through EROFS (the data directory remounted read-only): only
/// the errno differs, and the log says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_data_dir_refuses_writes_with_503_and_reports_not_ready() {
    let _ = store_errors();
    let s = TestServer::start().await;
    let (token, a, g, client) = workspace(&s).await;
    let db = s.app.store.path().to_owned();
    s.app.store.inject_write_errors(Some(EROFS));
    assert_writes_refused_reads_work(&s, &token, &a, &g, &client).await;
    assert_eq!(readyz(&s).await.0, 503);
    let lines = failure_lines(&db);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("Read-only file system"), "{}", lines[0]);
    s.app.store.inject_write_errors(None);
    let data_dir = s.app.config.data_dir.clone();
    let dir = s.stop().await;
    let s = restart(dir, &data_dir).await;
    assert_recovered(&s, &token, &a, &g, &client).await;
    s.stop().await;
}

// ---------------------------------------------------------------- real tmpfs

/// A tmpfs mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// `Err(reason)` when this machine does not let us mount one.
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs refused ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { at: at.to_owned() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Fills the filesystem holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Smaller pieces, so the last pages go too.
    let small = [0xa5u8; 512];
    while let Ok(n) = f.write(&small) {
        if n == 0 {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

/// The real thing: the data directory on a small tmpfs that fills up while
/// an IdP keeps creating users. Skips (saying why) where mount is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_full_tmpfs_refuses_writes_and_loses_nothing_acknowledged() {
    let _ = store_errors();
    // Declared before the server's directory so it is unmounted after the
    // server stops and before its mount point is removed.
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "16m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipping real_full_tmpfs_refuses_writes_and_loses_nothing_acknowledged: {why}");
            return;
        }
    };
    let data_dir = mnt.join("data");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.data_dir = data_dir.clone();
    let s = TestServer::start_with(dir, config).await;
    let (token, a, g, client) = workspace(&s).await;
    let db = s.app.store.path().to_owned();

    let filler = fill(&mnt);
    // Creates until the disk says no: the first few may still fit in pages
    // redb already has.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        let email = format!("u{i}@example.com");
        let big = "x".repeat(2000);
        let r = scim(
            &s,
            "POST",
            "/Users",
            Some(&token),
            Some(user_body(&email, json!({"title": big}))),
        )
        .await;
        match r.status {
            201 => acked.push((email, id_of(&r.body))),
            503 => {
                assert_scim_error(&r, 503, None);
                assert_retry_after(&r.headers, "POST /Users on a full disk");
                refused = Some(email);
                break;
            }
            _ => panic!("unexpected answer on a filling disk: {r}"),
        }
    }
    let mut refused = vec![refused.expect("the disk never filled up")];
    // Where ENOSPC strikes depends on the file's layout: a failure redb
    // does not latch (e.g. before it wrote anything) leaves later writes to
    // be tried again, and they fail too while the disk is full, until one
    // hits the file and redb latches it. Every refused create is a 503.
    for i in 0..200 {
        if s.app.store.storage_failure().is_some() {
            break;
        }
        let email = format!("again{i}@example.com");
        let r = scim(
            &s,
            "POST",
            "/Users",
            Some(&token),
            Some(user_body(&email, json!({"title": "x".repeat(2000)}))),
        )
        .await;
        match r.status {
            201 => acked.push((email, id_of(&r.body))),
            503 => {
                assert_scim_error(&r, 503, None);
                refused.push(email);
            }
            _ => panic!("unexpected answer on a full disk: {r}"),
        }
    }
    println!(
        "tmpfs full: {} creates acknowledged after filling, then {} refused with 503",
        acked.len(),
        refused.len()
    );
    let why = s.app.store.storage_failure().map(str::to_owned);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("No space left on device")),
        "{why:?}"
    );
    // One line per storage failure until redb latched one, then no more.
    let lines = failure_lines(&db);
    assert!(!lines.is_empty() && lines.len() <= refused.len(), "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("until roster is restarted")).count(),
        1,
        "{lines:#?}"
    );

    // Reads: the members from before and everything acknowledged (as far
    // as redb's cache holds them; the file itself cannot be read past the
    // latched error, which is why reads from the cache are all that is
    // promised until the restart).
    let r = get_user(&s, &token, &a).await;
    assert_eq!(r.status, 200, "{r}");
    for (email, id) in acked.iter().rev().take(5) {
        let r = get_user(&s, &token, id).await;
        assert_eq!(r.status, 200, "{email}: {r}");
    }
    assert_writes_refused_reads_work(&s, &token, &a, &g, &client).await;
    assert_eq!(readyz(&s).await.0, 503);

    // Free the space, restart: every acknowledged create is there with its
    // data, the refused one is not.
    std::fs::remove_file(&filler).unwrap();
    let tmp = s.stop().await;
    let (members, _, _) = consistent(&db).await;
    assert_eq!(members, 2 + acked.len(), "admin + ann + the acknowledged creates");
    let s = restart(tmp, &data_dir).await;
    for (email, id) in &acked {
        let r = get_user(&s, &token, id).await;
        assert_eq!(r.status, 200, "acknowledged {email} lost: {r}");
        assert_eq!(r.body["userName"], json!(email), "{r}");
    }
    for email in &refused {
        let r = scim(
            &s,
            "GET",
            &filter_path(&format!("userName eq \"{email}\"")),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(
            r.body["totalResults"],
            json!(0),
            "the refused create {email} must not appear: {r}"
        );
    }
    assert_recovered(&s, &token, &a, &g, &client).await;
    s.stop().await;
    drop(fs);
    drop(root);
}

/// The real binary under systemd's watchdog, its data on a tmpfs that fills
/// up: one error line says the storage failed and that a restart is needed,
/// the watchdog keeps being pinged (a restart loop while the disk is full
/// would take reads down too), reads keep working, and the file opens
/// consistent afterwards with every acknowledged create in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_binary_on_full_disk_logs_once_keeps_the_watchdog_and_serves_reads() {
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "16m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("skipping real_binary_on_full_disk_logs_once_keeps_the_watchdog_and_serves_reads: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data = mnt.join("data");
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let server = crate::support::BinServer::start_env(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            // A ping every 500 ms.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let (code, out, err) = {
        let (d, data) = (dir.path().to_owned(), data.clone());
        tokio::task::spawn_blocking(move || {
            crate::support::run_bin(
                &d,
                &["token", "create", "--name", "idp", "--data-dir", data.to_str().unwrap()],
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(code, 0, "token create: {out}{err}");
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("rst_scim_"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    let t = crate::crash::Target {
        addr: server.addr,
        tls: crate::crash::tls_for(&data),
        token,
    };
    let body = |e: &str| Some(user_body(e, json!({"title": "x".repeat(2000)})));
    let (status, first) = crate::crash::call(&t, "POST", "/Users", body("first@example.com"))
        .await
        .unwrap();
    assert_eq!(status, 201, "{first}");

    let filler = fill(&mnt);
    let mut acked = vec![id_of(&first)];
    let mut refused = false;
    for i in 0..2000 {
        let (status, v) = crate::crash::call(&t, "POST", "/Users", body(&format!("u{i}@example.com")))
            .await
            .unwrap();
        match status {
            201 => acked.push(id_of(&v)),
            503 => {
                assert_eq!(v["status"], json!("503"), "{v}");
                refused = true;
                break;
            }
            _ => panic!("unexpected answer on a filling disk: {status} {v}"),
        }
    }
    assert!(refused, "the disk never filled up");
    // A failure redb did not latch (ENOSPC before it wrote anything) leaves
    // later writes to be tried again; they fail too until one latches.
    for i in 0..200 {
        if server.log().contains("until roster is restarted") {
            break;
        }
        let (status, v) = crate::crash::call(&t, "POST", "/Users", body(&format!("again{i}@example.com")))
            .await
            .unwrap();
        match status {
            201 => acked.push(id_of(&v)),
            503 => assert_eq!(v["status"], json!("503"), "{v}"),
            _ => panic!("unexpected answer on a full disk: {status} {v}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The watchdog is still fed after the failure: drain what was sent
    // before, then wait for fresh pings.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    for _ in 0..3 {
        let n = sock.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no watchdog ping after the storage failure ({e}); log:\n{}",
                server.log()
            )
        });
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(msg.lines().any(|l| l == "WATCHDOG=1"), "{msg}");
    }
    for id in acked.iter().rev().take(3) {
        let (status, v) = crate::crash::call(&t, "GET", &format!("/Users/{id}"), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = crate::crash::call(
        &t,
        "PATCH",
        &format!("/Users/{}", acked[0]),
        Some(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]))),
    )
    .await
    .unwrap();
    assert_eq!(status, 503, "{v}");

    let (_, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|l| l.contains("storage failed")),
        "every error line says the storage failed:\n{log}"
    );
    let latched: Vec<&&str> = failed
        .iter()
        .filter(|l| l.contains("until roster is restarted"))
        .collect();
    assert_eq!(
        latched.len(),
        1,
        "one line says a restart is needed, whatever the number of refused requests after it:\n{log}"
    );
    assert!(
        latched[0].contains("No space left on device") && latched[0].contains("restart"),
        "{}",
        latched[0]
    );
    assert!(!log.contains("writer not answering"), "{log}");

    std::fs::remove_file(&filler).unwrap();
    let (members, _, _) = consistent(&data.join("roster.redb")).await;
    assert_eq!(
        members,
        1 + acked.len(),
        "the first admin and every acknowledged create"
    );
    drop(fs);
    drop(root);
}
