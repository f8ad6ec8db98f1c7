//! ACME (RFC 8555): getting and renewing a publicly trusted certificate,
//! because Okta's and Entra's cloud provisioning refuse any other.
//!
//! instant-acme speaks the protocol; roster answers the challenges itself:
//! TLS-ALPN-01 through the TLS resolver on the HTTPS listener (see
//! `tls::Resolver`), HTTP-01 through a small plain-HTTP listener
//! (`tls.acme.http_listen`) that redirects everything else to HTTPS. The
//! account and the certificate live in `data_dir/acme/` (0700, files 0600).
//! A new certificate is swapped in exactly like a SIGHUP reload, so open
//! connections carry on; a failed order keeps the last good certificate,
//! logs one line and is retried with backoff. What happened is kept in the
//! shared `TlsStatus` (`App::tls_status`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::tls::{self, AcmeStatus, CertSummary, Resolver};
use crate::App;
use crate::clock::{Clock, rfc3339};
use crate::config::{AcmeConfig, TlsSource};

/// How often the certificate's remaining validity is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);
/// First retry after a failed order; doubles with each further failure...
pub const RETRY_FIRST: Duration = Duration::from_secs(60);
/// ...up to this, so a CA outage or a DNS mistake is not hammered on.
pub const RETRY_MAX: Duration = Duration::from_secs(6 * 3600);
/// One whole order (account, challenges, finalize, download) must finish
/// within this; a CA that stalls counts as a failure and is retried later.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on each HTTP exchange with the CA.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory under the data dir that holds the account and certificate.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}

/// The private key followed by the certificate chain, in one file so that a
/// crash can never pair a new key with an old certificate.
pub fn certificate_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("certificate.pem")
}

/// The ACME account: the directory it belongs to and its credentials
/// (account URL and private key).
pub fn account_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("account.json")
}

/// Challenge answers while an order is validated: TLS-ALPN-01 certificates
/// by host name, HTTP-01 key authorizations by token.
#[derive(Debug, Default)]
pub struct Challenges {
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    http: RwLock<HashMap<String, String>>,
}

impl Challenges {
    pub(crate) fn tls_alpn(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.tls_alpn.read().ok()?;
        map.get(&name.to_ascii_lowercase()).cloned()
    }

    pub(crate) fn http(&self, token: &str) -> Option<String> {
        self.http.read().ok()?.get(token).cloned()
    }

    fn set_tls_alpn(&self, name: &str, cert: CertifiedKey) {
        if let Ok(mut m) = self.tls_alpn.write() {
            m.insert(name.to_ascii_lowercase(), Arc::new(cert));
        }
    }

    fn set_http(&self, token: String, key_authorization: String) {
        if let Ok(mut m) = self.http.write() {
            m.insert(token, key_authorization);
        }
    }

    fn clear(&self) {
        if let Ok(mut m) = self.tls_alpn.write() {
            m.clear();
        }
        if let Ok(mut m) = self.http.write() {
            m.clear();
        }
    }
}

/// Removes the challenge answers when an order ends, however it ends
/// (success, error, timeout, shutdown).
struct ClearOnDrop<'a>(&'a Challenges);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// The stored certificate and key if they are there, belong together and
/// the certificate has not expired (by `clock`). Anything else is logged
/// and treated as "no certificate", so the worker orders a new one.
pub fn load_stored(data_dir: &Path, clock: &dyn Clock) -> Option<CertifiedKey> {
    let path = certificate_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the stored ACME certificate");
            return None;
        }
    };
    match parse_stored(&bytes) {
        Ok((pair, summary)) if summary.not_after_ms > clock.now_ms() => Some(pair),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the stored ACME certificate has expired");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the stored ACME certificate is unusable");
            None
        }
    }
}

fn stored_summary(data_dir: &Path) -> Option<CertSummary> {
    let bytes = std::fs::read(certificate_path(data_dir)).ok()?;
    parse_stored(&bytes).ok().map(|(_, s)| s)
}

fn parse_stored(pem: &[u8]) -> Result<(CertifiedKey, CertSummary), String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key: {e}"))?;
    let summary = chain
        .first()
        .and_then(|c| tls::summarize(c))
        .ok_or("no readable certificate")?;
    let pair = CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| format!("certificate and key do not belong together: {e}"))?;
    Ok((pair, summary))
}

/// Why a certificate is due for an order now, or `None` when it is not.
fn due(stored: Option<&CertSummary>, acme: &AcmeConfig, now_ms: i64) -> Option<&'static str> {
    let Some(c) = stored else {
        return Some("no certificate yet");
    };
    if c.not_after_ms - now_ms <= duration_ms(acme.renew_before) {
        return Some("renewal");
    }
    if !acme
        .names
        .iter()
        .all(|n| c.names.iter().any(|m| m.eq_ignore_ascii_case(n)))
    {
        return Some("the configured names changed");
    }
    None
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The wait before retry number `failures` (1 = the first failure).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

fn challenge_name(acme: &AcmeConfig) -> &'static str {
    if acme.http_listen.is_some() {
        "http-01"
    } else {
        "tls-alpn-01"
    }
}

/// Binds the HTTP-01 listener when one is configured, so a port that is
/// taken stops the start with a clear error instead of failing orders.
pub(crate) async fn bind_http(app: &App) -> Result<Option<TcpListener>, super::ServeError> {
    let TlsSource::Acme(AcmeConfig {
        http_listen: Some(addr),
        ..
    }) = &app.config.tls
    else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| super::ServeError::Bind { addr: *addr, source })?;
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "listening on http://{a} for ACME HTTP-01 challenges (everything else is redirected to HTTPS)");
    }
    Ok(Some(listener))
}

/// The ACME worker: checks at start and then every [`CHECK_EVERY`] (or when
/// woken by a SIGHUP reload) whether the certificate is due, orders one if
/// so, and swaps it in.
pub(crate) async fn run(app: App, resolver: Arc<Resolver>, mut stop: watch::Receiver<bool>) {
    let TlsSource::Acme(acme) = &app.config.tls else {
        return;
    };
    let status = resolver.status().clone();
    status.update(|s| {
        s.acme = Some(AcmeStatus {
            directory: acme.directory.clone(),
            names: acme.names.clone(),
            challenge: challenge_name(acme).to_owned(),
            ..AcmeStatus::default()
        });
    });
    let set = |f: &dyn Fn(&mut AcmeStatus)| {
        status.update(|s| {
            if let Some(a) = s.acme.as_mut() {
                f(a);
            }
        });
    };
    let mut failures: u32 = 0;
    let mut last_success_ms: Option<i64> = None;
    loop {
        let now = app.clock.now_ms();
        let stored = stored_summary(&app.config.data_dir);
        let reason = due(stored.as_ref(), acme, now);
        // A certificate that is due the moment it arrives (the CA issues
        // shorter lifetimes than renew_before_days) must not start an order
        // loop: at most one successful order per check interval.
        let just_renewed = last_success_ms.is_some_and(|t| now - t < duration_ms(CHECK_EVERY) && now >= t);
        let wait = match reason {
            Some(reason) if !just_renewed => {
                set(&|a| a.ordering = true);
                tracing::info!(names = ?acme.names, directory = %acme.directory, reason, "ACME: ordering a certificate");
                let outcome = tokio::select! {
                    r = tokio::time::timeout(ORDER_TIMEOUT, obtain(&app, acme, resolver.challenges())) => {
                        r.unwrap_or_else(|_| Err(format!("no certificate within {} s", ORDER_TIMEOUT.as_secs())))
                    }
                    _ = stop.changed() => return,
                };
                let outcome = match outcome {
                    Ok(summary) => swap_in(&app, &resolver).await.map(|()| summary),
                    Err(e) => Err(e),
                };
                let now = app.clock.now_ms();
                match outcome {
                    Ok(summary) => {
                        failures = 0;
                        last_success_ms = Some(now);
                        set(&|a| {
                            a.ordering = false;
                            a.last_success_ms = Some(now);
                            a.last_error = None;
                            a.last_error_ms = None;
                            a.failures = 0;
                        });
                        tracing::info!(
                            names = ?summary.names,
                            issuer = %summary.issuer,
                            serial = %summary.serial,
                            not_after = %rfc3339(summary.not_after_ms),
                            "ACME: new certificate issued and served to new connections"
                        );
                        if due(Some(&summary), acme, now).is_some() {
                            tracing::warn!(
                                not_after = %rfc3339(summary.not_after_ms),
                                "ACME: the new certificate is already within tls.acme.renew_before_days of expiry; renewing at most every {} h",
                                CHECK_EVERY.as_secs() / 3600
                            );
                        }
                        CHECK_EVERY
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures);
                        let next = now.saturating_add(duration_ms(wait));
                        let e = one_line(&e);
                        let serving = serving_text(&resolver);
                        // The one line an operator needs: what failed, what
                        // is served meanwhile, and when the next try is.
                        tracing::error!(
                            directory = %acme.directory,
                            names = ?acme.names,
                            failures,
                            next_attempt = %rfc3339(next),
                            "ACME: could not get a certificate: {e}; still serving {serving}; next attempt in {}",
                            human(wait)
                        );
                        set(&|a| {
                            a.ordering = false;
                            a.last_error = Some(e.clone());
                            a.last_error_ms = Some(now);
                            a.failures = failures;
                        });
                        wait
                    }
                }
            }
            _ => {
                failures = 0;
                match stored.as_ref() {
                    // Wake up when the certificate becomes due, if sooner.
                    Some(c) if reason.is_none() => {
                        let due_at = c.not_after_ms - duration_ms(acme.renew_before);
                        let until = u64::try_from(due_at - now).unwrap_or(0);
                        CHECK_EVERY.min(Duration::from_millis(until).max(Duration::from_secs(1)))
                    }
                    _ => CHECK_EVERY,
                }
            }
        };
        let next = app.clock.now_ms().saturating_add(duration_ms(wait));
        set(&|a| a.next_attempt_ms = Some(next));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = resolver.acme_wake().notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Loads the stored certificate into the resolver: the same path as a
/// SIGHUP reload, which only affects new handshakes.
async fn swap_in(app: &App, resolver: &Arc<Resolver>) -> Result<(), String> {
    let (app, resolver) = (app.clone(), resolver.clone());
    tokio::task::spawn_blocking(move || tls::reload(&resolver, &app.config, app.clock.as_ref()))
        .await
        .map_err(|e| e.to_string())?
        .map(|_| ())
        .map_err(|e| format!("the new certificate could not be loaded: {e}"))
}

fn serving_text(resolver: &Resolver) -> String {
    match resolver.status().get().certificate {
        Some(c) if c.self_signed => "the self-signed certificate".to_owned(),
        Some(c) => format!(
            "the certificate from {} valid until {}",
            c.issuer,
            rfc3339(c.not_after_ms)
        ),
        None => "the current certificate".to_owned(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// One order from account to stored certificate. Errors are one sentence
/// naming the step that failed.
async fn obtain(app: &App, acme: &AcmeConfig, challenges: &Challenges) -> Result<CertSummary, String> {
    let _clear = ClearOnDrop(challenges);
    let http = AcmeHttp::new(acme)?;
    let account = account(app, acme, http).await?;
    let ids: Vec<Identifier> = acme.names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("the CA refused the order: {e}"))?;
    let kind = if acme.http_listen.is_some() {
        ChallengeType::Http01
    } else {
        ChallengeType::TlsAlpn01
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("cannot read an authorization: {e}"))?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("the authorization for {name} is {other:?}")),
        }
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the CA offers no {} challenge for {name}", challenge_name(acme)))?;
        let key_authorization = challenge.key_authorization();
        if kind == ChallengeType::Http01 {
            challenges.set_http(challenge.token.clone(), key_authorization.as_str().to_owned());
        } else {
            challenges.set_tls_alpn(&name, tls_alpn_certificate(&name, key_authorization.digest().as_ref())?);
        }
        challenge.set_ready().await.map_err(|e| {
            format!(
                "the CA did not take the {} challenge for {name}: {e}",
                challenge_name(acme)
            )
        })?;
    }
    let polling = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(120));
    match order.poll_ready(&polling).await {
        Ok(OrderStatus::Ready) => {}
        Ok(_) => return Err(invalid_reason(&mut order, acme).await),
        Err(e) => return Err(format!("validation failed: {e}")),
    }
    // The certificate's key is made here and never leaves the data dir.
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(acme.names.clone()).map_err(|e| format!("cannot make the request: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("cannot make the request: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("the CA refused to finalize the order: {e}"))?;
    let chain = order
        .poll_certificate(&polling)
        .await
        .map_err(|e| format!("cannot download the certificate: {e}"))?;
    let stored = format!("{}{}", key.serialize_pem(), chain);
    // Refuse to store what could not be served.
    let (_, summary) = parse_stored(stored.as_bytes()).map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
    let data_dir = app.config.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        ensure_dir(&data_dir)?;
        tls::write_private(&certificate_path(&data_dir), stored.as_bytes()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(summary)
}

/// Why an order ended `invalid`: the first challenge error the CA recorded.
async fn invalid_reason(order: &mut instant_acme::Order, acme: &AcmeConfig) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        if let Ok(state) = authz.refresh().await
            && let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref())
        {
            return format!("the CA could not validate {name} ({}): {problem}", challenge_name(acme));
        }
    }
    "the CA marked the order invalid".to_owned()
}

/// The self-signed certificate a TLS-ALPN-01 validator expects: the name
/// as its only SAN and the key authorization's digest in a critical
/// acmeIdentifier extension (RFC 8737 §3).
fn tls_alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let fail = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate for {name}: {e}");
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(fail)?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| format!("TLS-ALPN-01 key: {e}"))?;
    // Not CertifiedKey::from_der: its key check parses the certificate with
    // webpki, which refuses the critical acmeIdentifier extension that the
    // validator requires.
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("TLS-ALPN-01 key: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

fn ensure_dir(data_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = dir(data_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    // Also when the directory was made by hand with a looser mode.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", d.display()))
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    /// Accounts belong to one CA: a changed directory means a new account.
    directory: String,
    credentials: AccountCredentials,
}

/// The stored account for the configured directory, or a new one (which
/// agrees to the CA's terms of service: configuring ACME is that consent).
async fn account(app: &App, acme: &AcmeConfig, http: AcmeHttp) -> Result<Account, String> {
    let path = account_path(&app.config.data_dir);
    let stored = match std::fs::read(&path) {
        Ok(b) => match serde_json::from_slice::<StoredAccount>(&b) {
            Ok(a) if a.directory == acme.directory => Some(a.credentials),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable ACME account file; creating a new account");
                None
            }
        },
        Err(_) => None,
    };
    if let Some(credentials) = stored {
        return Account::builder_with_http(Box::new(http))
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("cannot reach the ACME directory {}: {e}", acme.directory));
    }
    let contact = acme.contact.as_ref().map(|c| format!("mailto:{c}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(http))
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("cannot create an account at {}: {e}", acme.directory))?;
    let bytes = serde_json::to_vec_pretty(&StoredAccount {
        directory: acme.directory.clone(),
        credentials,
    })
    .map_err(|e| e.to_string())?;
    let data_dir = app.config.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        ensure_dir(&data_dir)?;
        tls::write_private(&account_path(&data_dir), &bytes).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    tracing::info!(directory = %acme.directory, id = %account.id(), "ACME: account created");
    Ok(account)
}

/// instant-acme's HTTP client: one HTTP/1.1 connection per request over
/// rustls with ring, trusting the system's CA store plus `tls.acme.ca_file`.
/// (instant-acme's own client would pull rustls-platform-verifier and use
/// rustls' process-wide default provider; an ACME order makes a dozen
/// requests, so connection reuse does not matter.)
struct AcmeHttp {
    tls: Arc<rustls::ClientConfig>,
}

impl AcmeHttp {
    fn new(acme: &AcmeConfig) -> Result<AcmeHttp, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(file) = &acme.ca_file {
            for c in tls::load_certs(file).map_err(|e| format!("tls.acme.ca_file: {e}"))? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls.acme.ca_file {}: {e}", file.display()))?;
            }
        }
        if roots.is_empty() {
            return Err(
                "no trusted CA certificates: install the ca-certificates package or set tls.acme.ca_file".to_owned(),
            );
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(AcmeHttp { tls: Arc::new(cfg) })
    }
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let other = |m: String| instant_acme::Error::Other(m.into());
            let (mut parts, body) = req.into_parts();
            let uri = parts.uri.clone();
            if uri.scheme_str() != Some("https") {
                return Err(other(format!("{uri}: ACME is only spoken over https")));
            }
            let host = uri
                .host()
                .ok_or_else(|| other(format!("{uri} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
            let exchange = async {
                let tcp = TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| other(format!("cannot connect to {authority}: {e}")))?;
                let name = ServerName::try_from(host.clone()).map_err(|e| other(format!("{host:?}: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| other(format!("TLS with {authority} failed: {e}")))?;
                let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| other(format!("HTTP with {authority} failed: {e}")))?;
                tokio::spawn(conn);
                // HTTP/1.1 wants the origin form plus a Host header.
                parts.uri = uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .parse()
                    .map_err(|e| other(format!("{uri}: {e}")))?;
                parts.headers.insert(
                    hyper::header::HOST,
                    authority.parse().map_err(|e| other(format!("{authority}: {e}")))?,
                );
                let resp = sender
                    .send_request(hyper::Request::from_parts(parts, body))
                    .await
                    .map_err(|e| other(format!("request to {authority} failed: {e}")))?;
                // The body is read later by instant-acme, still bounded by
                // the whole order's timeout.
                Ok(BytesResponse::from(resp))
            };
            tokio::time::timeout(HTTP_TIMEOUT, exchange).await.map_err(|_| {
                other(format!(
                    "no answer from {authority} within {} s",
                    HTTP_TIMEOUT.as_secs()
                ))
            })?
        })
    }
}

/// Serves HTTP-01 challenges on the plain-HTTP listener and redirects every
/// other request to the same path on the HTTPS public URL.
pub(crate) async fn serve_http(
    listener: TcpListener,
    app: App,
    challenges: Arc<Challenges>,
    mut stop: watch::Receiver<bool>,
) {
    let origin: Arc<str> = public_origin(&app.config.public_url).into();
    let header_timeout = app.config.limits.header_read_timeout;
    // Port 80 faces the internet and serves only tiny answers: a small cap
    // keeps a flood from taking file descriptors the HTTPS side needs.
    let permits = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on the HTTP-01 listener");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let challenges = challenges.clone();
        let origin = origin.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let resp = http_answer(&challenges, &origin, req.uri());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            // A slow client gets the same bound as a header read on HTTPS.
            match tokio::time::timeout(header_timeout.saturating_mul(3), conn).await {
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP-01 connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "HTTP-01 connection timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

/// The path of HTTP-01 challenge answers (RFC 8555 §8.3).
pub const HTTP_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

fn http_answer(challenges: &Challenges, origin: &str, uri: &hyper::Uri) -> hyper::Response<Full<Bytes>> {
    let builder = hyper::Response::builder();
    let resp = if let Some(token) = uri.path().strip_prefix(HTTP_CHALLENGE_PREFIX) {
        match challenges.http(token) {
            Some(ka) => builder
                .status(200)
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(ka))),
            None => builder
                .status(404)
                .body(Full::new(Bytes::from_static(b"no such challenge\n"))),
        }
    } else {
        let target = format!("{origin}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
        // 308 keeps the method and body, so a misdirected POST is not
        // silently turned into a GET.
        builder
            .status(308)
            .header("location", target)
            .body(Full::new(Bytes::from_static(b"roster is served over https\n")))
    };
    resp.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// `https://host[:port]` of the public URL (without its path).
fn public_origin(public_url: &str) -> String {
    let rest = public_url.strip_prefix("https://").unwrap_or(public_url);
    let authority = rest.split('/').next().unwrap_or_default();
    format!("https://{authority}")
}

/// Where the worker and the HTTP-01 listener are started: returns their
/// tasks (none without `[tls.acme]`).
pub(crate) fn spawn(
    app: &App,
    resolver: &Arc<Resolver>,
    http: Option<TcpListener>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !matches!(app.config.tls, TlsSource::Acme(_)) {
        return Vec::new();
    }
    let mut tasks = vec![tokio::spawn(run(app.clone(), resolver.clone(), stop.clone()))];
    if let Some(listener) = http {
        tasks.push(tokio::spawn(serve_http(
            listener,
            app.clone(),
            resolver.challenges().clone(),
            stop.clone(),
        )));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> AcmeConfig {
        AcmeConfig {
            directory: "https://ca.example/dir".into(),
            contact: None,
            names: vec!["roster.example.com".into()],
            ca_file: None,
            http_listen: None,
            renew_before: Duration::from_secs(30 * 86_400),
        }
    }

    fn cert(names: &[&str], not_after_ms: i64) -> CertSummary {
        CertSummary {
            subject: String::new(),
            issuer: "CN=CA".into(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            serial: "01".into(),
            not_before_ms: 0,
            not_after_ms,
            self_signed: false,
        }
    }

    #[test]
    fn due_when_missing_close_to_expiry_or_names_changed() {
        const DAY: i64 = 86_400_000;
        let a = acme();
        assert_eq!(due(None, &a, 0), Some("no certificate yet"));
        assert_eq!(due(Some(&cert(&["roster.example.com"], 31 * DAY)), &a, 0), None);
        assert_eq!(
            due(Some(&cert(&["roster.example.com"], 30 * DAY)), &a, 0),
            Some("renewal")
        );
        assert_eq!(
            due(Some(&cert(&["old.example.com"], 90 * DAY)), &a, 0),
            Some("the configured names changed")
        );
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(240));
        assert_eq!(backoff(9), Duration::from_secs(256 * 60));
        assert_eq!(backoff(10), Duration::from_secs(6 * 3600));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn http_listener_answers_tokens_and_redirects_the_rest() {
        let c = Challenges::default();
        c.set_http("tok".into(), "tok.thumb".into());
        let origin = public_origin("https://roster.example.com:8443/base");
        assert_eq!(origin, "https://roster.example.com:8443");
        let r = http_answer(&c, &origin, &"/.well-known/acme-challenge/tok".parse().unwrap());
        assert_eq!(r.status(), 200);
        let r = http_answer(&c, &origin, &"/.well-known/acme-challenge/other".parse().unwrap());
        assert_eq!(r.status(), 404);
        let r = http_answer(&c, &origin, &"/scim/v2/Users?x=1".parse().unwrap());
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers()["location"],
            "https://roster.example.com:8443/scim/v2/Users?x=1"
        );
        c.clear();
        let r = http_answer(&c, &origin, &"/.well-known/acme-challenge/tok".parse().unwrap());
        assert_eq!(r.status(), 404);
    }

    #[test]
    fn tls_alpn_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let ck = tls_alpn_certificate("roster.example.com", &digest).unwrap();
        let der = ck.cert[0].as_ref();
        let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes wrapping the digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
        assert_eq!(
            tls::summarize(der).unwrap().names,
            vec!["roster.example.com".to_owned()]
        );
    }
}
