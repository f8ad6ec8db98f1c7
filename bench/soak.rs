//! `--soak MINUTES`: the release server as a child process under a moderate,
//! rate-limited Okta/Entra-like mix for a long time, watching for memory
//! growth, fd leaks and errors rather than throughput. See RELIABILITY.md.
//!
//! Each of the 8 clients owns its own slice of the members, so no two
//! clients race on one resource and every answer has one expected status;
//! the few 4xx the mix provokes on purpose (GET of a deleted member, a
//! duplicate userName) are counted apart from errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use super::{
    Bytes, Full, GROUP_URN, PATCH_URN, Target, connect, fmt_us, mix, pct, req, send, stop_child, tls_target, user_body,
    vm_kib,
};

const CLIENTS: usize = 8;
/// Requests per second over all clients.
const RATE: f64 = 100.0;
const SEED_MEMBERS: u64 = 2_000;
const SEED_TEAMS: usize = 50;
const TEAM_SIZE: usize = 20;
const SAMPLE_EVERY: Duration = Duration::from_secs(30);
const BASE: &str = "/scim/v2";

/// How one answer counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    /// A 4xx the mix asked for (404 after DELETE, 409 on a duplicate).
    Expected4xx,
    /// Any other 4xx, or a 2xx where a 4xx was expected.
    Unexpected,
    Server5xx,
    /// Connect, TLS, timeout or a closed connection.
    Transport,
}

struct Event {
    at: Duration,
    op: &'static str,
    lat_us: u32,
    class: Class,
    detail: Option<String>,
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A member a client owns: SCIM id and the number its userName and
/// externalId are made from.
#[derive(Clone)]
struct Owned {
    id: String,
    n: u64,
}

fn user_name(n: u64) -> String {
    format!("user{n}@example.com")
}

fn status_class(got: StatusCode, want: &[StatusCode], expected_4xx: bool) -> Class {
    if want.contains(&got) {
        if expected_4xx { Class::Expected4xx } else { Class::Ok }
    } else if got.is_server_error() {
        Class::Server5xx
    } else {
        Class::Unexpected
    }
}

struct Client {
    t: Target,
    token: String,
    oauth: Option<(String, String)>,
    mine: Vec<Owned>,
    deleted: Vec<String>,
    teams: Arc<Vec<String>>,
    next_n: u64,
    rng: u64,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    start: Instant,
}

impl Client {
    fn rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(1);
        mix(self.rng)
    }

    fn pick(&mut self) -> Option<Owned> {
        if self.mine.is_empty() {
            return None;
        }
        let i = (self.rand() % self.mine.len() as u64) as usize;
        Some(self.mine[i].clone())
    }

    /// Sends one request and records it; returns the status and body when
    /// an answer came back.
    async fn call(
        &self,
        conn: &mut Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
        op: &'static str,
        r: Request<Full<Bytes>>,
        want: &[StatusCode],
        expected_4xx: bool,
    ) -> Option<(StatusCode, Bytes)> {
        let t0 = Instant::now();
        let res = send(&self.t, conn, r).await;
        let lat_us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        let (class, detail, out) = match res {
            Ok((status, body)) => {
                let c = status_class(status, want, expected_4xx);
                let d = (c != Class::Ok && c != Class::Expected4xx).then(|| {
                    format!(
                        "{op}: HTTP {status} (want {want:?}): {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
                (c, d, Some((status, body)))
            }
            Err(e) => (Class::Transport, Some(format!("{op}: {e}")), None),
        };
        let _ = self.events.send(Event {
            at: self.start.elapsed(),
            op,
            lat_us,
            class,
            detail,
        });
        out
    }

    async fn one(&mut self, conn: &mut Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>) {
        let roll = self.rand() % 200;
        let tok = self.token.clone();
        match roll {
            // POST /Users: a new member this client owns.
            0..=19 => {
                let n = self.next_n;
                self.next_n += 1;
                let r = req("POST", &format!("{BASE}/Users"), &tok, Some(user_body(n)));
                if let Some((StatusCode::CREATED, body)) =
                    self.call(conn, "create", r, &[StatusCode::CREATED], false).await
                    && let Some(id) = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned))
                {
                    self.mine.push(Owned { id, n });
                }
            }
            // GET /Users/{id}
            20..=69 => {
                let Some(m) = self.pick() else { return };
                let r = req("GET", &format!("{BASE}/Users/{}", m.id), &tok, None);
                self.call(conn, "get", r, &[StatusCode::OK], false).await;
            }
            // filter userName eq (Okta's and Entra's lookup before a create)
            70..=99 => {
                let Some(m) = self.pick() else { return };
                let f = super::enc_query(&format!("userName eq \"{}\"", user_name(m.n)));
                let r = req("GET", &format!("{BASE}/Users?filter={f}"), &tok, None);
                if let Some((StatusCode::OK, body)) = self.call(conn, "filter", r, &[StatusCode::OK], false).await {
                    let total = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .map(|v| v["totalResults"].clone());
                    if total != Some(json!(1)) {
                        let _ = self.events.send(Event {
                            at: self.start.elapsed(),
                            op: "filter-count",
                            lat_us: 0,
                            class: Class::Unexpected,
                            detail: Some(format!("filter for {} found {total:?}", user_name(m.n))),
                        });
                    }
                }
            }
            // paged list, count=200 (Okta's import)
            100..=109 => {
                let start = 1 + (self.rand() % SEED_MEMBERS) / 200 * 200;
                let r = req("GET", &format!("{BASE}/Users?startIndex={start}&count=200"), &tok, None);
                self.call(conn, "list", r, &[StatusCode::OK], false).await;
            }
            // PATCH replace displayName / active (Entra's dialect uses no path for active)
            110..=139 => {
                let Some(m) = self.pick() else { return };
                let ops = match self.rand() % 3 {
                    0 => {
                        json!([{"op": "replace", "path": "displayName", "value": format!("Renamed {}", self.rand() % 1000)}])
                    }
                    1 => json!([{"op": "replace", "path": "active", "value": false}]),
                    _ => json!([{"op": "Replace", "value": {"active": true}}]),
                };
                let b = json!({"schemas": [PATCH_URN], "Operations": ops}).to_string();
                let r = req("PATCH", &format!("{BASE}/Users/{}", m.id), &tok, Some(b.into_bytes()));
                self.call(conn, "patch", r, &[StatusCode::OK, StatusCode::NO_CONTENT], false)
                    .await;
            }
            // group PATCH add / remove one member
            140..=159 => {
                let Some(m) = self.pick() else { return };
                if self.teams.is_empty() {
                    return;
                }
                let k = (self.rand() % self.teams.len() as u64) as usize;
                let team = self.teams[k].clone();
                let op = if self.rand().is_multiple_of(2) { "add" } else { "remove" };
                let b = if op == "add" {
                    json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members", "value": [{"value": m.id}]}]})
                } else {
                    json!({"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", m.id)}]})
                };
                let r = req(
                    "PATCH",
                    &format!("{BASE}/Groups/{team}"),
                    &tok,
                    Some(b.to_string().into_bytes()),
                );
                self.call(conn, "group-patch", r, &[StatusCode::NO_CONTENT, StatusCode::OK], false)
                    .await;
            }
            // PUT (Okta's full update)
            160..=171 => {
                let Some(m) = self.pick() else { return };
                let mut body: Value = serde_json::from_slice(&user_body(m.n)).unwrap_or(Value::Null);
                body["displayName"] = json!(format!("Put {}", self.rand() % 1000));
                let r = req(
                    "PUT",
                    &format!("{BASE}/Users/{}", m.id),
                    &tok,
                    Some(body.to_string().into_bytes()),
                );
                self.call(conn, "put", r, &[StatusCode::OK], false).await;
            }
            // DELETE one of ours (kept above a floor so the pool never drains)
            172..=183 => {
                if self.mine.len() < 50 {
                    return;
                }
                let i = (self.rand() % self.mine.len() as u64) as usize;
                let m = self.mine.swap_remove(i);
                let r = req("DELETE", &format!("{BASE}/Users/{}", m.id), &tok, None);
                if let Some((StatusCode::NO_CONTENT, _)) =
                    self.call(conn, "delete", r, &[StatusCode::NO_CONTENT], false).await
                {
                    self.deleted.push(m.id);
                    if self.deleted.len() > 1000 {
                        self.deleted.remove(0);
                    }
                }
            }
            // GET of a deleted member: 404 on purpose
            184..=190 => {
                let Some(id) = self.deleted.last().cloned() else { return };
                let r = req("GET", &format!("{BASE}/Users/{id}"), &tok, None);
                self.call(conn, "get-deleted", r, &[StatusCode::NOT_FOUND], true).await;
            }
            // a duplicate userName: 409 on purpose
            191..=196 => {
                let Some(m) = self.pick() else { return };
                let r = req("POST", &format!("{BASE}/Users"), &tok, Some(user_body(m.n)));
                self.call(conn, "create-dup", r, &[StatusCode::CONFLICT], true).await;
            }
            // OAuth client_credentials, then one SCIM read with that token.
            // Rare: the token endpoint allows 120 requests a minute per address.
            _ => {
                let Some((id, secret)) = self.oauth.clone() else { return };
                if !self.rand().is_multiple_of(4) {
                    return;
                }
                let form = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}",
                    super::enc_query(&id),
                    super::enc_query(&secret)
                );
                let r = Request::post("/oauth/token")
                    .header("host", "localhost")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from(form)))
                    .expect("token request");
                let at = match self.call(conn, "token", r, &[StatusCode::OK], false).await {
                    Some((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["access_token"].as_str().map(str::to_owned)),
                    _ => None,
                };
                if let (Some(at), Some(m)) = (at, self.pick()) {
                    let r = req("GET", &format!("{BASE}/Users/{}", m.id), &at, None);
                    self.call(conn, "get-oauth", r, &[StatusCode::OK], false).await;
                }
            }
        }
    }
}

#[derive(Default)]
struct Minute {
    lat: Vec<u32>,
    ok: u64,
    expected_4xx: u64,
    errors: u64,
}

pub async fn run(bin: &Path, minutes: u64) -> std::process::ExitCode {
    let run_start = Instant::now();
    let dir = std::env::temp_dir().join(format!("roster-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("soak dir");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "roster-bench --soak {minutes}: {} cores, commit {commit}, {CLIENTS} clients at {RATE} req/s in total, \
         seed {SEED_MEMBERS} members + {SEED_TEAMS} teams of {TEAM_SIZE}, data in {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        dir.display()
    );
    let (mut roster, oauth) = super::start_roster_with(bin, &dir, true).await;
    let pid = roster.child.id();
    let t = tls_target(roster.addr, roster.cert.clone());
    let token = roster.token.clone();

    // Seed: members at 8 clients flat out, then teams of 20.
    let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (seed_row, bodies) = super::run_load(
        &t,
        super::Load {
            name: "soak seed: POST /Users".into(),
            clients: CLIENTS,
            max: SEED_MEMBERS,
            time: Duration::from_secs(600),
            expect: StatusCode::CREATED,
            // Per client: a client may do more than its even share.
            keep: SEED_MEMBERS as usize * CLIENTS,
        },
        super::creates(BASE, &token, seq),
    )
    .await;
    let mut seeded: Vec<Owned> = bodies
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter_map(|v| {
            let id = v["id"].as_str()?.to_owned();
            let n = v["userName"]
                .as_str()?
                .strip_prefix("user")?
                .split('@')
                .next()?
                .parse()
                .ok()?;
            Some(Owned { id, n })
        })
        .collect();
    seeded.sort_by_key(|o| o.n);
    let mut conn = connect(&t).await.ok();
    let mut teams = Vec::new();
    for i in 0..SEED_TEAMS {
        let members: Vec<Value> = (0..TEAM_SIZE)
            .filter_map(|j| seeded.get((mix((i * TEAM_SIZE + j) as u64) % seeded.len().max(1) as u64) as usize))
            .map(|o| json!({"value": o.id}))
            .collect();
        let b = json!({"schemas": [GROUP_URN], "displayName": format!("soak team {i}"), "members": members});
        if let Ok((StatusCode::CREATED, body)) = send(
            &t,
            &mut conn,
            req(
                "POST",
                &format!("{BASE}/Groups"),
                &token,
                Some(b.to_string().into_bytes()),
            ),
        )
        .await
            && let Some(id) = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        {
            teams.push(id);
        }
    }
    println!(
        "seeded {} members ({} errors) and {} teams in {:.1} s; RSS {} MiB, {} fds",
        seeded.len(),
        seed_row.errors,
        teams.len(),
        run_start.elapsed().as_secs_f64(),
        vm_kib(pid, "VmRSS:").unwrap_or(0) / 1024,
        fd_count(pid)
    );
    if seeded.len() < SEED_MEMBERS as usize || teams.len() < SEED_TEAMS {
        eprintln!("roster-bench --soak: seeding failed; log: {}", roster.log.display());
        stop_child(&mut roster.child, true);
        return std::process::ExitCode::FAILURE;
    }
    let teams = Arc::new(teams);

    // The soak itself.
    let start = Instant::now();
    let duration = Duration::from_secs(minutes * 60);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let mine: Vec<Owned> = seeded.iter().skip(c).step_by(CLIENTS).cloned().collect();
        let mut client = Client {
            t: t.clone(),
            token: token.clone(),
            oauth: oauth.clone(),
            mine,
            deleted: Vec::new(),
            teams: teams.clone(),
            // Fresh userNames per client, far above the seeded ones.
            next_n: 1_000_000 * (c as u64 + 1),
            rng: 0x5eed_0000 + c as u64 * 7919,
            events: tx.clone(),
            start,
        };
        tasks.spawn(async move {
            let mut conn = None;
            let period = Duration::from_secs_f64(CLIENTS as f64 / RATE);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while start.elapsed() < duration {
                tick.tick().await;
                client.one(&mut conn).await;
            }
        });
    }
    drop(tx);

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let s = Sample {
                    at: start.elapsed(),
                    rss_kib: vm_kib(pid, "VmRSS:").unwrap_or(0),
                    fds: fd_count(pid),
                };
                println!(
                    "  t={:>5.0} s  RSS {:>6.1} MiB  fds {}",
                    s.at.as_secs_f64(),
                    s.rss_kib as f64 / 1024.0,
                    s.fds
                );
                if let Ok(mut v) = samples.lock() {
                    v.push(s);
                }
                if start.elapsed() >= duration {
                    break;
                }
            }
        })
    };

    let mut per_minute: BTreeMap<u64, Minute> = BTreeMap::new();
    let mut by_op: BTreeMap<&'static str, [u64; 5]> = BTreeMap::new();
    let mut shown_errors = 0;
    while let Some(e) = rx.recv().await {
        // Answers to requests sent just before the end count in the last minute.
        let m = per_minute
            .entry(e.at.min(duration.saturating_sub(Duration::from_millis(1))).as_secs() / 60)
            .or_default();
        let slot = match e.class {
            Class::Ok => 0,
            Class::Expected4xx => 1,
            Class::Unexpected => 2,
            Class::Server5xx => 3,
            Class::Transport => 4,
        };
        by_op.entry(e.op).or_default()[slot] += 1;
        match e.class {
            Class::Ok => m.ok += 1,
            Class::Expected4xx => m.expected_4xx += 1,
            _ => m.errors += 1,
        }
        if e.lat_us > 0 {
            m.lat.push(e.lat_us);
        }
        if let Some(d) = e.detail
            && shown_errors < 20
        {
            shown_errors += 1;
            eprintln!("  error at {:.0} s: {d}", e.at.as_secs_f64());
        }
    }
    while tasks.join_next().await.is_some() {}
    let _ = sampler.await;
    let end_rss = vm_kib(pid, "VmRSS:").unwrap_or(0);
    let end_fds = fd_count(pid);
    let hwm = vm_kib(pid, "VmHWM:").unwrap_or(0);
    stop_child(&mut roster.child, true);

    let samples = samples
        .lock()
        .map(|v| v.iter().map(|s| (s.at, s.rss_kib, s.fds)).collect::<Vec<_>>())
        .unwrap_or_default();
    println!(
        "\n{:>6} {:>9} {:>8} {:>9} {:>6} {:>9} {:>9} {:>9} {:>5}",
        "minute", "requests", "2xx", "exp. 4xx", "errors", "p50", "p99", "RSS MiB", "fds"
    );
    println!("{}", "-".repeat(80));
    for (min, m) in per_minute.iter_mut() {
        m.lat.sort_unstable();
        // The last sample taken within this minute (or before it).
        let end_of_minute = Duration::from_secs((min + 1) * 60);
        let s = samples.iter().rev().find(|(at, _, _)| *at <= end_of_minute);
        println!(
            "{:>6} {:>9} {:>8} {:>9} {:>6} {:>9} {:>9} {:>9} {:>5}",
            min + 1,
            m.ok + m.expected_4xx + m.errors,
            m.ok,
            m.expected_4xx,
            m.errors,
            fmt_us(pct(&m.lat, 0.50)),
            fmt_us(pct(&m.lat, 0.99)),
            s.map(|(_, r, _)| format!("{:.1}", *r as f64 / 1024.0))
                .unwrap_or_default(),
            s.map(|(_, _, f)| f.to_string()).unwrap_or_default(),
        );
    }
    println!("\nby operation: ok / expected 4xx / unexpected / 5xx / transport");
    for (op, c) in &by_op {
        println!("  {op:<12} {:>7} {:>6} {:>6} {:>6} {:>6}", c[0], c[1], c[2], c[3], c[4]);
    }
    let sum = |i: usize| by_op.values().map(|c| c[i]).sum::<u64>();
    let (ok, exp, unexp, s5, tr) = (sum(0), sum(1), sum(2), sum(3), sum(4));
    let total = ok + exp + unexp + s5 + tr;
    // The reference is minute 5 (after caches and pools warmed up), or half
    // the run for short soaks.
    let ref_at = Duration::from_secs(300).min(duration / 2);
    let ref_rss = samples
        .iter()
        .find(|(at, _, _)| *at >= ref_at)
        .map_or(end_rss, |(_, r, _)| *r);
    let growth = if ref_rss > 0 {
        (end_rss as f64 - ref_rss as f64) / ref_rss as f64 * 100.0
    } else {
        0.0
    };
    let first_fds = samples.first().map_or(0, |(_, _, f)| *f);
    println!(
        "\nsummary: {total} requests in {:.0} s ({:.1}/s): {ok} 2xx, {exp} expected 4xx, {unexp} unexpected non-2xx, \
         {s5} 5xx, {tr} transport errors",
        duration.as_secs_f64(),
        total as f64 / duration.as_secs_f64().max(1.0)
    );
    println!(
        "RSS at {:.0} min {:.1} MiB, at end {:.1} MiB: {growth:+.1}% (peak {:.1} MiB); fds first sample {first_fds}, end {end_fds}",
        ref_at.as_secs_f64() / 60.0,
        ref_rss as f64 / 1024.0,
        end_rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    // The pass/fail criterion: growth over the second half. Growth from
    // minute 5 includes redb's page cache (32 MiB) filling as the database
    // grows, which is bounded; a leak keeps growing in the second half too.
    let mut half_growth = 0.0;
    if let Some((_, half_rss, _)) = samples.iter().find(|(at, _, _)| *at >= duration / 2)
        && *half_rss > 0
    {
        half_growth = (end_rss as f64 - *half_rss as f64) / *half_rss as f64 * 100.0;
        println!(
            "RSS over the second half: {:.1} MiB at {:.0} min -> {:.1} MiB at end ({half_growth:+.1}%)",
            *half_rss as f64 / 1024.0,
            (duration / 2).as_secs_f64() / 60.0,
            end_rss as f64 / 1024.0,
        );
    }
    let mut failed = Vec::new();
    if s5 > 0 {
        failed.push(format!("{s5} 5xx answers"));
    }
    if unexp + tr > 0 {
        failed.push(format!("{unexp} unexpected answers and {tr} transport errors"));
    }
    if half_growth > 10.0 {
        failed.push(format!(
            "RSS grew {half_growth:.1}% over the second half (limit 10%; {growth:+.1}% since minute 5)"
        ));
    }
    println!(
        "soak took {:.0} s in all; roster log: {}",
        run_start.elapsed().as_secs_f64(),
        roster.log.display()
    );
    if failed.is_empty() {
        println!("PASS");
        let _ = std::fs::remove_dir_all(&dir);
        std::process::ExitCode::SUCCESS
    } else {
        println!("FAIL: {}", failed.join("; "));
        std::process::ExitCode::FAILURE
    }
}
