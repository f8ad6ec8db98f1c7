//! Admin commands (`roster token ...`, `roster domain ...`, `roster mail ...`) and the local
//! control socket that lets them run against a live server. redb locks its
//! file to one process, so a CLI command first tries `data_dir/control.sock`
//! (mode 0600, same-user peers only); when no server answers it opens the
//! database itself. Either way the same [`execute`] runs the command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::App;
use crate::clock::rfc3339;
use crate::workspace::admin::{self, AdminCtx, Invitation};
use crate::workspace::connections;
use crate::workspace::domains::{self, DomainChange};
use crate::workspace::model::{Actor, ClientKind, Mail, MailStatus, Management, Role, Status, Team};
use crate::workspace::oauth;
use crate::workspace::teams::{self, PersonOp};

/// Largest request line accepted on the socket.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum AdminRequest {
    AdminCreate {
        email: String,
        name: Option<String>,
    },
    AdminLoginLink {
        email: String,
    },
    TokenCreate {
        name: String,
    },
    TokenRevoke {
        connection: String,
    },
    TokenList,
    DomainAdd {
        name: String,
        verified: bool,
    },
    DomainVerify {
        name: String,
    },
    DomainRemove {
        name: String,
    },
    DomainList,
    TeamList,
    TeamCreate {
        name: String,
    },
    TeamRename {
        team: String,
        new_name: String,
    },
    TeamDelete {
        team: String,
    },
    TeamAddMember {
        team: String,
        email: String,
    },
    TeamRemoveMember {
        team: String,
        email: String,
    },
    ClientAdd {
        name: String,
        redirect_uris: Vec<String>,
        kind: ClientKind,
        allow_insecure_redirect: bool,
    },
    ClientList,
    ClientRemove {
        client_id: String,
    },
    ClientRotateSecret {
        client_id: String,
    },
    GrantList,
    GrantRevoke {
        grant_id: String,
    },
    MailList {
        status: Option<MailStatus>,
        limit: usize,
    },
    MailShow {
        seq: u64,
    },
    MailRetry {
        seq: u64,
    },
    /// Absolute path of the snapshot to write.
    Backup {
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ok(String),
    Error(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Runs one admin command and returns what to print.
pub async fn execute(app: &App, req: AdminRequest) -> Result<String, String> {
    let actor = Actor::Operator;
    match req {
        AdminRequest::TokenCreate { name } => {
            let t = connections::create_static_token(app, &name, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Created connection {:?} (id {}).\nSCIM base URL: {}{}\nBearer token (shown once, store it in your identity provider now):\n{}\n",
                t.connection.name,
                t.connection.id,
                app.config.public_url,
                crate::paths::SCIM,
                t.token
            ))
        }
        AdminRequest::TokenRevoke { connection } => {
            let c = connections::revoke(app, &connection, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Revoked connection {:?} (id {}); its tokens no longer work.\n",
                c.name, c.id
            ))
        }
        AdminRequest::AdminLoginLink { email } => {
            let l = admin::login_link(app, &AdminCtx::operator(), &email)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "One-time sign-in link for {} (works once, valid until {}; earlier links keep their own expiry):\n{}\n",
                l.member.email, l.expires_at, l.url
            ))
        }
        AdminRequest::AdminCreate { email, name } => {
            let inv = Invitation {
                email,
                display_name: name,
                role: Role::Admin,
            };
            let done = admin::invite(app, &AdminCtx::operator(), inv)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let m = &done.member;
            Ok(if m.status == Status::Active {
                format!(
                    "Added admin {} (id {}): their domain is verified, so they are active now.\nThey choose a password with this one-time link (also in the mail outbox, valid 3 days):\n{}\n",
                    m.email, m.id, done.link_url
                )
            } else {
                format!(
                    "Invited admin {} (id {}). They become active when they accept with this one-time link (also in the mail outbox, valid 14 days):\n{}\n",
                    m.email, m.id, done.link_url
                )
            })
        }
        AdminRequest::TokenList => {
            let all = connections::list(app).await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                return Ok("No connections. Create one with: roster token create --name NAME\n".into());
            }
            let mut out = format!(
                "{:<36}  {:<24}  {:<12}  {:<24}  {}\n",
                "ID", "NAME", "KIND", "CREATED", "STATUS"
            );
            for c in all {
                let status = match c.revoked_ms {
                    Some(t) => format!("revoked {}", rfc3339(t)),
                    None => "active".into(),
                };
                let kind = match c.kind {
                    crate::workspace::model::ConnectionKind::StaticToken => "static",
                    crate::workspace::model::ConnectionKind::OAuthGrant => "oauth",
                };
                out.push_str(&format!(
                    "{:<36}  {:<24}  {:<12}  {:<24}  {}\n",
                    c.id,
                    c.name,
                    kind,
                    rfc3339(c.created_ms),
                    status
                ));
            }
            Ok(out)
        }
        AdminRequest::DomainAdd { name, verified } => {
            domains::change(app, &name, DomainChange::Add { verified }, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Added {} ({}).\n",
                domains::normalise(&name).unwrap_or(name),
                if verified { "verified" } else { "not verified" }
            ))
        }
        AdminRequest::DomainVerify { name } => {
            domains::change(app, &name, DomainChange::Verify, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Marked {} verified: members provisioned with it become active at once.\n",
                domains::normalise(&name).unwrap_or(name)
            ))
        }
        AdminRequest::DomainRemove { name } => {
            domains::change(app, &name, DomainChange::Remove, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("Removed {}.\n", domains::normalise(&name).unwrap_or(name)))
        }
        AdminRequest::TeamList => {
            let all = teams::list(app).await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                return Ok("No teams. Create one with: roster team create NAME\n".into());
            }
            let mut out = format!("{:<36}  {:>7}  {:<10}  {}\n", "ID", "MEMBERS", "MANAGED", "NAME");
            for t in all {
                let managed = if t.management == Management::Unmanaged {
                    "no"
                } else {
                    "by IdP"
                };
                out.push_str(&format!(
                    "{:<36}  {:>7}  {:<10}  {}\n",
                    t.id, t.member_count, managed, t.name
                ));
            }
            Ok(out)
        }
        AdminRequest::TeamCreate { name } => {
            let t = teams::person_create(app, actor, &name)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("Created team {:?} (id {}).\n", t.name, t.id))
        }
        AdminRequest::TeamRename { team, new_name } => {
            let t = teams::person_edit(app, actor, &team, vec![PersonOp::Rename(new_name)])
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("Renamed to {:?}.{}\n", t.name, managed_note(&t)))
        }
        AdminRequest::TeamDelete { team } => {
            let t = teams::person_delete(app, actor, &team)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Deleted team {:?}; its {} members stay in the workspace.\n",
                t.name, t.member_count
            ))
        }
        AdminRequest::TeamAddMember { team, email } => {
            let t = teams::person_edit(app, actor, &team, vec![PersonOp::Add(email.clone())])
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{email} is in team {:?} ({} members).{}\n",
                t.name,
                t.member_count,
                managed_note(&t)
            ))
        }
        AdminRequest::TeamRemoveMember { team, email } => {
            let t = teams::person_edit(app, actor, &team, vec![PersonOp::Remove(email.clone())])
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{email} is not in team {:?} ({} members).{}\n",
                t.name,
                t.member_count,
                managed_note(&t)
            ))
        }
        AdminRequest::ClientAdd {
            name,
            redirect_uris,
            kind,
            allow_insecure_redirect,
        } => {
            let r = oauth::register(app, &name, redirect_uris, kind, allow_insecure_redirect, actor)
                .await
                .map_err(|e| e.to_string())?;
            let base = &app.config.public_url;
            let mut out = format!(
                "Registered OAuth client {:?}.\nclient_id:          {}\n",
                r.client.name, r.client.client_id
            );
            if let Some(s) = &r.secret {
                out.push_str(&format!("client_secret:      {s}\n                    (shown once; store it in your identity provider now)\n"));
            }
            if r.client.kind != ClientKind::Service {
                out.push_str(&format!("Authorize endpoint: {base}{}\n", crate::paths::AUTHORIZE));
            }
            out.push_str(&format!(
                "Token endpoint:     {base}{}\nSCIM base URL:      {base}{}\nScope:              scim\n",
                crate::paths::TOKEN,
                crate::paths::SCIM
            ));
            Ok(out)
        }
        AdminRequest::ClientList => {
            let all = oauth::list(app).await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                return Ok(
                    "No OAuth clients. Register one with: roster client add --name okta --redirect-uri URI\n".into(),
                );
            }
            let mut out = String::new();
            for c in all {
                out.push_str(&format!(
                    "{}  {:?}  {}  secrets: {}  created {}\n",
                    c.client_id,
                    c.name,
                    match c.kind {
                        ClientKind::Confidential => "confidential",
                        ClientKind::Public => "public",
                        ClientKind::Service => "service",
                    },
                    c.secrets.len(),
                    rfc3339(c.created_ms)
                ));
                for u in &c.redirect_uris {
                    out.push_str(&format!("    redirect {u}\n"));
                }
            }
            Ok(out)
        }
        AdminRequest::ClientRemove { client_id } => {
            let c = oauth::remove(app, &client_id, actor).await.map_err(|e| e.to_string())?;
            Ok(format!("Removed client {:?}; its grants are revoked.\n", c.name))
        }
        AdminRequest::ClientRotateSecret { client_id } => {
            let s = oauth::rotate_secret(app, &client_id, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "New client_secret (shown once): {s}\nThe previous secret keeps working until the next rotation; update your identity provider now.\n"
            ))
        }
        AdminRequest::GrantList => {
            let all = oauth::grants(app).await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                return Ok("No OAuth grants.\n".into());
            }
            let mut out = format!(
                "{:<36}  {:<20}  {:<28}  {:<24}  {:<24}  {}\n",
                "GRANT", "CLIENT", "AUTHORISED BY", "CREATED", "LAST USED", "STATUS"
            );
            for g in all {
                out.push_str(&format!(
                    "{:<36}  {:<20}  {:<28}  {:<24}  {:<24}  {}\n",
                    g.grant.id,
                    g.client_name,
                    g.authorized_by.unwrap_or_else(|| "(client credentials)".into()),
                    rfc3339(g.grant.created_ms),
                    g.grant.last_used_ms.map(rfc3339).unwrap_or_else(|| "never".into()),
                    match g.grant.revoked_ms {
                        Some(t) => format!("revoked {}", rfc3339(t)),
                        None => "active".into(),
                    }
                ));
            }
            Ok(out)
        }
        AdminRequest::GrantRevoke { grant_id } => {
            let g = oauth::revoke_grant(app, &grant_id, actor)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("Grant {} is revoked; its tokens stopped working.\n", g.id))
        }
        AdminRequest::MailList { status, limit } => {
            let all = crate::mail::page(app, status, None, limit)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            if all.is_empty() {
                out.push_str("No mails in the outbox.\n");
            } else {
                out.push_str(&format!(
                    "{:>6}  {:<8}  {:>8}  {:<24}  {:<32}  {}\n",
                    "SEQ", "STATUS", "ATTEMPTS", "CREATED", "TO", "SUBJECT"
                ));
                for (seq, m) in &all {
                    out.push_str(&format!(
                        "{:>6}  {:<8}  {:>8}  {:<24}  {:<32}  {}\n",
                        seq,
                        status_word(m.status),
                        m.attempts,
                        rfc3339(m.created_ms),
                        m.to,
                        m.subject
                    ));
                }
            }
            if !crate::mail::configured(app) && all.iter().any(|(_, m)| m.status == MailStatus::Pending) {
                out.push_str("Mail delivery is not configured ([mail] in the config): pending mails stay here.\nHand one over with: roster mail show SEQ\n");
            }
            Ok(out)
        }
        AdminRequest::MailShow { seq } => {
            let m = crate::mail::get(app, seq)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("there is no mail {seq} in the outbox; see roster mail list"))?;
            Ok(show_mail(app, seq, &m))
        }
        AdminRequest::MailRetry { seq } => {
            let m = crate::mail::retry(app, seq, actor)
                .await
                .map_err(|e| format!("mail {seq}: {e}"))?;
            Ok(if crate::mail::configured(app) {
                format!("Mail {seq} to {} is pending again and will be sent shortly.\n", m.to)
            } else {
                format!(
                    "Mail {seq} to {} is pending again; mail delivery is not configured ([mail]), so it stays in the outbox.\n",
                    m.to
                )
            })
        }
        AdminRequest::Backup { out } => {
            let s = app.store.snapshot(&out).await.map_err(|e| e.to_string())?;
            Ok(format!(
                "Wrote a consistent snapshot ({} rows, {} bytes, schema version {}).\n",
                s.rows, s.bytes, s.schema_version
            ))
        }
        AdminRequest::DomainList => {
            let ws = crate::workspace::get(&app.store)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the workspace has not been created yet; run roster init")?;
            if ws.domains.is_empty() {
                return Ok("No email domains. Add one with: roster domain add example.com --verified\n".into());
            }
            let mut out = String::new();
            for d in ws.domains {
                out.push_str(&format!(
                    "{}\t{}\n",
                    d.name,
                    if d.verified { "verified" } else { "not verified" }
                ));
            }
            Ok(out)
        }
    }
}

fn status_word(s: MailStatus) -> &'static str {
    match s {
        MailStatus::Pending => "pending",
        MailStatus::Sent => "sent",
        MailStatus::Failed => "failed",
    }
}

/// Headers, delivery state and the whole plain-text body: what an operator
/// needs to hand a mail (an invitation link) over by hand.
fn show_mail(app: &App, seq: u64, m: &Mail) -> String {
    let mut out = format!("Mail {seq} ({})\n", status_word(m.status));
    if let Some(cfg) = &app.config.mail {
        out.push_str(&format!("From:         {}\n", cfg.from));
    }
    out.push_str(&format!("To:           {}\nSubject:      {}\n", m.to, m.subject));
    out.push_str(&format!("Created:      {}\n", rfc3339(m.created_ms)));
    out.push_str(&format!("Attempts:     {}\n", m.attempts));
    match m.status {
        MailStatus::Sent => {
            if let Some(t) = m.sent_ms {
                out.push_str(&format!("Sent:         {}\n", rfc3339(t)));
            }
        }
        MailStatus::Pending if crate::mail::configured(app) => {
            out.push_str(&format!("Next attempt: {}\n", rfc3339(m.next_attempt_ms)));
        }
        MailStatus::Pending => out.push_str("Next attempt: none (mail delivery is not configured)\n"),
        MailStatus::Failed => out.push_str(&format!("Retry with:   roster mail retry {seq}\n")),
    }
    if let Some(e) = &m.last_error {
        out.push_str(&format!("Last error:   {e}\n"));
    }
    out.push('\n');
    out.push_str(&m.body);
    if !m.body.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Rule 8: people may change managed teams, but should know the IdP wins.
fn managed_note(t: &Team) -> &'static str {
    if t.management == Management::Unmanaged {
        ""
    } else {
        " Note: this team is managed by an identity provider; its next sync will overwrite this change."
    }
}

/// Serves the control socket until `stop` fires; removes the file after.
pub async fn serve(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let path = socket_path(&app.config.data_dir);
    // A socket file left by a crashed server would make bind fail.
    if UnixStream::connect(&path).await.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the control socket; admin commands need the server stopped");
            return;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            tracing::error!(error = %e, "cannot restrict the control socket to its owner; closing it");
            let _ = std::fs::remove_file(&path);
            return;
        }
    }
    // Peers must run as the data dir's owner (the server's user) or root.
    let own_uid = std::fs::metadata(&app.config.data_dir)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let peer_ok = stream
            .peer_cred()
            .ok()
            .is_some_and(|c| c.uid() == 0 || Some(c.uid()) == own_uid);
        if !peer_ok {
            tracing::warn!("control socket: refused a peer running as another user");
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(&app, stream).await {
                tracing::debug!(error = %e, "control connection failed");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn handle(app: &App, stream: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(req) => {
            tracing::info!(?req, "admin command over the control socket");
            match execute(app, req).await {
                Ok(s) => Reply::Ok(s),
                Err(e) => Reply::Error(e),
            }
        }
        Err(e) => Reply::Error(format!("bad control request: {e}")),
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

/// Sends a command to a running server. `Ok(None)`: no server listening.
pub async fn send(data_dir: &Path, req: &AdminRequest) -> Result<Option<Result<String, String>>, String> {
    let path = socket_path(data_dir);
    let Ok(stream) = UnixStream::connect(&path).await else {
        return Ok(None);
    };
    let (r, mut w) = stream.into_split();
    let mut msg = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    msg.push(b'\n');
    w.write_all(&msg).await.map_err(|e| format!("control socket: {e}"))?;
    let mut line = String::new();
    BufReader::new(r)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("control socket: {e}"))?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Ok(s)) => Ok(Some(Ok(s))),
        Ok(Reply::Error(e)) => Ok(Some(Err(e))),
        Err(e) => Err(format!("unexpected answer from the server: {e}")),
    }
}
