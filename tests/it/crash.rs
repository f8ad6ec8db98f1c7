//! Crash safety of the real binary: concurrent SCIM writes, SIGKILL at a
//! random moment, restart on the same data directory, and checks that the
//! database opens, every write acknowledged with 2xx before the kill is
//! there, and nothing is half-applied (audit rows, index rows and team
//! membership rows agree with the members and teams they describe).
//!
//! Quick mode (the normal test run): 5 rounds. Full mode: `ROSTER_FULL=1`
//! runs 50 rounds (`ROSTER_CRASH_ROUNDS=N` overrides both); the seed is
//! printed and `ROSTER_CRASH_SEED=S` replays one. See RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use redb::ReadableTable;
use roster::store::tables;
use roster::workspace::model::{Member, Status, Team};
use serde_json::{Value, json};

use crate::support::{BinServer, run_bin};

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const WRITERS: usize = 4;

/// xorshift64*: enough randomness for timing and op choice, replayable.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the clients were told (acknowledged) and what was in flight when
/// the server died (may or may not have happened, but never half).
#[derive(Default)]
struct Ledger {
    /// email → id of every acknowledged create.
    created: BTreeMap<String, String>,
    /// Creates in flight at a kill (email).
    maybe_created: BTreeSet<String>,
    /// id → (last acknowledged displayName, displayName in flight at a kill).
    display: HashMap<String, (Option<String>, Option<String>)>,
    deleted: BTreeSet<String>,
    maybe_deleted: BTreeSet<String>,
    /// group id → (acknowledged member ids, member ids in flight at a kill).
    groups: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    maybe_group_created: BTreeSet<String>,
    acknowledged: u64,
}

#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) token: String,
}

/// One SCIM request; `Err` when the connection failed (server gone).
pub(crate) async fn call(t: &Target, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("/scim/v2{path}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", t.token));
    if body.is_some() {
        b = b.header("content-type", "application/scim+json");
    }
    let bytes = body.map(|v| serde_json::to_vec(&v).unwrap()).unwrap_or_default();
    let req = b.body(Full::new(Bytes::from(bytes))).unwrap();
    let fut = roster::client::request(t.tls.clone(), t.addr, "localhost", req);
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(Ok(r)) => {
            let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            Ok((r.status, v))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// The pinned TLS client config for a binary server on `data_dir`.
pub(crate) fn tls_for(data_dir: &Path) -> Arc<rustls::ClientConfig> {
    let mut c = roster::config::Config::embedded_default();
    c.data_dir = data_dir.to_owned();
    let cert = roster::server::tls::load_certs(&roster::server::tls::cert_path(&c))
        .unwrap()
        .remove(0);
    Arc::new(
        roster::client::pinned_config(
            cert,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &[b"http/1.1"],
        )
        .unwrap(),
    )
}

fn start(dir: &Path, data: &Path) -> BinServer {
    BinServer::start(dir, &["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
}

/// One writer: creates users, renames some, deletes some, and keeps one
/// group whose membership grows. Stops at the first transport error (the
/// kill), leaving what it had in flight in the ledger's "maybe" sets.
async fn writer(t: Target, ledger: Arc<Mutex<Ledger>>, round: usize, w: usize, mut rng: Rng, max_ops: usize) {
    let mut mine: Vec<String> = Vec::new();
    let mut group: Option<String> = None;
    for i in 0..max_ops {
        let pick = rng.below(100);
        if pick < 55 || mine.len() < 2 {
            let email = format!("r{round}-w{w}-{i}@crash.example");
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "displayName": "v0"});
            ledger.lock().unwrap().maybe_created.insert(email.clone());
            match call(&t, "POST", "/Users", Some(body)).await {
                Ok((201, v)) => {
                    let id = v["id"].as_str().expect("id").to_owned();
                    let mut l = ledger.lock().unwrap();
                    l.maybe_created.remove(&email);
                    l.created.insert(email, id.clone());
                    l.display.insert(id.clone(), (Some("v0".into()), None));
                    l.acknowledged += 1;
                    mine.push(id);
                }
                Ok((s, v)) => panic!("create {email}: {s} {v}"),
                Err(_) => return,
            }
        } else if pick < 75 {
            let id = mine[rng.below(mine.len() as u64) as usize].clone();
            let value = format!("v{round}-{i}");
            let body = json!({"schemas": [PATCH_URN],
                "Operations": [{"op": "replace", "path": "displayName", "value": value}]});
            ledger.lock().unwrap().display.get_mut(&id).unwrap().1 = Some(value.clone());
            match call(&t, "PATCH", &format!("/Users/{id}"), Some(body)).await {
                Ok((200 | 204, _)) => {
                    let mut l = ledger.lock().unwrap();
                    l.display.insert(id, (Some(value), None));
                    l.acknowledged += 1;
                }
                Ok((s, v)) => panic!("patch {id}: {s} {v}"),
                Err(_) => return,
            }
        } else if pick < 85 && mine.len() > 2 {
            // Delete one of mine that is in no group.
            let id = mine.remove(rng.below(mine.len() as u64 - 1) as usize + 1);
            ledger.lock().unwrap().maybe_deleted.insert(id.clone());
            match call(&t, "DELETE", &format!("/Users/{id}"), None).await {
                Ok((204, _)) => {
                    let mut l = ledger.lock().unwrap();
                    l.maybe_deleted.remove(&id);
                    l.deleted.insert(id);
                    l.acknowledged += 1;
                }
                Ok((s, v)) => panic!("delete {id}: {s} {v}"),
                Err(_) => return,
            }
        } else {
            match &group {
                None => {
                    let name = format!("team r{round} w{w}");
                    let first = mine[0].clone();
                    let body = json!({"schemas": [GROUP_URN], "displayName": name,
                        "members": [{"value": first}]});
                    ledger.lock().unwrap().maybe_group_created.insert(name.clone());
                    match call(&t, "POST", "/Groups", Some(body)).await {
                        Ok((201, v)) => {
                            let gid = v["id"].as_str().expect("group id").to_owned();
                            let mut l = ledger.lock().unwrap();
                            l.maybe_group_created.remove(&name);
                            l.groups.insert(gid.clone(), ([first].into(), BTreeSet::new()));
                            l.acknowledged += 1;
                            group = Some(gid);
                        }
                        Ok((s, v)) => panic!("group create {name}: {s} {v}"),
                        Err(_) => return,
                    }
                }
                Some(gid) => {
                    // Add a fresh member; it stays (it is never deleted).
                    let email = format!("r{round}-w{w}-{i}-g@crash.example");
                    let body = json!({"userName": email});
                    ledger.lock().unwrap().maybe_created.insert(email.clone());
                    let uid = match call(&t, "POST", "/Users", Some(body)).await {
                        Ok((201, v)) => {
                            let id = v["id"].as_str().expect("id").to_owned();
                            let mut l = ledger.lock().unwrap();
                            l.maybe_created.remove(&email);
                            l.created.insert(email, id.clone());
                            l.display.insert(id.clone(), (None, None));
                            l.acknowledged += 1;
                            id
                        }
                        Ok((s, v)) => panic!("create {email}: {s} {v}"),
                        Err(_) => return,
                    };
                    let body = json!({"schemas": [PATCH_URN],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    ledger
                        .lock()
                        .unwrap()
                        .groups
                        .get_mut(gid)
                        .unwrap()
                        .1
                        .insert(uid.clone());
                    match call(&t, "PATCH", &format!("/Groups/{gid}"), Some(body)).await {
                        Ok((200 | 204, _)) => {
                            let mut l = ledger.lock().unwrap();
                            let g = l.groups.get_mut(gid).unwrap();
                            g.1.remove(&uid);
                            g.0.insert(uid);
                            l.acknowledged += 1;
                        }
                        Ok((s, v)) => panic!("group add {gid}: {s} {v}"),
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// Every listed user, paging through `/Users`.
async fn listed(t: &Target) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let mut start = 1;
    loop {
        let (s, v) = call(t, "GET", &format!("/Users?startIndex={start}&count=1000"), None)
            .await
            .expect("list users");
        assert_eq!(s, 200, "{v}");
        let page = v["Resources"].as_array().cloned().unwrap_or_default();
        let n = page.len();
        for r in page {
            out.insert(r["id"].as_str().unwrap().to_owned(), r);
        }
        if n < 1000 {
            return out;
        }
        start += n;
    }
}

/// Checks the live server against the ledger (acknowledged ⇒ present).
async fn check_acknowledged(t: &Target, ledger: &Ledger, rng: &mut Rng) -> usize {
    let users = listed(t).await;
    let mut checked = 0;
    for (email, id) in &ledger.created {
        if ledger.deleted.contains(id) {
            assert!(
                !users.contains_key(id),
                "acknowledged DELETE of {email} ({id}) lost: still listed"
            );
            continue;
        }
        if ledger.maybe_deleted.contains(id) {
            continue;
        }
        let u = users
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged create of {email} ({id}) lost after the kill"));
        assert_eq!(u["userName"], json!(email), "{u}");
        let (acked, pending) = &ledger.display[id];
        let now = u["displayName"].as_str().map(str::to_owned);
        assert!(
            now == *acked || (pending.is_some() && now == *pending),
            "{email}: displayName {now:?}, acknowledged {acked:?}, in flight {pending:?}"
        );
        checked += 1;
    }
    // Direct lookups too: by id, by userName filter, and deleted → 404.
    let ids: Vec<(&String, &String)> = ledger.created.iter().collect();
    for _ in 0..ids.len().min(6) {
        let (email, id) = ids[rng.below(ids.len() as u64) as usize];
        if ledger.maybe_deleted.contains(id) {
            continue;
        }
        let gone = ledger.deleted.contains(id);
        let (s, v) = call(t, "GET", &format!("/Users/{id}"), None).await.unwrap();
        assert_eq!(s, if gone { 404 } else { 200 }, "GET {email} ({id}): {v}");
        let f = crate::scim_support::filter_path(&format!("userName eq \"{email}\""));
        let (s, v) = call(t, "GET", &f, None).await.unwrap();
        assert_eq!(s, 200, "{v}");
        let want = if gone { 0 } else { 1 };
        assert_eq!(v["totalResults"], json!(want), "filter userName eq {email}: {v}");
    }
    for (gid, (acked, pending)) in &ledger.groups {
        let (s, v) = call(t, "GET", &format!("/Groups/{gid}"), None).await.unwrap();
        assert_eq!(s, 200, "acknowledged group {gid} lost: {v}");
        let now: BTreeSet<String> = v["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect();
        assert!(acked.is_subset(&now), "group {gid}: acknowledged {acked:?} ⊄ {now:?}");
        let allowed: BTreeSet<String> = acked.union(pending).cloned().collect();
        assert!(now.is_subset(&allowed), "group {gid}: {now:?} has members never sent");
    }
    checked
}

/// Opens the database with the library (as `roster` would after a crash)
/// and checks that nothing is half-applied. Returns (members, teams, audit rows).
pub(crate) async fn check_consistent(db: &Path) -> (usize, usize, usize) {
    let path = db.to_owned();
    let store = tokio::task::spawn_blocking(move || roster::store::Store::open(&path))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("database does not open after the kill: {e}"));
    let r = store
        .read(|txn| {
            let mut members: HashMap<String, Member> = HashMap::new();
            for row in txn.open_table(tables::MEMBERS)?.iter()? {
                let (_, v) = row?;
                let m: Member = roster::store::codec::decode(v.value())?;
                members.insert(m.id.to_string(), m);
            }
            let mut teams: HashMap<String, Team> = HashMap::new();
            for row in txn.open_table(tables::TEAMS)?.iter()? {
                let (_, v) = row?;
                let t: Team = roster::store::codec::decode(v.value())?;
                teams.insert(t.id.to_string(), t);
            }
            let mut by_email = Vec::new();
            for row in txn.open_table(tables::MEMBER_BY_EMAIL)?.iter()? {
                let (k, v) = row?;
                by_email.push((k.value().to_owned(), uuid::Uuid::from_u128(v.value()).to_string()));
            }
            let mut team_members = BTreeSet::new();
            for row in txn.open_table(tables::TEAM_MEMBERS)?.iter()? {
                let (k, _) = row?;
                let (t, m) = k.value();
                team_members.insert((
                    uuid::Uuid::from_u128(t).to_string(),
                    uuid::Uuid::from_u128(m).to_string(),
                ));
            }
            let mut member_teams = BTreeSet::new();
            for row in txn.open_table(tables::MEMBER_TEAMS)?.iter()? {
                let (k, _) = row?;
                let (m, t) = k.value();
                member_teams.insert((
                    uuid::Uuid::from_u128(t).to_string(),
                    uuid::Uuid::from_u128(m).to_string(),
                ));
            }
            let audit = roster::store::audit::recent(txn, 10_000_000)?;
            Ok((members, teams, by_email, team_members, member_teams, audit))
        })
        .await
        .unwrap();
    store.close().await;
    let (members, teams, by_email, team_members, member_teams, audit) = r;

    let mut created_rows: HashMap<String, usize> = HashMap::new();
    let mut removed_rows: BTreeSet<String> = BTreeSet::new();
    let mut team_created: BTreeSet<String> = BTreeSet::new();
    let mut team_deleted: BTreeSet<String> = BTreeSet::new();
    for (_, e) in &audit {
        if let Some(id) = e.target.strip_prefix("member:") {
            match e.action.as_str() {
                "member.created" => *created_rows.entry(id.to_owned()).or_default() += 1,
                "member.removed" => {
                    removed_rows.insert(id.to_owned());
                }
                _ => {}
            }
        }
        if let Some(id) = e.target.strip_prefix("team:") {
            match e.action.as_str() {
                "team.created" | "team.linked" => {
                    team_created.insert(id.to_owned());
                }
                "team.deleted" => {
                    team_deleted.insert(id.to_owned());
                }
                _ => {}
            }
        }
    }
    for (id, m) in &members {
        assert_eq!(
            created_rows.get(id),
            Some(&1),
            "member {} ({id}) without exactly one member.created audit row",
            m.email
        );
        if m.status == Status::Removed {
            assert!(
                removed_rows.contains(id),
                "removed member {id} without member.removed row"
            );
        }
    }
    for id in created_rows.keys() {
        assert!(
            members.contains_key(id),
            "member.created audit row for {id} but no member"
        );
    }
    for id in &removed_rows {
        assert!(
            members.contains_key(id),
            "member.removed audit row for {id} but no member"
        );
    }
    // The email index and the members agree both ways.
    let mut indexed = BTreeSet::new();
    for (key, id) in &by_email {
        let m = members
            .get(id)
            .unwrap_or_else(|| panic!("email index {key} → {id}: no such member"));
        assert_eq!(*key, roster::store::members::email_key(&m.email), "index key of {id}");
        indexed.insert(id.clone());
    }
    assert_eq!(indexed.len(), members.len(), "members missing from the email index");
    // Team rows: every membership row has its team and its member, and the
    // two directions agree; every team has its creation audit row.
    for (t, m) in &team_members {
        assert!(teams.contains_key(t), "team-member row ({t}, {m}) without its team");
        assert!(members.contains_key(m), "team-member row ({t}, {m}) without its member");
    }
    assert_eq!(team_members, member_teams, "TEAM_MEMBERS and MEMBER_TEAMS disagree");
    for id in teams.keys() {
        assert!(team_created.contains(id), "team {id} without team.created audit row");
        assert!(
            !team_deleted.contains(id),
            "team {id} exists but was audited as deleted"
        );
    }
    for id in &team_created {
        assert!(
            teams.contains_key(id) || team_deleted.contains(id),
            "team.created row for {id} but no team and no team.deleted"
        );
    }
    (members.len(), teams.len(), audit.len())
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_scim_writes_loses_nothing_acknowledged() {
    let full = std::env::var("ROSTER_FULL").is_ok_and(|v| v == "1");
    let rounds = env_num("ROSTER_CRASH_ROUNDS").unwrap_or(if full { 50 } else { 5 }) as usize;
    let seed = env_num("ROSTER_CRASH_SEED").unwrap_or_else(|| {
        let mut b = [0u8; 8];
        roster::clock::Rng::fill(&roster::clock::SystemRng::default(), &mut b);
        u64::from_le_bytes(b) | 1
    });
    eprintln!("crash test: {rounds} rounds, seed {seed} (ROSTER_CRASH_SEED={seed} to replay)");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let db = data.join("roster.redb");

    // First start bootstraps the workspace; the token is made through the
    // live server's control socket, as an operator would.
    let mut server = start(dir.path(), &data);
    let (code, out, err) = {
        let (d, data) = (dir.path().to_owned(), data.clone());
        tokio::task::spawn_blocking(move || {
            run_bin(
                &d,
                &[
                    "token",
                    "create",
                    "--name",
                    "crash",
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
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

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut kill_after_ms = Vec::new();
    let mut verified_total = 0;
    for round in 0..rounds {
        let t = Target {
            addr: server.addr,
            tls: tls_for(&data),
            token: token.clone(),
        };
        // The database opened (the server is listening): check what was
        // acknowledged before the previous kill.
        {
            let snapshot = std::mem::take(&mut *ledger.lock().unwrap());
            verified_total += check_acknowledged(&t, &snapshot, &mut rng).await;
            *ledger.lock().unwrap() = snapshot;
        }
        // Drive writes, then SIGKILL at a random moment.
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let wrng = Rng(rng.next() | 1);
            tasks.push(tokio::spawn(writer(t.clone(), ledger.clone(), round, w, wrng, 400)));
        }
        let wait = 150 + rng.below(if full { 900 } else { 450 });
        kill_after_ms.push(wait);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let pid = server.child.id();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || {
            let s = server.child.wait().unwrap();
            (s, server)
        })
        .await
        .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status.0),
            Some(9),
            "server was not killed by SIGKILL; log:\n{}",
            status.1.log()
        );
        let log = status.1.log();
        assert!(!log.contains("panicked"), "panic in the server log:\n{log}");
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("writer ended after the kill")
                .expect("writer did not panic");
        }
        // Every few rounds, open the killed database with the library too.
        if round % 5 == 4 || round + 1 == rounds {
            check_consistent(&db).await;
        }
        server = start(dir.path(), &data);
    }
    // The last restart: everything acknowledged is still there.
    let t = Target {
        addr: server.addr,
        tls: tls_for(&data),
        token: token.clone(),
    };
    let final_ledger = std::mem::take(&mut *ledger.lock().unwrap());
    verified_total += check_acknowledged(&t, &final_ledger, &mut rng).await;
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let (members, teams, audit_rows) = check_consistent(&db).await;
    eprintln!(
        "crash test: {rounds} rounds, {} writes acknowledged (0 lost), {} creates + {} deletes in flight at kills, \
         {} users created, {} deleted, {} groups; store: {members} members, {teams} teams, {audit_rows} audit rows; \
         kill after {:?} ms; {verified_total} user checks; {:.1} s",
        final_ledger.acknowledged,
        final_ledger.maybe_created.len(),
        final_ledger.maybe_deleted.len(),
        final_ledger.created.len(),
        final_ledger.deleted.len(),
        final_ledger.groups.len(),
        kill_after_ms,
        started.elapsed().as_secs_f64()
    );
    assert!(final_ledger.acknowledged > 0, "no write was acknowledged");
}
