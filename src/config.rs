//! Configuration: the raw TOML shape (`deny_unknown_fields`, one struct per
//! section) and its validation into the typed [`Config`] the rest of the
//! program uses. Every key is documented in `config.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration was refused. The message always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    workspace: RawWorkspace,
    #[serde(default)]
    scim: RawScim,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    oauth: RawOAuth,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    metrics: RawMetrics,
    /// Absent: no delivery, mails stay in the outbox.
    mail: Option<RawMail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    smtp_host: Option<String>,
    smtp_port: Option<u64>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    timeout_secs: Option<u64>,
    max_attempts: Option<u64>,
    retry_base_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: Option<String>,
}

/// A secret from the config file: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: Option<PathBuf>,
    interval_minutes: Option<u64>,
    keep: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    session_idle_minutes: Option<u64>,
    session_max_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    access_token_minutes: Option<u64>,
    client_credentials_token_minutes: Option<u64>,
    refresh_token_idle_days: Option<u64>,
    refresh_reuse_grace_secs: Option<u64>,
    code_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScim {
    accept_passwords: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// `[tls.acme]` (or `acme = { ... }` inline): get the certificate over ACME.
    acme: Option<RawAcme>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    directory: Option<String>,
    contact: Option<String>,
    names: Option<Vec<String>>,
    ca_file: Option<PathBuf>,
    http_listen: Option<String>,
    renew_before_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<u64>,
    max_header_bytes: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    tls_handshake_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_ip: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    scim_requests_per_minute: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    name: Option<String>,
    admin_email: Option<String>,
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Generated with rcgen on first start and kept in `data_dir/tls/`.
    SelfSigned,
    /// The operator's PEM certificate chain and private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Obtained and renewed over ACME (RFC 8555), kept in `data_dir/acme/`;
    /// the self-signed certificate is served until the first one arrives.
    Acme(AcmeConfig),
}

/// Let's Encrypt's production directory, the default ACME CA.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[tls.acme]`: where and for which names roster orders its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's RFC 8555 directory URL (https).
    pub directory: String,
    /// Address the CA may write to about the account (without `mailto:`).
    pub contact: Option<String>,
    /// DNS names the certificate covers; the first is its subject.
    pub names: Vec<String>,
    /// A PEM root certificate trusted for the directory in addition to the
    /// system's CA store (a private or test CA such as pebble).
    pub ca_file: Option<PathBuf>,
    /// Plain-HTTP listener for HTTP-01 challenges (and redirects to HTTPS);
    /// without it challenges are answered with TLS-ALPN-01 on `server.listen`.
    pub http_listen: Option<SocketAddr>,
    /// A certificate with less than this left is renewed.
    pub renew_before: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    /// Bound on a request's headers, and on the wait for a connection's
    /// first request after the TLS handshake.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long
    /// (HTTP/2 and HTTP/1 alike; hyper's header read timer also runs
    /// between HTTP/1 requests, so there the shorter one applies).
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Open connections one client address (IPv4 address, IPv6 /64) may
    /// hold, decided from the TCP peer at accept time; 0 = no cap.
    pub max_connections_per_ip: usize,
    pub shutdown_grace: Duration,
    /// SCIM requests one token (connection) may make per minute.
    pub scim_requests_per_minute: u32,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` /
    /// `Forwarded` headers name the client; empty: such headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Absolute base URL without a trailing slash, e.g. `https://localhost:8443`.
    pub public_url: String,
    /// Host part of `public_url`, used for the self-signed certificate's SANs.
    pub public_host: String,
    /// Whether `public_url` was chosen (config file or `--public-url`);
    /// otherwise it follows the listen address (see [`Config::follow_listen`]).
    pub public_url_explicit: bool,
    pub data_dir: PathBuf,
    pub tls: TlsSource,
    pub log_format: LogFormat,
    pub log_level: String,
    pub limits: Limits,
    pub workspace_name: String,
    pub admin_email: String,
    /// Store passwords an IdP sends on create/update as the member's login
    /// password (Okta sends one on every create). Off: accepted, dropped.
    pub scim_accept_passwords: bool,
    /// A session ends after this long without activity...
    pub session_idle_ms: i64,
    /// ...and in any case this long after sign-in.
    pub session_max_ms: i64,
    pub oauth: OAuthConfig,
    /// Scheduled snapshots, when a directory is configured.
    pub backup: Option<BackupConfig>,
    /// Bearer token Prometheus must send to `/metrics`; `None` = no endpoint.
    pub metrics_token: Option<Secret>,
    /// SMTP delivery of the outbox; `None` = mails stay in the outbox.
    pub mail: Option<MailConfig>,
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
    /// No encryption (port 25): only sensible for a relay on this machine.
    None,
}

impl MailSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            MailSecurity::StartTls => 587,
            MailSecurity::Tls => 465,
            MailSecurity::None => 25,
        }
    }
}

/// `[mail]`: the SMTP relay the outbox is delivered through.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: MailSecurity,
    /// SMTP AUTH user and password; both or neither.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The `From:` of every mail (and the envelope sender).
    pub from: lettre::message::Mailbox,
    /// Bound on each step of one SMTP conversation.
    pub timeout: Duration,
    /// Attempts before a mail is marked failed.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one.
    pub retry_base: Duration,
}

impl MailConfig {
    /// True when the relay is this machine (plain SMTP is fine there).
    pub fn is_loopback(&self) -> bool {
        let h = self.smtp_host.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub dir: PathBuf,
    pub interval: Duration,
    pub keep: usize,
}

/// Lifetimes of the OAuth authorization server's codes and tokens.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub access_token_ms: i64,
    /// Entra ID requires 60 minutes to 6 hours.
    pub client_credentials_token_ms: i64,
    /// A refresh token unused for this long expires (Okta refreshes only
    /// when it next runs a SCIM operation).
    pub refresh_idle_ms: i64,
    /// A rotated refresh token presented again within this window (a
    /// client's concurrent double refresh) gets a new pair instead of
    /// revoking the grant.
    pub refresh_grace_ms: i64,
    pub code_ms: i64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const DEFAULT_PUBLIC_URL: &str = "https://localhost:8443";
pub const DEFAULT_DATA_DIR: &str = "./roster-data";
pub const DEFAULT_WORKSPACE_NAME: &str = "My workspace";
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";
/// Above the 64 connections the benchmark opens from one address.
const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 128;

impl Config {
    /// The embedded default used when `serve` is given no config file.
    pub fn embedded_default() -> Config {
        // The embedded default is valid by construction; a failure here is a
        // programming error caught by the test suite, not an input problem.
        match validate(RawConfig::default()) {
            Ok(c) => c,
            Err(e) => unreachable!("embedded default config is invalid: {e}"),
        }
    }

    /// `--public-url`: the address roster advertises in links, mails, SCIM
    /// `meta.location` and `Location`, the OAuth issuer and the console.
    pub fn set_public_url(&mut self, url: &str) -> Result<(), ConfigError> {
        let url = url.trim_end_matches('/');
        self.public_host = parse_public_url(url).map_err(|e| match e {
            ConfigError::Invalid { message, .. } => invalid("--public-url", message),
            other => other,
        })?;
        self.public_url = url.to_owned();
        self.public_url_explicit = true;
        Ok(())
    }

    /// When no public URL was chosen, the advertised one follows the address
    /// roster listens on (`--listen 127.0.0.1:9443` → `https://localhost:9443`):
    /// the one source of every URL roster hands out. A loopback or
    /// unspecified address is advertised as `localhost` (the name in the
    /// self-signed certificate); another address as itself.
    pub fn follow_listen(&mut self, bound: SocketAddr) {
        if self.public_url_explicit {
            return;
        }
        let ip = bound.ip();
        let host = if ip.is_loopback() || ip.is_unspecified() {
            "localhost".to_owned()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        self.public_url = format!("https://{host}:{}", bound.port());
        self.public_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `origin` is only used in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: parse_message(text, &e),
        })?;
        validate(raw)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("roster.redb")
    }
}

/// toml's messages span several lines with a source excerpt; operators get
/// one line that starts with the dotted key the error is about.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().trim_end_matches('.');
    let Some(span) = e.span() else {
        return what.to_owned();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    match key_at(text, start) {
        Some(key) => format!("{key}: {what} (line {line_no})"),
        None => format!("line {line_no}: {what}"),
    }
}

/// The dotted key whose line contains byte offset `at`: the nearest
/// `[section]` header above it plus the key before `=` on that line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        Some(inner.trim().trim_matches('[').to_owned())
    };
    if line.starts_with('[') {
        return header(line);
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || line == key {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| header(l).filter(|_| l.trim().starts_with('[')));
    Some(match section {
        Some(sec) => format!("{sec}.{key}"),
        None => key.to_owned(),
    })
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("{listen_text:?} is not an address with a port, e.g. \"127.0.0.1:8443\" or \"[::]:443\""),
        )
    })?;

    let mut trusted_proxies = Vec::new();
    for p in raw.server.trusted_proxies.as_deref().unwrap_or_default() {
        let net = p
            .trim()
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.trim().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                invalid(
                    "server.trusted_proxies",
                    format!("{p:?} is not an IP address or CIDR range, e.g. \"127.0.0.1\" or \"10.0.0.0/8\""),
                )
            })?;
        trusted_proxies.push(net.trunc());
    }

    let public_url_text = raw
        .server
        .public_url
        .as_deref()
        .unwrap_or(DEFAULT_PUBLIC_URL)
        .trim_end_matches('/');
    let public_host = parse_public_url(public_url_text)?;

    let data_dir = raw.server.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    if data_dir.as_os_str().is_empty() {
        return Err(invalid("server.data_dir", "must not be empty"));
    }

    let tls = match (raw.tls.cert, raw.tls.key) {
        (None, None) => match raw.tls.acme {
            None => TlsSource::SelfSigned,
            Some(acme) => TlsSource::Acme(validate_acme(acme, &public_host, listen)?),
        },
        // Two sources for one certificate would leave it unclear which one
        // is served after a renewal or a SIGHUP.
        (Some(_), _) | (_, Some(_)) if raw.tls.acme.is_some() => {
            return Err(invalid(
                "tls.acme",
                "cannot be combined with tls.cert / tls.key: use either your own PEM files or ACME",
            ));
        }
        (Some(cert), Some(key)) => {
            check_readable("tls.cert", &cert)?;
            check_readable("tls.key", &key)?;
            check_private("tls.key", &key)?;
            TlsSource::Files { cert, key }
        }
        (Some(_), None) => return Err(invalid("tls.key", "tls.cert is set, so tls.key is required")),
        (None, Some(_)) => return Err(invalid("tls.cert", "tls.key is set, so tls.cert is required")),
    };

    let log_format = match raw.log.format.as_deref().unwrap_or("human") {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("{other:?} is not one of \"human\", \"json\""),
            ));
        }
    };
    let log_level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(invalid(
            "log.level",
            format!(
                "{log_level:?} is not a level (error, warn, info, debug, trace) or a directive like \"roster=debug\""
            ),
        ));
    }

    let l = &raw.limits;
    let max_connections = bounded("limits.max_connections", l.max_connections, 1024, 1, 1_000_000)?;
    let limits = Limits {
        max_body_bytes: bounded("limits.max_body_bytes", l.max_body_bytes, 1 << 20, 1024, 64 << 20)? as usize,
        max_header_bytes: bounded(
            "limits.max_header_bytes",
            l.max_header_bytes,
            16 << 10,
            8 << 10,
            1 << 20,
        )? as usize,
        header_read_timeout: secs(
            "limits.header_read_timeout_secs",
            l.header_read_timeout_secs,
            10,
            1,
            300,
        )?,
        tls_handshake_timeout: secs(
            "limits.tls_handshake_timeout_secs",
            l.tls_handshake_timeout_secs,
            10,
            1,
            300,
        )?,
        request_timeout: secs("limits.request_timeout_secs", l.request_timeout_secs, 30, 1, 3600)?,
        idle_timeout: secs("limits.idle_timeout_secs", l.idle_timeout_secs, 60, 1, 3600)?,
        max_connections: max_connections as usize,
        max_connections_per_ip: per_ip_cap(l.max_connections_per_ip, max_connections)?,
        shutdown_grace: secs("limits.shutdown_grace_secs", l.shutdown_grace_secs, 10, 0, 3600)?,
        scim_requests_per_minute: bounded(
            "limits.scim_requests_per_minute",
            l.scim_requests_per_minute,
            600_000,
            60,
            u64::from(u32::MAX),
        )? as u32,
    };

    let workspace_name = raw.workspace.name.unwrap_or_else(|| DEFAULT_WORKSPACE_NAME.to_owned());
    if workspace_name.trim().is_empty() || workspace_name.len() > 200 {
        return Err(invalid("workspace.name", "must be 1 to 200 characters"));
    }
    let admin_email = raw
        .workspace
        .admin_email
        .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_owned());
    if !crate::workspace::plausible_email(&admin_email) {
        return Err(invalid(
            "workspace.admin_email",
            format!("{admin_email:?} is not an email address"),
        ));
    }

    Ok(Config {
        listen,
        trusted_proxies,
        public_url: public_url_text.to_owned(),
        public_host,
        public_url_explicit: raw.server.public_url.is_some(),
        data_dir,
        tls,
        log_format,
        log_level,
        limits,
        workspace_name,
        admin_email,
        scim_accept_passwords: raw.scim.accept_passwords.unwrap_or(false),
        session_idle_ms: ms(
            bounded("web.session_idle_minutes", raw.web.session_idle_minutes, 480, 5, 43_200)?,
            60_000,
        ),
        session_max_ms: ms(
            bounded("web.session_max_hours", raw.web.session_max_hours, 168, 1, 8_760)?,
            3_600_000,
        ),
        metrics_token: match raw.metrics.token {
            None => None,
            Some(t) if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(invalid(
                    "metrics.token",
                    "must be at least 16 characters without spaces",
                ));
            }
            Some(t) => Some(Secret(t)),
        },
        mail: raw.mail.map(validate_mail).transpose()?,
        backup: match raw.backup.dir {
            None => {
                if raw.backup.interval_minutes.is_some() || raw.backup.keep.is_some() {
                    return Err(invalid(
                        "backup.dir",
                        "interval_minutes and keep need a dir to write snapshots to",
                    ));
                }
                None
            }
            Some(dir) if dir.as_os_str().is_empty() => return Err(invalid("backup.dir", "must not be empty")),
            Some(dir) => Some(BackupConfig {
                dir,
                interval: Duration::from_secs(
                    60 * bounded("backup.interval_minutes", raw.backup.interval_minutes, 1440, 5, 10_080)?,
                ),
                keep: bounded("backup.keep", raw.backup.keep, 7, 1, 1000)? as usize,
            }),
        },
        oauth: OAuthConfig {
            access_token_ms: ms(
                bounded(
                    "oauth.access_token_minutes",
                    raw.oauth.access_token_minutes,
                    60,
                    5,
                    1_440,
                )?,
                60_000,
            ),
            client_credentials_token_ms: ms(
                bounded(
                    "oauth.client_credentials_token_minutes",
                    raw.oauth.client_credentials_token_minutes,
                    60,
                    60,
                    360,
                )?,
                60_000,
            ),
            refresh_idle_ms: ms(
                bounded(
                    "oauth.refresh_token_idle_days",
                    raw.oauth.refresh_token_idle_days,
                    180,
                    1,
                    3_650,
                )?,
                86_400_000,
            ),
            refresh_grace_ms: ms(
                bounded(
                    "oauth.refresh_reuse_grace_secs",
                    raw.oauth.refresh_reuse_grace_secs,
                    30,
                    0,
                    300,
                )?,
                1_000,
            ),
            code_ms: ms(
                bounded("oauth.code_ttl_secs", raw.oauth.code_ttl_secs, 60, 10, 600)?,
                1_000,
            ),
        },
    })
}

fn validate_acme(raw: RawAcme, public_host: &str, listen: SocketAddr) -> Result<AcmeConfig, ConfigError> {
    let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.to_owned());
    // RFC 8555 §6.1: ACME runs over HTTPS only.
    let dir_ok = directory
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace));
    if !dir_ok {
        return Err(invalid(
            "tls.acme.directory",
            format!("{directory:?} is not an https:// URL of an ACME directory, e.g. \"{LETS_ENCRYPT_DIRECTORY}\""),
        ));
    }
    let contact = match raw.contact {
        None => None,
        Some(c) => {
            let c = c.strip_prefix("mailto:").unwrap_or(&c).to_owned();
            if !crate::workspace::plausible_email(&c) {
                return Err(invalid("tls.acme.contact", format!("{c:?} is not an email address")));
            }
            Some(c)
        }
    };
    let names = match raw.names {
        Some(names) => names,
        None => vec![public_host.to_owned()],
    };
    if names.is_empty() {
        return Err(invalid("tls.acme.names", "must name at least one host"));
    }
    let mut checked: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if n.parse::<std::net::IpAddr>().is_ok() {
            return Err(invalid(
                "tls.acme.names",
                format!(
                    "{n:?} is an IP address; ACME certificates here are for host names (set server.public_url to a host name, or list names)"
                ),
            ));
        }
        if n.starts_with("*.") {
            return Err(invalid(
                "tls.acme.names",
                format!("{n:?}: wildcard names need DNS-01 validation, which roster does not do"),
            ));
        }
        if !dns_name(&n) {
            return Err(invalid("tls.acme.names", format!("{n:?} is not a DNS host name")));
        }
        if !checked.contains(&n) {
            checked.push(n);
        }
    }
    let http_listen = match raw.http_listen {
        None => None,
        Some(text) => {
            let addr: SocketAddr = text.parse().map_err(|_| {
                invalid(
                    "tls.acme.http_listen",
                    format!("{text:?} is not an address with a port, e.g. \"0.0.0.0:80\""),
                )
            })?;
            if addr == listen {
                return Err(invalid(
                    "tls.acme.http_listen",
                    "must differ from server.listen (one serves plain HTTP, the other HTTPS)",
                ));
            }
            Some(addr)
        }
    };
    if let Some(f) = &raw.ca_file {
        check_readable("tls.acme.ca_file", f)?;
    }
    Ok(AcmeConfig {
        directory,
        contact,
        names: checked,
        ca_file: raw.ca_file,
        http_listen,
        renew_before: Duration::from_secs(
            86_400 * bounded("tls.acme.renew_before_days", raw.renew_before_days, 30, 1, 365)?,
        ),
    })
}

/// A DNS host name: dot-separated labels of letters, digits and inner
/// hyphens, each 1..=63 long, 253 in all.
fn dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn validate_mail(raw: RawMail) -> Result<MailConfig, ConfigError> {
    let security = match raw.security.as_deref().unwrap_or("starttls") {
        "starttls" => MailSecurity::StartTls,
        "tls" => MailSecurity::Tls,
        "none" => MailSecurity::None,
        other => {
            return Err(invalid(
                "mail.security",
                format!("{other:?} is not one of \"starttls\", \"tls\", \"none\""),
            ));
        }
    };
    let smtp_host = raw
        .smtp_host
        .ok_or_else(|| invalid("mail.smtp_host", "is required in [mail], e.g. \"smtp.example.com\""))?;
    let host_ok = !smtp_host.is_empty()
        && smtp_host.len() <= 253
        && smtp_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
    if !host_ok {
        return Err(invalid(
            "mail.smtp_host",
            format!("{smtp_host:?} is not a host name or IP address (no scheme, no port)"),
        ));
    }
    let smtp_port = bounded(
        "mail.smtp_port",
        raw.smtp_port,
        u64::from(security.default_port()),
        1,
        65_535,
    )? as u16;
    let from_text = raw.from.ok_or_else(|| {
        invalid(
            "mail.from",
            "is required in [mail], e.g. \"roster <roster@example.com>\"",
        )
    })?;
    let from: lettre::message::Mailbox = from_text.parse().map_err(|e| {
        invalid(
            "mail.from",
            format!("{from_text:?} is not a mailbox like \"roster <roster@example.com>\": {e}"),
        )
    })?;
    let (username, password) = match (raw.username, raw.password) {
        (None, None) => (None, None),
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => (Some(u), Some(Secret(p))),
        (Some(_), Some(_)) => return Err(invalid("mail.username", "username and password must not be empty")),
        (Some(_), None) => {
            return Err(invalid(
                "mail.password",
                "mail.username is set, so mail.password is required",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "mail.username",
                "mail.password is set, so mail.username is required",
            ));
        }
    };
    let config = MailConfig {
        smtp_host,
        smtp_port,
        security,
        username,
        password,
        from,
        timeout: secs("mail.timeout_secs", raw.timeout_secs, 30, 1, 600)?,
        max_attempts: bounded("mail.max_attempts", raw.max_attempts, 8, 1, 100)? as u32,
        retry_base: secs("mail.retry_base_secs", raw.retry_base_secs, 30, 1, 3600)?,
    };
    // A password sent in clear over the network is refused outright; plain
    // SMTP itself is only warned about (at start), as some sites relay
    // through a trusted host on the same segment.
    if security == MailSecurity::None && config.password.is_some() && !config.is_loopback() {
        return Err(invalid(
            "mail.security",
            "\"none\" would send mail.password unencrypted to a relay on another host; use \"starttls\" or \"tls\"",
        ));
    }
    Ok(config)
}

/// Accepts `https://host[:port][/path]` and returns the host (without
/// brackets for IPv6). roster only speaks HTTPS, so `http:` is refused.
fn parse_public_url(url: &str) -> Result<String, ConfigError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        invalid(
            "server.public_url",
            format!("{url:?} must start with https:// (roster serves only HTTPS)"),
        )
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') || authority.contains('?') || authority.contains('#') {
        return Err(invalid(
            "server.public_url",
            format!("{url:?} must not carry credentials, a query or a fragment"),
        ));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("server.public_url", format!("{url:?} has an unclosed IPv6 bracket")))?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return Err(invalid("server.public_url", format!("{url:?} has a bad port")));
        }
        host
    } else {
        match authority.split_once(':') {
            Some((host, port)) if valid_port(port) => host,
            Some(_) => return Err(invalid("server.public_url", format!("{url:?} has a bad port"))),
            None => authority,
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if !host_ok {
        return Err(invalid("server.public_url", format!("{url:?} has no valid host name")));
    }
    Ok(host.to_ascii_lowercase())
}

fn valid_port(p: &str) -> bool {
    p.parse::<u16>().is_ok_and(|n| n > 0)
}

fn bounded(key: &'static str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(key, format!("{v} is outside the allowed range {min}..={max}")));
    }
    Ok(v)
}

/// `limits.max_connections_per_ip`: the default follows a smaller
/// `max_connections` down (a cap above it would mean nothing), while an
/// explicit value above it is refused as the mistake it is.
fn per_ip_cap(v: Option<u64>, max_connections: u64) -> Result<usize, ConfigError> {
    let key = "limits.max_connections_per_ip";
    let v = bounded(
        key,
        v,
        DEFAULT_MAX_CONNECTIONS_PER_IP.min(max_connections),
        0,
        1_000_000,
    )?;
    if v > max_connections {
        return Err(invalid(
            key,
            format!("{v} is above limits.max_connections ({max_connections}); use at most that, or 0 for no cap"),
        ));
    }
    Ok(v as usize)
}

fn ms(v: u64, unit_ms: i64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / unit_ms).saturating_mul(unit_ms)
}

fn secs(key: &'static str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
    bounded(key, v, default, min, max).map(Duration::from_secs)
}

fn check_readable(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// A private key that group or others can read is refused, as sshd does:
/// the operator must fix it rather than run with a leaked-looking key.
fn check_private(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| invalid(key, format!("cannot stat {}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(invalid(
            key,
            format!(
                "{} is accessible by group or others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn default_is_valid_and_matches_spec() {
        let c = Config::embedded_default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.public_url, "https://localhost:8443");
        assert_eq!(c.public_host, "localhost");
        assert_eq!(c.data_dir, PathBuf::from("./roster-data"));
        assert_eq!(c.tls, TlsSource::SelfSigned);
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml: server.listen_addr: unknown field"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let e = parse("[limits]\nmax_connections = \"many\"\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: limits.max_connections: invalid type"), "{e}");
        let e = parse("[sever]\nx = 1\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: sever: unknown field"), "{e}");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let c = parse("[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"::1\"]\n").unwrap();
        let want: Vec<ipnet::IpNet> = ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(c.trusted_proxies, want);
        let e = parse("[server]\ntrusted_proxies = [\"proxy.local\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.trusted_proxies: \"proxy.local\" is not an IP address"),
            "{e}"
        );
        assert!(Config::embedded_default().trusted_proxies.is_empty());
    }

    #[test]
    fn advertised_url_follows_listen_unless_chosen() {
        let mut c = Config::embedded_default();
        assert!(!c.public_url_explicit);
        c.follow_listen("127.0.0.1:9443".parse().unwrap());
        assert_eq!(
            (c.public_url.as_str(), c.public_host.as_str()),
            ("https://localhost:9443", "localhost")
        );
        c.follow_listen("[::]:443".parse().unwrap());
        assert_eq!(c.public_url, "https://localhost:443");
        c.follow_listen("192.0.2.7:8443".parse().unwrap());
        assert_eq!(
            (c.public_url.as_str(), c.public_host.as_str()),
            ("https://192.0.2.7:8443", "192.0.2.7")
        );
        c.follow_listen("[2001:db8::1]:8443".parse().unwrap());
        assert_eq!(
            (c.public_url.as_str(), c.public_host.as_str()),
            ("https://[2001:db8::1]:8443", "2001:db8::1")
        );

        c.set_public_url("https://roster.example.com/").unwrap();
        c.follow_listen("127.0.0.1:9443".parse().unwrap());
        assert_eq!(
            (c.public_url.as_str(), c.public_host.as_str()),
            ("https://roster.example.com", "roster.example.com")
        );
        let e = c.set_public_url("http://x").unwrap_err().to_string();
        assert!(e.starts_with("--public-url:"), "{e}");

        let c = parse("[server]\npublic_url = \"https://r.example.com:8443\"\n").unwrap();
        assert!(c.public_url_explicit);
    }

    #[test]
    fn public_url_forms() {
        assert_eq!(
            parse_public_url("https://Roster.Example.com").unwrap(),
            "roster.example.com"
        );
        assert_eq!(parse_public_url("https://[::1]:8443/base").unwrap(), "::1");
        assert!(parse_public_url("http://x").is_err());
        assert!(parse_public_url("https://x:0").is_err());
        assert!(parse_public_url("https://u@x").is_err());
        assert!(parse_public_url("https://").is_err());
    }

    #[test]
    fn mail_section() {
        assert!(Config::embedded_default().mail.is_none());
        let c = parse("[mail]\nsmtp_host = \"smtp.example.com\"\nfrom = \"roster <roster@example.com>\"\n").unwrap();
        let m = c.mail.unwrap();
        assert_eq!(m.security, MailSecurity::StartTls);
        assert_eq!(m.smtp_port, 587);
        assert_eq!(m.timeout, Duration::from_secs(30));
        assert_eq!(m.max_attempts, 8);
        assert_eq!(m.retry_base, Duration::from_secs(30));
        assert_eq!(m.from.email.to_string(), "roster@example.com");
        assert!(!m.is_loopback());
        let c = parse("[mail]\nsmtp_host = \"127.0.0.1\"\nsecurity = \"tls\"\nfrom = \"r@example.com\"\nusername = \"u\"\npassword = \"hunter22\"\n").unwrap();
        let m = c.mail.unwrap();
        assert_eq!(m.smtp_port, 465);
        assert!(m.is_loopback());
        assert!(!format!("{m:?}").contains("hunter22"));
        for (text, key) in [
            ("[mail]\nfrom = \"r@example.com\"\n", "mail.smtp_host"),
            ("[mail]\nsmtp_host = \"h\"\n", "mail.from"),
            ("[mail]\nsmtp_host = \"h\"\nfrom = \"not a mailbox\"\n", "mail.from"),
            (
                "[mail]\nsmtp_host = \"h\"\nfrom = \"r@example.com\"\nsecurity = \"ssl\"\n",
                "mail.security",
            ),
            (
                "[mail]\nsmtp_host = \"smtp://h\"\nfrom = \"r@example.com\"\n",
                "mail.smtp_host",
            ),
            (
                "[mail]\nsmtp_host = \"h\"\nfrom = \"r@example.com\"\nusername = \"u\"\n",
                "mail.password",
            ),
            (
                "[mail]\nsmtp_host = \"h\"\nfrom = \"r@example.com\"\nmax_attempts = 0\n",
                "mail.max_attempts",
            ),
            (
                "[mail]\nsmtp_host = \"smtp.example.com\"\nfrom = \"r@example.com\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"\n",
                "mail.security",
            ),
            (
                "[mail]\nsmtp_host = \"h\"\nfrom = \"r@example.com\"\nsmtp_hots = \"x\"\n",
                "mail.smtp_hots",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn acme_section_defaults_and_shapes() {
        let c = parse("[server]\npublic_url = \"https://Roster.Example.com:8443\"\n[tls.acme]\n").unwrap();
        let TlsSource::Acme(a) = c.tls else {
            panic!("{:?}", c.tls)
        };
        assert_eq!(a.directory, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(a.names, vec!["roster.example.com".to_owned()]);
        assert_eq!(a.contact, None);
        assert_eq!(a.http_listen, None);
        assert_eq!(a.ca_file, None);
        assert_eq!(a.renew_before, Duration::from_secs(30 * 86_400));

        // The inline-table form is the same thing.
        let c = parse(
            "[tls]\nacme = { directory = \"https://acme-staging-v02.api.letsencrypt.org/directory\", contact = \"mailto:ops@example.com\", names = [\"a.example.com\", \"B.example.com.\", \"a.example.com\"], http_listen = \"0.0.0.0:80\", renew_before_days = 20 }\n",
        )
        .unwrap();
        let TlsSource::Acme(a) = c.tls else {
            panic!("{:?}", c.tls)
        };
        assert_eq!(a.directory, "https://acme-staging-v02.api.letsencrypt.org/directory");
        assert_eq!(a.contact.as_deref(), Some("ops@example.com"));
        assert_eq!(a.names, vec!["a.example.com".to_owned(), "b.example.com".to_owned()]);
        assert_eq!(a.http_listen, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(a.renew_before, Duration::from_secs(20 * 86_400));
    }

    #[test]
    fn acme_errors_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let both = format!(
            "[tls]\ncert = \"{k}\"\nkey = \"{k}\"\n[tls.acme]\ncontact = \"ops@example.com\"\n",
            k = key.display()
        );
        let half = format!("[tls]\ncert = \"{k}\"\n[tls.acme]\n", k = key.display());
        for (text, key) in [
            (both.as_str(), "tls.acme: cannot be combined with tls.cert"),
            (half.as_str(), "tls.acme: cannot be combined"),
            (
                "[tls.acme]\ndirectory = \"http://ca.example/dir\"\n",
                "tls.acme.directory",
            ),
            ("[tls.acme]\ncontact = \"nobody\"\n", "tls.acme.contact"),
            ("[tls.acme]\nnames = []\n", "tls.acme.names"),
            (
                "[tls.acme]\nnames = [\"*.example.com\"]\n",
                "tls.acme.names: \"*.example.com\": wildcard",
            ),
            ("[tls.acme]\nnames = [\"bad name\"]\n", "tls.acme.names"),
            (
                "[tls.acme]\nnames = [\"10.0.0.1\"]\n",
                "tls.acme.names: \"10.0.0.1\" is an IP address",
            ),
            (
                "[server]\npublic_url = \"https://192.0.2.1\"\n[tls.acme]\n",
                "tls.acme.names",
            ),
            ("[tls.acme]\nhttp_listen = \"80\"\n", "tls.acme.http_listen"),
            (
                "[server]\nlisten = \"0.0.0.0:80\"\n[tls.acme]\nhttp_listen = \"0.0.0.0:80\"\n",
                "tls.acme.http_listen: must differ",
            ),
            ("[tls.acme]\nrenew_before_days = 0\n", "tls.acme.renew_before_days"),
            ("[tls.acme]\nca_file = \"/nonexistent/root.pem\"\n", "tls.acme.ca_file"),
            (
                "[tls.acme]\ndirectroy = \"https://x\"\n",
                "tls.acme.directroy: unknown field",
            ),
            ("[tls]\nacme = { emial = \"x\" }\n", "unknown field `emial`"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        let e = parse("[limits]\nmax_body_bytes = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("limits.max_body_bytes:"), "{e}");
    }

    #[test]
    fn idle_timeout_is_bounded() {
        assert_eq!(Config::embedded_default().limits.idle_timeout, Duration::from_secs(60));
        for ok in [1, 3600] {
            let c = parse(&format!("[limits]\nidle_timeout_secs = {ok}\n")).unwrap();
            assert_eq!(c.limits.idle_timeout, Duration::from_secs(ok));
        }
        for bad in [0, 3601] {
            let e = parse(&format!("[limits]\nidle_timeout_secs = {bad}\n")).unwrap_err();
            assert!(e.to_string().starts_with("limits.idle_timeout_secs:"), "{e}");
        }
    }

    #[test]
    fn per_ip_cap_is_bounded_by_max_connections() {
        assert_eq!(Config::embedded_default().limits.max_connections_per_ip, 128);
        // 0 turns the cap off; the default shrinks with max_connections.
        let c = parse("[limits]\nmax_connections_per_ip = 0\n").unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 0);
        let c = parse("[limits]\nmax_connections = 10\n").unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 10);
        let c = parse("[limits]\nmax_connections = 10\nmax_connections_per_ip = 10\n").unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 10);
        let e = parse("[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n").unwrap_err();
        assert!(e.to_string().starts_with("limits.max_connections_per_ip:"), "{e}");
        let e = parse("[limits]\nmax_connections_per_ip = 1025\n").unwrap_err();
        assert!(e.to_string().contains("above limits.max_connections (1024)"), "{e}");
    }
}
