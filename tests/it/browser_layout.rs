//! The console's layout with realistic, ugly data at the widths admins
//! really use (1280 and 1024 px, and 1210 px between). An issue reported
//! the OAuth clients table running off its card (its row buttons out of
//! reach) and the audit log's JSON squeezed into a column a few characters
//! wide: both are horizontal overflow, which no functional test sees, so
//! this one measures it in a real browser. The data are what IdPs and
//! people actually send: display names of 60–80 characters, 84-character
//! emails, long client names and Okta callback URLs, 2 KB of audit details,
//! a long mail, a sync error.
//!
//! Every page is saved as `target/screenshots/layout-{width}-{page}.png`
//! (see `browser::screenshot_dir`), the whole page rather than the
//! viewport, so a reviewer sees what a person would after scrolling down.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use roster::workspace::model::{Actor, AuditEntry, ClientKind, Mail, MailKind, MailStatus};
use roster::workspace::oauth::register;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::browser::{Browser, WAIT};
use crate::oauth::{OKTA_CB, PASSWORD, authz, code_via, exchange, set_password, sign_in};
use crate::scim_support::{connection, create, domain, id_of, patch, scim, sync_errors, uuid_of};
use crate::support::{TestServer, Web, test_config};

/// The first admin, signed in for the whole test: their address is in the
/// console's top bar on every page.
const ADMIN: &str = "a.very.long.local.part.for.testing.layout@subdomain.of.a.long-example-domain.example";
const DOMAIN: &str = "subdomain.of.a.long-example-domain.example";
const WORKSPACE: &str = "Contoso Worldwide Engineering, Research & Operations (EMEA and APAC)";
/// An Okta org's real callback shape (EMEA cell, a long app instance id).
const OKTA_EMEA_CB: &str =
    "https://system-admin.okta-emea.com/admin/app/cpc/roster_0oa1b2c3d4e5f6g7h8i9/oauth/callback";

/// Viewports (inner size, CSS px) the console must fit: the two widths of
/// the issue, and 1210 px, the narrowest that still has the side navigation
/// (at 1200 px and below it moves above the page): the least room tables get.
const VIEWPORTS: [(i64, i64); 3] = [(1280, 900), (1210, 900), (1024, 800)];

/// A table row taller than the viewport's height over this is content
/// squeezed into columns too narrow to read: in the layout the issue is
/// about, audit rows with a hundred bytes of details were 300–1,100 px
/// tall at 1280×900 and the one with 2 KB was 10,217 px.
const TALL_ROW_PER_VIEWPORT: i64 = 3;

/// Full-page screenshots stop here (a page longer than this is cut;
/// chromium itself caps a window's height a little below 4,000 px).
const MAX_SHOT_HEIGHT: i64 = 3800;

/// What the seeding made, for the pages that show one thing.
struct Seeded {
    member: Uuid,
    team: String,
    team_name: String,
    mail: u64,
    client_id: String,
}

/// A display name of 60–80 characters, as Entra sends them for people
/// with several given and family names plus a department suffix.
fn long_name(i: usize) -> String {
    let n = format!(
        "{} Fernández-Castellanos de la Vega y Montenegro (Procurement EMEA)",
        [
            "Alexandra",
            "Bernadette",
            "Christophine",
            "Dominique",
            "Evangelina",
            "Friederike"
        ][i % 6]
    );
    assert!((60..=80).contains(&n.chars().count()), "{n}");
    n
}

fn long_email(i: usize) -> String {
    format!("another.very.long.local.part.for.layout.tests.{i}@{DOMAIN}")
}

/// Puts realistic, long data in every table and card of the console.
async fn seed(s: &TestServer) -> Seeded {
    domain(s, DOMAIN, true).await;
    domain(
        s,
        "engineering-and-research-department.eu-central-1.corp.contoso-worldwide.example",
        false,
    )
    .await;

    // Two static tokens with long names; the second is revoked, so the
    // table has both an action button and a "revoked <date>" badge.
    let (okta, _) = connection(
        s,
        "Okta production tenant (contoso-worldwide.okta-emea.com) — SCIM 2.0 provisioning",
    )
    .await;
    let (_, old) = connection(
        s,
        "Microsoft Entra ID — Contoso Worldwide (tenant 7f3c2a9e-1b4d-4e8f-9a6b-2c5d8e1f3a7b)",
    )
    .await;
    roster::workspace::connections::revoke(&s.app, &old.to_string(), Actor::Operator)
        .await
        .unwrap();

    // The IdP links the signed-in admin, then tries to suspend them: they
    // are the only admin yet, so the rule refuses, and that is a sync error.
    let me = create(s, &okta, ADMIN, json!({"displayName": long_name(5)})).await;
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let r = scim(s, "PATCH", &format!("/Users/{}", id_of(&me)), Some(&okta), Some(off)).await;
    assert_eq!(r.status, 409, "suspending the last active admin is refused: {r}");
    assert!(!sync_errors(s).await.is_empty(), "the refusal is a sync error");

    // Members with long names and addresses, one with a long externalId,
    // one an admin (it authorises an OAuth grant below).
    let mut members = Vec::new();
    for i in 0..6 {
        let extra = match i {
            0 => json!({
                "displayName": long_name(i),
                "externalId": "00u1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8r9s0t1u2v3w4x5y6z7-okta-emea-production",
            }),
            1 => json!({"displayName": long_name(i), "roles": [{"value": "admin"}]}),
            _ => json!({"displayName": long_name(i)}),
        };
        members.push(create(s, &okta, &long_email(i), extra).await);
    }
    let member = uuid_of(&members[0]);

    // Teams with long names; the first holds everyone.
    let ids: Vec<Value> = members
        .iter()
        .chain(std::iter::once(&me))
        .map(|m| json!({"value": id_of(m)}))
        .collect();
    let mut team = String::new();
    let mut team_name = String::new();
    for name in [
        "Global Procurement, Vendor Management & Strategic Sourcing — EMEA Shared Services Centre (Lisbon)",
        "Platform Reliability Engineering / Site Reliability / On-call Rotation Primary",
    ] {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": ids,
        });
        let r = scim(s, "POST", "/Groups", Some(&okta), Some(body)).await;
        assert_eq!(r.status, 201, "create team {name}: {r}");
        if team.is_empty() {
            team = id_of(&r.body);
            team_name = name.to_owned();
        }
    }

    // OAuth clients: a confidential Okta client with two long callbacks,
    // a service client for Entra, each named as admins name them.
    let okta_client = register(
        &s.app,
        "Okta EMEA production — Authenticate with roster for SCIM provisioning (system-admin)",
        vec![OKTA_EMEA_CB.into(), OKTA_CB.into()],
        ClientKind::Confidential,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();
    register(
        &s.app,
        "Microsoft Entra ID provisioning agent — Contoso Worldwide production tenant",
        vec![],
        ClientKind::Service,
        false,
        Actor::Operator,
    )
    .await
    .unwrap();

    // Two grants for the Okta client: one by the signed-in admin (active),
    // one by the second admin, revoked when the IdP makes them a member,
    // which puts a long reason and a "authenticate again" notice on the
    // connections page.
    let client_id = okta_client.client.client_id.clone();
    let secret = okta_client.secret.clone().expect("a confidential client has a secret");
    let other_admin = long_email(1);
    for who in [ADMIN, other_admin.as_str()] {
        set_password(s, who, PASSWORD).await;
        let mut web = Web::new(s);
        let r = sign_in(&mut web, who, PASSWORD, "/").await;
        assert_eq!(r.status, 303, "{who} signs in: {r}");
        let code = code_via(&mut web, &authz(&client_id, OKTA_CB, "layout")).await;
        let t = exchange(s, &code, &client_id, &secret).await;
        assert_eq!(t.status, 200, "token for {who}: {t}");
    }
    let demote = patch(json!([{"op": "replace", "path": "roles", "value": [{"value": "member"}]}]));
    let r = scim(
        s,
        "PATCH",
        &format!("/Users/{}", id_of(&members[1])),
        Some(&okta),
        Some(demote),
    )
    .await;
    assert_eq!(r.status, 200, "the IdP makes the second admin a member: {r}");

    // ~2 KB of audit details: an IdP update that changed many attributes.
    let now = s.app.clock.now_ms();
    let changed: Vec<String> = (0..40)
        .map(|i| format!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:attr{i}"))
        .collect();
    let detail = json!({
        "changed": changed,
        "manager": {"value": "00u9z8y7x6w5v4u3t2s1", "displayName": long_name(3)},
        "note": "x".repeat(120),
    });
    assert!(detail.to_string().len() >= 2000, "{}", detail.to_string().len());
    let entry = AuditEntry {
        at_ms: now,
        actor: Actor::Connection {
            id: Uuid::nil(),
            name: "Okta production tenant (contoso-worldwide.okta-emea.com) — SCIM 2.0 provisioning".into(),
        },
        target: format!("member:{member}"),
        action: "member.updated".into(),
        detail,
    };
    s.app
        .store
        .write(move |txn| Ok(Ok::<u64, ()>(roster::store::audit::append(txn, &entry)?)))
        .await
        .unwrap()
        .unwrap();

    // A failed mail with a long subject, an unbroken link and a long error.
    let link = format!(
        "https://roster.contoso-worldwide.example/invite/accept?token=rst_inv_{}",
        "Zx9".repeat(30)
    );
    let mail = Mail {
        to: long_email(4),
        kind: MailKind::Invite,
        subject: format!("You are invited to join {WORKSPACE} on roster — please accept within 7 days"),
        body: format!(
            "Hello {},\n\n{} invited you to the workspace {WORKSPACE}.\n\nAccept the invitation here:\n{link}\n\n{}\n",
            long_name(4),
            ADMIN,
            "This link works once and expires in seven days. ".repeat(8)
        ),
        created_ms: now,
        status: MailStatus::Failed,
        attempts: 7,
        last_error: Some(format!(
            "SMTP 550 5.7.1 <{}>: Recipient address rejected: Access denied. AS(201806281) [AM0PR04MB1234.eurprd04.prod.outlook.com]",
            long_email(4)
        )),
        next_attempt_ms: now + 3_600_000,
        sent_ms: None,
    };
    let mail = s
        .app
        .store
        .write(move |txn| Ok(Ok::<u64, ()>(roster::store::outbox::push(txn, &mail)?)))
        .await
        .unwrap()
        .unwrap();

    Seeded {
        member,
        team,
        team_name,
        mail,
        client_id,
    }
}

/// Every element of the page that is wider inside than its box (the
/// document, `main`, each `.card`, each table, each table's parent and each
/// cell: a nowrap value running into the next cell fits the table but not
/// its cell), and each table's rows taller than `arguments[0]` px, as one
/// line each with the deepest descendants that stick out, so a failure says
/// what to fix.
const OFFENDERS_JS: &str = r#"
const name = (el) => {
  if (el === document.documentElement) return 'html';
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  for (const c of el.classList) s += '.' + c;
  return s;
};
const path = (el) => {
  const parts = [];
  for (let e = el; e && e !== document.body && e !== document.documentElement; e = e.parentElement) parts.unshift(name(e));
  return parts.slice(-3).join(' > ') || name(el);
};
const text = (el) => (el.innerText || '').replace(/\s+/g, ' ').trim().slice(0, 50);
// The deepest descendants whose right edge is past the box's inner edge.
const culprits = (box) => {
  const r = box.getBoundingClientRect();
  const edge = r.left + box.clientLeft + box.clientWidth + 1;
  const out = [];
  for (const d of box.querySelectorAll('*')) {
    const dr = d.getBoundingClientRect();
    if (dr.width === 0 || dr.right <= edge) continue;
    if ([...d.children].some((k) => k.getBoundingClientRect().right > edge)) continue;
    out.push(`${name(d)} "${text(d)}" (${Math.round(dr.right - edge)} px past)`);
    if (out.length === 3) break;
  }
  return out.join('; ');
};
const seen = new Set();
const out = [];
const check = (el) => {
  if (!el || seen.has(el)) return;
  seen.add(el);
  if (el.scrollWidth > el.clientWidth + 1) {
    out.push(`${path(el)} "${text(el)}": content ${el.scrollWidth} px in ${el.clientWidth} px; ${culprits(el)}`);
  }
};
const d = document.documentElement;
if (d.scrollWidth > d.clientWidth) {
  out.push(`document: ${d.scrollWidth} px wide in a ${d.clientWidth} px viewport; ${culprits(document.body)}`);
}
seen.add(d);
check(document.body);
document.querySelectorAll('main, .card, table, td').forEach(check);
document.querySelectorAll('table').forEach((t) => check(t.parentElement));
document.querySelectorAll('table').forEach((t) => {
  const rows = [...t.querySelectorAll('tbody tr')].map((tr) => [Math.round(tr.getBoundingClientRect().height), tr]);
  const tall = rows.filter(([h]) => h > arguments[0]).sort((a, b) => b[0] - a[0]);
  if (tall.length) {
    out.push(`${path(t)}: ${tall.length} of ${rows.length} rows taller than ${arguments[0]} px, the tallest ${tall[0][0]} px: "${text(tall[0][1])}"`);
  }
});
return out;
"#;

/// Runs `js` (a function body) and returns its value.
async fn run(b: &Browser, js: &str, args: Vec<Value>) -> Value {
    match b.client.execute(js, args).await {
        Ok(v) => v,
        Err(e) => b.fail(format_args!("script failed: {e}")).await,
    }
}

/// (innerWidth, innerHeight) of the window, in CSS px.
async fn viewport(b: &Browser) -> (i64, i64) {
    let v = run(b, "return [window.innerWidth, window.innerHeight];", vec![]).await;
    (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0))
}

/// Resizes the window so that its *viewport* is `w`×`h` if it can, and
/// returns the viewport it got (chromium caps a window's height). The
/// window's frame (what chromium draws around the page) is measured, not
/// guessed: outer and inner sizes are read together, so they agree even
/// while the page has not yet seen a resize.
async fn resize(b: &Browser, w: i64, h: i64) -> (i64, i64) {
    let f = run(
        b,
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
        vec![],
    )
    .await;
    let (fw, fh) = (f[0].as_i64().unwrap_or(0), f[1].as_i64().unwrap_or(0));
    let (ow, oh) = ((w + fw) as u32, (h + fh) as u32);
    if let Err(e) = b.client.set_window_size(ow, oh).await {
        b.fail(format_args!("set window size {ow}x{oh}: {e}")).await;
    }
    // The page learns its new size a moment after chromedriver answers.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = viewport(b).await;
        if got == (w, h) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Makes the viewport exactly `w`×`h`.
async fn set_viewport(b: &Browser, w: i64, h: i64) {
    let got = resize(b, w, h).await;
    if got != (w, h) {
        b.fail(format_args!("could not get a {w}x{h} viewport; it is {got:?}"))
            .await;
    }
}

/// Saves the whole page (not only the viewport) by making the window as
/// tall as the page for the shot (as far as chromium lets it), then
/// restores the viewport.
async fn full_page_shot(b: &Browser, name: &str, w: i64, h: i64) -> std::path::PathBuf {
    let v = run(b, "return document.documentElement.scrollHeight;", vec![]).await;
    let tall = v.as_i64().unwrap_or(h).clamp(h, MAX_SHOT_HEIGHT);
    if tall > h {
        let (iw, _) = resize(b, w, tall).await;
        assert_eq!(iw, w, "the screenshot's width is the viewport's");
    }
    let path = b.screenshot(name).await;
    if tall > h {
        set_viewport(b, w, h).await;
    }
    path
}

/// Opens `path` and waits until its `main` heading says `heading`: the
/// page with its data, not a sign-in or error page that happens to fit.
async fn open(b: &Browser, base: &str, path: &str, heading: &str) {
    b.goto(&format!("{base}{path}")).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(el) = b.client.find(Locator::Css("main h1")).await
            && let Ok(t) = el.text().await
            && t.contains(heading)
        {
            return;
        }
        if Instant::now() > deadline {
            b.fail(format_args!("{path}: no main h1 saying {heading:?} within {WAIT:?}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `OFFENDERS_JS` and adds what it finds to `offenders`.
async fn measure(b: &Browser, what: &str, tall_row: i64, offenders: &mut Vec<String>) {
    let found = run(b, OFFENDERS_JS, vec![json!(tall_row)]).await;
    for o in found.as_array().into_iter().flatten() {
        offenders.push(format!("{what}: {}", o.as_str().unwrap_or_default()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_do_not_overflow_at_1280_and_1024() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.workspace_name = WORKSPACE.into();
    config.admin_email = ADMIN.into();
    let s = TestServer::start_with(dir, config).await;
    let seeded = seed(&s).await;
    let Some(b) = Browser::start().await else { return };
    let base = format!("https://localhost:{}", s.addr.port());

    // Sign in as the first admin through the sign-in page.
    b.goto(&format!("{base}/login?next=/admin/members")).await;
    b.fill("#email", ADMIN).await;
    b.fill("#password", PASSWORD).await;
    b.click("main form button[type=submit]").await;
    open(&b, &base, "/admin/members", "Members").await;

    // (screenshot name, path, what its heading says)
    let pages: Vec<(&str, String, String)> = vec![
        ("admin", "/admin".into(), "Getting started".into()),
        ("members", "/admin/members".into(), "Members".into()),
        ("member-new", "/admin/members/new".into(), "Invite a member".into()),
        ("member", format!("/admin/members/{}", seeded.member), long_name(0)),
        ("teams", "/admin/teams".into(), "Teams".into()),
        (
            "team",
            format!("/admin/teams/{}", seeded.team),
            seeded.team_name.clone(),
        ),
        (
            "connections",
            "/admin/connections".into(),
            "Identity provider connections".into(),
        ),
        ("clients", "/admin/clients".into(), "OAuth clients".into()),
        ("domains", "/admin/domains".into(), "Verified domains".into()),
        ("audit", "/admin/audit".into(), "Audit log".into()),
        ("mail", "/admin/mail".into(), "Mail outbox".into()),
        (
            "mail-show",
            format!("/admin/mail/{}", seeded.mail),
            "You are invited".into(),
        ),
        ("sync-errors", "/admin/sync-errors".into(), "Sync errors".into()),
        ("home", "/".into(), long_name(5)),
        (
            "consent",
            format!(
                "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=scim&state=layout",
                seeded.client_id,
                crate::oauth::enc(OKTA_EMEA_CB)
            ),
            "Connect Okta EMEA production".into(),
        ),
    ];

    let mut offenders = Vec::new();
    let mut shots = Vec::new();
    for (w, h) in VIEWPORTS {
        set_viewport(&b, w, h).await;
        for (page, path, heading) in &pages {
            open(&b, &base, path, heading).await;
            measure(
                &b,
                &format!("{w} px {page} ({path})"),
                h / TALL_ROW_PER_VIEWPORT,
                &mut offenders,
            )
            .await;
            shots.push(full_page_shot(&b, &format!("layout-{w}-{page}"), w, h).await);
            if *page == "audit" {
                // Long details open to the whole JSON: taller rows then, by
                // choice, but still no wider than the card.
                let n = run(
                    &b,
                    "const d = document.querySelectorAll('main details'); d.forEach((x) => { x.open = true; }); return d.length;",
                    vec![],
                )
                .await;
                if n.as_i64().unwrap_or(0) == 0 {
                    offenders.push(format!(
                        "{w} px audit: the 2 KB details are not behind a preview (no <details>)"
                    ));
                } else {
                    measure(&b, &format!("{w} px audit, details open"), i64::MAX, &mut offenders).await;
                    shots.push(full_page_shot(&b, &format!("layout-{w}-audit-open"), w, h).await);
                }
            }
        }
    }
    eprintln!(
        "layout: {} pages at {} widths in {:?}; screenshots in {}",
        pages.len(),
        VIEWPORTS.len(),
        started.elapsed(),
        shots[0].parent().unwrap().display()
    );
    b.close().await;
    s.stop().await;
    assert!(
        offenders.is_empty(),
        "{} overflow(s):\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}
