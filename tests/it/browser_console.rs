//! The admin console (`/admin`) in a real browser (Debian chromium through
//! chromedriver, see `browser.rs`): the first admin's one-time init link,
//! inviting a member by hand and the invitee accepting in a second browser
//! (its own profile, so its own cookies), changing a role (and the
//! last-admin rule), suspending a member while they are signed in, teams,
//! static SCIM tokens, and the audit log. Every step goes through what a
//! person sees: links and buttons are found by their visible text, fields
//! by their `<label>`. Outcomes are checked in the page and in the store.
//!
//! Screenshots of the main pages are saved as
//! `target/screenshots/console-*.png` (see `browser::screenshot_dir`).

use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::elements::Element;
use roster::workspace::model::{Actor, AuditEntry, MailKind, Role, Status};
use serde_json::json;
use uuid::Uuid;

use crate::browser::{Browser, WAIT};
use crate::oauth::{ADMIN, PASSWORD, enc, set_password};
use crate::scim_support::{admin, audit, connection, create, domain, mails, member, scim};
use crate::support::{TestServer, test_config};

/// What invitees choose as their password on the accept page.
const MEMBER_PW: &str = "a long member password";

// ---------------------------------------------------------------- helpers

/// The address the browser reaches this test server at.
fn base(s: &TestServer) -> String {
    format!("https://localhost:{}", s.addr.port())
}

/// A link the server wrote with its public URL, as this test server's address.
fn local(s: &TestServer, url: &str) -> String {
    let rest = url
        .strip_prefix(&s.app.config.public_url)
        .unwrap_or_else(|| panic!("{url} does not start with {}", s.app.config.public_url));
    format!("{}{rest}", base(s))
}

/// A fresh server whose workspace was bootstrapped here, so the first
/// admin's one-time login link (what `roster serve` logs on first start)
/// is known: the app is opened, bootstrapped and closed, then served.
async fn start_with_init_link() -> (TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let app = roster::App::open(config.clone()).await.expect("open app");
    let b = app
        .bootstrap_if_empty()
        .await
        .expect("bootstrap")
        .expect("an empty data dir is bootstrapped");
    app.store.close().await;
    drop(app);
    let s = TestServer::start_with(dir, config).await;
    (s, b.login_url)
}

/// An XPath string literal (none of our texts holds both kinds of quote).
fn lit(s: &str) -> String {
    if s.contains('\'') {
        assert!(!s.contains('"'), "cannot quote {s:?} in XPath");
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

/// Waits (up to `WAIT`) for the element at `xpath`.
async fn xpath(b: &Browser, what: &str, xpath: &str) -> Element {
    match b.client.wait().at_most(WAIT).for_element(Locator::XPath(xpath)).await {
        Ok(el) => el,
        Err(e) => b.fail(format_args!("no {what} ({xpath}) within {WAIT:?}: {e}")).await,
    }
}

async fn click_el(b: &Browser, what: &str, el: Element) {
    if let Err(e) = el.click().await {
        b.fail(format_args!("click {what}: {e}")).await;
    }
}

/// Clicks the button whose visible text is `text`.
async fn press(b: &Browser, text: &str) {
    let el = xpath(
        b,
        &format!("button {text:?}"),
        &format!("//button[normalize-space(.)={}]", lit(text)),
    )
    .await;
    click_el(b, &format!("button {text:?}"), el).await;
}

/// Follows the link whose visible text is `text`.
async fn follow(b: &Browser, text: &str) {
    let el = xpath(
        b,
        &format!("link {text:?}"),
        &format!("//a[normalize-space(.)={}]", lit(text)),
    )
    .await;
    click_el(b, &format!("link {text:?}"), el).await;
}

/// Opens a console section from the side navigation and checks that the
/// navigation marks it as the current page.
async fn section(b: &Browser, name: &str) {
    let nav = "//nav[@aria-label='Console sections']";
    let el = xpath(
        b,
        &format!("console section {name:?}"),
        &format!("{nav}//a[normalize-space(.)={}]", lit(name)),
    )
    .await;
    click_el(b, &format!("section {name:?}"), el).await;
    xpath(
        b,
        &format!("{name:?} marked as the current section"),
        &format!("{nav}//a[@aria-current='page'][normalize-space(.)={}]", lit(name)),
    )
    .await;
}

/// The form control labelled `label` (a `<label for=ID>` whose text is
/// `label`, and the control with that id): what a screen reader announces.
async fn labelled(b: &Browser, label: &str) -> Element {
    let l = xpath(
        b,
        &format!("label {label:?}"),
        &format!("//label[normalize-space(.)={}]", lit(label)),
    )
    .await;
    let Ok(Some(id)) = l.attr("for").await else {
        b.fail(format_args!("label {label:?} names no control (no for=)")).await;
    };
    b.wait_for(&format!("#{id}")).await
}

/// Types `text` into the field labelled `label` (clearing it first).
async fn fill_in(b: &Browser, label: &str, text: &str) {
    let el = labelled(b, label).await;
    if let Err(e) = el.clear().await {
        b.fail(format_args!("clear {label:?}: {e}")).await;
    }
    if let Err(e) = el.send_keys(text).await {
        b.fail(format_args!("type into {label:?}: {e}")).await;
    }
}

/// Chooses `value` in the select labelled `label`.
async fn choose(b: &Browser, label: &str, value: &str) {
    let el = labelled(b, label).await;
    if let Err(e) = el.select_by_value(value).await {
        b.fail(format_args!("choose {value:?} in {label:?}: {e}")).await;
    }
}

/// The current value of the field labelled `label`.
async fn value_of(b: &Browser, label: &str) -> String {
    let el = labelled(b, label).await;
    match el.prop("value").await {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => b.fail(format_args!("value of {label:?}: {e}")).await,
    }
}

/// Waits until the URL satisfies `ok`; returns it.
async fn wait_url(b: &Browser, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = b.current_url().await;
        if ok(&url) {
            return url;
        }
        if Instant::now() > deadline {
            b.fail(format_args!("the browser never got to {what}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the URL's path (and query) is exactly `path_and_query`.
async fn wait_path(b: &Browser, s: &TestServer, path_and_query: &str) {
    let want = format!("{}{path_and_query}", base(s));
    wait_url(b, path_and_query, |u| u == want).await;
}

/// Waits until an element matching `css` has text containing `needle`.
async fn wait_text(b: &Browser, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(el) = b.client.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
            && t.contains(needle)
        {
            return t;
        }
        if Instant::now() > deadline {
            b.fail(format_args!("no {css:?} saying {needle:?} within {WAIT:?}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The console's notice after a change (`info` or `error`), once it says `needle`.
async fn notice(b: &Browser, kind: &str, needle: &str) -> String {
    wait_text(b, &format!("main div.alert.{kind}"), needle).await
}

/// The text of the `<dd>` after the `<dt>` saying `term` on a member page.
async fn fact(b: &Browser, term: &str) -> String {
    let el = xpath(
        b,
        &format!("fact {term:?}"),
        &format!(
            "//dl[contains(@class,'facts')]/dt[normalize-space(.)={}]/following-sibling::dd[1]",
            lit(term)
        ),
    )
    .await;
    el.text().await.unwrap_or_default().trim().to_owned()
}

/// The cells' texts of every row of the page's (first) table body.
async fn rows(b: &Browser) -> Vec<Vec<String>> {
    b.wait_for("main table tbody").await;
    let trs = match b.client.find_all(Locator::Css("main table tbody tr")).await {
        Ok(t) => t,
        Err(e) => b.fail(format_args!("table rows: {e}")).await,
    };
    let mut out = Vec::new();
    for tr in trs {
        let mut cells = Vec::new();
        for td in tr.find_all(Locator::Css("td")).await.unwrap_or_default() {
            cells.push(td.text().await.unwrap_or_default().trim().to_owned());
        }
        out.push(cells);
    }
    out
}

/// The row whose text mentions `needle` (panics with the table otherwise).
async fn row_with(b: &Browser, needle: &str) -> Vec<String> {
    let all = rows(b).await;
    match all.iter().find(|r| r.iter().any(|c| c.contains(needle))) {
        Some(r) => r.clone(),
        None => b.fail(format_args!("no row mentions {needle:?}; rows: {all:?}")).await,
    }
}

/// Signs in through the sign-in page and waits to land on `next`.
async fn sign_in(b: &Browser, s: &TestServer, email: &str, pw: &str, next: &str) {
    b.goto(&format!("{}/login?next={}", base(s), enc(next))).await;
    fill_in(b, "Email", email).await;
    fill_in(b, "Password", pw).await;
    press(b, "Sign in").await;
    wait_path(b, s, next).await;
}

/// A browser signed in as the first admin, on the members list.
async fn admin_browser(s: &TestServer) -> Option<Browser> {
    let b = Browser::start().await?;
    set_password(s, ADMIN, PASSWORD).await;
    sign_in(&b, s, ADMIN, PASSWORD, "/admin/members").await;
    Some(b)
}

/// Invites `email` by hand from the console (Members → Invite member →
/// Send invitation); returns the new member's id from the page it lands on.
async fn invite_by_hand(b: &Browser, s: &TestServer, email: &str, name: &str, role: &str) -> Uuid {
    section(b, "Members").await;
    follow(b, "Invite member").await;
    xpath(b, "the invite page", "//h1[normalize-space(.)='Invite a member']").await;
    fill_in(b, "Email", email).await;
    fill_in(b, "Name (optional)", name).await;
    b.click(&format!("input[type=radio][name=role][value={role}]")).await;
    press(b, "Send invitation").await;
    let prefix = format!("{}/admin/members/", base(s));
    let url = wait_url(b, "the new member's page", |u| {
        u.starts_with(&prefix) && u.ends_with("?done=invited")
    })
    .await;
    let id = &url[prefix.len()..url.len() - "?done=invited".len()];
    Uuid::parse_str(id).unwrap_or_else(|e| panic!("member id {id:?} in {url}: {e}"))
}

/// The accept link of the newest invitation mail to `to`, as this server's URL.
async fn invite_link(s: &TestServer, to: &str) -> String {
    let all = mails(s).await;
    let m = all
        .iter()
        .rev()
        .find(|m| m.to == to && m.kind == MailKind::Invite)
        .unwrap_or_else(|| panic!("no invitation mail to {to} in the outbox: {all:?}"));
    let prefix = format!("{}/invite/accept?token=", s.app.config.public_url);
    let at = m
        .body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {:?}", m.body));
    let url: String = m.body[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    local(s, &url)
}

/// In browser `b` (the invitee's own), opens the invitation from the mail,
/// chooses a password and lands signed in on their home page.
async fn accept_invite(b: &Browser, s: &TestServer, email: &str) {
    b.goto(&invite_link(s, email).await).await;
    wait_text(b, "main h1", "Join My workspace").await;
    wait_text(b, "main .lead", &format!("You were invited as {email}.")).await;
    fill_in(b, "Choose a password", MEMBER_PW).await;
    fill_in(b, "Repeat the password", MEMBER_PW).await;
    press(b, "Accept and join").await;
    wait_path(b, s, "/").await;
    xpath(
        b,
        "the member's email on their home page",
        &format!("//dl[contains(@class,'facts')]/dd[normalize-space(.)={}]", lit(email)),
    )
    .await;
}

async fn sessions_of(s: &TestServer, id: Uuid) -> usize {
    s.app
        .store
        .read(move |txn| roster::store::sessions::count_for_member(txn, id))
        .await
        .unwrap()
}

fn by_admin(e: &AuditEntry) -> bool {
    matches!(&e.actor, Actor::Admin { email, .. } if email == ADMIN)
}

/// Audit rows with `action` on `target`.
async fn audit_of(s: &TestServer, action: &str, target: &str) -> Vec<AuditEntry> {
    audit(s)
        .await
        .into_iter()
        .filter(|e| e.action == action && e.target == target)
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_signs_in_with_the_init_link_and_reaches_the_console() {
    let Some(b) = Browser::start().await else { return };
    let (s, login_url) = start_with_init_link().await;
    let first = admin(&s).await;
    assert_eq!(first.password_hash, None, "the first admin has no password yet");

    // Not signed in: the console sends the browser to sign in and back.
    b.goto(&format!("{}/admin", base(&s))).await;
    wait_path(&b, &s, "/login?next=%2Fadmin").await;

    // The link from the first start: a page with a button, not a GET that signs in.
    assert!(login_url.contains("/login/link?token=rst_login_"), "{login_url}");
    b.goto(&local(&s, &login_url)).await;
    wait_text(&b, "main h1", "Sign in").await;
    wait_text(&b, "main .lead", "Continue as admin@localhost to My workspace.").await;
    assert_eq!(sessions_of(&s, first.id).await, 0, "opening the link signs no one in");
    press(&b, "Sign in").await;

    // Signed in: the admin's home page, with the way into the console.
    wait_path(&b, &s, "/").await;
    wait_text(&b, "main h1", ADMIN).await;
    follow(&b, "Admin console").await;
    // The console opens on its getting-started overview (issue 18).
    wait_path(&b, &s, "/admin").await;
    wait_text(&b, "main h1", "Getting started").await;
    follow(&b, "Members").await;
    wait_path(&b, &s, "/admin/members").await;
    xpath(&b, "the members heading", "//h1[normalize-space(.)='Members']").await;
    xpath(
        &b,
        "Members as the current section",
        "//nav[@aria-label='Console sections']//a[@aria-current='page'][.='Members']",
    )
    .await;
    wait_text(&b, "header .me", ADMIN).await;
    let row = row_with(&b, ADMIN).await;
    assert_eq!(row[1], "Admin", "role column: {row:?}");
    assert_eq!(row[2], "active", "status column: {row:?}");
    assert_eq!(row[3], "roster", "managed-by column: {row:?}");
    assert_eq!(rows(&b).await.len(), 1, "only the first admin so far");
    wait_text(&b, "main table caption", "1–1 of 1").await;
    b.screenshot("console-first-login").await;

    // The store: one session for the admin, made by the link.
    assert_eq!(sessions_of(&s, first.id).await, 1);
    let used = audit_of(&s, "session.signed_in_with_link", &format!("member:{}", first.id)).await;
    assert_eq!(used.len(), 1, "one sign-in with the link: {used:?}");

    // The link works once.
    b.goto(&local(&s, &login_url)).await;
    wait_text(&b, "main h1", "This link is not valid").await;
    assert!(!b.exists("input[name=token]").await, "no form to use it again");
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_invites_a_member_who_accepts_in_a_second_browser() {
    let Some(a) = Browser::start().await else { return };
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    sign_in(&a, &s, ADMIN, PASSWORD, "/admin/members").await;

    // Members → Invite member: example.org is not a verified domain, so
    // Ana is invited (not added).
    section(&a, "Members").await;
    follow(&a, "Invite member").await;
    wait_path(&a, &s, "/admin/members/new").await;
    wait_text(&a, "main .lead", "everyone else gets an invitation to accept").await;
    fill_in(&a, "Email", "ana@example.org").await;
    fill_in(&a, "Name (optional)", "Ana Lima").await;
    let member_radio = a.wait_for("input[type=radio][name=role][value=member]").await;
    assert_eq!(
        member_radio.prop("checked").await.unwrap().as_deref(),
        Some("true"),
        "Member is the default role"
    );
    a.click("input[type=radio][name=role][value=member]").await;
    press(&a, "Send invitation").await;

    let prefix = format!("{}/admin/members/", base(&s));
    let url = wait_url(&a, "Ana's member page", |u| {
        u.starts_with(&prefix) && u.ends_with("?done=invited")
    })
    .await;
    let id = Uuid::parse_str(&url[prefix.len()..url.len() - "?done=invited".len()]).expect("member id in the URL");
    notice(&a, "info", "Invitation sent. It is in the mail outbox.").await;
    wait_text(&a, "main h1", "Ana Lima").await;
    assert_eq!(a.text_of("main .page-head .badge").await, "invited");
    assert_eq!(fact(&a, "Email").await, "ana@example.org");
    assert_eq!(fact(&a, "Role").await, "Member");
    assert_eq!(fact(&a, "Status").await, "invited");
    assert_eq!(fact(&a, "Managed by").await, "roster (unmanaged)");
    assert_eq!(fact(&a, "Member id").await, id.to_string());
    assert_eq!(fact(&a, "Open links").await, "1");
    assert_eq!(fact(&a, "Sessions").await, "0");
    // An invited member gets their invitation again, not a password link.
    xpath(
        &a,
        "the resend button",
        "//button[normalize-space(.)='Resend invitation']",
    )
    .await;

    // The store and the outbox.
    let m = member(&s, id).await.expect("the invited member is stored");
    assert_eq!(
        (m.email.as_str(), m.status, m.role),
        ("ana@example.org", Status::Invited, Role::Member)
    );
    assert_eq!(m.display_name.as_deref(), Some("Ana Lima"));
    let invites: Vec<_> = mails(&s)
        .await
        .into_iter()
        .filter(|m| m.to == "ana@example.org")
        .collect();
    assert_eq!(invites.len(), 1, "one mail to Ana: {invites:?}");
    assert_eq!(invites[0].kind, MailKind::Invite);
    assert!(invites[0].subject.contains("My workspace"), "{:?}", invites[0].subject);
    let rows = audit_of(&s, "member.invited", &format!("member:{id}")).await;
    assert!(
        rows.len() == 1 && by_admin(&rows[0]),
        "member.invited by the admin: {rows:?}"
    );

    // Ana, in her own browser: the link from the mail, a password, signed in.
    let Some(ana) = Browser::start().await else { return };
    accept_invite(&ana, &s, "ana@example.org").await;
    wait_text(&ana, "main h1", "Ana Lima").await;
    assert!(
        !ana.exists("a[href='/admin']").await,
        "a member's home page has no console link"
    );
    assert_eq!(member(&s, id).await.unwrap().status, Status::Active);
    assert_eq!(sessions_of(&s, id).await, 1);
    // A member is not an admin: the console says so.
    ana.goto(&format!("{}/admin/members", base(&s))).await;
    wait_text(&ana, "main h1", "Admins only").await;
    // The accept link is used up.
    ana.goto(&invite_link(&s, "ana@example.org").await).await;
    wait_text(&ana, "main h1", "This link is not valid").await;

    // The admin's browser: the member page now says active.
    a.goto(&format!("{}/admin/members/{id}", base(&s))).await;
    wait_text(&a, "main .page-head .badge", "active").await;
    assert_eq!(fact(&a, "Status").await, "active");
    assert_eq!(fact(&a, "Sessions").await, "1");
    assert_eq!(fact(&a, "Open links").await, "0");
    xpath(
        &a,
        "the password-link button",
        "//button[normalize-space(.)='Send set-password link']",
    )
    .await;
    a.screenshot("console-member").await;

    // And so does the list.
    section(&a, "Members").await;
    let row = row_with(&a, "ana@example.org").await;
    assert!(row[0].contains("Ana Lima"), "{row:?}");
    assert_eq!((row[1].as_str(), row[2].as_str()), ("Member", "active"), "{row:?}");

    // Inviting Ana again says why not, and keeps what was typed.
    follow(&a, "Invite member").await;
    fill_in(&a, "Email", "ana@example.org").await;
    fill_in(&a, "Name (optional)", "Ana Again").await;
    press(&a, "Send invitation").await;
    notice(&a, "error", "ana@example.org is already a member of this workspace").await;
    assert_eq!(value_of(&a, "Email").await, "ana@example.org");
    assert_eq!(value_of(&a, "Name (optional)").await, "Ana Again");
    assert_eq!(
        mails(&s).await.iter().filter(|m| m.to == "ana@example.org").count(),
        1,
        "no second mail"
    );
    ana.close().await;
    a.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_a_role_but_never_demotes_the_last_admin() {
    let s = TestServer::start().await;
    let Some(b) = admin_browser(&s).await else { return };
    let me = admin(&s).await;

    // The only admin cannot make themself a member.
    b.goto(&format!("{}/admin/members/{}", base(&s), me.id)).await;
    wait_text(&b, "main p.alert.info", "You are the workspace's last active admin").await;
    choose(&b, "Role", "member").await;
    press(&b, "Change role").await;
    let said = notice(&b, "error", "last active admin").await;
    assert!(
        said.contains("You cannot make admin@localhost a member"),
        "the refusal says what and why: {said:?}"
    );
    assert_eq!(fact(&b, "Role").await, "Admin", "the page still says admin");
    assert_eq!(admin(&s).await.role, Role::Admin, "the store still says admin");
    assert!(
        audit(&s).await.iter().all(|e| e.action != "member.role_changed"),
        "a refused change is not audited"
    );

    // Making a member an admin.
    let id = invite_by_hand(&b, &s, "cleo@example.org", "Cleo Diaz", "member").await;
    assert_eq!(fact(&b, "Role").await, "Member");
    choose(&b, "Role", "admin").await;
    press(&b, "Change role").await;
    wait_path(&b, &s, &format!("/admin/members/{id}?done=role")).await;
    notice(&b, "info", "Role changed.").await;
    assert_eq!(fact(&b, "Role").await, "Admin");
    assert_eq!(b.text_of("dl.facts .badge.admin").await, "Admin");
    assert_eq!(member(&s, id).await.unwrap().role, Role::Admin);
    let changed = audit_of(&s, "member.role_changed", &format!("member:{id}")).await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        by_admin(&changed[0]),
        "changed by the signed-in admin: {:?}",
        changed[0].actor
    );
    assert_eq!(changed[0].detail["from"], json!("member"));
    assert_eq!(changed[0].detail["to"], json!("admin"));

    // Choosing the role they already have changes nothing.
    choose(&b, "Role", "admin").await;
    press(&b, "Change role").await;
    wait_path(&b, &s, &format!("/admin/members/{id}?done=unchanged")).await;
    notice(&b, "info", "Nothing to change.").await;
    assert_eq!(
        audit_of(&s, "member.role_changed", &format!("member:{id}")).await.len(),
        1
    );

    // The list shows the new admin.
    section(&b, "Members").await;
    let row = row_with(&b, "cleo@example.org").await;
    assert_eq!(row[1], "Admin", "{row:?}");
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_member_ends_their_session_in_their_browser() {
    let s = TestServer::start().await;
    let Some(a) = admin_browser(&s).await else { return };
    let id = invite_by_hand(&a, &s, "dev@example.org", "Dev Patel", "member").await;

    // Dev accepts in their own browser and is signed in there.
    let Some(dev) = Browser::start().await else { return };
    accept_invite(&dev, &s, "dev@example.org").await;
    dev.goto(&format!("{}/", base(&s))).await;
    wait_text(&dev, "main h1", "Dev Patel").await;
    assert_eq!(sessions_of(&s, id).await, 1);

    // The admin suspends Dev.
    a.goto(&format!("{}/admin/members/{id}", base(&s))).await;
    assert_eq!(fact(&a, "Sessions").await, "1");
    press(&a, "Suspend").await;
    wait_path(&a, &s, &format!("/admin/members/{id}?done=suspended")).await;
    notice(&a, "info", "Member suspended. Their sessions and links no longer work.").await;
    assert_eq!(a.text_of("main .page-head .badge").await, "suspended");
    assert_eq!(fact(&a, "Sessions").await, "0");
    xpath(&a, "the restore button", "//button[normalize-space(.)='Restore']").await;
    assert_eq!(member(&s, id).await.unwrap().status, Status::Suspended);
    assert_eq!(sessions_of(&s, id).await, 0, "the suspension ended Dev's session");
    let rows = audit_of(&s, "member.suspended", &format!("member:{id}")).await;
    assert!(rows.len() == 1 && by_admin(&rows[0]), "{rows:?}");

    // Dev's browser still has the cookie, but it no longer signs anyone in.
    dev.goto(&format!("{}/", base(&s))).await;
    wait_path(&dev, &s, "/login?next=/").await;
    wait_text(&dev, "main h1", "Sign in").await;
    // Nor does Dev's password.
    fill_in(&dev, "Email", "dev@example.org").await;
    fill_in(&dev, "Password", MEMBER_PW).await;
    press(&dev, "Sign in").await;
    notice_on_login(&dev, "Email or password is incorrect.").await;
    assert_eq!(sessions_of(&s, id).await, 0);
    dev.close().await;
    a.close().await;
    s.stop().await;
}

/// The sign-in page's error (it is not a console page).
async fn notice_on_login(b: &Browser, needle: &str) {
    wait_text(b, "main div.alert.error[role=alert]", needle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_a_team_and_adds_a_member() {
    let s = TestServer::start().await;
    let Some(b) = admin_browser(&s).await else { return };
    let gus = invite_by_hand(&b, &s, "gus@example.org", "Gus Hale", "member").await;

    section(&b, "Teams").await;
    wait_text(&b, "main table", "No teams yet.").await;
    // A name with markup characters must come back as text.
    let name = "R&D <Platform>";
    fill_in(&b, "New team", name).await;
    press(&b, "Create team").await;
    let prefix = format!("{}/admin/teams/", base(&s));
    let url = wait_url(&b, "the new team's page", |u| {
        u.starts_with(&prefix) && u.ends_with("?done=team_created")
    })
    .await;
    let team = Uuid::parse_str(&url[prefix.len()..url.len() - "?done=team_created".len()]).expect("team id");
    notice(&b, "info", "Team created.").await;
    assert_eq!(b.text_of("main h1").await, name, "the name is shown as text");
    assert!(!b.exists("main h1 platform").await, "the name is not markup");
    assert_eq!(value_of(&b, "Team name").await, name);
    wait_text(&b, "main table", "No members in this team.").await;

    // Adding someone who is not a member says so and keeps what was typed.
    fill_in(&b, "Add a member by email", "nobody@example.org").await;
    press(&b, "Add").await;
    notice(&b, "error", "No member with the email nobody@example.org.").await;
    assert_eq!(value_of(&b, "Add a member by email").await, "nobody@example.org");

    // Adding Gus.
    fill_in(&b, "Add a member by email", "gus@example.org").await;
    press(&b, "Add").await;
    wait_path(&b, &s, &format!("/admin/teams/{team}?done=team_added")).await;
    notice(&b, "info", "Member added to the team.").await;
    let row = row_with(&b, "gus@example.org").await;
    assert!(row[0].contains("Gus Hale"), "{row:?}");
    assert_eq!(row[1], "invited", "{row:?}");
    xpath(
        &b,
        "a labelled remove button",
        "//button[@aria-label='Remove gus@example.org from the team']",
    )
    .await;
    wait_text(&b, "main table caption", "1 member").await;
    b.screenshot("console-team").await;

    // The store.
    let teams = s
        .app
        .store
        .read(move |txn| roster::store::teams::teams_of(txn, gus))
        .await
        .unwrap();
    assert_eq!(teams, vec![(team, name.to_owned())]);
    let t = s
        .app
        .store
        .read(move |txn| roster::store::teams::get(txn, team))
        .await
        .unwrap()
        .expect("team stored");
    assert_eq!((t.name.as_str(), t.member_count), (name, 1));
    let created = audit_of(&s, "team.created", &format!("team:{team}")).await;
    assert!(created.len() == 1 && by_admin(&created[0]), "{created:?}");
    let added = audit_of(&s, "team.members_added", &format!("team:{team}")).await;
    assert!(added.len() == 1 && by_admin(&added[0]), "{added:?}");

    // Gus's page lists the team; the teams list counts one member.
    follow(&b, "gus@example.org").await;
    wait_path(&b, &s, &format!("/admin/members/{gus}")).await;
    xpath(
        &b,
        "the team on Gus's page",
        &format!("//a[@href='/admin/teams/{team}'][normalize-space(.)={}]", lit(name)),
    )
    .await;
    section(&b, "Teams").await;
    let row = row_with(&b, name).await;
    assert_eq!(row[1], "1", "{row:?}");
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_a_scim_token_that_works_until_revoked() {
    let s = TestServer::start().await;
    let Some(b) = admin_browser(&s).await else { return };
    let tname = "Entra ID test";

    section(&b, "IdP connections").await;
    wait_text(&b, "main table", "No static tokens.").await;
    fill_in(&b, "New static SCIM token", tname).await;
    press(&b, "Create token").await;

    // Shown once, in a read-only field labelled "Token".
    wait_text(&b, "main #issued-h", &format!("New token for {tname}")).await;
    notice(
        &b,
        "info",
        &format!("Token created for {tname}. Copy it now: it is shown only once."),
    )
    .await;
    let field = labelled(&b, "Token").await;
    assert!(
        field.attr("readonly").await.unwrap().is_some(),
        "the token field is read-only"
    );
    let token = value_of(&b, "Token").await;
    assert!(token.starts_with("rst_scim_"), "token {token:?}");
    let row = row_with(&b, tname).await;
    assert!(row[3].contains("active"), "{row:?}");
    assert_eq!(row[2], "never", "not used yet: {row:?}");
    b.screenshot("console-connections").await;

    // It works on SCIM.
    let r = scim(&s, "GET", "/Users", Some(&token), None).await;
    assert_eq!(r.status, 200, "the new token works: {r}");
    let conn = roster::workspace::connections::list(&s.app)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == tname)
        .expect("connection stored");
    assert_eq!(conn.revoked_ms, None);
    let created = audit_of(&s, "connection.created", &format!("connection:{}", conn.id)).await;
    assert!(created.len() == 1 && by_admin(&created[0]), "{created:?}");

    // The list, opened again, never shows the token again, and shows the
    // use (recorded in the background).
    let deadline = Instant::now() + WAIT;
    loop {
        section(&b, "IdP connections").await;
        let row = row_with(&b, tname).await;
        if row[2] != "never" {
            break;
        }
        assert!(Instant::now() < deadline, "last use never shown: {row:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!b.exists("#issued-token").await, "no token box on a plain visit");
    assert!(
        !b.source().await.contains(&token),
        "the token is not on the page any more"
    );

    // Revoke: the token stops working at once.
    press_labelled(&b, &format!("Revoke {tname}")).await;
    wait_path(&b, &s, "/admin/connections?done=revoked").await;
    notice(&b, "info", "Revoked. Its tokens stopped working.").await;
    let row = row_with(&b, tname).await;
    assert!(row[3].starts_with("revoked "), "{row:?}");
    assert!(
        !b.exists(&format!("button[aria-label='Revoke {tname}']")).await,
        "a revoked token has no revoke button"
    );
    let r = scim(&s, "GET", "/Users", Some(&token), None).await;
    assert_eq!(r.status, 401, "the revoked token is refused: {r}");
    let conn = roster::workspace::connections::list(&s.app)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == tname)
        .unwrap();
    assert!(conn.revoked_ms.is_some());
    let revoked = audit_of(&s, "connection.revoked", &format!("connection:{}", conn.id)).await;
    assert!(revoked.len() == 1 && by_admin(&revoked[0]), "{revoked:?}");

    // Reloading shows neither the token nor a new one.
    if let Err(e) = b.client.refresh().await {
        b.fail(format_args!("reload: {e}")).await;
    }
    wait_text(&b, "main h1", "Identity provider connections").await;
    assert!(!b.exists("#issued-token").await);
    assert!(!b.source().await.contains(&token));
    assert_eq!(
        roster::workspace::connections::list(&s.app).await.unwrap().len(),
        1,
        "a reload made no second token"
    );
    b.close().await;
    s.stop().await;
}

/// Clicks the button whose accessible name (`aria-label`) is `label`.
async fn press_labelled(b: &Browser, label: &str) {
    let el = xpath(
        b,
        &format!("button labelled {label:?}"),
        &format!("//button[@aria-label={}]", lit(label)),
    )
    .await;
    click_el(b, &format!("button {label:?}"), el).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_filters_by_actor_and_by_target() {
    let s = TestServer::start().await;
    // An identity provider provisions Fay, on a verified domain (audited
    // as the connection and the operator).
    domain(&s, "corp.example", true).await;
    let (okta, _) = connection(&s, "Okta").await;
    create(&s, &okta, "fay@corp.example", json!({"displayName": "Fay Olsen"})).await;
    let Some(b) = admin_browser(&s).await else { return };
    // The admin invites Dana and Eli and makes Eli an admin.
    let dana = invite_by_hand(&b, &s, "dana@example.org", "Dana Ruiz", "member").await;
    let eli = invite_by_hand(&b, &s, "eli@example.org", "Eli Park", "member").await;
    choose(&b, "Role", "admin").await;
    press(&b, "Change role").await;
    wait_path(&b, &s, &format!("/admin/members/{eli}?done=role")).await;

    // The members list with all of them.
    section(&b, "Members").await;
    assert_eq!(rows(&b).await.len(), 4);
    let fay = row_with(&b, "fay@corp.example").await;
    assert_eq!((fay[2].as_str(), fay[3].as_str()), ("active", "Okta"), "{fay:?}");
    let e = row_with(&b, "eli@example.org").await;
    assert_eq!((e[1].as_str(), e[2].as_str()), ("Admin", "invited"), "{e:?}");
    b.screenshot("console-members").await;

    // Unfiltered: everything, newest first, the bootstrap included.
    section(&b, "Audit log").await;
    let all = rows(&b).await;
    let actions: Vec<&str> = all.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        actions.first(),
        Some(&"member.role_changed"),
        "newest first: {actions:?}"
    );
    for want in [
        "workspace.created",
        "connection.created",
        "member.invited",
        "session.signed_in",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }

    // By actor: only what the admin did.
    fill_in(&b, "Actor", ADMIN).await;
    press(&b, "Filter").await;
    wait_url(&b, "the actor filter", |u| u.contains("actor=admin%40localhost")).await;
    wait_text(&b, "main table caption", "found in").await;
    let mine = rows(&b).await;
    // The admin acting in the console, and the same person signing in.
    assert!(
        mine.iter()
            .all(|r| r[1] == "admin@localhost (admin)" || (r[1] == ADMIN && r[2] == "session.signed_in")),
        "only the admin's entries: {mine:?}"
    );
    let actions: Vec<&str> = mine.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "member.invited").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"member.role_changed"), "{actions:?}");
    assert!(!actions.contains(&"workspace.created"), "{actions:?}");
    assert!(!actions.contains(&"member.created"), "Fay came from Okta: {actions:?}");
    assert_eq!(value_of(&b, "Actor").await, ADMIN, "the filter stays in the form");
    b.screenshot("console-audit").await;

    // By target: everything about Eli, whoever did it.
    fill_in(&b, "Actor", "").await;
    fill_in(&b, "Target", &format!("member:{eli}")).await;
    press(&b, "Filter").await;
    wait_url(&b, "the target filter", |u| {
        u.contains(&format!("target=member%3A{eli}"))
    })
    .await;
    wait_text(&b, "main table caption", "found in").await;
    let about_eli = rows(&b).await;
    assert!(
        about_eli.iter().all(|r| r[3] == format!("member:{eli}")),
        "only Eli's entries: {about_eli:?}"
    );
    let actions: Vec<&str> = about_eli.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(actions, ["member.role_changed", "member.invited"], "{about_eli:?}");
    assert!(
        about_eli[0][4].contains(r#""to":"admin""#),
        "details: {:?}",
        about_eli[0]
    );
    assert!(about_eli.iter().all(|r| !r[3].contains(&dana.to_string())));

    // The target links to the member; their page links back to this view.
    b.click(&format!("main tbody a[href='/admin/members/{eli}']")).await;
    wait_path(&b, &s, &format!("/admin/members/{eli}")).await;
    follow(&b, "Audit history of this member").await;
    wait_path(&b, &s, &format!("/admin/audit?target=member%3A{eli}")).await;
    assert_eq!(value_of(&b, "Target").await, format!("member:{eli}"));
    assert_eq!(rows(&b).await, about_eli);

    // A filter that matches nothing says so.
    fill_in(&b, "Target", "no-such-target").await;
    press(&b, "Filter").await;
    wait_url(&b, "the empty filter", |u| u.contains("target=no-such-target")).await;
    wait_text(&b, "main table", "No entries match.").await;
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_section_opens_from_the_side_navigation() {
    let s = TestServer::start().await;
    let Some(b) = admin_browser(&s).await else { return };
    for (name, path, heading) in [
        ("Members", "/admin/members", "Members"),
        ("Teams", "/admin/teams", "Teams"),
        ("IdP connections", "/admin/connections", "Identity provider connections"),
        ("OAuth clients", "/admin/clients", "OAuth clients"),
        ("Domains", "/admin/domains", "Verified domains"),
        ("Audit log", "/admin/audit", "Audit log"),
        ("Mail outbox", "/admin/mail", "Mail outbox"),
        ("Sync errors", "/admin/sync-errors", "Sync errors"),
    ] {
        section(&b, name).await;
        wait_path(&b, &s, path).await;
        assert_eq!(b.text_of("main h1").await, heading, "{name}");
    }
    b.close().await;
    s.stop().await;
}

/// Issue 18: an admin who signed in with the first link, never chose a
/// password and whose session ended is locked out of password sign-in;
/// `roster admin login-link` (the same command the CLI sends over the
/// control socket) prints a link that gets them back in, in a real browser,
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_admin_login_link_gets_a_locked_out_admin_back_in() {
    let Some(b) = Browser::start().await else { return };
    let (s, login_url) = start_with_init_link().await;
    let first = admin(&s).await;
    b.goto(&local(&s, &login_url)).await;
    wait_text(&b, "main h1", "Sign in").await;
    press(&b, "Sign in").await;
    wait_path(&b, &s, "/").await;
    wait_text(&b, "main h1", ADMIN).await;
    press(&b, "Sign out").await;
    wait_path(&b, &s, "/login").await;
    assert_eq!(sessions_of(&s, first.id).await, 0, "signed out");
    assert_eq!(admin(&s).await.password_hash, None, "no password: locked out");

    let out = roster::control::execute(
        &s.app,
        roster::control::AdminRequest::AdminLoginLink { email: ADMIN.into() },
    )
    .await
    .expect("login-link for the first admin");
    let link: String = out
        .split_whitespace()
        .find(|w| w.contains("/login/link?token=rst_login_"))
        .unwrap_or_else(|| panic!("no link in {out}"))
        .to_owned();
    assert_ne!(link, login_url, "a fresh link");
    b.goto(&local(&s, &link)).await;
    wait_text(&b, "main h1", "Sign in").await;
    press(&b, "Sign in").await;
    wait_path(&b, &s, "/").await;
    wait_text(&b, "main h1", ADMIN).await;
    b.goto(&format!("{}/admin/members", base(&s))).await;
    wait_path(&b, &s, "/admin/members").await;
    b.screenshot("r18-login-link-back-in").await;
    assert_eq!(sessions_of(&s, first.id).await, 1);
    let issued = audit_of(&s, "member.login_link_issued", &format!("member:{}", first.id)).await;
    assert_eq!(issued.len(), 1, "{issued:?}");

    // Once only.
    b.goto(&local(&s, &link)).await;
    wait_text(&b, "main h1", "This link is not valid").await;
    s.stop().await;
}
