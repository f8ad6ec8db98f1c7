//! TLS: the rustls server configuration (ring provider, TLS 1.2+, rustls'
//! AEAD + forward-secret suites), loading the operator's PEM files, the
//! self-signed certificate made with rcgen on first start and kept in the
//! data dir, the certificate stored by the ACME worker (`super::acme`), and
//! the [`TlsStatus`] of whatever is served, for admins to see.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::acme;
use crate::clock::Clock;
use crate::config::{Config, TlsSource};

/// The ALPN protocol of a TLS-ALPN-01 validation handshake (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Validity of a self-signed certificate (the CA/Browser Forum maximum).
pub const SELF_SIGNED_DAYS: i64 = 397;
/// A self-signed certificate is replaced when it has less left than this.
pub const RENEW_BEFORE_DAYS: i64 = 30;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("certificate and key do not work together: {0}")]
    Mismatch(String),
}

/// Paths of the self-signed material inside the data dir.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"), dir.join("self-signed.json"))
}

/// The certificate file clients should trust (used by `healthcheck`). With
/// ACME that is the stored certificate once there is one, the self-signed
/// fallback before.
pub fn cert_path(config: &Config) -> PathBuf {
    match &config.tls {
        TlsSource::Files { cert, .. } => cert.clone(),
        TlsSource::SelfSigned => self_signed_paths(&config.data_dir).0,
        TlsSource::Acme(_) => {
            let stored = acme::certificate_path(&config.data_dir);
            if stored.exists() {
                stored
            } else {
                self_signed_paths(&config.data_dir).0
            }
        }
    }
}

/// What we remember about the self-signed certificate we made.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct SelfSignedInfo {
    not_after_ms: i64,
    names: Vec<String>,
}

/// The certificate in use, swappable at runtime (SIGHUP, self-signed
/// renewal, ACME) without touching open connections: only new handshakes
/// ask.
#[derive(Debug)]
pub struct Resolver {
    current: std::sync::RwLock<Arc<CertifiedKey>>,
    /// Answers to TLS-ALPN-01 validations while an ACME order runs.
    challenges: Arc<acme::Challenges>,
    /// Wakes the ACME worker (SIGHUP: retry now instead of after backoff).
    acme_wake: tokio::sync::Notify,
    status: Arc<TlsStatusCell>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A validator offers exactly acme-tls/1 (RFC 8737 §3) and must get
        // the challenge certificate or nothing: never the real one, and no
        // ordinary client is ever handed a challenge certificate.
        if hello
            .alpn()
            .is_some_and(|mut p| p.next() == Some(ACME_TLS_ALPN) && p.next().is_none())
        {
            return hello.server_name().and_then(|name| self.challenges.tls_alpn(name));
        }
        self.current.read().ok().map(|c| c.clone())
    }
}

impl Resolver {
    /// The end-entity certificate currently served.
    pub fn current_cert(&self) -> Option<CertificateDer<'static>> {
        self.current.read().ok().and_then(|c| c.cert.first().cloned())
    }

    pub(crate) fn challenges(&self) -> &Arc<acme::Challenges> {
        &self.challenges
    }

    pub(crate) fn status(&self) -> &Arc<TlsStatusCell> {
        &self.status
    }

    pub(crate) fn acme_wake(&self) -> &tokio::sync::Notify {
        &self.acme_wake
    }
}

/// What admins are shown about TLS: the certificate new connections get,
/// and, with ACME, how obtaining it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsStatus {
    pub certificate: Option<CertSummary>,
    /// `Some` when `[tls.acme]` is configured.
    pub acme: Option<AcmeStatus>,
}

/// The served end-entity certificate, as an admin page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Subject alternative names (DNS names and IP addresses).
    pub names: Vec<String>,
    /// Hex, as CAs and browsers show it.
    pub serial: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// Issued by itself: Okta's and Entra's cloud services will refuse it.
    pub self_signed: bool,
}

/// The ACME worker's record (times are Unix milliseconds of `App::clock`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AcmeStatus {
    pub directory: String,
    pub names: Vec<String>,
    /// "tls-alpn-01" or "http-01".
    pub challenge: String,
    /// An order is being worked on right now.
    pub ordering: bool,
    pub last_success_ms: Option<i64>,
    /// Why the last attempt failed; cleared by the next success.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// Failed attempts since the last success (drives the backoff).
    pub failures: u32,
    /// When the worker looks again (renewal check or retry).
    pub next_attempt_ms: Option<i64>,
}

/// The shared [`TlsStatus`]: written by the resolver on every certificate
/// swap and by the ACME worker, read through `App::tls_status`.
#[derive(Debug, Default)]
pub struct TlsStatusCell(Mutex<TlsStatus>);

impl TlsStatusCell {
    /// A copy of the current status.
    pub fn get(&self) -> TlsStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut TlsStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Reads what an admin needs to know from a DER certificate; `None` when it
/// does not parse (the TLS stack will have refused it already).
pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => names.push(std::net::IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    Some(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
    })
}

/// Completes a TLS-ALPN-01 validation handshake: the validator only looks
/// at the certificate, so no HTTP is served on it (RFC 8737 §3) and the
/// connection is closed. Any other connection is handed back.
pub async fn unless_acme_validation<S>(
    mut tls: tokio_rustls::server::TlsStream<S>,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if tls.get_ref().1.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Some(tls);
    }
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tls.shutdown()).await;
    None
}

/// Loads (creating or renewing the self-signed one if configured) the
/// certificate and key, checking that they belong together.
fn load_pair(config: &Config, clock: &dyn Clock) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = match &config.tls {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => {
            ensure_self_signed(config, clock)?;
            let (c, k, _) = self_signed_paths(&config.data_dir);
            (c, k)
        }
        TlsSource::Acme(_) => {
            // The stored ACME certificate while it is valid (a restart
            // reuses it without a new order), else the self-signed one
            // until the worker gets the first.
            if let Some(stored) = acme::load_stored(&config.data_dir, clock) {
                return Ok(stored);
            }
            ensure_self_signed(config, clock)?;
            let (c, k, _) = self_signed_paths(&config.data_dir);
            (c, k)
        }
    };
    let chain = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| TlsError::Mismatch(format!("{}: {e}", key_path.display())))
}

/// Builds the server configuration around a reloadable resolver, which
/// keeps `status` up to date.
pub fn server_config(
    config: &Config,
    clock: &dyn Clock,
    status: Arc<TlsStatusCell>,
) -> Result<(Arc<ServerConfig>, Arc<Resolver>), TlsError> {
    let pair = Arc::new(load_pair(config, clock)?);
    let summary = pair.cert.first().and_then(|c| summarize(c));
    status.update(|s| s.certificate = summary);
    let resolver = Arc::new(Resolver {
        current: std::sync::RwLock::new(pair),
        challenges: Arc::default(),
        acme_wake: tokio::sync::Notify::new(),
        status,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if matches!(config.tls, TlsSource::Acme(_)) {
        // Last, so it is chosen only when a client offers nothing else.
        cfg.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok((Arc::new(cfg), resolver))
}

/// Re-reads the certificate and key (renewing a self-signed one that is
/// due). On any error the served certificate stays as it was.
pub fn reload(resolver: &Resolver, config: &Config, clock: &dyn Clock) -> Result<bool, TlsError> {
    let pair = Arc::new(load_pair(config, clock)?);
    let mut cur = resolver
        .current
        .write()
        .map_err(|_| TlsError::Generate("certificate lock poisoned".into()))?;
    let changed = cur.cert != pair.cert;
    if changed {
        let summary = pair.cert.first().and_then(|c| summarize(c));
        resolver.status.update(|s| s.certificate = summary);
    }
    *cur = pair;
    Ok(changed)
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "certificate",
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "private key",
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: format!("no usable PRIVATE KEY block: {e}"),
    })
}

/// Names the self-signed certificate covers: the public URL's host plus the
/// local names an operator on the box would use.
fn wanted_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.public_host.clone()];
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_owned());
        }
    }
    names
}

/// Makes the self-signed certificate unless a valid one for the same names
/// with more than [`RENEW_BEFORE_DAYS`] left is already there.
fn ensure_self_signed(config: &Config, clock: &dyn Clock) -> Result<(), TlsError> {
    let (cert_path, key_path, info_path) = self_signed_paths(&config.data_dir);
    let names = wanted_names(config);
    let now = clock.now_ms();
    let current = std::fs::read(&info_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SelfSignedInfo>(&b).ok());
    let fresh = current
        .as_ref()
        .is_some_and(|i| i.names == names && i.not_after_ms - now > RENEW_BEFORE_DAYS * DAY_MS);
    if fresh && cert_path.exists() && key_path.exists() {
        return Ok(());
    }

    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, config.public_host.clone());
    dn.push(rcgen::DnType::OrganizationName, "roster self-signed");
    params.distinguished_name = dn;
    let not_before =
        time::OffsetDateTime::from_unix_timestamp((now / 1000) - 60).map_err(|e| TlsError::Generate(e.to_string()))?;
    let not_after_ms = now + SELF_SIGNED_DAYS * DAY_MS;
    params.not_before = not_before;
    params.not_after = not_before + time::Duration::days(SELF_SIGNED_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;

    let dir = cert_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    // Key first: a crash between the writes leaves a key without its info
    // file, which makes the next start generate again rather than pair a
    // new certificate with an old key.
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    let info = SelfSignedInfo { not_after_ms, names };
    let info_bytes = serde_json::to_vec_pretty(&info).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&info_path, &info_bytes)?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// Writes a file with mode 0600 atomically (temp file, fsync, rename).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
