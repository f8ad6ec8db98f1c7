//! The admin console (`/admin`): members, teams, IdP connections and SCIM
//! tokens, OAuth clients, verified domains, audit log, mail outbox and sync
//! errors. Server-rendered, no JavaScript; every form carries the session's
//! CSRF token; every change goes through a `workspace` operation that
//! writes its audit row in the same transaction. After a successful POST
//! the browser is sent back (303) to the page with a fixed notice code, so
//! a reload never repeats a change and no user text is reflected from the
//! URL. Secrets (new SCIM tokens, client secrets) are shown once, in the
//! response to the POST that made them, never in a URL.

use askama::Template;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::macros::format_description;
use uuid::Uuid;

use super::session::{self, SignedIn};
use super::{message, render, workspace_name};
use crate::workspace::admin::{self, AdminCtx, Invitation, MemberChange};
use crate::workspace::connections::{self, ConnectionError};
use crate::workspace::domains::{self, DomainChange, DomainError};
use crate::workspace::members::RuleError;
use crate::workspace::model::*;
use crate::workspace::oauth::{self, ClientError};
use crate::workspace::sessions::Live;
use crate::workspace::teams::{self, PersonOp, TeamError};
use crate::workspace::views::{self, AuditFilter, MemberFilter};
use crate::{App, paths};

const PAGE: usize = 50;

// ---------------------------------------------------------------- plumbing

/// A signed-in active admin. Not signed in: redirect to sign-in and back;
/// signed in without the admin role: a 403 page.
pub struct Admin {
    live: Live,
    ctx: AdminCtx,
    workspace: String,
}

impl FromRequestParts<App> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let signed = <SignedIn as axum::extract::OptionalFromRequestParts<App>>::from_request_parts(parts, app)
            .await
            .ok()
            .flatten();
        let Some(SignedIn(live)) = signed else {
            let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(paths::ADMIN);
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return Err(Redirect::to(&format!("{}?next={next}", paths::LOGIN)).into_response());
        };
        let workspace = workspace_name(app).await;
        let Some(ctx) = AdminCtx::from_member(&live.member) else {
            return Err(message(
                &workspace,
                StatusCode::FORBIDDEN,
                "Admins only",
                &["The console is for workspace admins. Ask an admin if you need access."],
                Some(("/", "Go to your page")),
            ));
        };
        Ok(Admin { live, ctx, workspace })
    }
}

impl Admin {
    fn chrome(&self, section: &'static str, notice: Option<Notice>) -> Chrome {
        Chrome {
            workspace: self.workspace.clone(),
            csrf: self.live.session.csrf.clone(),
            me: self.live.member.email.clone(),
            section,
            notice,
        }
    }

    /// The refusal of a form whose CSRF token is not this session's.
    fn refuse(&self, submitted: &str) -> Option<Response> {
        if session::equal(&self.live.session.csrf, submitted) {
            None
        } else {
            Some(message(
                &self.workspace,
                StatusCode::FORBIDDEN,
                "This form has expired",
                &["Reload the page and try again."],
                Some((paths::ADMIN, "Back to the console")),
            ))
        }
    }
}

/// What every console page shows around its content.
pub struct Chrome {
    pub workspace: String,
    pub csrf: String,
    pub me: String,
    pub section: &'static str,
    pub notice: Option<Notice>,
}

pub struct Notice {
    pub kind: &'static str,
    pub text: String,
}

fn ok(text: impl Into<String>) -> Option<Notice> {
    Some(Notice {
        kind: "info",
        text: text.into(),
    })
}

fn err(text: impl Into<String>) -> Option<Notice> {
    Some(Notice {
        kind: "error",
        text: text.into(),
    })
}

/// The fixed notices a redirect after a change can ask for.
fn done_notice(code: &str) -> Option<Notice> {
    let text = match code {
        "invited" => "Invitation sent. It is in the mail outbox.",
        "added" => "Member added: their domain is verified, so they are active now. A welcome mail is in the outbox.",
        "role" => "Role changed.",
        "suspended" => "Member suspended. Their sessions and links no longer work.",
        "restored" => "Member restored.",
        "removed" => "Member removed. They can be restored from the list (status: removed).",
        "link" => "A new link was sent. It is in the mail outbox.",
        "team_created" => "Team created.",
        "team_renamed" => "Team renamed.",
        "team_added" => "Member added to the team.",
        "team_removed" => "Member removed from the team.",
        "team_deleted" => "Team deleted. Its members are still in the workspace.",
        "revoked" => "Revoked. Its tokens stopped working.",
        "client_removed" => "Client removed and its grants revoked.",
        "domain_added" => "Domain added.",
        "domain_verified" => "Domain marked verified.",
        "domain_removed" => "Domain removed.",
        "mail_retry" => "The mail will be sent again.",
        "unchanged" => "Nothing to change.",
        _ => return None,
    };
    ok(text)
}

fn see(to: String) -> Response {
    Redirect::to(&to).into_response()
}

fn store_failed(a: &Admin, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console request failed in the store");
    message(
        &a.workspace,
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        &["The change was not made. Try again in a moment."],
        Some((paths::ADMIN, "Back to the console")),
    )
}

fn not_found(a: &Admin, what: &str) -> Response {
    message(
        &a.workspace,
        StatusCode::NOT_FOUND,
        &format!("No such {what}"),
        &[&format!("This {what} does not exist (any more).")],
        Some((paths::ADMIN, "Back to the console")),
    )
}

fn when(ms: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

fn when_opt(ms: Option<i64>) -> String {
    ms.map(when).unwrap_or_else(|| "never".into())
}

/// A `YYYY-MM-DD` date as the first (or, with `end`, last) millisecond of
/// that UTC day.
fn day_ms(s: &str, end: bool) -> Option<i64> {
    let fmt = format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), &fmt).ok()?;
    let start = d.midnight().assume_utc().unix_timestamp() * 1000;
    Some(if end { start + 86_400_000 - 1 } else { start })
}

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Invited => "invited",
        Status::Active => "active",
        Status::Suspended => "suspended",
        Status::Removed => "removed",
    }
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

fn display(m: &Member) -> String {
    m.display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| match (&m.given_name, &m.family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(g), None) => Some(g.clone()),
            (None, Some(f)) => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Every console form: the fields each action needs, all optional.
#[derive(Deserialize, Default)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    verified: String,
}

// ---------------------------------------------------------------- overview

/// One item of the getting-started checklist.
pub struct CheckItem {
    pub title: &'static str,
    /// `done`, `todo` or `warn` (a CSS class).
    pub state: &'static str,
    pub state_label: &'static str,
    pub badge: &'static str,
    pub lines: Vec<String>,
    /// Where in the console it is fixed.
    pub link: Option<(String, String)>,
    /// The README section that explains it.
    pub doc: Option<&'static str>,
}

impl CheckItem {
    fn new(title: &'static str, done: bool) -> CheckItem {
        let (state, state_label, badge) = if done {
            ("done", "done", "ok")
        } else {
            ("todo", "to do", "warn")
        };
        CheckItem {
            title,
            state,
            state_label,
            badge,
            lines: Vec::new(),
            link: None,
            doc: None,
        }
    }

    fn warn(mut self) -> CheckItem {
        (self.state, self.state_label, self.badge) = ("warn", "attention", "status-suspended");
        self
    }
}

#[derive(Template)]
#[template(path = "admin_overview.html")]
struct OverviewPage {
    c: Chrome,
    items: Vec<CheckItem>,
    scim_url: String,
}

/// `/admin`: a checklist of what a new installation needs, each item read
/// from the real state and linked to where it is fixed (issue 18).
pub async fn index(State(app): State<App>, a: Admin) -> Response {
    let now = app.clock.now_ms();
    let (ws, conns, grants) = match (
        crate::workspace::get(&app.store).await,
        connections::list(&app).await,
        oauth::grants(&app).await,
    ) {
        (Ok(w), Ok(c), Ok(g)) => (w, c, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return store_failed(&a, e),
    };
    let mut items = Vec::new();

    let has_password = a.live.member.password_hash.is_some();
    let mut i = CheckItem::new("Your password", has_password);
    if has_password {
        i.lines.push("You sign in with your email and password.".into());
    } else {
        i.lines.push(
            "You signed in with a one-time link and have no password yet: when this session ends you need another link (roster admin login-link). Send yourself a set-password link."
                .into(),
        );
        i.link = Some((
            format!("/admin/members/{}", a.live.member.id),
            "Your member page".into(),
        ));
    }
    i.doc = Some("Signing in");
    items.push(i);

    let verified: Vec<String> = ws
        .map(|w| w.domains.into_iter().filter(|d| d.verified).map(|d| d.name).collect())
        .unwrap_or_default();
    let mut i = CheckItem::new("A verified email domain", !verified.is_empty());
    i.lines.push(if verified.is_empty() {
        "No verified domain: everyone an identity provider provisions is invited and must accept a mail first.".into()
    } else {
        format!(
            "Verified: {}. People on these domains are active as soon as they are provisioned.",
            verified.join(", ")
        )
    });
    i.link = Some(("/admin/domains".into(), "Domains".into()));
    items.push(i);

    let live_tokens: Vec<_> = conns
        .iter()
        .filter(|c| c.kind == ConnectionKind::StaticToken && c.revoked_ms.is_none())
        .collect();
    let live_grants: Vec<_> = grants.iter().filter(|g| g.grant.revoked_ms.is_none()).collect();
    let mut i = CheckItem::new(
        "An identity provider connected",
        !live_tokens.is_empty() || !live_grants.is_empty(),
    );
    for c in &live_tokens {
        i.lines.push(format!(
            "Static token \u{201c}{}\u{201d}: last call {}.",
            c.name,
            when_opt(c.last_used_ms)
        ));
    }
    for g in &live_grants {
        i.lines.push(format!(
            "OAuth grant of \u{201c}{}\u{201d} (authorised by {}): last call {}.",
            g.client_name,
            g.authorized_by.as_deref().unwrap_or("client credentials"),
            when_opt(g.grant.last_used_ms)
        ));
    }
    if i.lines.is_empty() {
        i.lines
            .push("No identity provider can provision this workspace yet.".into());
    }
    i.link = Some(("/admin/connections".into(), "IdP connections".into()));
    i.doc = Some("Connecting an identity provider with a static token");
    items.push(i);

    items.push(certificate_item(&app, now));

    let mail = crate::mail::configured(&app);
    let mut i = CheckItem::new("Mail delivery", mail);
    i.lines.push(if mail {
        "Mails (invitations, welcome and set-password links) are delivered over SMTP.".into()
    } else {
        "No [mail] configured: mails stay in the outbox, where you can open one and hand its link over by hand.".into()
    });
    if !mail {
        i = i.warn();
    }
    i.link = Some(("/admin/mail".into(), "Mail outbox".into()));
    i.doc = Some("Mail");
    items.push(i);

    let mut i = CheckItem::new("Scheduled snapshots", app.config.backup.is_some());
    match &app.config.backup {
        Some(b) => i.lines.push(format!(
            "Every {} minutes into {}, the newest {} kept: back up by copying the newest file there.",
            b.interval.as_secs() / 60,
            b.dir.display(),
            b.keep
        )),
        None => {
            i.lines
                .push("Off: set [backup] dir in the config so an ordinary file backup holds a consistent copy.".into());
            i = i.warn();
        }
    }
    i.doc = Some("Backup and restore");
    items.push(i);

    let page = OverviewPage {
        c: a.chrome("overview", None),
        items,
        scim_url: format!("{}{}", app.config.public_url, paths::SCIM),
    };
    let mut resp = render(StatusCode::OK, &page);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The serving certificate: issuer, names, expiry, and whether Okta's and
/// Entra's cloud services would accept it (publicly trusted, not expiring,
/// naming `public_url`'s host).
fn certificate_item(app: &App, now: i64) -> CheckItem {
    let status = app.tls_status.get();
    let Some(cert) = status.certificate else {
        let mut i = CheckItem::new("The serving certificate", false).warn();
        i.lines.push("No certificate is known yet.".into());
        return i;
    };
    let days_left = (cert.not_after_ms - now) / 86_400_000;
    let host = &app.config.public_host;
    let names_host = cert.names.iter().any(|n| {
        n.eq_ignore_ascii_case(host)
            || n.strip_prefix("*.").is_some_and(|w| {
                host.split_once('.')
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(w))
            })
    });
    let ok = !cert.self_signed && days_left >= 14 && names_host;
    let mut i = CheckItem::new("The serving certificate", ok);
    i.lines.push(format!(
        "Issued by {} for {}; valid until {} ({} days left).",
        cert.issuer,
        cert.names.join(", "),
        when(cert.not_after_ms),
        days_left
    ));
    if cert.self_signed {
        i.lines.push(
            "It is self-signed: Okta's and Microsoft Entra's cloud provisioning will refuse it (Test API Credentials / Test Connection fail). Use ACME, your own certificate, or an on-premises provisioning agent that trusts this one (roster tls export-cert)."
                .into(),
        );
    }
    if !names_host {
        i.lines.push(format!(
            "It does not name {host}, the host of public_url: clients will refuse it."
        ));
    }
    if days_left < 14 {
        i.lines.push("It expires soon.".into());
    }
    if let Some(acme) = &status.acme {
        match (&acme.last_error, acme.last_success_ms) {
            (Some(e), _) => i.lines.push(format!(
                "ACME: the last attempt failed ({e}); next try {}.",
                when_opt(acme.next_attempt_ms)
            )),
            (None, Some(t)) => i.lines.push(format!(
                "ACME ({}): obtained {}; next check {}.",
                acme.challenge,
                when(t),
                when_opt(acme.next_attempt_ms)
            )),
            (None, None) => i
                .lines
                .push(format!("ACME ({}): obtaining the first certificate.", acme.challenge)),
        }
        if acme.last_error.is_some() {
            i = i.warn();
        }
    }
    if !ok {
        i = i.warn();
    }
    i.doc = Some("Where roster must be reachable");
    i
}

// ---------------------------------------------------------------- members

#[derive(Deserialize, Default)]
pub struct MembersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    managed: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    done: String,
}

pub struct MemberLine {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub status: &'static str,
    pub managed_by: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct MembersPage {
    c: Chrome,
    q: String,
    status: String,
    role: String,
    managed: String,
    rows: Vec<MemberLine>,
    total: u64,
    filtered: bool,
    examined: usize,
    range: String,
    next: Option<String>,
    prev: Option<String>,
}

fn parse_status(s: &str) -> Option<Status> {
    match s {
        "invited" => Some(Status::Invited),
        "active" => Some(Status::Active),
        "suspended" => Some(Status::Suspended),
        "removed" => Some(Status::Removed),
        _ => None,
    }
}

fn parse_role(s: &str) -> Option<Role> {
    match s {
        "admin" => Some(Role::Admin),
        "member" => Some(Role::Member),
        _ => None,
    }
}

pub async fn members(State(app): State<App>, a: Admin, Query(mq): Query<MembersQuery>) -> Response {
    let filter = MemberFilter {
        q: mq.q.chars().take(200).collect(),
        status: parse_status(&mq.status),
        role: parse_role(&mq.role),
        managed: match mq.managed.as_str() {
            "managed" => Some(true),
            "unmanaged" => Some(false),
            _ => None,
        },
    };
    let filtered = !filter.is_empty();
    let list = match views::members(&app, filter, mq.from.clone(), PAGE).await {
        Ok(l) => l,
        Err(e) => return store_failed(&a, e),
    };
    let base = format!(
        "{}?q={}&status={}&role={}&managed={}",
        paths::ADMIN_MEMBERS,
        q(&mq.q),
        q(&mq.status),
        q(&mq.role),
        q(&mq.managed)
    );
    let start: u64 = list.from.parse().unwrap_or(0);
    let range = if filtered {
        format!("{} found", list.rows.len())
    } else if list.rows.is_empty() {
        "none".into()
    } else {
        format!("{}–{} of {}", start + 1, start + list.rows.len() as u64, list.total)
    };
    let page = MembersPage {
        c: a.chrome("members", done_notice(&mq.done)),
        rows: list
            .rows
            .into_iter()
            .map(|r| MemberLine {
                id: r.member.id.to_string(),
                name: display(&r.member),
                email: r.member.email.clone(),
                role: role_word(r.member.role),
                status: status_word(r.member.status),
                managed_by: r.managed_by,
            })
            .collect(),
        total: list.total,
        filtered,
        examined: list.examined,
        range,
        next: list.next.map(|n| format!("{base}&from={}", q(&n))),
        prev: list.prev.map(|p| format!("{base}&from={}", q(&p))),
        q: mq.q,
        status: mq.status,
        role: mq.role,
        managed: mq.managed,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "admin_member_new.html")]
struct InvitePage {
    c: Chrome,
    email: String,
    display_name: String,
    role: String,
}

pub async fn invite_form(a: Admin) -> Response {
    let page = InvitePage {
        c: a.chrome("members", None),
        email: String::new(),
        display_name: String::new(),
        role: "member".into(),
    };
    render(StatusCode::OK, &page)
}

pub async fn invite(State(app): State<App>, a: Admin, Form(f): Form<ActionForm>) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let inv = Invitation {
        email: f.email.trim().to_owned(),
        display_name: Some(f.display_name.clone()),
        role: parse_role(&f.role).unwrap_or(Role::Member),
    };
    let again = |notice, status| {
        let page = InvitePage {
            c: a.chrome("members", notice),
            email: f.email.clone(),
            display_name: f.display_name.clone(),
            role: f.role.clone(),
        };
        render(status, &page)
    };
    match admin::invite(&app, &a.ctx, inv).await {
        Ok(Ok(done)) => {
            let code = if done.member.status == Status::Active {
                "added"
            } else {
                "invited"
            };
            see(format!("{}/{}?done={code}", paths::ADMIN_MEMBERS, done.member.id))
        }
        Ok(Err(e @ RuleError::Uniqueness(_))) => again(err(e.to_string()), StatusCode::CONFLICT),
        Ok(Err(e)) => again(err(e.to_string()), StatusCode::BAD_REQUEST),
        Err(e) => store_failed(&a, e),
    }
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
}

#[derive(Template)]
#[template(path = "admin_member.html")]
struct MemberPage {
    c: Chrome,
    id: String,
    name: String,
    email: String,
    role: &'static str,
    status: &'static str,
    managed_by: Option<String>,
    external_id: Option<String>,
    version: u64,
    created: String,
    updated: String,
    teams: Vec<(String, String)>,
    sessions: usize,
    pending_links: usize,
    is_self: bool,
    last_admin: bool,
    audit_link: String,
}

async fn member_page(app: &App, a: &Admin, id: Uuid, notice: Option<Notice>, status: StatusCode) -> Response {
    let d = match views::member(app, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(a, "member"),
        Err(e) => return store_failed(a, e),
    };
    let m = &d.row.member;
    let page = MemberPage {
        c: a.chrome("members", notice),
        id: m.id.to_string(),
        name: display(m),
        email: m.email.clone(),
        role: role_word(m.role),
        status: status_word(m.status),
        managed_by: d.row.managed_by.clone(),
        external_id: m.external_id.clone(),
        version: m.version,
        created: when(m.created_ms),
        updated: when(m.updated_ms),
        teams: d
            .teams
            .iter()
            .map(|(id, name)| (id.to_string(), name.clone()))
            .collect(),
        sessions: d.sessions,
        pending_links: d.pending_links,
        is_self: a.ctx.member_id() == Some(m.id),
        last_admin: m.is_active_admin() && d.active_admins <= 1,
        audit_link: format!("{}?target={}", paths::ADMIN_AUDIT, q(&format!("member:{}", m.id))),
    };
    render(status, &page)
}

pub async fn member(State(app): State<App>, a: Admin, Path(id): Path<String>, Query(d): Query<DoneQuery>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found(&a, "member");
    };
    member_page(&app, &a, id, done_notice(&d.done), StatusCode::OK).await
}

pub async fn member_action(
    State(app): State<App>,
    a: Admin,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found(&a, "member");
    };
    let back = |code: &str| see(format!("{}/{id}?done={code}", paths::ADMIN_MEMBERS));
    let (what, code) = match f.action.as_str() {
        "role" => match parse_role(&f.role) {
            Some(r) => (MemberChange::Role(r), "role"),
            None => {
                return member_page(&app, &a, id, err("Choose a role."), StatusCode::BAD_REQUEST).await;
            }
        },
        "suspend" => (MemberChange::Suspend, "suspended"),
        "restore" => (MemberChange::Restore, "restored"),
        "remove" => (MemberChange::Remove, "removed"),
        "send_link" => {
            return match admin::send_link(&app, &a.ctx, id).await {
                Ok(Ok(_)) => back("link"),
                Ok(Err(e)) => member_page(&app, &a, id, err(e.to_string()), StatusCode::CONFLICT).await,
                Err(e) => store_failed(&a, e),
            };
        }
        _ => return member_page(&app, &a, id, err("Unknown action."), StatusCode::BAD_REQUEST).await,
    };
    let version = f.version.parse::<u64>().ok();
    match admin::change(&app, &a.ctx, id, version, what).await {
        Ok(Ok(m)) if Some(m.version) == version => back("unchanged"),
        Ok(Ok(_)) => {
            // Suspending or removing yourself ends your session; making
            // yourself a member ends your console access.
            if a.ctx.member_id() == Some(id) {
                match what {
                    MemberChange::Suspend | MemberChange::Remove => return see(paths::LOGIN.to_owned()),
                    MemberChange::Role(Role::Member) => return see("/".to_owned()),
                    _ => {}
                }
            }
            back(code)
        }
        Ok(Err(RuleError::NotFound { .. })) => not_found(&a, "member"),
        Ok(Err(RuleError::VersionMismatch { .. })) => {
            member_page(
                &app,
                &a,
                id,
                err("This member was changed by someone else while you were looking. Check the page and try again."),
                StatusCode::CONFLICT,
            )
            .await
        }
        Ok(Err(e)) => member_page(&app, &a, id, err(e.to_string()), StatusCode::CONFLICT).await,
        Err(e) => store_failed(&a, e),
    }
}

// ---------------------------------------------------------------- teams

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    done: String,
}

pub struct TeamLine {
    pub id: String,
    pub name: String,
    pub members: u64,
    pub managed_by: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_teams.html")]
struct TeamsPage {
    c: Chrome,
    q: String,
    name: String,
    rows: Vec<TeamLine>,
    range: String,
    next: Option<String>,
    prev: Option<String>,
}

async fn teams_page(
    app: &App,
    a: &Admin,
    lq: &ListQuery,
    name: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let from = lq.from.parse().unwrap_or(0);
    let list = match views::teams(app, lq.q.clone(), from, PAGE).await {
        Ok(l) => l,
        Err(e) => return store_failed(a, e),
    };
    let base = format!("{}?q={}", paths::ADMIN_TEAMS, q(&lq.q));
    let range = if !lq.q.trim().is_empty() {
        format!("{} found", list.rows.len())
    } else if list.rows.is_empty() {
        "none".into()
    } else {
        format!("{}–{} of {}", from + 1, from + list.rows.len() as u64, list.total)
    };
    let page = TeamsPage {
        c: a.chrome("teams", notice),
        q: lq.q.clone(),
        name: name.to_owned(),
        rows: list
            .rows
            .into_iter()
            .map(|r| TeamLine {
                id: r.team.id.to_string(),
                name: r.team.name,
                members: r.team.member_count,
                managed_by: r.managed_by,
            })
            .collect(),
        range,
        next: list.next.map(|n| format!("{base}&from={n}")),
        prev: list.prev.map(|p| format!("{base}&from={p}")),
    };
    render(status, &page)
}

pub async fn teams(State(app): State<App>, a: Admin, Query(lq): Query<ListQuery>) -> Response {
    let notice = done_notice(&lq.done);
    teams_page(&app, &a, &lq, "", notice, StatusCode::OK).await
}

fn team_error_status(e: &TeamError) -> StatusCode {
    match e {
        TeamError::NoTeam(_) => StatusCode::NOT_FOUND,
        TeamError::RemovedMember(_) => StatusCode::CONFLICT,
        TeamError::Rule(RuleError::Uniqueness(_)) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn team_error_text(e: &TeamError) -> String {
    match e {
        TeamError::Rule(RuleError::Uniqueness(_)) => "A team with that name already exists.".into(),
        TeamError::Rule(RuleError::Invalid(_)) => {
            "A team name must be 1 to 200 characters without control characters.".into()
        }
        TeamError::NoMember(email) => format!("No member with the email {email}."),
        TeamError::RemovedMember(email) => {
            format!("{email} was removed from the workspace. Restore them from their page first.")
        }
        other => other.to_string(),
    }
}

pub async fn team_create(State(app): State<App>, a: Admin, Form(f): Form<ActionForm>) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    match teams::person_create(&app, a.ctx.actor(), f.name.trim()).await {
        Ok(t) => see(format!("{}/{}?done=team_created", paths::ADMIN_TEAMS, t.id)),
        Err(TeamError::Store(e)) => store_failed(&a, e),
        Err(e) => {
            let status = team_error_status(&e);
            teams_page(
                &app,
                &a,
                &ListQuery::default(),
                &f.name,
                err(team_error_text(&e)),
                status,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "admin_team.html")]
struct TeamPage {
    c: Chrome,
    id: String,
    name: String,
    managed_by: Option<String>,
    count: u64,
    members: Vec<MemberLine>,
    next: Option<String>,
    prev: Option<String>,
    email: String,
}

async fn team_page(
    app: &App,
    a: &Admin,
    id: Uuid,
    from: usize,
    email: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let d = match views::team(app, id, from, PAGE).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(a, "team"),
        Err(e) => return store_failed(a, e),
    };
    let base = format!("{}/{id}", paths::ADMIN_TEAMS);
    let page = TeamPage {
        c: a.chrome("teams", notice),
        id: id.to_string(),
        name: d.row.team.name.clone(),
        managed_by: d.row.managed_by.clone(),
        count: d.row.team.member_count,
        members: d
            .members
            .iter()
            .map(|m| MemberLine {
                id: m.id.to_string(),
                name: display(m),
                email: m.email.clone(),
                role: role_word(m.role),
                status: status_word(m.status),
                managed_by: None,
            })
            .collect(),
        next: d.next.map(|n| format!("{base}?from={n}")),
        prev: d.prev.map(|p| format!("{base}?from={p}")),
        email: email.to_owned(),
    };
    render(status, &page)
}

pub async fn team(State(app): State<App>, a: Admin, Path(id): Path<String>, Query(lq): Query<ListQuery>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found(&a, "team");
    };
    let from = lq.from.parse().unwrap_or(0);
    team_page(&app, &a, id, from, "", done_notice(&lq.done), StatusCode::OK).await
}

pub async fn team_action(
    State(app): State<App>,
    a: Admin,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found(&a, "team");
    };
    let key = id.to_string();
    let actor = a.ctx.actor();
    let (result, code) = match f.action.as_str() {
        "rename" => (
            teams::person_edit(&app, actor, &key, vec![PersonOp::Rename(f.name.trim().to_owned())]).await,
            "team_renamed",
        ),
        "add" => (
            teams::person_edit(&app, actor, &key, vec![PersonOp::Add(f.email.trim().to_owned())]).await,
            "team_added",
        ),
        "remove" => (
            teams::person_edit(&app, actor, &key, vec![PersonOp::Remove(f.email.trim().to_owned())]).await,
            "team_removed",
        ),
        "delete" => {
            if f.confirm != "yes" {
                let notice = err("Tick the box to confirm that the team should be deleted.");
                return team_page(&app, &a, id, 0, "", notice, StatusCode::BAD_REQUEST).await;
            }
            return match teams::person_delete(&app, actor, &key).await {
                Ok(_) => see(format!("{}?done=team_deleted", paths::ADMIN_TEAMS)),
                Err(TeamError::NoTeam(_)) => not_found(&a, "team"),
                Err(TeamError::Store(e)) => store_failed(&a, e),
                Err(e) => team_page(&app, &a, id, 0, "", err(team_error_text(&e)), team_error_status(&e)).await,
            };
        }
        _ => return team_page(&app, &a, id, 0, "", err("Unknown action."), StatusCode::BAD_REQUEST).await,
    };
    match result {
        Ok(_) => see(format!("{}/{id}?done={code}", paths::ADMIN_TEAMS)),
        Err(TeamError::NoTeam(_)) => not_found(&a, "team"),
        Err(TeamError::Store(e)) => store_failed(&a, e),
        Err(e) => {
            let status = team_error_status(&e);
            team_page(&app, &a, id, 0, &f.email, err(team_error_text(&e)), status).await
        }
    }
}

// ---------------------------------------------------------------- connections

pub struct ConnectionLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
}

pub struct GrantLine {
    pub id: String,
    pub client: String,
    pub authorized_by: String,
    pub scope: String,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
    /// Set when roster revoked it by itself (its grantor lost admin rights).
    pub revoked_reason: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_connections.html")]
struct ConnectionsPage {
    c: Chrome,
    issued: Option<(String, String)>,
    name: String,
    tokens: Vec<ConnectionLine>,
    grants: Vec<GrantLine>,
    /// Clients whose newest grant roster revoked by itself, with why: the
    /// IdP must be authenticated again.
    reauthenticate: Vec<(String, String)>,
    scim_url: String,
}

async fn connections_page(
    app: &App,
    a: &Admin,
    issued: Option<(String, String)>,
    name: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let (list, grants) = match (connections::list(app).await, oauth::grants(app).await) {
        (Ok(l), Ok(g)) => (l, g),
        (Err(e), _) | (_, Err(e)) => return store_failed(a, e),
    };
    let mut tokens: Vec<ConnectionLine> = list
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::StaticToken)
        .map(|c| ConnectionLine {
            id: c.id.to_string(),
            name: c.name,
            kind: "Static SCIM token",
            created: when(c.created_ms),
            last_used: when_opt(c.last_used_ms),
            revoked: c.revoked_ms.map(when),
        })
        .collect();
    tokens.reverse();
    let mut grants: Vec<GrantLine> = grants
        .into_iter()
        .map(|g| GrantLine {
            id: g.grant.id.to_string(),
            client: g.client_name,
            authorized_by: g.authorized_by.unwrap_or_else(|| "client credentials".into()),
            scope: g.grant.scope,
            created: when(g.grant.created_ms),
            last_used: when_opt(g.grant.last_used_ms),
            revoked: g.grant.revoked_ms.map(when),
            revoked_reason: g.grant.revoked_reason.clone(),
        })
        .collect();
    grants.reverse();
    // Newest first: a client's first line is its newest grant.
    let mut seen = std::collections::HashSet::new();
    let reauthenticate = grants
        .iter()
        .filter(|g| seen.insert(g.client.clone()))
        .filter_map(|g| g.revoked_reason.as_ref().map(|r| (g.client.clone(), r.clone())))
        .collect();
    let page = ConnectionsPage {
        c: a.chrome("connections", notice),
        issued,
        name: name.to_owned(),
        tokens,
        grants,
        reauthenticate,
        scim_url: format!("{}{}", app.config.public_url, paths::SCIM),
    };
    let mut resp = render(status, &page);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub async fn connections_list(State(app): State<App>, a: Admin, Query(d): Query<DoneQuery>) -> Response {
    connections_page(&app, &a, None, "", done_notice(&d.done), StatusCode::OK).await
}

pub async fn connections_action(State(app): State<App>, a: Admin, Form(f): Form<ActionForm>) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let actor = a.ctx.actor();
    match f.action.as_str() {
        "create" => match connections::create_static_token(&app, &f.name, actor).await {
            Ok(t) => {
                let notice = ok(format!(
                    "Token created for {}. Copy it now: it is shown only once.",
                    t.connection.name
                ));
                connections_page(
                    &app,
                    &a,
                    Some((t.connection.name, t.token)),
                    "",
                    notice,
                    StatusCode::CREATED,
                )
                .await
            }
            Err(ConnectionError::Store(e)) => store_failed(&a, e),
            Err(e) => connections_page(&app, &a, None, &f.name, err(e.to_string()), StatusCode::BAD_REQUEST).await,
        },
        "revoke" => match connections::revoke(&app, &f.id, actor).await {
            Ok(_) => see(format!("{}?done=revoked", paths::ADMIN_CONNECTIONS)),
            Err(ConnectionError::Store(e)) => store_failed(&a, e),
            Err(e) => connections_page(&app, &a, None, "", err(e.to_string()), StatusCode::CONFLICT).await,
        },
        "revoke_grant" => match oauth::revoke_grant(&app, &f.id, actor).await {
            Ok(_) => see(format!("{}?done=revoked", paths::ADMIN_CONNECTIONS)),
            Err(ClientError::Store(e)) => store_failed(&a, e),
            Err(e) => connections_page(&app, &a, None, "", err(e.to_string()), StatusCode::NOT_FOUND).await,
        },
        _ => connections_page(&app, &a, None, "", err("Unknown action."), StatusCode::BAD_REQUEST).await,
    }
}

// ---------------------------------------------------------------- OAuth clients

pub struct ClientLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub redirect_uris: Vec<String>,
    pub secrets: usize,
    pub created: String,
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage {
    c: Chrome,
    issued: Option<(String, String, Option<String>)>,
    name: String,
    kind: String,
    redirect_uris: String,
    clients: Vec<ClientLine>,
    authorize_url: String,
    token_url: String,
}

fn kind_word(k: ClientKind) -> &'static str {
    match k {
        ClientKind::Confidential => "Confidential (authorization code + secret)",
        ClientKind::Public => "Public (authorization code + PKCE)",
        ClientKind::Service => "Service (client credentials)",
    }
}

async fn clients_page(
    app: &App,
    a: &Admin,
    issued: Option<(String, String, Option<String>)>,
    f: &ActionForm,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let list = match oauth::list(app).await {
        Ok(l) => l,
        Err(e) => return store_failed(a, e),
    };
    let page = ClientsPage {
        c: a.chrome("clients", notice),
        issued,
        name: f.name.clone(),
        kind: if f.kind.is_empty() {
            "confidential".into()
        } else {
            f.kind.clone()
        },
        redirect_uris: f.redirect_uris.clone(),
        clients: list
            .into_iter()
            .map(|c| ClientLine {
                id: c.client_id,
                name: c.name,
                kind: kind_word(c.kind),
                redirect_uris: c.redirect_uris,
                secrets: c.secrets.len(),
                created: when(c.created_ms),
            })
            .collect(),
        authorize_url: format!("{}{}", app.config.public_url, paths::AUTHORIZE),
        token_url: format!("{}{}", app.config.public_url, paths::TOKEN),
    };
    let mut resp = render(status, &page);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub async fn clients_list(State(app): State<App>, a: Admin, Query(d): Query<DoneQuery>) -> Response {
    clients_page(
        &app,
        &a,
        None,
        &ActionForm::default(),
        done_notice(&d.done),
        StatusCode::OK,
    )
    .await
}

fn client_error_text(e: &ClientError) -> String {
    match e {
        ClientError::NoRedirect => "A client that signs people in needs at least one redirect URI.".into(),
        ClientError::BadRedirect(uri, why) if why.contains("allow-insecure") => format!(
            "Redirect URI {uri:?}: plain http is allowed only on this machine (localhost, 127.0.0.1, ::1); use https"
        ),
        other => other.to_string(),
    }
}

pub async fn clients_action(State(app): State<App>, a: Admin, Form(f): Form<ActionForm>) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let actor = a.ctx.actor();
    let blank = ActionForm::default();
    let failed = |e: ClientError| {
        let status = match e {
            ClientError::NotFound(_) | ClientError::NoGrant(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        (err(client_error_text(&e)), status)
    };
    let outcome = match f.action.as_str() {
        "register" => {
            let kind = match f.kind.as_str() {
                "public" => ClientKind::Public,
                "service" => ClientKind::Service,
                _ => ClientKind::Confidential,
            };
            let uris: Vec<String> = f.redirect_uris.split_whitespace().map(str::to_owned).collect();
            match oauth::register(&app, &f.name, uris, kind, false, actor).await {
                Ok(r) => {
                    let notice = ok(match &r.secret {
                        Some(_) => "Client registered. Copy the secret now: it is shown only once.",
                        None => "Client registered. Public clients have no secret; they must use PKCE.",
                    });
                    let issued = Some((r.client.name.clone(), r.client.client_id.clone(), r.secret));
                    return clients_page(&app, &a, issued, &blank, notice, StatusCode::CREATED).await;
                }
                Err(ClientError::Store(e)) => return store_failed(&a, e),
                Err(e) => failed(e),
            }
        }
        "rotate" => match oauth::rotate_secret(&app, &f.id, actor).await {
            Ok(secret) => {
                let notice = ok(
                    "New secret issued. Copy it now: it is shown only once. The previous secret keeps working until the next rotation.",
                );
                let name = oauth::list(&app)
                    .await
                    .ok()
                    .and_then(|l| l.into_iter().find(|c| c.client_id == f.id))
                    .map(|c| c.name)
                    .unwrap_or_default();
                let issued = Some((name, f.id.clone(), Some(secret)));
                return clients_page(&app, &a, issued, &blank, notice, StatusCode::OK).await;
            }
            Err(ClientError::Store(e)) => return store_failed(&a, e),
            Err(e) => failed(e),
        },
        "remove" => match oauth::remove(&app, &f.id, actor).await {
            Ok(_) => return see(format!("{}?done=client_removed", paths::ADMIN_CLIENTS)),
            Err(ClientError::Store(e)) => return store_failed(&a, e),
            Err(e) => failed(e),
        },
        _ => (err("Unknown action."), StatusCode::BAD_REQUEST),
    };
    let (notice, status) = outcome;
    clients_page(&app, &a, None, &f, notice, status).await
}

// ---------------------------------------------------------------- domains

#[derive(Template)]
#[template(path = "admin_domains.html")]
struct DomainsPage {
    c: Chrome,
    domains: Vec<(String, bool)>,
    name: String,
}

async fn domains_page(app: &App, a: &Admin, name: &str, notice: Option<Notice>, status: StatusCode) -> Response {
    let ws = match crate::workspace::get(&app.store).await {
        Ok(ws) => ws,
        Err(e) => return store_failed(a, e),
    };
    let page = DomainsPage {
        c: a.chrome("domains", notice),
        domains: ws
            .map(|w| w.domains.into_iter().map(|d| (d.name, d.verified)).collect())
            .unwrap_or_default(),
        name: name.to_owned(),
    };
    render(status, &page)
}

pub async fn domains_list(State(app): State<App>, a: Admin, Query(d): Query<DoneQuery>) -> Response {
    domains_page(&app, &a, "", done_notice(&d.done), StatusCode::OK).await
}

pub async fn domains_action(State(app): State<App>, a: Admin, Form(f): Form<ActionForm>) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let (what, code) = match f.action.as_str() {
        "add" => (
            DomainChange::Add {
                verified: f.verified == "yes",
            },
            "domain_added",
        ),
        "verify" => (DomainChange::Verify, "domain_verified"),
        "remove" => (DomainChange::Remove, "domain_removed"),
        _ => return domains_page(&app, &a, "", err("Unknown action."), StatusCode::BAD_REQUEST).await,
    };
    match domains::change(&app, &f.name, what, a.ctx.actor()).await {
        Ok(_) => see(format!("{}?done={code}", paths::ADMIN_DOMAINS)),
        Err(DomainError::Store(e)) => store_failed(&a, e),
        Err(e @ DomainError::Exists(_)) => {
            domains_page(&app, &a, &f.name, err(e.to_string()), StatusCode::CONFLICT).await
        }
        Err(e) => domains_page(&app, &a, &f.name, err(e.to_string()), StatusCode::BAD_REQUEST).await,
    }
}

// ---------------------------------------------------------------- audit log

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

pub struct AuditLine {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub target_link: Option<String>,
    /// The details as compact JSON, or for long ones the start of it.
    pub detail: String,
    /// Long details in full, indented, shown when the row is opened.
    pub detail_full: Option<String>,
}

/// Details longer than this (compact JSON, in chars) are shown as their
/// first `DETAIL_PREVIEW` chars, opening to the whole: a 2 KB IdP update in
/// full would make its row a screen tall and squeeze the other columns.
const DETAIL_INLINE: usize = 160;
const DETAIL_PREVIEW: usize = 100;

/// (what the row shows, the whole when that is only a preview).
fn audit_detail(d: &serde_json::Value) -> (String, Option<String>) {
    let compact = match d {
        serde_json::Value::Object(o) if o.is_empty() => return (String::new(), None),
        serde_json::Value::Null => return (String::new(), None),
        d => d.to_string(),
    };
    if compact.chars().count() <= DETAIL_INLINE {
        return (compact, None);
    }
    let mut preview: String = compact.chars().take(DETAIL_PREVIEW).collect();
    preview.push('…');
    let full = serde_json::to_string_pretty(d).unwrap_or(compact);
    (preview, Some(full))
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    c: Chrome,
    actor: String,
    target: String,
    from: String,
    to: String,
    rows: Vec<AuditLine>,
    next: Option<String>,
    examined: usize,
    filtered: bool,
}

fn target_link(target: &str) -> Option<String> {
    let (kind, id) = target.split_once(':')?;
    let path = match kind {
        "member" => paths::ADMIN_MEMBERS,
        "team" => paths::ADMIN_TEAMS,
        _ => return None,
    };
    Uuid::parse_str(id).ok().map(|id| format!("{path}/{id}"))
}

pub async fn audit(State(app): State<App>, a: Admin, Query(aq): Query<AuditQuery>) -> Response {
    let bad_date = |s: &str, end| !s.trim().is_empty() && day_ms(s, end).is_none();
    let notice = if bad_date(&aq.from, false) || bad_date(&aq.to, true) {
        err("Dates are written YYYY-MM-DD (UTC).")
    } else {
        None
    };
    let filter = AuditFilter {
        actor: aq.actor.chars().take(200).collect(),
        target: aq.target.chars().take(200).collect(),
        from_ms: day_ms(&aq.from, false),
        to_ms: day_ms(&aq.to, true),
    };
    let filtered = !(filter.actor.trim().is_empty()
        && filter.target.trim().is_empty()
        && filter.from_ms.is_none()
        && filter.to_ms.is_none());
    let page = match views::audit(&app, filter, aq.before.parse().ok(), PAGE).await {
        Ok(p) => p,
        Err(e) => return store_failed(&a, e),
    };
    let base = format!(
        "{}?actor={}&target={}&from={}&to={}",
        paths::ADMIN_AUDIT,
        q(&aq.actor),
        q(&aq.target),
        q(&aq.from),
        q(&aq.to)
    );
    let status = if notice.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let out = AuditPage {
        c: a.chrome("audit", notice),
        rows: page
            .rows
            .into_iter()
            .map(|(seq, e)| {
                let (detail, detail_full) = audit_detail(&e.detail);
                AuditLine {
                    seq,
                    at: when(e.at_ms),
                    actor: views::actor_label(&e.actor),
                    action: e.action,
                    target_link: target_link(&e.target),
                    target: e.target,
                    detail,
                    detail_full,
                }
            })
            .collect(),
        next: page.next.map(|n| format!("{base}&before={n}")),
        examined: page.examined,
        filtered,
        actor: aq.actor,
        target: aq.target,
        from: aq.from,
        to: aq.to,
    };
    render(status, &out)
}

// ---------------------------------------------------------------- sync errors

#[derive(Deserialize, Default)]
pub struct BeforeQuery {
    #[serde(default)]
    before: String,
}

pub struct SyncLine {
    pub at: String,
    pub connection: String,
    pub operation: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "admin_sync_errors.html")]
struct SyncErrorsPage {
    c: Chrome,
    rows: Vec<SyncLine>,
    next: Option<String>,
}

pub async fn sync_errors(State(app): State<App>, a: Admin, Query(bq): Query<BeforeQuery>) -> Response {
    let page = match views::sync_errors(&app, bq.before.parse().ok(), PAGE).await {
        Ok(p) => p,
        Err(e) => return store_failed(&a, e),
    };
    let out = SyncErrorsPage {
        c: a.chrome("sync", None),
        rows: page
            .rows
            .into_iter()
            .map(|(_, e)| SyncLine {
                at: when(e.at_ms),
                connection: e.connection_name,
                operation: e.operation,
                target: e.target,
                detail: e.detail,
            })
            .collect(),
        next: page.next.map(|n| format!("{}?before={n}", paths::ADMIN_SYNC_ERRORS)),
    };
    render(StatusCode::OK, &out)
}
// ---------------------------------------------------------------- mail outbox

#[derive(Deserialize, Default)]
pub struct MailQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    done: String,
}

pub struct MailLine {
    pub seq: u64,
    pub to: String,
    pub subject: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub attempts: u32,
    pub created: String,
    pub last_error: Option<String>,
}

fn mail_status_word(s: MailStatus) -> &'static str {
    match s {
        MailStatus::Pending => "pending",
        MailStatus::Sent => "sent",
        MailStatus::Failed => "failed",
    }
}

fn mail_kind_word(k: MailKind) -> &'static str {
    match k {
        MailKind::Invite => "Invitation",
        MailKind::AddedToWorkspace => "Added to workspace",
        MailKind::Welcome => "Welcome",
        MailKind::SetPassword => "Set password",
    }
}

fn mail_line(seq: u64, m: &Mail) -> MailLine {
    MailLine {
        seq,
        to: m.to.clone(),
        subject: m.subject.clone(),
        kind: mail_kind_word(m.kind),
        status: mail_status_word(m.status),
        attempts: m.attempts,
        created: when(m.created_ms),
        last_error: m.last_error.clone(),
    }
}

#[derive(Template)]
#[template(path = "admin_mail.html")]
struct MailPage {
    c: Chrome,
    status: String,
    configured: bool,
    rows: Vec<MailLine>,
    next: Option<String>,
}

pub async fn mail_list(State(app): State<App>, a: Admin, Query(mq): Query<MailQuery>) -> Response {
    let status = match mq.status.as_str() {
        "pending" => Some(MailStatus::Pending),
        "sent" => Some(MailStatus::Sent),
        "failed" => Some(MailStatus::Failed),
        _ => None,
    };
    let rows = match crate::mail::page(&app, status, mq.before.parse().ok(), PAGE + 1).await {
        Ok(r) => r,
        Err(e) => return store_failed(&a, e),
    };
    let more = rows.len() > PAGE;
    let rows: Vec<MailLine> = rows.iter().take(PAGE).map(|(seq, m)| mail_line(*seq, m)).collect();
    let next = if more {
        rows.last()
            .map(|l| format!("{}?status={}&before={}", paths::ADMIN_MAIL, q(&mq.status), l.seq))
    } else {
        None
    };
    let page = MailPage {
        c: a.chrome("mail", done_notice(&mq.done)),
        status: mq.status,
        configured: crate::mail::configured(&app),
        rows,
        next,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "admin_mail_show.html")]
struct MailShowPage {
    c: Chrome,
    m: MailLine,
    body: String,
    sent: Option<String>,
}

async fn mail_show_page(app: &App, a: &Admin, seq: u64, notice: Option<Notice>, status: StatusCode) -> Response {
    let m = match crate::mail::get(app, seq).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(a, "mail"),
        Err(e) => return store_failed(a, e),
    };
    let page = MailShowPage {
        c: a.chrome("mail", notice),
        m: mail_line(seq, &m),
        body: m.body.clone(),
        sent: m.sent_ms.map(when),
    };
    let mut resp = render(status, &page);
    // The body may hold a one-time link.
    resp.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

pub async fn mail_show(
    State(app): State<App>,
    a: Admin,
    Path(seq): Path<String>,
    Query(d): Query<DoneQuery>,
) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return not_found(&a, "mail");
    };
    mail_show_page(&app, &a, seq, done_notice(&d.done), StatusCode::OK).await
}

pub async fn mail_action(
    State(app): State<App>,
    a: Admin,
    Path(seq): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = a.refuse(&f.csrf) {
        return r;
    }
    let Ok(seq) = seq.parse::<u64>() else {
        return not_found(&a, "mail");
    };
    if f.action != "retry" {
        return mail_show_page(&app, &a, seq, err("Unknown action."), StatusCode::BAD_REQUEST).await;
    }
    match crate::mail::retry(&app, seq, a.ctx.actor()).await {
        Ok(_) => see(format!("{}/{seq}?done=mail_retry", paths::ADMIN_MAIL)),
        Err(crate::mail::MailError::NotFound) => not_found(&a, "mail"),
        Err(crate::mail::MailError::Store(e)) => store_failed(&a, e),
        Err(e) => mail_show_page(&app, &a, seq, err(e.to_string()), StatusCode::CONFLICT).await,
    }
}
