//! The admin console (`/admin`) over real HTTPS with a cookie jar, no
//! browser: who may use it, CSRF on every form, inviting by hand, member
//! changes under the workspace rules (last admin, deprovisioning revokes
//! access, stale pages refused), managed members and teams (SPEC rule 8),
//! paged listings, IdP connections and SCIM tokens, OAuth clients, domains,
//! the audit log, sync errors, output escaping and security headers. Every
//! test checks the store through `s.app`, not only the page.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use roster::workspace::model::{Actor, AuditEntry, ClientKind, MailKind, Management, Member, Role, Status, Team};
use roster::workspace::teams::PersonOp;
use serde_json::json;
use uuid::Uuid;

use crate::oauth::{ADMIN, PASSWORD, admin_web, enc, set_password, sign_in};
use crate::scim_support::{
    admin, audit, connection, create, domain, link_count, mails, member, patch, scim, sync_errors, user_body, uuid_of,
};
use crate::support::{Page, TestServer, Web, html_unescape};

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const XSS_SCRIPT: &str = "<script>alert(1)</script>";
const XSS_ATTR: &str = "\"><img src=x onerror=alert(1)>";
const EXPIRED: &str = "This form has expired";
const ADMINS_ONLY: &str = "Admins only";

// ---------------------------------------------------------------- helpers

/// GETs `path` and insists on 200.
async fn ok_page(web: &mut Web<'_>, path: &str) -> Page {
    let p = web.get(path).await;
    assert_eq!(p.status, 200, "GET {path}: {p}");
    p
}

/// This session's CSRF token, as the console's forms carry it.
async fn csrf_of(web: &mut Web<'_>) -> String {
    ok_page(web, "/admin/members")
        .await
        .input("csrf")
        .expect("console pages carry a csrf field")
}

/// A cookie jar signed in as `email` (an existing, active member).
async fn web_as<'a>(s: &'a TestServer, email: &str) -> Web<'a> {
    set_password(s, email, PASSWORD).await;
    let mut web = Web::new(s);
    let r = sign_in(&mut web, email, PASSWORD, "/").await;
    assert_eq!(r.status, 303, "sign-in of {email}: {r}");
    web
}

async fn sessions_of(s: &TestServer, id: Uuid) -> usize {
    s.app
        .store
        .read(move |txn| roster::store::sessions::count_for_member(txn, id))
        .await
        .unwrap()
}

async fn teams_all(s: &TestServer) -> Vec<Team> {
    roster::workspace::teams::list(&s.app).await.unwrap()
}

async fn team_by_id(s: &TestServer, id: Uuid) -> Option<Team> {
    s.app
        .store
        .read(move |txn| roster::store::teams::get(txn, id))
        .await
        .unwrap()
}

async fn team_members(s: &TestServer, id: Uuid) -> BTreeSet<Uuid> {
    s.app
        .store
        .read(move |txn| roster::store::teams::member_ids(txn, id))
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Every member row, removed ones included.
async fn all_members(s: &TestServer) -> Vec<Member> {
    s.app
        .store
        .read(|txn| {
            let mut out = Vec::new();
            roster::store::members::scan_all_after(txn, None, |m| {
                out.push(m);
                true
            })?;
            Ok(out)
        })
        .await
        .unwrap()
}

/// Everything a console form could change, to compare before and after a
/// refused request.
async fn snapshot(s: &TestServer) -> String {
    let members = all_members(s).await;
    let teams = teams_all(s).await;
    let connections = roster::workspace::connections::list(&s.app).await.unwrap();
    let clients = roster::workspace::oauth::list(&s.app).await.unwrap();
    let ws = roster::workspace::get(&s.app.store).await.unwrap();
    format!(
        "audit={}\nmails={}\nmembers={members:?}\nteams={teams:?}\nconnections={connections:?}\nclients={clients:?}\nworkspace={ws:?}",
        audit(s).await.len(),
        mails(s).await.len(),
    )
}

fn admin_actor(m: &Member) -> Actor {
    Actor::Admin {
        id: m.id,
        email: m.email.clone(),
    }
}

/// Audit rows with `action` on `target`.
fn rows_of<'a>(rows: &'a [AuditEntry], action: &str, target: &str) -> Vec<&'a AuditEntry> {
    rows.iter()
        .filter(|e| e.action == action && e.target == target)
        .collect()
}

/// Asserts exactly one audit row `action` on `target` by `actor`.
#[track_caller]
fn assert_audited(rows: &[AuditEntry], action: &str, target: &str, actor: &Actor) {
    let hits = rows_of(rows, action, target);
    assert!(
        hits.iter().any(|e| &e.actor == actor),
        "want a {action} row on {target} by {actor:?}; rows: {hits:#?}"
    );
}

/// A member built in memory (for seeding straight into the store).
fn new_member(s: &TestServer, email: &str, name: Option<&str>, role: Role, status: Status, m: Management) -> Member {
    let now = s.app.clock.now_ms();
    Member {
        id: roster::clock::new_uuid(&roster::clock::SystemRng::default()),
        seq: 0,
        email: email.to_owned(),
        display_name: name.map(str::to_owned),
        given_name: None,
        family_name: None,
        locale: None,
        external_id: None,
        role,
        status,
        accepted: status != Status::Invited,
        management: m,
        password_hash: None,
        attributes: serde_json::Map::new(),
        created_ms: now,
        updated_ms: now,
        version: 1,
    }
}

/// Writes members straight into the store in one transaction (listing
/// positions assigned in order). Much faster than SCIM for thousands.
async fn seed(s: &TestServer, members: Vec<Member>) -> Vec<Member> {
    s.app
        .store
        .write(move |txn| {
            let mut out = Vec::with_capacity(members.len());
            for m in &members {
                let mut m = m.clone();
                m.seq = roster::store::members::next_seq(txn)?;
                roster::store::members::put(txn, &m)?;
                out.push(m);
            }
            Ok(Ok::<_, ()>(out))
        })
        .await
        .unwrap()
        .unwrap()
}

async fn seed_one(s: &TestServer, email: &str, role: Role, status: Status) -> Member {
    let m = new_member(s, email, None, role, status, Management::Unmanaged);
    seed(s, vec![m]).await.remove(0)
}

/// The member ids a page links to (`/admin/members/<uuid>`), in order.
fn member_ids(p: &Page) -> Vec<String> {
    linked_ids(p, "/admin/members/")
}

/// The ids a page links to under `prefix` (`/admin/teams/<uuid>`, ...).
fn linked_ids(p: &Page, prefix: &str) -> Vec<String> {
    let needle = format!("href=\"{prefix}");
    let mut out = Vec::new();
    let mut rest = p.text.as_str();
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        if rest.len() > 36 && rest.as_bytes()[36] == b'"' && Uuid::parse_str(&rest[..36]).is_ok() {
            out.push(rest[..36].to_owned());
        }
    }
    out
}

/// The (unescaped) `href` of the page's `rel="next"` link.
fn next_href(p: &Page) -> Option<String> {
    let at = p.text.find("rel=\"next\"")?;
    let start = p.text[..at].rfind("<a ")?;
    let tag = &p.text[start..at];
    let h = tag.find("href=\"")? + "href=\"".len();
    let end = h + tag[h..].find('"')?;
    Some(html_unescape(&tag[h..end]))
}

/// Follows `rel="next"` links from `first`; returns the member ids of all
/// pages in order and how many pages there were.
async fn walk_members(web: &mut Web<'_>, first: &str) -> (Vec<String>, usize) {
    walk(web, first, "/admin/members/").await
}

/// Follows `rel="next"` links from `first`, collecting the ids linked
/// under `prefix` on every page.
async fn walk(web: &mut Web<'_>, first: &str, prefix: &str) -> (Vec<String>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    let mut at = Some(first.to_owned());
    while let Some(path) = at {
        let p = ok_page(web, &path).await;
        pages += 1;
        assert!(pages < 500, "pager does not end");
        ids.extend(linked_ids(&p, prefix));
        at = next_href(&p);
    }
    (ids, pages)
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    html_unescape(out.trim())
}

/// The `<tr>` holding `needle`.
fn row_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    let at = text.find(needle)?;
    let start = text[..at].rfind("<tr")?;
    let end = at + text[at..].find("</tr>")?;
    Some(&text[start..end])
}

/// Text of each `<td>` of a row.
fn cells(row: &str) -> Vec<String> {
    row.split("<td")
        .skip(1)
        .map(|c| {
            let body = &c[c.find('>').map(|i| i + 1).unwrap_or(0)..];
            strip_tags(body.split("</td>").next().unwrap_or_default())
        })
        .collect()
}

/// The `value` of the input with `id="ID"`.
fn input_by_id(p: &Page, id: &str) -> Option<String> {
    let at = p.text.find(&format!("id=\"{id}\""))?;
    let start = p.text[..at].rfind('<')?;
    let end = at + p.text[at..].find('>')?;
    let tag = &p.text[start..end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let e = v + tag[v..].find('"')?;
    Some(html_unescape(&tag[v..e]))
}

/// Audit page rows as (time, actor, action, target, detail).
fn audit_rows(p: &Page) -> Vec<[String; 5]> {
    let Some(body) = p.text.split("<tbody>").nth(1) else {
        return Vec::new();
    };
    let body = body.split("</tbody>").next().unwrap_or_default();
    body.split("<tr>")
        .filter(|r| r.contains("class=\"nowrap\""))
        .map(|r| {
            let c = cells(r);
            assert_eq!(c.len(), 5, "audit row: {r}");
            [c[0].clone(), c[1].clone(), c[2].clone(), c[3].clone(), c[4].clone()]
        })
        .collect()
}

/// The `/path?token=...` of the newest mail of `kind` to `to`.
async fn link_in_mail(s: &TestServer, to: &str, kind: MailKind, path: &str) -> String {
    let m = mails(s)
        .await
        .into_iter()
        .find(|m| m.to == to && m.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} mail to {to}"));
    let prefix = format!("{}{path}?token=", s.app.config.public_url);
    let at = m
        .body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {:?}", m.body));
    let url: String = m.body[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    url[s.app.config.public_url.len()..].to_owned()
}

async fn mail_count(s: &TestServer, to: &str, kind: MailKind) -> usize {
    mails(s).await.iter().filter(|m| m.to == to && m.kind == kind).count()
}

/// The member id in a `/admin/members/<id>?done=...` redirect.
#[track_caller]
fn member_id_in(location: &str) -> Uuid {
    let rest = location
        .strip_prefix("/admin/members/")
        .unwrap_or_else(|| panic!("not a member page: {location}"));
    Uuid::parse_str(&rest[..36]).unwrap_or_else(|_| panic!("no id in {location}"))
}

#[track_caller]
fn team_id_in(location: &str) -> Uuid {
    let rest = location
        .strip_prefix("/admin/teams/")
        .unwrap_or_else(|| panic!("not a team page: {location}"));
    Uuid::parse_str(&rest[..36]).unwrap_or_else(|_| panic!("no id in {location}"))
}

/// POSTs the invitation form.
async fn invite(web: &mut Web<'_>, email: &str, name: &str, role: &str) -> Page {
    let csrf = ok_page(web, "/admin/members/new").await.input("csrf").unwrap();
    web.post_form(
        "/admin/members/new",
        &[
            ("csrf", &csrf),
            ("email", email),
            ("display_name", name),
            ("role", role),
        ],
    )
    .await
}

/// Opens the member page (for its csrf and version) and POSTs `action`.
async fn act(web: &mut Web<'_>, id: Uuid, action: &str, extra: &[(&str, &str)]) -> Page {
    let path = format!("/admin/members/{id}");
    let p = ok_page(web, &path).await;
    let csrf = p.input("csrf").unwrap();
    let version = p.input("version").unwrap_or_else(|| panic!("no version field: {p}"));
    let mut pairs = vec![
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("action", action),
    ];
    pairs.extend_from_slice(extra);
    web.post_form(&path, &pairs).await
}

/// POSTs a console form with this session's csrf.
async fn post(web: &mut Web<'_>, path: &str, pairs: &[(&str, &str)]) -> Page {
    let csrf = csrf_of(web).await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(pairs);
    web.post_form(path, &all).await
}

#[track_caller]
fn assert_see(p: &Page, location: &str) {
    assert_eq!(p.status, 303, "want 303 to {location}: {p}");
    assert_eq!(p.location(), location, "{p}");
}

/// A client-credentials token for a service client (HTTP Basic auth).
async fn client_credentials(s: &TestServer, id: &str, secret: &str) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
    let r = s
        .send(
            hyper::Request::post("/oauth/token")
                .header("host", "localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", format!("Basic {basic}"))
                .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                    b"grant_type=client_credentials",
                )))
                .unwrap(),
        )
        .await;
    let text = r.text();
    assert_eq!(r.status, 200, "token: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["access_token"].as_str().expect("access_token").to_owned()
}

fn ymd(ms: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

const DAY_MS: i64 = 86_400_000;

type MemberTest = Box<dyn Fn(&Member) -> bool>;

// ---------------------------------------------------------------- 1. access

#[tokio::test]
async fn console_requires_sign_in_and_comes_back_after_it() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let before = snapshot(&s).await;
    let mut web = Web::new(&s);
    let r = web.get("/admin/members").await;
    assert_see(&r, "/login?next=%2Fadmin%2Fmembers");
    assert!(!r.text.contains(ADMIN), "{r}");
    let r = web.get("/admin/audit?actor=x&target=y").await;
    assert_see(&r, "/login?next=%2Fadmin%2Faudit%3Factor%3Dx%26target%3Dy");
    for path in ["/admin", "/admin/teams", "/admin/connections", "/admin/sync-errors"] {
        let r = web.get(path).await;
        assert_eq!(r.status, 303, "{path}: {r}");
        assert!(r.location().starts_with("/login?next="), "{path}: {r}");
    }
    // A POST without a session changes nothing either.
    let r = web
        .post_form("/admin/teams", &[("csrf", "x"), ("name", "Sneaky")])
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert!(r.location().starts_with("/login"), "{r}");
    assert_eq!(snapshot(&s).await, before);

    // Signing in with that `next` lands on the console.
    let r = sign_in(&mut web, ADMIN, PASSWORD, "/admin/members").await;
    assert_see(&r, "/admin/members");
    let p = ok_page(&mut web, "/admin/members").await;
    assert!(p.text.contains("<h1>Members</h1>"), "{p}");
    assert!(p.text.contains(ADMIN), "{p}");
    // `/admin` itself is the getting-started overview (issue 18).
    let p = ok_page(&mut web, "/admin").await;
    assert!(p.text.contains("<h1>Getting started</h1>"), "{p}");
}

#[tokio::test]
async fn a_signed_in_non_admin_gets_403_on_every_console_route() {
    let s = TestServer::start().await;
    let me = seed_one(&s, "mia@example.com", Role::Member, Status::Active).await;
    let team = roster::workspace::teams::person_create(&s.app, Actor::Operator, "Ops")
        .await
        .unwrap();
    let (_, conn) = connection(&s, "Okta").await;
    let mut web = web_as(&s, "mia@example.com").await;
    let home = ok_page(&mut web, "/").await;
    let csrf = home.input("csrf").expect("home has the session csrf");
    let before = snapshot(&s).await;

    let member_page = format!("/admin/members/{}", me.id);
    let admin_page = format!("/admin/members/{}", admin(&s).await.id);
    let team_page = format!("/admin/teams/{}", team.id);
    let gets = [
        "/admin",
        "/admin/members",
        "/admin/members?status=removed",
        "/admin/members/new",
        &member_page,
        &admin_page,
        "/admin/teams",
        &team_page,
        "/admin/connections",
        "/admin/clients",
        "/admin/domains",
        "/admin/audit",
        "/admin/sync-errors",
        "/admin/mail",
    ];
    for path in gets {
        let r = web.get(path).await;
        assert_eq!(r.status, 403, "GET {path}: {r}");
        assert!(r.text.contains(ADMINS_ONLY), "GET {path}: {r}");
        assert!(r.text.contains("for workspace admins"), "GET {path}: {r}");
        assert!(r.header("content-type").unwrap_or_default().starts_with("text/html"));
        assert!(!r.text.contains(ADMIN), "GET {path} leaks the admin: {r}");
    }
    let conn_id = conn.to_string();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/members/new".into(),
            vec![("email", "x@example.com"), ("role", "admin")],
        ),
        (
            member_page.clone(),
            vec![("action", "role"), ("role", "admin"), ("version", "1")],
        ),
        (admin_page.clone(), vec![("action", "suspend")]),
        ("/admin/teams".into(), vec![("name", "Mine")]),
        (team_page.clone(), vec![("action", "delete"), ("confirm", "yes")]),
        (
            "/admin/connections".into(),
            vec![("action", "create"), ("name", "Mine")],
        ),
        (
            "/admin/connections".into(),
            vec![("action", "revoke"), ("id", &conn_id)],
        ),
        (
            "/admin/clients".into(),
            vec![
                ("action", "register"),
                ("name", "Mine"),
                ("kind", "confidential"),
                ("redirect_uris", "https://evil.example/cb"),
            ],
        ),
        (
            "/admin/domains".into(),
            vec![("action", "add"), ("name", "evil.example"), ("verified", "yes")],
        ),
    ];
    for (path, pairs) in posts {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(pairs.iter().copied());
        let r = web.post_form(&path, &all).await;
        assert_eq!(r.status, 403, "POST {path} {pairs:?}: {r}");
        assert!(r.text.contains(ADMINS_ONLY), "POST {path}: {r}");
    }
    assert_eq!(snapshot(&s).await, before, "a non-admin changed something");
    assert_eq!(member(&s, me.id).await.unwrap().role, Role::Member);
}

#[tokio::test]
async fn suspended_or_demoted_admins_lose_the_console_at_once() {
    let s = TestServer::start().await;
    let bea = seed_one(&s, "bea@example.com", Role::Admin, Status::Active).await;
    let cal = seed_one(&s, "cal@example.com", Role::Admin, Status::Active).await;
    let mut a = admin_web(&s).await;
    let mut b = web_as(&s, "bea@example.com").await;
    let mut c = web_as(&s, "cal@example.com").await;
    let b_csrf = csrf_of(&mut b).await;
    let c_csrf = csrf_of(&mut c).await;
    assert_eq!(sessions_of(&s, bea.id).await, 1);

    // Suspending Bea ends her session in the same change.
    let r = act(&mut a, bea.id, "suspend", &[]).await;
    assert_see(&r, &format!("/admin/members/{}?done=suspended", bea.id));
    assert_eq!(sessions_of(&s, bea.id).await, 0);
    let r = b.get("/admin/members").await;
    assert_see(&r, "/login?next=%2Fadmin%2Fmembers");
    let before = snapshot(&s).await;
    let r = b
        .post_form("/admin/teams", &[("csrf", &b_csrf), ("name", "From Bea")])
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert!(r.location().starts_with("/login"), "{r}");
    assert_eq!(snapshot(&s).await, before);

    // Demoting Cal keeps his session (he is still a member) but not the console.
    let r = act(&mut a, cal.id, "role", &[("role", "member")]).await;
    assert_see(&r, &format!("/admin/members/{}?done=role", cal.id));
    assert_eq!(sessions_of(&s, cal.id).await, 1);
    let before = snapshot(&s).await;
    let r = c.get("/admin/members").await;
    assert_eq!(r.status, 403, "{r}");
    assert!(r.text.contains(ADMINS_ONLY), "{r}");
    let r = c
        .post_form("/admin/teams", &[("csrf", &c_csrf), ("name", "From Cal")])
        .await;
    assert_eq!(r.status, 403, "{r}");
    assert_eq!(snapshot(&s).await, before);
    assert_eq!(ok_page(&mut c, "/").await.status, 200, "still signed in as a member");
}

// ---------------------------------------------------------------- 2. CSRF

#[tokio::test]
async fn every_console_form_refuses_a_missing_or_wrong_csrf_token() {
    let s = TestServer::start().await;
    let m = seed_one(&s, "tom@example.com", Role::Member, Status::Active).await;
    let team = roster::workspace::teams::person_create(&s.app, Actor::Operator, "Ops")
        .await
        .unwrap();
    let (_, conn) = connection(&s, "Okta").await;
    let client = roster::workspace::oauth::register(
        &s.app,
        "Okta app",
        vec!["https://okta.example/cb".into()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();
    domain(&s, "old.example", false).await;
    let mut web = admin_web(&s).await;
    let mine = csrf_of(&mut web).await;
    // A second session of the same admin has its own token: not valid here.
    let mut other = Web::new(&s);
    assert_eq!(sign_in(&mut other, ADMIN, PASSWORD, "/").await.status, 303);
    let theirs = csrf_of(&mut other).await;
    assert_ne!(mine, theirs);

    let member_path = format!("/admin/members/{}", m.id);
    let team_path = format!("/admin/teams/{}", team.id);
    let conn_id = conn.to_string();
    let client_id = client.client.client_id.clone();
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/admin/members/new",
            vec![("email", "new@example.com"), ("display_name", "New"), ("role", "admin")],
        ),
        (&member_path, vec![("action", "suspend"), ("version", "1")]),
        (
            &member_path,
            vec![("action", "role"), ("role", "admin"), ("version", "1")],
        ),
        (&member_path, vec![("action", "send_link"), ("version", "1")]),
        ("/admin/teams", vec![("name", "New team")]),
        (&team_path, vec![("action", "rename"), ("name", "Renamed")]),
        (&team_path, vec![("action", "add"), ("email", "tom@example.com")]),
        (&team_path, vec![("action", "delete"), ("confirm", "yes")]),
        ("/admin/connections", vec![("action", "create"), ("name", "Entra")]),
        ("/admin/connections", vec![("action", "revoke"), ("id", &conn_id)]),
        (
            "/admin/clients",
            vec![
                ("action", "register"),
                ("name", "Other"),
                ("kind", "confidential"),
                ("redirect_uris", "https://other.example/cb"),
            ],
        ),
        ("/admin/clients", vec![("action", "rotate"), ("id", &client_id)]),
        ("/admin/clients", vec![("action", "remove"), ("id", &client_id)]),
        (
            "/admin/domains",
            vec![("action", "add"), ("name", "new.example"), ("verified", "yes")],
        ),
        ("/admin/domains", vec![("action", "verify"), ("name", "old.example")]),
        ("/admin/domains", vec![("action", "remove"), ("name", "old.example")]),
    ];
    let before = snapshot(&s).await;
    let last = if mine.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &mine[..mine.len() - 1]);
    assert_ne!(wrong, mine);
    let bad_tokens: [Option<&str>; 5] = [None, Some(""), Some("nope"), Some(&wrong), Some(&theirs)];
    for (path, pairs) in &forms {
        for token in bad_tokens {
            let mut all = Vec::new();
            if let Some(t) = token {
                all.push(("csrf", t));
            }
            all.extend(pairs.iter().copied());
            let r = web.post_form(path, &all).await;
            assert_eq!(r.status, 403, "POST {path} {pairs:?} csrf={token:?}: {r}");
            assert!(r.text.contains(EXPIRED), "POST {path}: {r}");
            assert!(!r.text.contains("rst_"), "no secret on a refused form: {r}");
        }
    }
    assert_eq!(snapshot(&s).await, before, "a forged form changed the store");

    // The right token works (so the refusals above were about the token).
    let r = web
        .post_form("/admin/teams", &[("csrf", &mine), ("name", "New team")])
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert!(teams_all(&s).await.iter().any(|t| t.name == "New team"));
}

// ---------------------------------------------------------------- 3. invite by hand

#[tokio::test]
async fn invite_on_an_unverified_domain_sends_an_invitation() {
    let s = TestServer::start().await;
    let me = admin(&s).await;
    let mut web = admin_web(&s).await;
    let email = "ivy@unverified.example";
    let r = invite(&mut web, email, "Ivy Example", "member").await;
    assert_eq!(r.status, 303, "{r}");
    let id = member_id_in(&r.location());
    assert_eq!(r.location(), format!("/admin/members/{id}?done=invited"));

    let m = member(&s, id).await.expect("member stored");
    assert_eq!(m.email, email);
    assert_eq!(m.display_name.as_deref(), Some("Ivy Example"));
    assert_eq!(m.status, Status::Invited);
    assert_eq!(m.role, Role::Member);
    assert_eq!(m.management, Management::Unmanaged);
    assert!(!m.accepted);
    assert_eq!(mail_count(&s, email, MailKind::Invite).await, 1);
    assert_eq!(mail_count(&s, email, MailKind::Welcome).await, 0);
    let link = link_in_mail(&s, email, MailKind::Invite, "/invite/accept").await;
    let accept = Web::new(&s).get(&link).await;
    assert_eq!(accept.status, 200, "the invitation link works: {accept}");
    assert_eq!(link_count(&s, id).await, 1);
    let rows = audit(&s).await;
    assert_audited(&rows, "member.invited", &format!("member:{id}"), &admin_actor(&me));

    let p = ok_page(&mut web, &r.location()).await;
    assert!(p.text.contains("Invitation sent"), "{p}");
    assert!(p.text.contains(email) && p.text.contains(">invited<"), "{p}");
    let list = ok_page(&mut web, "/admin/members").await;
    assert!(member_ids(&list).contains(&id.to_string()), "{list}");
}

#[tokio::test]
async fn invite_on_a_verified_domain_adds_the_member_at_once() {
    let s = TestServer::start().await;
    let me = admin(&s).await;
    let mut web = admin_web(&s).await;
    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "add"), ("name", "verified.example"), ("verified", "yes")],
    )
    .await;
    assert_see(&r, "/admin/domains?done=domain_added");

    let email = "val@verified.example";
    let r = invite(&mut web, email, "", "admin").await;
    assert_eq!(r.status, 303, "{r}");
    let id = member_id_in(&r.location());
    assert_eq!(r.location(), format!("/admin/members/{id}?done=added"));
    let m = member(&s, id).await.unwrap();
    assert_eq!((m.status, m.role, m.accepted), (Status::Active, Role::Admin, true));
    assert_eq!(m.management, Management::Unmanaged);
    assert_eq!(m.display_name, None, "an empty name is no name");
    assert_eq!(mail_count(&s, email, MailKind::AddedToWorkspace).await, 1);
    assert_eq!(mail_count(&s, email, MailKind::Welcome).await, 1);
    assert_eq!(mail_count(&s, email, MailKind::Invite).await, 0);
    let link = link_in_mail(&s, email, MailKind::Welcome, "/password/set").await;
    assert_eq!(Web::new(&s).get(&link).await.status, 200);
    let rows = audit(&s).await;
    assert_audited(&rows, "member.created", &format!("member:{id}"), &admin_actor(&me));
    let p = ok_page(&mut web, &r.location()).await;
    assert!(p.text.contains("Member added"), "{p}");
}

#[tokio::test]
async fn invite_refuses_existing_and_bad_emails_keeping_the_form() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let r = invite(&mut web, "kim@example.com", "Kim", "member").await;
    assert_eq!(r.status, 303, "{r}");
    let before = snapshot(&s).await;

    // Same email, other case: a conflict, with the values kept.
    let r = invite(&mut web, "KIM@Example.com", "Kim Again", "admin").await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("is already a member"), "{r}");
    assert!(r.text.contains("role=\"alert\""), "{r}");
    assert_eq!(r.input("email").as_deref(), Some("KIM@Example.com"));
    assert_eq!(r.input("display_name").as_deref(), Some("Kim Again"));
    assert!(r.text.contains("value=\"admin\" checked"), "role kept: {r}");
    // The admin too.
    let r = invite(&mut web, ADMIN, "", "member").await;
    assert_eq!(r.status, 409, "{r}");

    for bad in ["not-an-email", "two@@example.com", "a b@example.com", ""] {
        let r = invite(&mut web, bad, "Someone", "member").await;
        assert_eq!(r.status, 400, "{bad:?}: {r}");
        assert!(r.text.contains("is not an email address"), "{bad:?}: {r}");
        assert_eq!(r.input("email").as_deref(), Some(bad));
        assert_eq!(r.input("display_name").as_deref(), Some("Someone"));
    }
    assert_eq!(snapshot(&s).await, before, "a refused invitation changed the store");
}

// ---------------------------------------------------------------- 4. member changes

#[tokio::test]
async fn role_suspend_restore_remove_apply_with_audit_rows() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    domain(&s, "example.com", true).await;
    let mut web = admin_web(&s).await;
    let r = invite(&mut web, "ann@example.com", "Ann", "member").await;
    let id = member_id_in(&r.location());
    let target = format!("member:{id}");
    let mut ann = web_as(&s, "ann@example.com").await;
    assert_eq!(sessions_of(&s, id).await, 1);
    assert_eq!(link_count(&s, id).await, 1, "the welcome link is open");

    // Role to admin and back.
    let r = act(&mut web, id, "role", &[("role", "admin")]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=role"));
    assert_eq!(member(&s, id).await.unwrap().role, Role::Admin);
    assert_eq!(
        ok_page(&mut ann, "/admin/members").await.status,
        200,
        "Ann is an admin now"
    );
    let r = act(&mut web, id, "role", &[("role", "member")]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=role"));
    assert_eq!(member(&s, id).await.unwrap().role, Role::Member);
    let rows = audit(&s).await;
    let changes: Vec<_> = rows_of(&rows, "member.role_changed", &target)
        .into_iter()
        .filter(|e| e.actor == me)
        .collect();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    // Same role again: nothing changes, no audit row.
    let n = audit(&s).await.len();
    let r = act(&mut web, id, "role", &[("role", "member")]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=unchanged"));
    assert_eq!(audit(&s).await.len(), n);

    // Suspend: status, sessions and links in one change.
    let r = act(&mut web, id, "suspend", &[]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=suspended"));
    let m = member(&s, id).await.unwrap();
    assert_eq!(m.status, Status::Suspended);
    assert_eq!(sessions_of(&s, id).await, 0, "sessions revoked");
    assert_eq!(link_count(&s, id).await, 0, "links revoked");
    assert_audited(&audit(&s).await, "member.suspended", &target, &me);
    let r = ann.get("/").await;
    assert_eq!(r.status, 303, "Ann's session ended: {r}");
    let p = ok_page(&mut web, &format!("/admin/members/{id}?done=suspended")).await;
    assert!(p.text.contains("Member suspended"), "{p}");
    assert!(p.text.contains(">Restore</button>"), "{p}");

    // Restore: active again (she was added on a verified domain).
    let r = act(&mut web, id, "restore", &[]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=restored"));
    assert_eq!(member(&s, id).await.unwrap().status, Status::Active);
    assert_audited(&audit(&s).await, "member.restored", &target, &me);

    // Remove: hidden from the list, found with the filter, restorable.
    let r = act(&mut web, id, "remove", &[]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=removed"));
    assert_eq!(member(&s, id).await.unwrap().status, Status::Removed);
    assert_audited(&audit(&s).await, "member.removed", &target, &me);
    let list = ok_page(&mut web, "/admin/members").await;
    assert!(!member_ids(&list).contains(&id.to_string()), "{list}");
    let list = ok_page(&mut web, "/admin/members?q=ann").await;
    assert!(
        !member_ids(&list).contains(&id.to_string()),
        "search skips removed: {list}"
    );
    let list = ok_page(&mut web, "/admin/members?status=removed").await;
    assert_eq!(member_ids(&list), vec![id.to_string()], "{list}");
    let p = ok_page(&mut web, &format!("/admin/members/{id}")).await;
    assert!(p.text.contains(">removed<"), "{p}");
    assert!(
        !p.text.contains("value=\"role\""),
        "no role form for a removed member: {p}"
    );
    let r = act(&mut web, id, "restore", &[]).await;
    assert_see(&r, &format!("/admin/members/{id}?done=restored"));
    assert_eq!(member(&s, id).await.unwrap().status, Status::Active);
    let list = ok_page(&mut web, "/admin/members").await;
    assert!(member_ids(&list).contains(&id.to_string()), "{list}");
    assert_eq!(
        rows_of(&audit(&s).await, "member.restored", &target).len(),
        2,
        "one row per restore"
    );
}

#[tokio::test]
async fn restore_returns_a_never_accepted_member_to_invited() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let r = invite(&mut web, "neo@unverified.example", "", "member").await;
    let id = member_id_in(&r.location());
    assert_eq!(link_count(&s, id).await, 1);
    assert_see(
        &act(&mut web, id, "suspend", &[]).await,
        &format!("/admin/members/{id}?done=suspended"),
    );
    assert_eq!(member(&s, id).await.unwrap().status, Status::Suspended);
    assert_eq!(link_count(&s, id).await, 0, "the invitation link is revoked");
    let link = link_in_mail(&s, "neo@unverified.example", MailKind::Invite, "/invite/accept").await;
    assert_eq!(Web::new(&s).get(&link).await.status, 404);
    assert_see(
        &act(&mut web, id, "restore", &[]).await,
        &format!("/admin/members/{id}?done=restored"),
    );
    assert_eq!(member(&s, id).await.unwrap().status, Status::Invited);
    // Removed, then restored: still invited.
    act(&mut web, id, "remove", &[]).await;
    act(&mut web, id, "restore", &[]).await;
    assert_eq!(member(&s, id).await.unwrap().status, Status::Invited);
}

#[tokio::test]
async fn a_stale_page_is_refused_without_change() {
    let s = TestServer::start().await;
    let m = seed_one(&s, "sue@example.com", Role::Member, Status::Active).await;
    let mut web = admin_web(&s).await;
    let path = format!("/admin/members/{}", m.id);
    let stale = ok_page(&mut web, &path).await;
    let (csrf, old) = (stale.input("csrf").unwrap(), stale.input("version").unwrap());
    assert_eq!(old, "1");
    // Someone else changes her meanwhile.
    assert_eq!(act(&mut web, m.id, "role", &[("role", "admin")]).await.status, 303);
    let now = member(&s, m.id).await.unwrap();
    let before = snapshot(&s).await;
    for (action, extra) in [("suspend", None), ("remove", None), ("role", Some("member"))] {
        let mut pairs = vec![("csrf", csrf.as_str()), ("version", old.as_str()), ("action", action)];
        if let Some(r) = extra {
            pairs.push(("role", r));
        }
        let r = web.post_form(&path, &pairs).await;
        assert_eq!(r.status, 409, "{action}: {r}");
        assert!(r.text.contains("changed by someone else"), "{action}: {r}");
        assert_eq!(
            r.input("version").as_deref(),
            Some(now.version.to_string().as_str()),
            "the page shows the current version"
        );
    }
    assert_eq!(snapshot(&s).await, before);
    let after = member(&s, m.id).await.unwrap();
    assert_eq!(
        (after.status, after.role, after.version),
        (Status::Active, Role::Admin, now.version)
    );
}

#[tokio::test]
async fn the_last_active_admin_cannot_demote_suspend_or_remove_themself() {
    let s = TestServer::start().await;
    let me = admin(&s).await;
    let mut web = admin_web(&s).await;
    let p = ok_page(&mut web, &format!("/admin/members/{}", me.id)).await;
    assert!(p.text.contains("You are the workspace's last active admin"), "{p}");
    let before = snapshot(&s).await;
    for (action, extra) in [
        ("role", vec![("role", "member")]),
        ("suspend", vec![]),
        ("remove", vec![]),
    ] {
        let r = act(&mut web, me.id, action, &extra).await;
        assert_eq!(r.status, 409, "{action}: {r}");
        assert!(r.text.contains("last active admin"), "{action}: {r}");
        assert!(r.text.contains("role=\"alert\""), "{action}: {r}");
    }
    assert_eq!(snapshot(&s).await, before, "nothing changed");
    let after = admin(&s).await;
    assert_eq!(
        (after.role, after.status, after.version),
        (Role::Admin, Status::Active, me.version)
    );
    assert_eq!(sessions_of(&s, me.id).await, 1, "still signed in");
    assert_eq!(ok_page(&mut web, "/admin/members").await.status, 200);
}

#[tokio::test]
async fn with_two_admins_either_can_step_down() {
    let s = TestServer::start().await;
    let a = admin(&s).await;
    let bea = seed_one(&s, "bea@example.com", Role::Admin, Status::Active).await;
    let mut wa = admin_web(&s).await;
    let mut wb = web_as(&s, "bea@example.com").await;

    // The first admin makes themself a member.
    let r = act(&mut wa, a.id, "role", &[("role", "member")]).await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(admin(&s).await.role, Role::Member);
    assert_audited(
        &audit(&s).await,
        "member.role_changed",
        &format!("member:{}", a.id),
        &admin_actor(&a),
    );
    assert_eq!(wa.get("/admin/members").await.status, 403, "no console any more");

    // Bea is the last admin now.
    let r = act(&mut wb, bea.id, "suspend", &[]).await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("last active admin"), "{r}");
    assert_eq!(member(&s, bea.id).await.unwrap().status, Status::Active);

    // Bea makes the first admin an admin again; then he removes himself.
    assert_eq!(act(&mut wb, a.id, "role", &[("role", "admin")]).await.status, 303);
    let r = act(&mut wa, a.id, "remove", &[]).await;
    assert_see(&r, "/login");
    assert_eq!(admin(&s).await.status, Status::Removed);
    assert_eq!(sessions_of(&s, a.id).await, 0);
    assert_eq!(wa.get("/admin/members").await.status, 303);
    // Bea restores him: active again.
    assert_eq!(act(&mut wb, a.id, "restore", &[]).await.status, 303);
    let back = admin(&s).await;
    assert_eq!((back.status, back.role), (Status::Active, Role::Admin));
    // And Bea can suspend herself now that she is not the last admin.
    let r = act(&mut wb, bea.id, "suspend", &[]).await;
    assert_see(&r, "/login");
    assert_eq!(member(&s, bea.id).await.unwrap().status, Status::Suspended);
    assert_eq!(sessions_of(&s, bea.id).await, 0);
}

#[tokio::test]
async fn new_links_are_sent_and_replace_the_old_ones() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    domain(&s, "example.com", true).await;
    let mut web = admin_web(&s).await;

    // Active member: a set-password link replaces the welcome link.
    let r = invite(&mut web, "amy@example.com", "", "member").await;
    let amy = member_id_in(&r.location());
    let welcome = link_in_mail(&s, "amy@example.com", MailKind::Welcome, "/password/set").await;
    let p = ok_page(&mut web, &format!("/admin/members/{amy}")).await;
    assert!(p.text.contains("Send set-password link"), "{p}");
    let r = act(&mut web, amy, "send_link", &[]).await;
    assert_see(&r, &format!("/admin/members/{amy}?done=link"));
    assert_eq!(mail_count(&s, "amy@example.com", MailKind::SetPassword).await, 1);
    let fresh = link_in_mail(&s, "amy@example.com", MailKind::SetPassword, "/password/set").await;
    assert_ne!(fresh, welcome);
    assert_eq!(Web::new(&s).get(&welcome).await.status, 404, "old link stops working");
    assert_eq!(Web::new(&s).get(&fresh).await.status, 200);
    assert_eq!(link_count(&s, amy).await, 1);
    assert_audited(
        &audit(&s).await,
        "member.password_link_sent",
        &format!("member:{amy}"),
        &me,
    );

    // Invited member: the invitation is sent again, the old one dies.
    let r = invite(&mut web, "ian@unverified.example", "", "member").await;
    let ian = member_id_in(&r.location());
    let first = link_in_mail(&s, "ian@unverified.example", MailKind::Invite, "/invite/accept").await;
    let p = ok_page(&mut web, &format!("/admin/members/{ian}")).await;
    assert!(p.text.contains("Resend invitation"), "{p}");
    let r = act(&mut web, ian, "send_link", &[]).await;
    assert_see(&r, &format!("/admin/members/{ian}?done=link"));
    assert_eq!(mail_count(&s, "ian@unverified.example", MailKind::Invite).await, 2);
    let second = link_in_mail(&s, "ian@unverified.example", MailKind::Invite, "/invite/accept").await;
    assert_ne!(first, second);
    assert_eq!(Web::new(&s).get(&first).await.status, 404);
    assert_eq!(Web::new(&s).get(&second).await.status, 200);
    assert_eq!(link_count(&s, ian).await, 1);
    assert_audited(&audit(&s).await, "member.invite_resent", &format!("member:{ian}"), &me);
    let p = ok_page(&mut web, &format!("/admin/members/{ian}?done=link")).await;
    assert!(p.text.contains("A new link was sent"), "{p}");

    // A suspended member gets no link.
    act(&mut web, ian, "suspend", &[]).await;
    let n = mails(&s).await.len();
    let r = act(&mut web, ian, "send_link", &[]).await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("restore them before sending a link"), "{r}");
    assert_eq!(mails(&s).await.len(), n);
    assert_eq!(link_count(&s, ian).await, 0);
}

// ---------------------------------------------------------------- 5. managed

#[tokio::test]
async fn managed_members_say_so_and_the_idp_overwrites_admin_changes() {
    let s = TestServer::start().await;
    domain(&s, "corp.example", true).await;
    let (tok, conn) = connection(&s, "Okta").await;
    let body = create(&s, &tok, "mo@corp.example", json!({})).await;
    let id = uuid_of(&body);
    let mut web = admin_web(&s).await;
    let p = ok_page(&mut web, &format!("/admin/members/{id}")).await;
    assert!(p.text.contains("<strong>Managed by Okta.</strong>"), "{p}");
    assert!(p.text.contains("will overwrite your change"), "{p}");
    let list = ok_page(&mut web, "/admin/members?managed=managed").await;
    let row = row_with(&list.text, "mo@corp.example").expect("listed");
    assert_eq!(cells(row)[3], "Okta", "{row}");

    // The admin's change applies...
    let r = act(&mut web, id, "role", &[("role", "admin")]).await;
    assert_eq!(r.status, 303, "{r}");
    let m = member(&s, id).await.unwrap();
    assert_eq!(m.role, Role::Admin);
    assert_eq!(m.management, Management::Managed(conn), "still managed");
    // ...until the IdP's next write.
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(patch(
            json!([{"op": "replace", "path": "roles", "value": [{"value": "member"}]}]),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(member(&s, id).await.unwrap().role, Role::Member);

    let r = act(&mut web, id, "suspend", &[]).await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(member(&s, id).await.unwrap().status, Status::Suspended);
    let r = scim(
        &s,
        "PUT",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(user_body(
            "mo@corp.example",
            json!({"active": true, "displayName": "Mo"}),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    let m = member(&s, id).await.unwrap();
    assert_eq!(m.status, Status::Active);
    assert_eq!(m.display_name.as_deref(), Some("Mo"));
    let p = ok_page(&mut web, &format!("/admin/members/{id}")).await;
    assert!(p.text.contains("<h1>Mo</h1>"), "{p}");
}

#[tokio::test]
async fn managed_teams_say_so_and_the_idp_overwrites_admin_changes() {
    let s = TestServer::start().await;
    domain(&s, "corp.example", true).await;
    let (tok, conn) = connection(&s, "Okta").await;
    let x = uuid_of(&create(&s, &tok, "x@corp.example", json!({})).await);
    let y = seed_one(&s, "y@corp.example", Role::Member, Status::Active).await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "Platform", "members": [{"value": x.to_string()}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let gid = uuid_of(&r.body);
    let mut web = admin_web(&s).await;
    let list = ok_page(&mut web, "/admin/teams").await;
    let row = row_with(&list.text, "Platform").expect("listed");
    assert!(row.contains("badge managed"), "{row}");
    assert_eq!(cells(row)[2], "Okta", "{row}");
    let p = ok_page(&mut web, &format!("/admin/teams/{gid}")).await;
    assert!(p.text.contains("<strong>Managed by Okta.</strong>"), "{p}");
    assert!(p.text.contains("overwritten by the identity provider"), "{p}");

    let path = format!("/admin/teams/{gid}");
    let r = post(&mut web, &path, &[("action", "rename"), ("name", "Platform (local)")]).await;
    assert_see(&r, &format!("{path}?done=team_renamed"));
    let r = post(&mut web, &path, &[("action", "add"), ("email", "y@corp.example")]).await;
    assert_see(&r, &format!("{path}?done=team_added"));
    let t = team_by_id(&s, gid).await.unwrap();
    assert_eq!(t.name, "Platform (local)");
    assert_eq!(t.management, Management::Managed(conn));
    assert_eq!(team_members(&s, gid).await, BTreeSet::from([x, y.id]));

    let r = scim(
        &s,
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "Platform", "members": [{"value": x.to_string()}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    let t = team_by_id(&s, gid).await.unwrap();
    assert_eq!(t.name, "Platform");
    assert_eq!(team_members(&s, gid).await, BTreeSet::from([x]));
    let p = ok_page(&mut web, &path).await;
    assert!(
        p.text.contains("<h1>Platform</h1>") && !p.text.contains("y@corp.example"),
        "{p}"
    );
}

// ---------------------------------------------------------------- 6. listing

#[tokio::test]
async fn member_listing_pages_searches_and_filters_thousands() {
    let started = Instant::now();
    let s = TestServer::start().await;
    let (_, conn) = connection(&s, "Seed IdP").await;
    let mut seeds = Vec::new();
    for i in 0..2500u32 {
        let status = match i % 10 {
            0 => Status::Removed,
            1 => Status::Suspended,
            2 => Status::Invited,
            _ => Status::Active,
        };
        let role = if i % 25 == 2 { Role::Admin } else { Role::Member };
        let managed = if i % 3 == 0 {
            Management::Managed(conn)
        } else {
            Management::Unmanaged
        };
        let name = if i == 1234 {
            "Zelda Quux".to_owned()
        } else {
            format!("Person {i:04}")
        };
        seeds.push(new_member(
            &s,
            &format!("user{i:04}@seed.example"),
            Some(&name),
            role,
            status,
            managed,
        ));
    }
    let seeded = seed(&s, seeds).await;
    let all = all_members(&s).await;
    assert_eq!(all.len(), 2501);
    let ids = |f: &dyn Fn(&Member) -> bool| -> BTreeSet<String> {
        all.iter().filter(|m| f(m)).map(|m| m.id.to_string()).collect()
    };
    let listed = ids(&|m| m.status != Status::Removed);
    assert_eq!(listed.len(), 2251);
    let mut web = admin_web(&s).await;

    // First page: 50 rows, a Next link, the total.
    let p = ok_page(&mut web, "/admin/members").await;
    assert_eq!(member_ids(&p).len(), 50, "{p}");
    assert!(p.text.contains("1–50 of 2251"), "{p}");
    assert!(next_href(&p).is_some(), "{p}");
    assert!(!p.text.contains("rel=\"prev\""), "{p}");

    // Walking Next lists every listed member once, in creation order.
    let (walked, pages) = walk_members(&mut web, "/admin/members").await;
    assert_eq!(pages, 46);
    let unique: BTreeSet<String> = walked.iter().cloned().collect();
    assert_eq!(unique.len(), walked.len(), "duplicates across pages");
    assert_eq!(unique, listed, "missed or extra members");
    let mut by_seq: Vec<&Member> = all.iter().filter(|m| m.status != Status::Removed).collect();
    by_seq.sort_by_key(|m| m.seq);
    let expected: Vec<String> = by_seq.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(walked, expected, "creation order");
    // A later page has Previous.
    let p = ok_page(&mut web, "/admin/members?from=100").await;
    assert!(p.text.contains("101–150 of 2251"), "{p}");
    assert_eq!(
        next_href(&p).as_deref(),
        Some("/admin/members?q=&status=&role=&managed=&from=150")
    );
    assert!(p.text.contains("from=50\" rel=\"prev\""), "{p}");

    // Search by email fragment and by display name (case-insensitive).
    let zelda = seeded.iter().find(|m| m.email == "user1234@seed.example").unwrap();
    for q in ["user1234@", "USER1234", "zelda quux", "Quux"] {
        let (found, _) = walk_members(&mut web, &format!("/admin/members?q={}", enc(q))).await;
        assert_eq!(found, vec![zelda.id.to_string()], "q={q}");
    }
    let (found, _) = walk_members(&mut web, "/admin/members?q=user00").await;
    assert_eq!(
        found.into_iter().collect::<BTreeSet<_>>(),
        ids(&|m| m.email.starts_with("user00") && m.status != Status::Removed),
    );
    // A broad search spans pages ("Search further") without repeats.
    let (found, pages) = walk_members(&mut web, "/admin/members?q=seed.example").await;
    assert!(pages > 1);
    let set: BTreeSet<String> = found.iter().cloned().collect();
    assert_eq!(set.len(), found.len(), "duplicates in a filtered walk");
    assert_eq!(
        set,
        ids(&|m| m.email.ends_with("seed.example") && m.status != Status::Removed)
    );
    let p = ok_page(&mut web, "/admin/members?q=nobody-at-all").await;
    assert!(p.text.contains("No members match."), "{p}");

    // Filters.
    let cases: Vec<(&str, MemberTest)> = vec![
        ("status=suspended", Box::new(|m| m.status == Status::Suspended)),
        ("status=invited", Box::new(|m| m.status == Status::Invited)),
        ("status=active", Box::new(|m| m.status == Status::Active)),
        (
            "role=admin",
            Box::new(|m| m.role == Role::Admin && m.status != Status::Removed),
        ),
        (
            "managed=managed",
            Box::new(|m| matches!(m.management, Management::Managed(_)) && m.status != Status::Removed),
        ),
        (
            "managed=unmanaged",
            Box::new(|m| m.management == Management::Unmanaged && m.status != Status::Removed),
        ),
        (
            "status=invited&role=admin&managed=managed",
            Box::new(|m| {
                m.status == Status::Invited && m.role == Role::Admin && matches!(m.management, Management::Managed(_))
            }),
        ),
        ("status=removed", Box::new(|m| m.status == Status::Removed)),
        (
            "status=removed&q=user01",
            Box::new(|m| m.status == Status::Removed && m.email.starts_with("user01")),
        ),
    ];
    for (query, f) in cases {
        let (found, _) = walk_members(&mut web, &format!("/admin/members?{query}")).await;
        let set: BTreeSet<String> = found.iter().cloned().collect();
        assert_eq!(set.len(), found.len(), "{query}: duplicates");
        let want = ids(&*f);
        assert!(!want.is_empty(), "{query}: the seed covers it");
        assert_eq!(set, want, "{query}");
    }
    let p = ok_page(&mut web, "/admin/members?status=removed").await;
    assert!(
        p.text.contains("value=\"removed\" selected"),
        "the filter stays chosen: {p}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "listing test took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------- 7. teams

#[tokio::test]
async fn teams_are_created_renamed_filled_and_deleted() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    let pat = seed_one(&s, "pat@example.com", Role::Member, Status::Active).await;
    let mut web = admin_web(&s).await;

    let r = post(&mut web, "/admin/teams", &[("name", "  Design  ")]).await;
    assert_eq!(r.status, 303, "{r}");
    let id = team_id_in(&r.location());
    assert_eq!(r.location(), format!("/admin/teams/{id}?done=team_created"));
    let t = team_by_id(&s, id).await.unwrap();
    assert_eq!((t.name.as_str(), t.management), ("Design", Management::Unmanaged));
    assert_audited(&audit(&s).await, "team.created", &format!("team:{id}"), &me);
    let p = ok_page(&mut web, &r.location()).await;
    assert!(
        p.text.contains("Team created.") && p.text.contains("<h1>Design</h1>"),
        "{p}"
    );
    assert!(!p.text.contains("Managed by"), "{p}");

    // Duplicate name: 409 with a message, the name kept; other case is fine.
    let before = snapshot(&s).await;
    let r = post(&mut web, "/admin/teams", &[("name", "Design")]).await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("A team with that name already exists."), "{r}");
    assert_eq!(r.input("name").as_deref(), Some("Design"));
    let r = post(&mut web, "/admin/teams", &[("name", "   ")]).await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("1 to 200 characters"), "{r}");
    assert_eq!(snapshot(&s).await, before);
    let r = post(&mut web, "/admin/teams", &[("name", "design")]).await;
    assert_eq!(r.status, 303, "names are case-sensitive: {r}");
    assert_eq!(teams_all(&s).await.len(), 2);

    let path = format!("/admin/teams/{id}");
    let r = post(&mut web, &path, &[("action", "rename"), ("name", "Design Ops")]).await;
    assert_see(&r, &format!("{path}?done=team_renamed"));
    assert_eq!(team_by_id(&s, id).await.unwrap().name, "Design Ops");
    assert_audited(&audit(&s).await, "team.renamed", &format!("team:{id}"), &me);
    let r = post(&mut web, &path, &[("action", "rename"), ("name", "design")]).await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("A team with that name already exists."), "{r}");
    assert_eq!(team_by_id(&s, id).await.unwrap().name, "Design Ops");

    // Members by email.
    let r = post(&mut web, &path, &[("action", "add"), ("email", "PAT@example.com")]).await;
    assert_see(&r, &format!("{path}?done=team_added"));
    assert_eq!(team_members(&s, id).await, BTreeSet::from([pat.id]));
    assert_eq!(team_by_id(&s, id).await.unwrap().member_count, 1);
    assert_audited(&audit(&s).await, "team.members_added", &format!("team:{id}"), &me);
    let p = ok_page(&mut web, &path).await;
    assert!(
        p.text.contains("1 member<") && p.text.contains("pat@example.com"),
        "{p}"
    );
    let mp = ok_page(&mut web, &format!("/admin/members/{}", pat.id)).await;
    assert!(
        mp.text.contains(&format!("href=\"/admin/teams/{id}\">Design Ops</a>")),
        "{mp}"
    );

    let before = snapshot(&s).await;
    let r = post(&mut web, &path, &[("action", "add"), ("email", "nobody@example.com")]).await;
    assert!(matches!(r.status, 400 | 404 | 422), "{r}");
    assert!(r.text.contains("No member with the email nobody@example.com"), "{r}");
    assert_eq!(r.input("email").as_deref(), Some("nobody@example.com"), "kept");
    assert_eq!(snapshot(&s).await, before);

    let r = post(&mut web, &path, &[("action", "remove"), ("email", "pat@example.com")]).await;
    assert_see(&r, &format!("{path}?done=team_removed"));
    assert!(team_members(&s, id).await.is_empty());
    assert_audited(&audit(&s).await, "team.members_removed", &format!("team:{id}"), &me);

    // Delete needs the box ticked.
    post(&mut web, &path, &[("action", "add"), ("email", "pat@example.com")]).await;
    let before = snapshot(&s).await;
    for confirm in [None, Some(""), Some("no")] {
        let mut pairs = vec![("action", "delete")];
        if let Some(c) = confirm {
            pairs.push(("confirm", c));
        }
        let r = post(&mut web, &path, &pairs).await;
        assert_eq!(r.status, 400, "confirm={confirm:?}: {r}");
        assert!(r.text.contains("Tick the box"), "{r}");
    }
    assert_eq!(snapshot(&s).await, before);
    let r = post(&mut web, &path, &[("action", "delete"), ("confirm", "yes")]).await;
    assert_see(&r, "/admin/teams?done=team_deleted");
    assert!(team_by_id(&s, id).await.is_none());
    assert_eq!(member(&s, pat.id).await.unwrap().status, Status::Active, "members stay");
    assert_audited(&audit(&s).await, "team.deleted", &format!("team:{id}"), &me);
    assert_eq!(web.get(&path).await.status, 404);

    // A team from an IdP group carries the managed badge; ours do not.
    let (tok, _) = connection(&s, "Okta").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "From Okta"})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let list = ok_page(&mut web, "/admin/teams").await;
    let row = row_with(&list.text, "From Okta").unwrap();
    assert!(row.contains("badge managed") && row.contains(">Okta<"), "{row}");
    let row = row_with(&list.text, ">design<").unwrap();
    assert!(!row.contains("badge managed"), "{row}");
}

#[tokio::test]
async fn team_listing_and_team_members_page_without_overlap() {
    let s = TestServer::start().await;
    let mut want_teams = BTreeSet::new();
    for i in 0..60 {
        let t = roster::workspace::teams::person_create(&s.app, Actor::Operator, &format!("Team {i:02}"))
            .await
            .unwrap();
        want_teams.insert(t.id.to_string());
    }
    let members = seed(
        &s,
        (0..75)
            .map(|i| {
                new_member(
                    &s,
                    &format!("m{i:02}@example.com"),
                    None,
                    Role::Member,
                    Status::Active,
                    Management::Unmanaged,
                )
            })
            .collect(),
    )
    .await;
    let big = roster::workspace::teams::person_edit(
        &s.app,
        Actor::Operator,
        "Team 00",
        members.iter().map(|m| PersonOp::Add(m.email.clone())).collect(),
    )
    .await
    .unwrap();
    assert_eq!(big.member_count, 75);
    let mut web = admin_web(&s).await;

    let first = ok_page(&mut web, "/admin/teams").await;
    assert_eq!(linked_ids(&first, "/admin/teams/").len(), 50);
    assert!(first.text.contains("1–50 of 60"), "{first}");
    let (ids, pages) = walk(&mut web, "/admin/teams", "/admin/teams/").await;
    assert_eq!(pages, 2);
    assert_eq!(ids.len(), 60, "no team twice");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want_teams);
    // Name search, across pages too.
    let (ids, _) = walk(&mut web, "/admin/teams?q=team+0", "/admin/teams/").await;
    assert_eq!(ids.len(), 10);
    let (ids, pages) = walk(&mut web, "/admin/teams?q=TEAM", "/admin/teams/").await;
    assert_eq!((ids.len(), pages), (60, 2));
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want_teams);

    // A team's member list pages by 50.
    let (ids, pages) = walk(&mut web, &format!("/admin/teams/{}", big.id), "/admin/members/").await;
    assert_eq!(pages, 2);
    assert_eq!(ids.len(), 75, "no member twice");
    let want: BTreeSet<String> = members.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want);
    let p = ok_page(&mut web, &format!("/admin/teams/{}", big.id)).await;
    assert!(p.text.contains("75 members"), "{p}");
}

#[tokio::test]
async fn adding_a_removed_member_to_a_team_is_not_reported_as_done() {
    let s = TestServer::start().await;
    let gone = seed_one(&s, "gone@example.com", Role::Member, Status::Removed).await;
    let team = roster::workspace::teams::person_create(&s.app, Actor::Operator, "Ops")
        .await
        .unwrap();
    let mut web = admin_web(&s).await;
    let path = format!("/admin/teams/{}", team.id);
    let r = post(&mut web, &path, &[("action", "add"), ("email", "gone@example.com")]).await;
    assert!(
        team_members(&s, team.id).await.is_empty(),
        "a removed member is not added"
    );
    assert!(
        (400..500).contains(&r.status),
        "the admin must be told nothing was added, not sent to ?done=team_added: {r}"
    );
    assert!(r.text.contains("gone@example.com"), "{r}");
    assert_eq!(
        member(&s, gone.id).await.unwrap().status,
        Status::Removed,
        "still removed"
    );
}

#[tokio::test]
async fn team_actions_act_on_the_team_in_the_url() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let r = post(&mut web, "/admin/teams", &[("name", "Real")]).await;
    let real = team_id_in(&r.location());
    // Another team whose name is the first team's id (an IdP may name a
    // group anything).
    let r = post(&mut web, "/admin/teams", &[("name", &real.to_string())]).await;
    assert_eq!(r.status, 303, "{r}");
    let decoy = team_id_in(&r.location());
    let path = format!("/admin/teams/{real}");
    let r = post(&mut web, &path, &[("action", "rename"), ("name", "Real renamed")]).await;
    assert_see(&r, &format!("{path}?done=team_renamed"));
    assert_eq!(team_by_id(&s, real).await.unwrap().name, "Real renamed");
    assert_eq!(team_by_id(&s, decoy).await.unwrap().name, real.to_string());
    let r = post(&mut web, &path, &[("action", "delete"), ("confirm", "yes")]).await;
    assert_eq!(r.status, 303, "{r}");
    assert!(team_by_id(&s, real).await.is_none(), "the team in the URL is deleted");
    assert!(team_by_id(&s, decoy).await.is_some(), "not the one named like its id");
}

// ---------------------------------------------------------------- 8. connections, clients, domains

#[tokio::test]
async fn static_tokens_are_shown_once_work_record_use_and_revoke() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    let mut web = admin_web(&s).await;
    let before = snapshot(&s).await;
    for bad in ["", "   "] {
        let r = post(&mut web, "/admin/connections", &[("action", "create"), ("name", bad)]).await;
        assert_eq!(r.status, 400, "{r}");
        assert!(r.text.contains("name must be 1 to 100"), "{r}");
    }
    assert_eq!(snapshot(&s).await, before);

    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "create"), ("name", "Entra prod")],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(r.text.contains("shown only this once"), "{r}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = input_by_id(&r, "issued-token").expect("the token is shown");
    assert!(token.starts_with("rst_scim_"), "{token}");
    let tag_at = r.text.find("id=\"issued-token\"").unwrap();
    let tag = &r.text[r.text[..tag_at].rfind('<').unwrap()..tag_at + r.text[tag_at..].find('>').unwrap()];
    assert!(tag.contains("readonly"), "{tag}");
    let conns = roster::workspace::connections::list(&s.app).await.unwrap();
    let c = conns.iter().find(|c| c.name == "Entra prod").expect("stored");
    assert_audited(
        &audit(&s).await,
        "connection.created",
        &format!("connection:{}", c.id),
        &me,
    );

    let g = ok_page(&mut web, "/admin/connections").await;
    assert!(!g.text.contains(&token), "shown only once: {g}");
    assert!(!g.text.contains("rst_scim_"), "{g}");
    let row = row_with(&g.text, "Entra prod").unwrap();
    assert_eq!(cells(row)[2], "never", "{row}");

    // It works for SCIM, and the use shows up (recorded in the background).
    let r = scim(&s, "GET", "/Users", Some(&token), None).await;
    assert_eq!(r.status, 200, "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let g = ok_page(&mut web, "/admin/connections").await;
        let last = cells(row_with(&g.text, "Entra prod").unwrap())[2].clone();
        if last != "never" {
            assert!(last.ends_with(" UTC"), "{last}");
            break;
        }
        assert!(Instant::now() < deadline, "Last used never shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = roster::workspace::connections::list(&s.app)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "Entra prod")
        .unwrap();
    assert!(c.last_used_ms.is_some());

    // Revoke: SCIM refuses the token at once.
    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "revoke"), ("id", &c.id.to_string())],
    )
    .await;
    assert_see(&r, "/admin/connections?done=revoked");
    let r = scim(&s, "GET", "/Users", Some(&token), None).await;
    assert_eq!(r.status, 401, "{r}");
    assert_audited(
        &audit(&s).await,
        "connection.revoked",
        &format!("connection:{}", c.id),
        &me,
    );
    let g = ok_page(&mut web, "/admin/connections?done=revoked").await;
    let row = row_with(&g.text, "Entra prod").unwrap();
    assert!(
        row.contains(">revoked</span>") && !row.contains("value=\"revoke\""),
        "{row}"
    );
    // Revoking again: a message, no second row.
    let n = audit(&s).await.len();
    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "revoke"), ("id", &c.id.to_string())],
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("already revoked"), "{r}");
    assert_eq!(audit(&s).await.len(), n);
}

#[tokio::test]
async fn oauth_clients_are_registered_rotated_and_removed() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    let mut web = admin_web(&s).await;

    let before = snapshot(&s).await;
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "Okta"),
            ("kind", "confidential"),
            ("redirect_uris", "http://okta.example/cb"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("plain http is allowed only on this machine"), "{r}");
    assert!(
        !r.text.contains("--allow-insecure-redirect"),
        "no CLI flag in the console: {r}"
    );
    assert_eq!(r.input("name").as_deref(), Some("Okta"), "form kept");
    assert!(r.text.contains("http://okta.example/cb</textarea>"), "{r}");
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "Okta"),
            ("kind", "confidential"),
            ("redirect_uris", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("needs at least one redirect URI"), "{r}");
    assert_eq!(snapshot(&s).await, before);

    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "Okta"),
            ("kind", "confidential"),
            ("redirect_uris", "https://okta.example/cb\nhttp://127.0.0.1:8080/cb"),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let client_id = input_by_id(&r, "issued-id").expect("client id shown");
    let secret = input_by_id(&r, "issued-secret").expect("secret shown");
    assert!(client_id.starts_with("rc_"), "{client_id}");
    assert!(secret.starts_with("rst_cs_"), "{secret}");
    let stored = roster::workspace::oauth::list(&s.app).await.unwrap();
    let c = stored.iter().find(|c| c.client_id == client_id).expect("stored");
    assert_eq!(c.kind, ClientKind::Confidential);
    assert_eq!(
        c.redirect_uris,
        vec!["https://okta.example/cb", "http://127.0.0.1:8080/cb"]
    );
    assert_eq!(c.secrets.len(), 1);
    assert_eq!(
        c.secrets[0].hash,
        roster::secret::hash_token(&secret),
        "the secret shown is the one kept"
    );
    assert_audited(
        &audit(&s).await,
        "oauth.client_registered",
        &format!("client:{client_id}"),
        &me,
    );
    let g = ok_page(&mut web, "/admin/clients").await;
    assert!(
        !g.text.contains(&secret) && !g.text.contains("rst_cs_"),
        "shown once: {g}"
    );
    assert!(g.text.contains(&client_id), "{g}");

    // Rotate: a new secret, shown once; the old one kept until the next rotation.
    let r = post(&mut web, "/admin/clients", &[("action", "rotate"), ("id", &client_id)]).await;
    assert_eq!(r.status, 200, "{r}");
    let second = input_by_id(&r, "issued-secret").expect("new secret shown");
    assert!(second.starts_with("rst_cs_") && second != secret);
    let c = roster::workspace::oauth::list(&s.app)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.client_id == client_id)
        .unwrap();
    let hashes: Vec<_> = c.secrets.iter().map(|x| x.hash).collect();
    assert_eq!(
        hashes,
        vec![roster::secret::hash_token(&secret), roster::secret::hash_token(&second)]
    );
    assert_audited(
        &audit(&s).await,
        "oauth.secret_rotated",
        &format!("client:{client_id}"),
        &me,
    );

    // A public client has no secret (and nothing to rotate).
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "Cli"),
            ("kind", "public"),
            ("redirect_uris", "http://localhost:9999/cb"),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(input_by_id(&r, "issued-secret").is_none(), "{r}");
    let public_id = input_by_id(&r, "issued-id").unwrap();
    let r = post(&mut web, "/admin/clients", &[("action", "rotate"), ("id", &public_id)]).await;
    assert_eq!(r.status, 400, "{r}");

    // Remove.
    let r = post(&mut web, "/admin/clients", &[("action", "remove"), ("id", &client_id)]).await;
    assert_see(&r, "/admin/clients?done=client_removed");
    let left = roster::workspace::oauth::list(&s.app).await.unwrap();
    assert!(left.iter().all(|c| c.client_id != client_id));
    let conn = roster::workspace::connections::list(&s.app)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.id == c.connection_id)
        .unwrap();
    assert!(conn.revoked_ms.is_some(), "its connection is revoked");
    assert_audited(
        &audit(&s).await,
        "oauth.client_removed",
        &format!("client:{client_id}"),
        &me,
    );
    let g = ok_page(&mut web, "/admin/clients?done=client_removed").await;
    assert!(!g.text.contains(&client_id), "{g}");
    let r = post(&mut web, "/admin/clients", &[("action", "remove"), ("id", &client_id)]).await;
    assert_eq!(r.status, 404, "{r}");
}

#[tokio::test]
async fn oauth_grants_are_listed_and_revoked_from_the_connections_page() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    let mut web = admin_web(&s).await;
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "Entra ID"),
            ("kind", "service"),
            ("redirect_uris", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let (id, secret) = (
        input_by_id(&r, "issued-id").unwrap(),
        input_by_id(&r, "issued-secret").unwrap(),
    );
    let at = client_credentials(&s, &id, &secret).await;
    assert_eq!(scim(&s, "GET", "/Users", Some(&at), None).await.status, 200);
    let grants = roster::workspace::oauth::grants(&s.app).await.unwrap();
    assert_eq!(grants.len(), 1);
    let grant = grants[0].grant.id.to_string();

    let p = ok_page(&mut web, "/admin/connections").await;
    let row = row_with(&p.text, &format!("value=\"{grant}\"")).unwrap_or_else(|| panic!("{p}"));
    let c = cells(row);
    assert_eq!(
        (c[0].as_str(), c[1].as_str()),
        ("Entra ID", "client credentials"),
        "{row}"
    );
    assert!(!p.text.contains(&at), "no token on the page");

    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "revoke_grant"), ("id", &grant)],
    )
    .await;
    assert_see(&r, "/admin/connections?done=revoked");
    assert_eq!(
        scim(&s, "GET", "/Users", Some(&at), None).await.status,
        401,
        "revoked at once"
    );
    assert_audited(&audit(&s).await, "oauth.grant_revoked", &format!("grant:{grant}"), &me);
    let p = ok_page(&mut web, "/admin/connections").await;
    let row = row_with(&p.text, "<td class=\"strong\">Entra ID</td>").unwrap_or_else(|| panic!("{p}"));
    assert!(
        row.contains(">revoked</span>") && !row.contains("revoke_grant"),
        "{row}"
    );
    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "revoke_grant"), ("id", "not-a-grant")],
    )
    .await;
    assert_eq!(r.status, 404, "{r}");
}

#[tokio::test]
async fn domains_are_added_verified_and_removed() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    let mut web = admin_web(&s).await;
    let ws = || async { roster::workspace::get(&s.app.store).await.unwrap().unwrap().domains };

    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "add"), ("name", "Acme.Example.")],
    )
    .await;
    assert_see(&r, "/admin/domains?done=domain_added");
    let d = ws().await;
    assert_eq!((d.len(), d[0].name.as_str(), d[0].verified), (1, "acme.example", false));
    assert_audited(&audit(&s).await, "domain.added", "domain:acme.example", &me);
    let p = ok_page(&mut web, "/admin/domains?done=domain_added").await;
    assert!(p.text.contains("Domain added."), "{p}");
    let row = row_with(&p.text, "acme.example").unwrap();
    assert_eq!(cells(row)[1], "not verified", "{row}");

    let before = snapshot(&s).await;
    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "add"), ("name", "acme.example")],
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.text.contains("already listed"), "{r}");
    for bad in ["not a domain!", "-x.example", "a..b", ""] {
        let r = post(&mut web, "/admin/domains", &[("action", "add"), ("name", bad)]).await;
        assert_eq!(r.status, 400, "{bad:?}: {r}");
        assert!(r.text.contains("is not a domain name"), "{bad:?}: {r}");
        assert_eq!(r.input("name").as_deref(), Some(bad), "kept");
    }
    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "verify"), ("name", "other.example")],
    )
    .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("is not listed"), "{r}");
    assert_eq!(snapshot(&s).await, before);

    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "verify"), ("name", "acme.example")],
    )
    .await;
    assert_see(&r, "/admin/domains?done=domain_verified");
    assert!(ws().await[0].verified);
    assert_audited(&audit(&s).await, "domain.verified", "domain:acme.example", &me);
    let p = ok_page(&mut web, "/admin/domains").await;
    assert_eq!(cells(row_with(&p.text, "acme.example").unwrap())[1], "verified");

    let r = post(
        &mut web,
        "/admin/domains",
        &[("action", "remove"), ("name", "acme.example")],
    )
    .await;
    assert_see(&r, "/admin/domains?done=domain_removed");
    assert!(ws().await.is_empty());
    assert_audited(&audit(&s).await, "domain.removed", "domain:acme.example", &me);
    let p = ok_page(&mut web, "/admin/domains").await;
    assert!(
        !p.text.contains("acme.example") && p.text.contains("No domains yet."),
        "{p}"
    );
}

// ---------------------------------------------------------------- 9. audit log

#[tokio::test]
async fn audit_log_filters_by_actor_target_and_date_and_pages_without_overlap() {
    let s = TestServer::start().await;
    let a = admin(&s).await;
    let me = admin_actor(&a);
    let mut web = admin_web(&s).await;
    let r = invite(&mut web, "tara@unverified.example", "Tara", "member").await;
    let tara = member_id_in(&r.location());
    act(&mut web, tara, "role", &[("role", "admin")]).await;
    act(&mut web, tara, "role", &[("role", "member")]).await;
    let (tok, _) = connection(&s, "Okta").await;
    create(&s, &tok, "sam@unverified.example", json!({})).await;
    let mut team_ids = BTreeSet::new();
    for i in 0..60 {
        let t = roster::workspace::teams::person_create(&s.app, me.clone(), &format!("Team {i:02}"))
            .await
            .unwrap();
        team_ids.insert(format!("team:{}", t.id));
    }
    let store_rows = audit(&s).await;
    assert!(store_rows.len() > 60, "{}", store_rows.len());

    // Unfiltered: 50 a page, "Older entries" to the next, no overlap.
    let first = ok_page(&mut web, "/admin/audit").await;
    assert_eq!(audit_rows(&first).len(), 50);
    assert!(first.text.contains(">Older entries<"), "{first}");
    let mut seen: Vec<[String; 5]> = Vec::new();
    let mut at = Some("/admin/audit".to_owned());
    let mut pages = 0;
    while let Some(path) = at {
        let p = ok_page(&mut web, &path).await;
        let rows = audit_rows(&p);
        assert!(!rows.is_empty(), "{path}: an empty page behind a link");
        seen.extend(rows);
        at = next_href(&p);
        pages += 1;
    }
    assert_eq!(pages, store_rows.len().div_ceil(50));
    assert_eq!(seen.len(), store_rows.len(), "every entry once");
    let created: Vec<&String> = seen.iter().filter(|r| r[2] == "team.created").map(|r| &r[3]).collect();
    let unique: BTreeSet<String> = created.iter().map(|t| (*t).clone()).collect();
    assert_eq!(created.len(), unique.len(), "a team.created row on two pages");
    assert_eq!(unique, team_ids);
    let mut page_multiset: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &seen {
        *page_multiset.entry((r[2].clone(), r[3].clone())).or_default() += 1;
    }
    let mut store_multiset: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &store_rows {
        *store_multiset.entry((e.action.clone(), e.target.clone())).or_default() += 1;
    }
    assert_eq!(page_multiset, store_multiset);

    // By actor: only the admin's rows (their console changes included).
    let by_admin = |e: &AuditEntry| match &e.actor {
        Actor::Admin { email, .. } | Actor::Member { email, .. } => email == ADMIN,
        _ => false,
    };
    let (mut rows, mut at) = (Vec::new(), Some(format!("/admin/audit?actor={}", enc(ADMIN))));
    while let Some(path) = at {
        let p = ok_page(&mut web, &path).await;
        rows.extend(audit_rows(&p));
        at = next_href(&p);
        if let Some(n) = &at {
            assert!(n.contains("actor=admin%40localhost"), "the filter is kept: {n}");
        }
    }
    assert_eq!(rows.len(), store_rows.iter().filter(|e| by_admin(e)).count());
    assert!(rows.iter().all(|r| r[1].contains(ADMIN)), "{rows:#?}");
    assert!(rows.iter().any(|r| r[2] == "member.invited"), "{rows:#?}");
    assert!(!rows.iter().any(|r| r[1].contains("Okta")), "{rows:#?}");
    let p = ok_page(&mut web, "/admin/audit?actor=okta").await;
    let rows = audit_rows(&p);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r[1] == "Okta (identity provider)"),
        "{rows:#?}"
    );

    // By target: `member:<id>`, and an email found in the details.
    let p = ok_page(
        &mut web,
        &format!("/admin/audit?target={}", enc(&format!("member:{tara}"))),
    )
    .await;
    let rows = audit_rows(&p);
    let actions: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        actions,
        vec!["member.role_changed", "member.role_changed", "member.invited"],
        "{rows:#?}"
    );
    assert!(rows.iter().all(|r| r[3] == format!("member:{tara}")));
    assert!(rows.iter().all(|r| r[1] == format!("{ADMIN} (admin)")), "{rows:#?}");
    let p = ok_page(&mut web, "/admin/audit?target=tara%40unverified.example").await;
    let rows = audit_rows(&p);
    assert!(rows.iter().any(|r| r[2] == "member.invited"), "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r[3].contains("tara@unverified.example") || r[4].contains("tara@unverified.example")),
        "{rows:#?}"
    );
    assert!(!rows.iter().any(|r| r[4].contains("sam@")), "{rows:#?}");

    // By date (UTC days, inclusive).
    let oldest = store_rows.iter().map(|e| e.at_ms).min().unwrap();
    let newest = store_rows.iter().map(|e| e.at_ms).max().unwrap();
    let (mut n, mut at) = (0, Some(format!("/admin/audit?from={}&to={}", ymd(oldest), ymd(newest))));
    while let Some(path) = at {
        let p = ok_page(&mut web, &path).await;
        n += audit_rows(&p).len();
        at = next_href(&p);
    }
    assert_eq!(n, store_rows.len(), "the whole range");
    let p = ok_page(&mut web, &format!("/admin/audit?from={}", ymd(newest + DAY_MS))).await;
    assert!(audit_rows(&p).is_empty() && p.text.contains("No entries match."), "{p}");
    let p = ok_page(&mut web, &format!("/admin/audit?to={}", ymd(oldest - DAY_MS))).await;
    assert!(audit_rows(&p).is_empty(), "{p}");
    let p = ok_page(
        &mut web,
        &format!("/admin/audit?actor=okta&from={}&to={}", ymd(oldest), ymd(newest)),
    )
    .await;
    assert!(!audit_rows(&p).is_empty());
    for bad in ["from=2024-13-45", "to=yesterday", "from=01%2F02%2F2024"] {
        let p = web.get(&format!("/admin/audit?{bad}")).await;
        assert_eq!(p.status, 400, "{bad}: {p}");
        assert!(p.text.contains("YYYY-MM-DD"), "{bad}: {p}");
    }
}

// ---------------------------------------------------------------- 10. sync errors

#[tokio::test]
async fn sync_errors_page_lists_a_refused_last_admin_deprovisioning() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let p = ok_page(&mut web, "/admin/sync-errors").await;
    assert!(p.text.contains("No sync errors."), "{p}");

    let (tok, _) = connection(&s, "Okta").await;
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body(ADMIN, json!({})))).await;
    assert_eq!(r.status, 201, "{r}");
    let id = uuid_of(&r.body);
    assert_eq!(id, admin(&s).await.id, "linked, not duplicated");
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "path": "active", "value": false}]))),
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    assert_eq!(admin(&s).await.status, Status::Active);
    let errs = sync_errors(&s).await;
    assert_eq!(errs.len(), 1, "{errs:#?}");

    let p = ok_page(&mut web, "/admin/sync-errors").await;
    assert!(!p.text.contains("No sync errors."), "{p}");
    let row = row_with(&p.text, "last active admin").unwrap_or_else(|| panic!("{p}"));
    let c = cells(row);
    assert_eq!(c[1], "Okta", "{row}");
    assert_eq!(c[2], errs[0].operation, "{row}");
    assert_eq!(c[3], errs[0].target, "{row}");
    assert_eq!(c[4], errs[0].detail, "{row}");
    assert!(c[2].to_lowercase().contains("patch"), "{row}");
    assert!(c[3].contains(&id.to_string()) || c[4].contains(ADMIN), "{row}");

    // More than a page: "Older" leads on without overlap.
    let conn = errs[0].connection_id;
    s.app
        .store
        .write(move |txn| {
            for i in 0..60 {
                roster::store::sync_errors::push(
                    txn,
                    &roster::workspace::model::SyncError {
                        at_ms: 0,
                        connection_id: conn,
                        connection_name: "Okta".into(),
                        operation: "patch User".into(),
                        target: format!("paging-{i:02}"),
                        detail: "a test refusal".into(),
                    },
                )?;
            }
            Ok(Ok::<(), ()>(()))
        })
        .await
        .unwrap()
        .unwrap();
    let (mut targets, mut at, mut pages) = (Vec::new(), Some("/admin/sync-errors".to_owned()), 0);
    while let Some(path) = at {
        let p = ok_page(&mut web, &path).await;
        let body = p
            .text
            .split("<tbody>")
            .nth(1)
            .unwrap()
            .split("</tbody>")
            .next()
            .unwrap();
        let rows: Vec<Vec<String>> = body.split("<tr>").skip(1).map(cells).collect();
        assert!(!rows.is_empty(), "{path}: empty page behind a link");
        targets.extend(rows.into_iter().map(|r| r[3].clone()));
        at = next_href(&p);
        pages += 1;
    }
    assert_eq!(pages, 2);
    assert_eq!(targets.len(), 61, "every sync error once: {targets:?}");
    assert_eq!(targets.iter().collect::<BTreeSet<_>>().len(), 61, "{targets:?}");
    assert_eq!(targets[0], "paging-59", "newest first");
    assert_eq!(targets[60], errs[0].target);
}

// ---------------------------------------------------------------- 11. escaping

/// Asserts the payloads appear on `p` only escaped.
#[track_caller]
fn assert_escaped(what: &str, p: &Page) {
    assert!(!p.text.contains("<script>alert"), "{what}: raw <script>: {p}");
    assert!(!p.text.contains("<img src=x"), "{what}: raw <img>: {p}");
    assert!(!p.text.contains("\"><img"), "{what}: attribute break-out: {p}");
    assert!(
        ["&lt;script&gt;", "&#60;script&#62;", "&lt;img src=x", "&#60;img src=x"]
            .iter()
            .any(|e| p.text.contains(e)),
        "{what}: the payload should be shown, escaped: {p}"
    );
}

#[tokio::test]
async fn user_text_is_escaped_on_every_console_page() {
    let s = TestServer::start().await;
    domain(&s, "x.example", true).await;
    let evil = format!("{XSS_SCRIPT}{XSS_ATTR}");
    // A connection, a member (display name, names), a team, a client and
    // a sync error all carrying the payloads.
    let (tok, _) = connection(&s, &evil).await;
    let body = create(
        &s,
        &tok,
        "eve@x.example",
        json!({"displayName": evil, "name": {"givenName": XSS_SCRIPT, "familyName": XSS_ATTR},
               "externalId": evil}),
    )
    .await;
    let eve = uuid_of(&body);
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": evil, "members": [{"value": eve.to_string()}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let team = uuid_of(&r.body);
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body(ADMIN, json!({})))).await;
    assert_eq!(r.status, 201, "{r}");
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{}", admin(&s).await.id),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "path": "active", "value": false}]))),
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    let mut web = admin_web(&s).await;
    let r = post(&mut web, "/admin/teams", &[("name", &format!("T {evil}"))]).await;
    assert_eq!(r.status, 303, "{r}");
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", &evil),
            ("kind", "service"),
            ("redirect_uris", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_escaped("client registered", &r);
    let evil_client = input_by_id(&r, "issued-id").unwrap();
    let evil_secret = input_by_id(&r, "issued-secret").unwrap();
    client_credentials(&s, &evil_client, &evil_secret).await;
    // A second live token may not take the first one's name (issue 18).
    let second = format!("{evil} (console)");
    let r = post(
        &mut web,
        "/admin/connections",
        &[("action", "create"), ("name", &second)],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_escaped("token issued", &r);

    let e = enc(&evil);
    let eve_mail = s
        .app
        .store
        .read(|txn| roster::store::outbox::recent(txn, 100))
        .await
        .unwrap()
        .into_iter()
        .find(|(_, m)| m.to == "eve@x.example" && m.kind == MailKind::Welcome)
        .expect("Eve's welcome mail")
        .0;
    let pages = [
        "/admin/members".to_owned(),
        format!("/admin/members?q={}", enc(XSS_SCRIPT)),
        format!("/admin/members?q={e}&status={e}&role={e}&managed={e}"),
        "/admin/members?managed=managed".to_owned(),
        format!("/admin/members/{eve}"),
        format!("/admin/members/{eve}?done={e}"),
        "/admin/teams".to_owned(),
        format!("/admin/teams?q={}", enc("<script>")),
        format!("/admin/teams/{team}"),
        "/admin/connections".to_owned(),
        "/admin/clients".to_owned(),
        "/admin/audit".to_owned(),
        format!("/admin/audit?actor={e}&target={e}"),
        format!("/admin/audit?target={}", enc(XSS_SCRIPT)),
        "/admin/sync-errors".to_owned(),
        format!("/admin/mail/{eve_mail}"),
    ];
    for path in &pages {
        let p = ok_page(&mut web, path).await;
        assert_escaped(path, &p);
    }
    let p = ok_page(&mut web, &format!("/admin/members?q={e}")).await;
    assert_eq!(p.input("q").as_deref(), Some(evil.as_str()), "the search box keeps it");

    // Error pages that echo what was typed.
    let r = invite(&mut web, &evil, &evil, "member").await;
    assert_eq!(r.status, 400, "{r}");
    assert_escaped("invite error", &r);
    let r = post(
        &mut web,
        &format!("/admin/teams/{team}"),
        &[("action", "add"), ("email", &evil)],
    )
    .await;
    assert!(r.status >= 400, "{r}");
    assert_escaped("team add error", &r);
    let r = post(&mut web, "/admin/teams", &[("name", &evil)]).await;
    assert_eq!(r.status, 409, "{r}");
    assert_escaped("team name conflict", &r);
    let r = post(&mut web, "/admin/domains", &[("action", "add"), ("name", &evil)]).await;
    assert_eq!(r.status, 400, "{r}");
    assert_escaped("domain error", &r);
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "ok"),
            ("kind", "confidential"),
            ("redirect_uris", &format!("https://x.example/{}", enc(&evil))),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let r = post(
        &mut web,
        "/admin/clients",
        &[
            ("action", "register"),
            ("name", "bad"),
            ("kind", "confidential"),
            ("redirect_uris", &format!("javascript:{XSS_SCRIPT}")),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{r}");
    assert_escaped("redirect uri error", &r);
    // The unknown notice code is not reflected at all.
    let p = ok_page(&mut web, &format!("/admin/members?done={e}")).await;
    assert!(!p.text.contains("class=\"alert"), "no notice for an unknown code: {p}");
}

// ---------------------------------------------------------------- 12. headers

#[tokio::test]
async fn console_pages_carry_strict_security_headers() {
    let s = TestServer::start().await;
    let m = seed_one(&s, "mia@example.com", Role::Member, Status::Active).await;
    let team = roster::workspace::teams::person_create(&s.app, Actor::Operator, "Ops")
        .await
        .unwrap();
    let mut web = admin_web(&s).await;
    let mut pages: Vec<(String, Page)> = Vec::new();
    for path in [
        "/admin/members".to_owned(),
        "/admin/members?status=removed".to_owned(),
        "/admin/members/new".to_owned(),
        format!("/admin/members/{}", m.id),
        "/admin/teams".to_owned(),
        format!("/admin/teams/{}", team.id),
        "/admin/connections".to_owned(),
        "/admin/clients".to_owned(),
        "/admin/domains".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/sync-errors".to_owned(),
        "/admin/mail".to_owned(),
        format!("/admin/members/{}", Uuid::nil()),
        "/admin/audit?from=bad".to_owned(),
    ] {
        let p = web.get(&path).await;
        pages.push((path, p));
    }
    let r = post(&mut web, "/admin/connections", &[("action", "create"), ("name", "Tok")]).await;
    pages.push(("POST /admin/connections".into(), r));
    let r = web.post_form("/admin/teams", &[("csrf", "bad"), ("name", "x")]).await;
    pages.push(("POST bad csrf".into(), r));
    let r = invite(&mut web, "bad", "", "member").await;
    pages.push(("POST bad invite".into(), r));
    let mut member_web = web_as(&s, "mia@example.com").await;
    pages.push(("403".into(), member_web.get("/admin/members").await));

    for (what, p) in &pages {
        assert!(
            p.header("content-type").unwrap_or_default().starts_with("text/html"),
            "{what}: {p}"
        );
        let csp = p.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP {csp:?}");
        assert!(csp.contains("default-src 'none'"), "{what}: CSP {csp:?}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}: {csp}"
        );
        assert_eq!(p.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(p.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(p.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(p.header("referrer-policy"), Some("no-referrer"), "{what}");
    }
}

// ---------------------------------------------------------------- mail outbox

#[tokio::test]
async fn the_mail_outbox_is_shown_to_admins_only_and_its_form_needs_csrf() {
    let s = TestServer::start().await;
    let me = admin_actor(&admin(&s).await);
    seed_one(&s, "mia@example.com", Role::Member, Status::Active).await;
    let mut web = admin_web(&s).await;
    let r = invite(&mut web, "olga@unverified.example", "", "member").await;
    assert_eq!(r.status, 303, "{r}");
    let nav = ok_page(&mut web, "/admin/members").await;
    assert!(nav.text.contains("href=\"/admin/mail\""), "{nav}");

    let list = ok_page(&mut web, "/admin/mail").await;
    let row = row_with(&list.text, "olga@unverified.example").unwrap_or_else(|| panic!("{list}"));
    let at = row.find("href=\"/admin/mail/").expect("a link to the mail") + "href=\"/admin/mail/".len();
    let seq: String = row[at..].chars().take_while(char::is_ascii_digit).collect();
    let path = format!("/admin/mail/{seq}");
    let shown = ok_page(&mut web, &path).await;
    assert!(
        shown.text.contains("/invite/accept?token="),
        "the admin can hand the link over: {shown}"
    );
    assert_eq!(shown.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(shown.header("cache-control"), Some("no-store"));

    // Not signed in: to sign-in; a member: 403; neither sees the link.
    let mut anon = Web::new(&s);
    assert_see(&anon.get("/admin/mail").await, "/login?next=%2Fadmin%2Fmail");
    let r = anon.get(&path).await;
    assert_eq!(r.status, 303, "{r}");
    let mut mia = web_as(&s, "mia@example.com").await;
    let mia_csrf = ok_page(&mut mia, "/").await.input("csrf").unwrap();
    let before = snapshot(&s).await;
    let outbox = format!("{:?}", mails(&s).await);
    for p in ["/admin/mail", path.as_str()] {
        let r = mia.get(p).await;
        assert_eq!(r.status, 403, "{p}: {r}");
        assert!(!r.text.contains("token="), "{r}");
    }
    let r = mia.post_form(&path, &[("csrf", &mia_csrf), ("action", "retry")]).await;
    assert_eq!(r.status, 403, "{r}");

    // The retry form refuses a missing or wrong token.
    let mine = csrf_of(&mut web).await;
    for token in [None, Some(""), Some("nope"), Some(mia_csrf.as_str())] {
        let mut pairs = vec![("action", "retry")];
        if let Some(t) = token {
            pairs.push(("csrf", t));
        }
        let r = web.post_form(&path, &pairs).await;
        assert_eq!(r.status, 403, "csrf={token:?}: {r}");
        assert!(r.text.contains(EXPIRED), "{r}");
    }
    assert_eq!(snapshot(&s).await, before);
    assert_eq!(format!("{:?}", mails(&s).await), outbox, "no mail changed");
    let r = web.post_form(&path, &[("csrf", &mine), ("action", "retry")]).await;
    assert_see(&r, &format!("{path}?done=mail_retry"));
    assert_audited(&audit(&s).await, "mail.retried", &format!("mail:{seq}"), &me);
}

#[tokio::test]
async fn unknown_addresses_get_a_page_in_a_browser_and_json_otherwise() {
    let s = TestServer::start().await;
    let mut web = Web::new(&s);
    let html = web
        .request(
            "GET",
            "/admin/nope",
            &[("accept", "text/html,application/xhtml+xml")],
            Vec::new(),
        )
        .await;
    assert_eq!(html.status, 404, "{html}");
    assert!(
        html.header("content-type").unwrap_or_default().starts_with("text/html"),
        "{html}"
    );
    assert!(html.text.contains("Page not found"), "{html}");
    assert!(
        html.header("content-security-policy")
            .unwrap_or_default()
            .contains("frame-ancestors 'none'"),
        "{html}"
    );
    let json = web
        .request("GET", "/admin/nope", &[("accept", "application/json")], Vec::new())
        .await;
    assert_eq!(json.status, 404, "{json}");
    assert!(json.text.contains("\"not_found\""), "{json}");
    // SCIM keeps its own error body whatever the client accepts.
    let scim = web
        .request("GET", "/scim/v2/Nope", &[("accept", "text/html")], Vec::new())
        .await;
    assert!(
        scim.text.contains("urn:ietf:params:scim:api:messages:2.0:Error") || scim.status == 401,
        "{scim}"
    );
}

#[tokio::test]
async fn an_admin_who_makes_themself_a_member_lands_on_their_own_page() {
    let s = TestServer::start().await;
    seed_one(&s, "second@example.com", Role::Admin, Status::Active).await;
    let me = admin(&s).await;
    let mut web = admin_web(&s).await;
    let path = format!("/admin/members/{}", me.id);
    let p = ok_page(&mut web, &path).await;
    let version = p.input("version").expect("version field");
    let csrf = p.input("csrf").expect("csrf");
    let r = web
        .post_form(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "role"),
                ("role", "member"),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.location(), "/", "not to a console page they can no longer open");
    assert_eq!(member(&s, me.id).await.unwrap().role, Role::Member);
}

// ---------------------------------------------------------------- accessibility

/// The declarations of the first rule whose selector list is exactly `sel`.
fn css_rule<'a>(css: &'a str, sel: &str) -> &'a str {
    let mut rest = css;
    while let Some(open) = rest.find('{') {
        let selector = rest[..open].rsplit('}').next().unwrap_or_default();
        let selector = selector.rsplit("*/").next().unwrap_or_default().trim();
        let close = rest[open..].find('}').map(|c| open + c).expect("closing brace");
        if selector.split(',').any(|s| s.trim() == sel) {
            return &rest[open + 1..close];
        }
        rest = &rest[close + 1..];
    }
    panic!("no CSS rule for {sel}");
}

fn css_value(css: &str, rule: &str, prop: &str) -> String {
    let v = rule
        .split(';')
        .filter_map(|d| d.split_once(':'))
        .find(|(k, _)| k.trim() == prop)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {prop} in {rule}"));
    match v.strip_prefix("var(").and_then(|x| x.strip_suffix(')')) {
        Some(name) => css_value(css, css_rule(css, ":root"), name),
        None => v,
    }
}

fn luminance(hex: &str) -> f64 {
    let hex = hex.trim_start_matches('#');
    let long: String = if hex.len() == 3 {
        hex.chars().flat_map(|c| [c, c]).collect()
    } else {
        hex.to_owned()
    };
    let hex = long.as_str();
    let ch = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * ch(0) + 0.7152 * ch(2) + 0.0722 * ch(4)
}

fn contrast(a: &str, b: &str) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn text_colours_meet_wcag_aa_contrast() {
    let css = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/style.css")).unwrap();
    let root = css_rule(&css, ":root");
    let var = |n: &str| css_value(&css, root, n);
    // Text on the page and card backgrounds.
    for (what, fg) in [
        ("ink", var("--ink")),
        ("muted", var("--muted")),
        ("link", var("--brand")),
    ] {
        for bg in [var("--bg"), var("--card")] {
            let r = contrast(&fg, &bg);
            assert!(r >= 4.5, "{what} {fg} on {bg}: {r:.2}");
        }
    }
    assert!(contrast(&var("--brand-ink"), &var("--brand")) >= 4.5, "primary button");
    // Every badge, alert and the current navigation entry: small bold text
    // on its own background.
    for sel in [
        ".badge",
        ".badge.admin",
        ".badge.ok",
        ".badge.warn",
        ".badge.managed",
        ".badge.status-active",
        ".badge.status-invited",
        ".badge.status-suspended",
        ".badge.status-removed",
        ".badge.mail-sent",
        ".badge.mail-pending",
        ".badge.mail-failed",
        ".alert.error",
        ".alert.info",
        ".alert.warn",
        "nav.side a[aria-current=page]",
        "button.danger",
    ] {
        let rule = css_rule(&css, sel);
        let (fg, bg) = (css_value(&css, rule, "color"), css_value(&css, rule, "background"));
        let r = contrast(&fg, &bg);
        assert!(r >= 4.5, "{sel}: {fg} on {bg} has contrast {r:.2} < 4.5");
    }
}

/// Every console page: a language, one h1, a labelled landmark for the
/// navigation, and every visible form control labelled (a `<label for>`
/// naming its id, a wrapping label, or aria-label).
#[tokio::test]
async fn console_pages_have_headings_landmarks_and_labelled_controls() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;
    let u = crate::scim_support::create(&s, &tok, "lab@example.com", json!({})).await;
    let team = roster::workspace::teams::person_create(&s.app, Actor::Operator, "Design")
        .await
        .unwrap();
    let mut web = admin_web(&s).await;
    let pages = [
        "/admin/members".to_owned(),
        "/admin/members/new".to_owned(),
        format!("/admin/members/{}", crate::scim_support::id_of(&u)),
        "/admin/teams".to_owned(),
        format!("/admin/teams/{}", team.id),
        "/admin/connections".to_owned(),
        "/admin/clients".to_owned(),
        "/admin/domains".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/mail".to_owned(),
        "/admin/mail/1".to_owned(),
        "/admin/sync-errors".to_owned(),
    ];
    for path in pages {
        let p = ok_page(&mut web, &path).await;
        let html = &p.text;
        assert!(html.contains("<html lang=\"en\">"), "{path}: no language");
        assert_eq!(html.matches("<h1").count(), 1, "{path}: exactly one h1");
        assert!(
            html.contains("<nav class=\"side\" aria-label="),
            "{path}: navigation landmark"
        );
        assert!(html.contains("<main id=\"content\""), "{path}: main landmark");
        assert!(html.contains("href=\"#content\""), "{path}: skip link");
        for tag in ["<input", "<select", "<textarea"] {
            for (at, _) in html.match_indices(tag) {
                let end = html[at..].find('>').map(|e| at + e).unwrap();
                let el = &html[at..=end];
                if el.contains("type=\"hidden\"") {
                    continue;
                }
                let wrapped = html[..at].rfind("<label").is_some_and(|l| {
                    let before = &html[l..at];
                    !before.contains("</label>") && !before[6..].contains("for=")
                });
                let labelled = el.contains("aria-label=")
                    || wrapped
                    || el
                        .split("id=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .is_some_and(|id| html.contains(&format!("<label for=\"{id}\"")));
                assert!(labelled, "{path}: unlabelled control {el}");
            }
        }
        for (at, _) in html.match_indices("<button") {
            let end = html[at..].find("</button>").map(|e| at + e).unwrap();
            let inner = &html[at..end];
            let text = inner.split_once('>').map(|(_, t)| t.trim()).unwrap_or_default();
            assert!(
                !text.is_empty() || inner.contains("aria-label="),
                "{path}: empty button {inner}"
            );
        }
    }
}

/// Issue 18: `/admin` is a checklist read from the real state: this admin's
/// password, a verified domain, connected IdPs with their last call, the
/// serving certificate (self-signed: Okta and Entra would refuse it), mail
/// delivery and scheduled snapshots, each linked to where it is fixed.
#[tokio::test]
async fn r18_overview_checklist_reads_real_state() {
    let s = TestServer::start().await;
    let mut web = admin_web(&s).await;
    let p = ok_page(&mut web, "/admin").await;
    let item = |p: &Page, title: &str| -> String {
        let at = p
            .text
            .find(&format!("<h2>{title}</h2>"))
            .unwrap_or_else(|| panic!("no item {title}: {p}"));
        let start = p.text[..at].rfind("<li class=\"card check").unwrap();
        let end = at + p.text[at..].find("</li>").unwrap();
        p.text[start..end].to_owned()
    };
    assert!(
        item(&p, "Your password").contains("check done"),
        "admin_web set a password"
    );
    let d = item(&p, "A verified email domain");
    assert!(d.contains("check todo") && d.contains("href=\"/admin/domains\""), "{d}");
    let i = item(&p, "An identity provider connected");
    assert!(
        i.contains("check todo") && i.contains("href=\"/admin/connections\""),
        "{i}"
    );
    let c = item(&p, "The serving certificate");
    assert!(
        c.contains("check warn") && c.contains("self-signed") && c.contains("refuse it"),
        "{c}"
    );
    assert!(c.contains("localhost"), "names: {c}");
    assert!(item(&p, "Mail delivery").contains("check warn"));
    assert!(item(&p, "Scheduled snapshots").contains("check warn"));

    // Domain verified and an IdP that has called: those items are done,
    // and the connection's last call is shown.
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "Entra ID").await;
    assert_eq!(scim(&s, "GET", "/Users", Some(&tok), None).await.status, 200);
    let mut p = ok_page(&mut web, "/admin").await;
    for _ in 0..50 {
        if !item(&p, "An identity provider connected").contains("last call never") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        p = ok_page(&mut web, "/admin").await;
    }
    assert!(item(&p, "A verified email domain").contains("check done"));
    let i = item(&p, "An identity provider connected");
    assert!(
        i.contains("check done") && i.contains("Entra ID") && !i.contains("last call never"),
        "{i}"
    );
    s.stop().await;
}
