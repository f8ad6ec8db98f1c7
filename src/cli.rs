//! Command-line interface: clap subcommands mapped to library calls. Every
//! failure is one line on stderr and a non-zero exit, never a backtrace.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use http_body_util::Full;
use hyper::body::Bytes;

use crate::config::{Config, LogFormat};
use crate::control::{self, AdminRequest};
use crate::workspace::model::{ClientKind, MailStatus};
use crate::{App, paths, server, workspace};

#[derive(Debug, Parser)]
#[command(
    name = "roster",
    version,
    about = "On-premises SCIM 2.0 + OAuth 2.0 appliance for one workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (TOML). Without it the embedded default is used.
    #[arg(long, short = 'c', env = "ROSTER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Overrides `server.data_dir`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Overrides `server.public_url`: the https:// address roster puts in
    /// links, mails, SCIM locations and the OAuth issuer. (A running
    /// server's commands use the server's own.)
    #[arg(long, global = true)]
    public_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTPS, SCIM, OAuth, pages).
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Overrides `server.listen`, e.g. 127.0.0.1:0 for any free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a configuration file; exits non-zero naming the bad key.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Create the database, the workspace and its first admin, and print a
    /// one-time login link.
    Init {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Workspace name (default: `workspace.name` from the config).
        #[arg(long)]
        workspace_name: Option<String>,
        /// Email of the first admin (default: `workspace.admin_email`).
        #[arg(long)]
        admin_email: Option<String>,
    },
    /// Workspace admins: `admin create EMAIL` adds an admin (active at once
    /// on a verified domain, else invited) and prints their one-time link.
    Admin {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// SCIM bearer tokens (IdP connections with a static token).
    Token {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Email domains of the workspace (verified → provisioned members are
    /// active at once; otherwise they are invited).
    Domain {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: DomainAction,
    },
    /// Teams (SCIM groups): list, create, rename, delete, membership.
    Team {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: TeamAction,
    },
    /// OAuth clients (identity providers that connect with "Authenticate with
    /// roster", or with client credentials).
    Client {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: ClientAction,
    },
    /// OAuth grants (what admins authorised): list, revoke.
    Grant {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: GrantAction,
    },
    /// The mail outbox: list, show (to hand a mail over by hand), retry.
    Mail {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: MailAction,
    },
    /// Write a consistent snapshot of the database to OUT, while the server
    /// runs (through its control socket) or not.
    Backup {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Where to write the snapshot (a new file).
        out: PathBuf,
    },
    /// Check a snapshot or database file: integrity, schema version,
    /// indexes. Never writes to it.
    Verify {
        /// The file to check.
        file: PathBuf,
    },
    /// Replace the database with a snapshot. Refuses while the server runs;
    /// keeps the previous database next to it.
    Restore {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The snapshot to restore.
        file: PathBuf,
    },
    /// The serving certificate: `tls export-cert` prints it (PEM) for an
    /// on-premises provisioning agent or a client to trust.
    Tls {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(subcommand)]
        action: TlsAction,
    },
    /// Ask the local server whether it is ready (GET /readyz over TLS, pinned
    /// to the server's own certificate). Exit 0 when ready.
    Healthcheck {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// The address the server listens on (what `serve --listen` was
        /// given); default `server.listen` from the config.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Add an admin by email and print their one-time link.
    Create {
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a fresh one-time sign-in link for an existing active admin (a
    /// lost first link, a session that ended before a password was set).
    /// Works while the server runs and while it is stopped.
    LoginLink { email: String },
}

#[derive(Debug, Subcommand)]
enum TlsAction {
    /// Print the certificate chain roster serves (PEM) to stdout, e.g.
    /// `roster tls export-cert > roster.crt`.
    ExportCert,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a connection with a static bearer token (printed once).
    Create {
        /// A name for the connection, e.g. "Entra ID".
        #[arg(long)]
        name: String,
    },
    /// Revoke a connection (by id or name): its tokens stop working at once.
    Revoke {
        /// Connection id or name.
        connection: String,
    },
    /// List connections.
    List,
}

#[derive(Debug, Subcommand)]
enum TeamAction {
    /// List teams with member counts.
    List,
    /// Create an unmanaged team.
    Create { name: String },
    /// Rename a team (by name or id).
    Rename { team: String, new_name: String },
    /// Delete a team; its members stay in the workspace.
    Delete { team: String },
    /// Add a member (by email) to a team.
    AddMember { team: String, email: String },
    /// Remove a member (by email) from a team.
    RemoveMember { team: String, email: String },
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Register a client; prints client_id and secret (once).
    Add {
        #[arg(long)]
        name: String,
        /// Exact redirect URI (repeat for several), e.g. Okta's
        /// https://system-admin.okta.com/admin/app/cpc/APP/oauth/callback
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; must use PKCE S256).
        #[arg(long, conflicts_with = "service")]
        public: bool,
        /// A service client: client_credentials only (Entra ID gallery).
        #[arg(long)]
        service: bool,
        /// Allow plain-http redirect URIs on non-loopback hosts.
        #[arg(long)]
        allow_insecure_redirect: bool,
    },
    /// List clients.
    List,
    /// Remove a client and revoke its grants.
    Remove { client_id: String },
    /// Add a new secret (the previous one keeps working until the next rotation).
    RotateSecret { client_id: String },
}

#[derive(Debug, Subcommand)]
enum GrantAction {
    /// List grants: client, who authorised, created, last used.
    List,
    /// Revoke a grant: its tokens stop working at once.
    Revoke { grant_id: String },
}

#[derive(Debug, Subcommand)]
enum MailAction {
    /// List mails, newest first: seq, status, attempts, created, to, subject.
    List {
        /// Only mails with this status.
        #[arg(long, value_enum)]
        status: Option<MailStatusArg>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print one mail: headers, delivery state and the whole body.
    Show { seq: u64 },
    /// Send a failed (or pending) mail again, now, with a fresh attempt count.
    Retry { seq: u64 },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MailStatusArg {
    Pending,
    Sent,
    Failed,
}

impl From<MailStatusArg> for MailStatus {
    fn from(s: MailStatusArg) -> MailStatus {
        match s {
            MailStatusArg::Pending => MailStatus::Pending,
            MailStatusArg::Sent => MailStatus::Sent,
            MailStatusArg::Failed => MailStatus::Failed,
        }
    }
}

#[derive(Debug, Subcommand)]
enum DomainAction {
    /// Add a domain (not verified unless --verified).
    Add {
        name: String,
        #[arg(long)]
        verified: bool,
    },
    /// Mark a domain verified.
    Verify { name: String },
    /// Remove a domain.
    Remove { name: String },
    /// List domains.
    List,
}

/// What an admin command prints may hold what an IdP or a person typed (a
/// name, a mail body): control characters other than newline and tab, and
/// the bidirectional overrides, are shown as `\u{1b}` escapes instead of
/// reaching the operator's terminal, where an ESC sequence could rewrite
/// the screen or the title (issue 17).
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("roster: error: {}", terminal_safe(&msg));
            ExitCode::FAILURE
        }
    }
}

/// The packaged configuration; used when no --config / $ROSTER_CONFIG is
/// given and it exists, so `roster token create` on an installed box talks
/// to the installed server.
pub const SYSTEM_CONFIG: &str = "/etc/roster/config.toml";

fn load(cfg: &ConfigArgs) -> Result<Config, String> {
    let system = std::path::Path::new(SYSTEM_CONFIG);
    let mut config = match &cfg.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None if system.exists() && std::env::var_os("ROSTER_NO_SYSTEM_CONFIG").is_none() => {
            Config::load(system).map_err(|e| e.to_string())?
        }
        None => Config::embedded_default(),
    };
    if let Some(dir) = &cfg.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &cfg.public_url {
        config.set_public_url(url).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // redb reads run on the blocking pool. They are short and CPU-bound,
        // so a few threads suffice: with 16, 64 concurrent GETs kept waking
        // parked pool threads (futex + context switch per read) on 2 cores;
        // with 4 the busy threads drain the queue themselves (quick bench:
        // GET /Users/{id} +45-60%). Argon2 hashes (at most 2 at a time, see
        // `App::hash_permits`) and a running backup still leave room for reads.
        .max_blocking_threads(4)
        .thread_name("roster")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Changes the log level of the running process (SIGHUP).
type LevelHandle = tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Sets up the log (buffered through [`crate::logsink`]); the caller flushes
/// the returned sink before the process exits.
fn init_logging(config: &Config) -> (Option<LevelHandle>, crate::logsink::LogSink) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let sink = crate::logsink::LogSink::stderr();
    {
        // A panic message goes straight to stderr: write the buffered lines
        // before it, so the log reads in order.
        let sink = sink.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sink.flush();
            previous(info);
        }));
    }
    let _ = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(sink.clone()),
            )
            .try_init(),
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(sink.clone()),
            )
            .try_init(),
    };
    // RUST_LOG set by hand wins over the config, also on reload.
    ((!from_env).then_some(handle), sink)
}

/// SIGHUP: re-read the config file and apply what is safe to change while
/// running (the log level); the TLS certificate is reloaded separately.
fn reload_config(path: Option<&std::path::Path>, levels: Option<&LevelHandle>) {
    let Some(path) = path else { return };
    match Config::load(path) {
        Ok(new) => {
            if let Some(h) = levels {
                match tracing_subscriber::EnvFilter::try_new(&new.log_level) {
                    Ok(f) => {
                        let _ = h.reload(f);
                        tracing::info!(level = %new.log_level, "log level reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "log level not reloaded"),
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "configuration not reloaded; keeping the running one"),
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::CheckConfig { file } => {
            let config = Config::load(&file).map_err(|e| e.to_string())?;
            println!(
                "{}: ok (listen {}, public_url {}, data_dir {})",
                file.display(),
                config.listen,
                config.public_url,
                config.data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { cfg, listen } => {
            let mut config = load(&cfg)?;
            if let Some(l) = listen {
                config.listen = l;
            }
            let (levels, log) = init_logging(&config);
            let path = cfg.config.clone().or_else(|| {
                let system = std::path::PathBuf::from(SYSTEM_CONFIG);
                (system.exists() && std::env::var_os("ROSTER_NO_SYSTEM_CONFIG").is_none()).then_some(system)
            });
            let result = runtime()?.block_on(serve(config, path, levels));
            log.flush();
            result
        }
        Command::Init {
            cfg,
            workspace_name,
            admin_email,
        } => {
            let config = load(&cfg)?;
            let name = workspace_name.unwrap_or_else(|| config.workspace_name.clone());
            let email = admin_email.unwrap_or_else(|| config.admin_email.clone());
            runtime()?.block_on(async move {
                let app = App::open(config).await.map_err(|e| e.to_string())?;
                let result = workspace::bootstrap(&app, &name, &email).await;
                app.store.close().await;
                let b = result.map_err(|e| e.to_string())?;
                println!("Created workspace {:?} with admin {}.", b.workspace, b.admin.email);
                println!("One-time login link (valid until {}):", b.expires_at);
                println!("{}", b.login_url);
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Admin { cfg, action } => {
            let req = match action {
                AdminAction::Create { email, name } => AdminRequest::AdminCreate { email, name },
                AdminAction::LoginLink { email } => AdminRequest::AdminLoginLink { email },
            };
            admin(&cfg, req)
        }
        Command::Token { cfg, action } => {
            let req = match action {
                TokenAction::Create { name } => AdminRequest::TokenCreate { name },
                TokenAction::Revoke { connection } => AdminRequest::TokenRevoke { connection },
                TokenAction::List => AdminRequest::TokenList,
            };
            admin(&cfg, req)
        }
        Command::Domain { cfg, action } => {
            let req = match action {
                DomainAction::Add { name, verified } => AdminRequest::DomainAdd { name, verified },
                DomainAction::Verify { name } => AdminRequest::DomainVerify { name },
                DomainAction::Remove { name } => AdminRequest::DomainRemove { name },
                DomainAction::List => AdminRequest::DomainList,
            };
            admin(&cfg, req)
        }
        Command::Team { cfg, action } => {
            let req = match action {
                TeamAction::List => AdminRequest::TeamList,
                TeamAction::Create { name } => AdminRequest::TeamCreate { name },
                TeamAction::Rename { team, new_name } => AdminRequest::TeamRename { team, new_name },
                TeamAction::Delete { team } => AdminRequest::TeamDelete { team },
                TeamAction::AddMember { team, email } => AdminRequest::TeamAddMember { team, email },
                TeamAction::RemoveMember { team, email } => AdminRequest::TeamRemoveMember { team, email },
            };
            admin(&cfg, req)
        }
        Command::Client { cfg, action } => {
            let req = match action {
                ClientAction::Add {
                    name,
                    redirect_uris,
                    public,
                    service,
                    allow_insecure_redirect,
                } => AdminRequest::ClientAdd {
                    name,
                    redirect_uris,
                    kind: if public {
                        ClientKind::Public
                    } else if service {
                        ClientKind::Service
                    } else {
                        ClientKind::Confidential
                    },
                    allow_insecure_redirect,
                },
                ClientAction::List => AdminRequest::ClientList,
                ClientAction::Remove { client_id } => AdminRequest::ClientRemove { client_id },
                ClientAction::RotateSecret { client_id } => AdminRequest::ClientRotateSecret { client_id },
            };
            admin(&cfg, req)
        }
        Command::Grant { cfg, action } => {
            let req = match action {
                GrantAction::List => AdminRequest::GrantList,
                GrantAction::Revoke { grant_id } => AdminRequest::GrantRevoke { grant_id },
            };
            admin(&cfg, req)
        }
        Command::Mail { cfg, action } => {
            let req = match action {
                MailAction::List { status, limit } => AdminRequest::MailList {
                    status: status.map(MailStatus::from),
                    limit,
                },
                MailAction::Show { seq } => AdminRequest::MailShow { seq },
                MailAction::Retry { seq } => AdminRequest::MailRetry { seq },
            };
            admin(&cfg, req)
        }
        Command::Backup { cfg, out } => backup(&cfg, &out),
        Command::Verify { file } => {
            let v = crate::store::backup::verify(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "{}: ok (schema version {}, {} members, {} teams, {} audit entries)",
                file.display(),
                v.schema_version,
                v.members,
                v.teams,
                v.audit_rows
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { cfg, file } => restore(&cfg, &file),
        Command::Tls {
            cfg,
            action: TlsAction::ExportCert,
        } => {
            let config = load(&cfg)?;
            let path = server::tls::cert_path(&config);
            let certs = server::tls::load_certs(&path).map_err(|e| e.to_string())?;
            if certs.is_empty() {
                return Err(format!(
                    "{}: no certificate (start roster once to make one)",
                    path.display()
                ));
            }
            let mut out = String::new();
            for c in &certs {
                out.push_str(&pem_certificate(c.as_ref()));
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { cfg, timeout, listen } => {
            let mut config = load(&cfg)?;
            if let Some(l) = listen {
                config.listen = l;
                config.follow_listen(l);
            }
            runtime()?.block_on(async move {
                match tokio::time::timeout(Duration::from_secs(timeout), healthcheck(&config)).await {
                    Ok(Ok(())) => {
                        println!("ready");
                        Ok(ExitCode::SUCCESS)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(format!("no answer from the server within {timeout}s")),
                }
            })
        }
    }
}

/// Runs an admin command through the live server's control socket, or
/// against the database directly when no server runs.
fn admin(cfg: &ConfigArgs, req: AdminRequest) -> Result<ExitCode, String> {
    let config = load(cfg)?;
    runtime()?.block_on(async move {
        let output = match control::send(&config.data_dir, &req).await? {
            Some(answer) => answer?,
            None => {
                if !config.db_path().exists() {
                    return Err(format!(
                        "no database in {}; run roster init (or roster serve) first",
                        config.data_dir.display()
                    ));
                }
                let app = App::open(config).await.map_err(|e| e.to_string())?;
                let r = control::execute(&app, req).await;
                app.store.close().await;
                r?
            }
        };
        print!("{}", terminal_safe(&output));
        Ok(ExitCode::SUCCESS)
    })
}

/// A running server may only write inside its data dir (systemd's
/// ProtectSystem=strict), so it snapshots there and this process, which the
/// operator runs, moves the result to OUT.
fn backup(cfg: &ConfigArgs, out: &std::path::Path) -> Result<ExitCode, String> {
    let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    if out.exists() {
        return Err(format!("{} exists; choose a new file name", out.display()));
    }
    let config = load(cfg)?;
    let staging = config.data_dir.join(format!(".backup-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let result = admin(cfg, AdminRequest::Backup { out: staging.clone() });
    if result.is_err() {
        let _ = std::fs::remove_file(&staging);
        return result;
    }
    let moved = std::fs::rename(&staging, &out).or_else(|_| {
        // Another filesystem: copy, sync, then remove the staging file.
        std::fs::copy(&staging, &out)?;
        std::fs::File::open(&out)?.sync_all()?;
        std::fs::remove_file(&staging)
    });
    if let Err(e) = moved {
        let _ = std::fs::remove_file(&staging);
        return Err(format!("cannot write {}: {e}", out.display()));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600));
    }
    if let Some(dir) = out.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    println!(
        "Snapshot saved as {} (restore with: roster restore {}).",
        out.display(),
        out.display()
    );
    result
}

/// Restores a snapshot into the data dir with the server stopped.
fn restore(cfg: &ConfigArgs, file: &std::path::Path) -> Result<ExitCode, String> {
    let config = load(cfg)?;
    let rt = runtime()?;
    let running = rt
        .block_on(control::send(&config.data_dir, &AdminRequest::TokenList))?
        .is_some();
    if running {
        return Err("roster is running; stop it first (systemctl stop roster), then restore".into());
    }
    let v = crate::store::backup::verify(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let db = config.db_path();
    crate::ensure_data_dir(&config.data_dir).map_err(|e| e.to_string())?;
    // Refuse if some other process holds the database.
    if db.exists() {
        match redb::Database::open(&db) {
            Ok(d) => drop(d),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(format!("{} is in use by another process; stop it first", db.display()));
            }
            Err(_) => {}
        }
    }
    let tmp = config.data_dir.join(".restore.partial");
    std::fs::copy(file, &tmp).map_err(|e| format!("cannot copy {}: {e}", file.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
    let mut kept = None;
    if db.exists() {
        let stamp = crate::clock::rfc3339(crate::clock::Clock::now_ms(&crate::clock::SystemClock)).replace(':', "");
        let aside = config.data_dir.join(format!("roster.redb.before-restore-{stamp}"));
        std::fs::rename(&db, &aside).map_err(|e| format!("cannot move the current database aside: {e}"))?;
        kept = Some(aside);
    }
    std::fs::rename(&tmp, &db).map_err(|e| format!("cannot move the snapshot into place: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600));
    }
    if let Ok(d) = std::fs::File::open(&config.data_dir) {
        let _ = d.sync_all();
    }
    println!(
        "Restored {} ({} members, {} teams, schema version {}) into {}.",
        file.display(),
        v.members,
        v.teams,
        v.schema_version,
        db.display()
    );
    if let Some(k) = kept {
        println!("The previous database is kept as {}.", k.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config, config_path: Option<PathBuf>, levels: Option<LevelHandle>) -> Result<ExitCode, String> {
    // Signal handlers first: SIGHUP's default action would kill a server
    // that is reloaded the moment it starts listening.
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    let stop_signals = (
        signal(SignalKind::terminate()).map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?,
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot install the SIGINT handler: {e}"))?,
    );
    // The port first: when it is busy nothing is created, so the first
    // admin's link is printed by the start that really serves.
    let mut config = config;
    let listener = server::bind(config.listen).await.map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    config.follow_listen(bound);
    let app = App::open(config).await.map_err(|e| e.to_string())?;
    match app.bootstrap_if_empty().await {
        Ok(Some(b)) => tracing::warn!(
            workspace = %b.workspace,
            admin = %b.admin.email,
            expires = %b.expires_at,
            "first start: sign in as the first admin with this one-time link: {}",
            b.login_url
        ),
        Ok(None) => first_admin_reminder(&app).await,
        Err(e) => {
            app.store.close().await;
            return Err(e.to_string());
        }
    }
    let running = match server::start_on(app.clone(), listener).await {
        Ok(r) => r,
        Err(e) => {
            app.store.close().await;
            return Err(e.to_string());
        }
    };
    crate::server::notify::ready();
    let stopper = running.stopper();
    tokio::spawn(async move {
        let (mut term, mut int) = stop_signals;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        let _ = stopper.send(true);
    });
    let tls = running.tls();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration and the TLS certificate");
            reload_config(config_path.as_deref(), levels.as_ref());
            let _ = tls.reload().await;
        }
    });
    running.stopped().await;
    Ok(ExitCode::SUCCESS)
}

/// One DER certificate as PEM.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Until the first admin (`workspace.admin_email`) has chosen a password,
/// every start prints a fresh one-time sign-in link, so a link lost with a
/// failed first start or an ended session never locks them out.
async fn first_admin_reminder(app: &App) {
    let email = app.config.admin_email.clone();
    let first = app
        .store
        .read(move |txn| crate::store::members::by_email(txn, &email))
        .await;
    let Ok(Some(m)) = first else { return };
    if m.password_hash.is_some() || !m.is_active_admin() {
        return;
    }
    match workspace::admin::login_link(app, &workspace::admin::AdminCtx::operator(), &m.email).await {
        Ok(Ok(l)) => tracing::warn!(
            admin = %l.member.email,
            expires = %l.expires_at,
            "the first admin has not chosen a password yet: sign in with this one-time link: {}",
            l.url
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "no sign-in link for the first admin"),
        Err(e) => tracing::warn!(error = %e, "no sign-in link for the first admin"),
    }
}

/// GET /readyz on the configured listen address, trusting only the
/// server's own certificate.
async fn healthcheck(config: &Config) -> Result<(), String> {
    let cert_path = server::tls::cert_path(config);
    let certs = server::tls::load_certs(&cert_path).map_err(|e| e.to_string())?;
    let cert = certs.into_iter().next().ok_or("no certificate")?;
    let tls = crate::client::pinned_config(
        cert,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"http/1.1"],
    )
    .map_err(|e| e.to_string())?;
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let req = hyper::Request::get(paths::READYZ)
        .header(hyper::header::HOST, &config.public_host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = crate::client::request(Arc::new(tls), addr, &config.public_host, req).await?;
    if resp.status == 200 {
        Ok(())
    } else {
        Err(format!("not ready: HTTP {} {}", resp.status, resp.text().trim()))
    }
}
