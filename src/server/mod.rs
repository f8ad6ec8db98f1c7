//! The HTTPS server: our own accept loop (connection cap, per-address cap,
//! TLS handshake timeout), hyper-util connections serving the axum router
//! and closed when idle (see `conn`), and graceful shutdown that stops
//! accepting, lets in-flight requests finish within a bound, then closes the
//! database.

pub mod acme;
mod conn;
pub mod forwarded;
pub mod notify;
mod per_ip;
pub mod router;
pub mod scheduled;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::App;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A started server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    tls: TlsReloader,
}

/// Re-reads the TLS certificate and key (SIGHUP, renewal); with ACME it
/// also asks the worker to check now (a SIGHUP retries a failed order
/// without waiting out the backoff).
#[derive(Clone)]
pub struct TlsReloader {
    app: App,
    resolver: Arc<tls::Resolver>,
}

impl TlsReloader {
    /// Loads the configured certificate again; on error the old one stays
    /// and the error is returned (and logged).
    pub async fn reload(&self) -> Result<bool, tls::TlsError> {
        let (app, resolver) = (self.app.clone(), self.resolver.clone());
        let r = tokio::task::spawn_blocking(move || tls::reload(&resolver, &app.config, app.clock.as_ref()))
            .await
            .map_err(|e| tls::TlsError::Generate(e.to_string()))?;
        match &r {
            Ok(true) => tracing::info!("TLS certificate reloaded: a new certificate is served to new connections"),
            Ok(false) => tracing::info!("TLS certificate reloaded: unchanged"),
            Err(e) => tracing::error!(error = %e, "TLS reload failed; still serving the previous certificate"),
        }
        self.resolver.acme_wake().notify_one();
        r
    }

    /// The end-entity certificate now served.
    pub fn current_cert(&self) -> Option<rustls_pki_types::CertificateDer<'static>> {
        self.resolver.current_cert()
    }

    /// The served certificate and the ACME worker's record (the same as
    /// `App::tls_status`).
    pub fn status(&self) -> tls::TlsStatus {
        self.resolver.status().get()
    }
}

impl Running {
    /// Stops accepting, waits for in-flight requests (bounded by
    /// `limits.shutdown_grace_secs`), then closes the database.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Asks for shutdown without waiting (e.g. from a signal handler).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    pub fn tls(&self) -> TlsReloader {
        self.tls.clone()
    }

    /// Resolves when the server has fully stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds the listener and starts serving in the background.
pub async fn start(app: App) -> Result<Running, ServeError> {
    let listener = bind(app.config.listen).await?;
    start_on(app, listener).await
}

/// Binds the HTTPS listener. `roster serve` binds before it opens or
/// creates the database, so a busy port changes nothing on disk.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Starts serving on a listener from [`bind`].
pub async fn start_on(app: App, listener: TcpListener) -> Result<Running, ServeError> {
    let (tls_config, resolver) = {
        let config = app.config.clone();
        let clock = app.clock.clone();
        let status = app.tls_status.clone();
        tokio::task::spawn_blocking(move || tls::server_config(&config, clock.as_ref(), status))
            .await
            .map_err(|e| tls::TlsError::Generate(e.to_string()))??
    };
    let reloader = TlsReloader {
        app: app.clone(),
        resolver,
    };
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: app.config.listen,
        source,
    })?;
    let acme_http = acme::bind_http(&app).await?;
    let (stop, stop_rx) = watch::channel(false);
    let control = tokio::spawn(crate::control::serve(app.clone(), stop_rx.clone()));
    let snapshots = tokio::spawn(scheduled::run(app.clone(), stop_rx.clone()));
    let housekeeping = tokio::spawn(scheduled::housekeeping(app.clone(), stop_rx.clone()));
    let mail = tokio::spawn(crate::mail::run(app.clone(), stop_rx.clone()));
    // With ACME the self-signed certificate is the fallback until the first
    // order succeeds, so it is kept fresh there too.
    let renew = (!matches!(app.config.tls, crate::config::TlsSource::Files { .. }))
        .then(|| tokio::spawn(renew_self_signed(reloader.clone(), stop_rx.clone())));
    let acme_tasks = acme::spawn(&app, &reloader.resolver, acme_http, &stop_rx);
    let watchdog =
        notify::watchdog_interval().map(|every| tokio::spawn(notify::watchdog(app.clone(), every, stop_rx.clone())));
    let task = tokio::spawn(async move {
        serve(app, listener, TlsAcceptor::from(tls_config), stop_rx).await;
        // Every task holding the App has ended when shutdown returns, so
        // the database file is released (a restart in the same process, or
        // `roster restore` right after, can open it).
        let _ = control.await;
        let _ = snapshots.await;
        let _ = housekeeping.await;
        let _ = mail.await;
        if let Some(t) = renew {
            let _ = t.await;
        }
        for t in acme_tasks {
            let _ = t.await;
        }
        if let Some(t) = watchdog {
            let _ = t.await;
        }
    });
    tracing::info!(addr = %local_addr, "listening on https://{local_addr}");
    Ok(Running {
        local_addr,
        stop,
        task,
        tls: reloader,
    })
}

/// Checks twice a day whether the self-signed certificate is due for
/// renewal (30 days before expiry) and swaps in the new one.
async fn renew_self_signed(reloader: TlsReloader, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(12 * 3600)) => {}
            _ = stop.changed() => return,
        }
        let _ = reloader.reload().await;
    }
}

async fn serve(app: App, listener: TcpListener, acceptor: TlsAcceptor, mut stop: watch::Receiver<bool>) {
    let limits = app.config.limits.clone();
    let proxies: Arc<[ipnet::IpNet]> = app.config.trusted_proxies.clone().into();
    let router = router::build(app.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(100)
        // Pings find peers that vanished while a stream is open (idle
        // connections are closed by `conn::drive`; pings never count as
        // activity there).
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let idle = conn::IdleLimits::new(&limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = per_ip::PerIpCap::new(limits.max_connections_per_ip);
    let mut refusals = per_ip::RefusalLog::default();
    // Every connection task; shutdown waits for them to end.
    let mut connections = tokio::task::JoinSet::new();

    loop {
        // Waiting for a permit before accepting leaves excess connections
        // in the kernel's backlog instead of holding them open half-served.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        // Decided from the socket's address (a forwarded header is not read
        // yet, and is the client's word), before the TLS handshake: a
        // connection over its address's cap costs no handshake and gives
        // its permit back at once.
        let slot = match &per_ip {
            None => None,
            Some(cap) => match cap.try_acquire(peer.ip()) {
                Ok(slot) => Some(slot),
                Err(addr) => {
                    tracing::debug!(%peer, "connection refused: address over limits.max_connections_per_ip");
                    if let Some(refused) = refusals.refused(tokio::time::Instant::now()) {
                        tracing::warn!(
                            %addr,
                            refused,
                            max_connections_per_ip = limits.max_connections_per_ip,
                            "refused connections from addresses at limits.max_connections_per_ip (count since the last such warning; behind a reverse proxy, raise the cap)"
                        );
                    }
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let mut conn_stop = stop.clone();
        let router = router.clone();
        let proxies = proxies.clone();
        let handshake_timeout = limits.tls_handshake_timeout;
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let handshake = tokio::select! {
                r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => r,
                // No request can be in flight yet: nothing to wait for.
                _ = conn_stop.wait_for(|s| *s) => return,
            };
            let tls = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let Some(tls) = tls::unless_acme_validation(tls).await else {
                return;
            };
            // The idle clock starts after the handshake, which has its own bound.
            let activity = Arc::new(conn::Activity::new());
            let service = conn::ConnService {
                router,
                proxies,
                peer,
                activity: activity.clone(),
            };
            let c = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            let mut c = std::pin::pin!(c);
            match conn::drive(c.as_mut(), &activity, &idle, &mut conn_stop, peer).await {
                conn::Ended::Closed => {}
                conn::Ended::Failed(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                conn::Ended::Dropped => tracing::debug!(%peer, "idle connection dropped: it did not close when asked"),
            }
        });
    }
    drop(listener);
    notify::stopping();
    tracing::info!("shutting down: no longer accepting connections");
    // Each connection task saw the stop and closes gracefully: HTTP/1 after
    // the response in progress, HTTP/2 with GOAWAY after its open streams.
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    let drained = async { while connections.join_next().await.is_some() {} };
    match tokio::time::timeout(limits.shutdown_grace, drained).await {
        Ok(()) => tracing::info!(connections = open, "in-flight requests finished"),
        Err(_) => {
            tracing::warn!(
                grace_secs = limits.shutdown_grace.as_secs(),
                "shutdown grace period over; dropping remaining connections"
            );
        }
    }
    // Connections still running after the grace period are cut here.
    connections.shutdown().await;
    drop(router);
    app.store.close().await;
    tracing::info!("database closed");
}
