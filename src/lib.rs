//! roster: an on-premises SCIM 2.0 + OAuth 2.0 appliance for one workspace.
//!
//! `App` is the shared state every surface receives: the validated config,
//! the store, the injected clock and RNG, and the mail worker's wake-up.

pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod control;
pub mod fuzzing;
pub mod logsink;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod password;
pub mod ratelimit;
pub mod scim;
pub mod secret;
pub mod server;
pub mod store;
pub mod web;
pub mod workspace;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use clock::{SharedClock, SharedRng};
use config::Config;
use store::{Store, StoreError};

/// Route paths, shared by the router, redirects, documents and tests.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    /// Target of one-time login links (served by the sign-in pages).
    pub const LOGIN_LINK: &str = "/login/link";
    /// Target of invitation mails.
    pub const INVITE_ACCEPT: &str = "/invite/accept";
    /// Target of welcome / set-password mails.
    pub const SET_PASSWORD: &str = "/password/set";
    /// Base of the SCIM 2.0 service provider.
    pub const SCIM: &str = "/scim/v2";
    pub const LOGIN: &str = "/login";
    pub const LOGOUT: &str = "/logout";
    pub const STYLE: &str = "/assets/style.css";
    pub const AUTHORIZE: &str = "/oauth/authorize";
    pub const TOKEN: &str = "/oauth/token";
    pub const REVOKE: &str = "/oauth/revoke";
    pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
    pub const METRICS: &str = "/metrics";
    /// The admin console.
    pub const ADMIN: &str = "/admin";
    pub const ADMIN_MEMBERS: &str = "/admin/members";
    pub const ADMIN_INVITE: &str = "/admin/members/new";
    pub const ADMIN_TEAMS: &str = "/admin/teams";
    pub const ADMIN_CONNECTIONS: &str = "/admin/connections";
    pub const ADMIN_CLIENTS: &str = "/admin/clients";
    pub const ADMIN_DOMAINS: &str = "/admin/domains";
    pub const ADMIN_AUDIT: &str = "/admin/audit";
    pub const ADMIN_MAIL: &str = "/admin/mail";
    pub const ADMIN_SYNC_ERRORS: &str = "/admin/sync-errors";
}

/// Everything a request handler needs; cheap to clone. One `Arc` around the
/// parts, so that the several clones each request makes (router state,
/// every middleware and handler taking `State<App>`) touch one shared
/// counter instead of eight: on two cores those counters' cache lines
/// bounced between the workers on every request.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    pub rng: SharedRng,
    /// Bounds concurrent argon2 hashes (each ~30 ms of CPU at 19 MiB).
    pub hash_permits: Arc<tokio::sync::Semaphore>,
    /// Login and token-endpoint throttles.
    pub throttle: Arc<ratelimit::Throttle>,
    /// Recently checked SCIM bearer tokens (see `workspace::connections`).
    pub auth_cache: Arc<workspace::connections::AuthCache>,
    /// Wakes the mail delivery worker (a retried mail); it also polls.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// The served certificate (issuer, names, expiry, self-signed) and the
    /// ACME worker's record (last success, last error, next attempt),
    /// kept current by the server for admin pages: `app.tls_status.get()`.
    pub tls_status: Arc<server::tls::TlsStatusCell>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(#[from] workspace::BootstrapError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
}

/// Creates the data directory (0700) if needed.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    // Probe writability now, so a read-only or foreign-owned directory is
    // reported as such rather than as a database error later.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

impl App {
    /// Opens the data dir and database with the system clock and RNG.
    pub async fn open(config: Config) -> Result<App, StartError> {
        App::open_with(
            config,
            Arc::new(clock::SystemClock),
            Arc::new(clock::SystemRng::default()),
        )
        .await
    }

    pub async fn open_with(config: Config, clock: SharedClock, rng: SharedRng) -> Result<App, StartError> {
        metrics::install();
        ensure_data_dir(&config.data_dir)?;
        let path = config.db_path();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        Ok(App(Arc::new(AppParts {
            config: Arc::new(config),
            store,
            clock,
            rng,
            hash_permits: Arc::new(tokio::sync::Semaphore::new(2)),
            throttle: Arc::new(ratelimit::Throttle::default()),
            auth_cache: Arc::default(),
            mail_wake: Arc::new(tokio::sync::Notify::new()),
            tls_status: Arc::default(),
        })))
    }

    /// On an empty database, creates the workspace and first admin from the
    /// config and returns the one-time login link to print.
    pub async fn bootstrap_if_empty(&self) -> Result<Option<workspace::Bootstrapped>, StartError> {
        if workspace::get(&self.store).await?.is_some() {
            return Ok(None);
        }
        match workspace::bootstrap(self, &self.config.workspace_name, &self.config.admin_email).await {
            Ok(b) => Ok(Some(b)),
            // Lost a race with `roster init`; fine.
            Err(workspace::BootstrapError::AlreadyInitialised(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
