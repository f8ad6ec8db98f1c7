//! Prometheus metrics: request counts and latency per route, SCIM
//! operations, OAuth tokens issued and revoked, database commit latency and
//! batch size, outbox depth, mail deliveries and active sessions. Recorded through the
//! `metrics` facade into one process-wide Prometheus recorder, and served
//! at `/metrics` behind a bearer token (`[metrics] token`); without a token
//! configured the endpoint does not exist.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::App;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: 100 µs .. 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Installs the recorder once per process (several servers in one test
/// process share it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Route middleware: counts and times every request by route template.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("roster_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("roster_http_request_duration_seconds", "route" => route).record(start.elapsed().as_secs_f64());
    resp
}

/// SCIM middleware: counts operations by resource, kind and outcome.
pub async fn scim_ops(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let resource = ["Users", "Groups"]
        .into_iter()
        .find(|r| path.contains(&format!("/{r}")))
        .unwrap_or("other");
    let by_id = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .is_some_and(|last| last != resource);
    let kind = match (req.method().as_str(), by_id) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "replace",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "other",
    };
    let resp = next.run(req).await;
    let outcome = if resp.status().is_success() { "ok" } else { "error" };
    metrics::counter!("roster_scim_operations_total", "resource" => resource, "kind" => kind, "outcome" => outcome)
        .increment(1);
    resp
}

pub fn token_issued(grant_type: &'static str) {
    metrics::counter!("roster_oauth_tokens_issued_total", "grant_type" => grant_type).increment(1);
}

pub fn grant_revoked(reason: &'static str) {
    metrics::counter!("roster_oauth_grants_revoked_total", "reason" => reason).increment(1);
}

/// One SMTP delivery attempt ended: `sent`, `deferred` (will be retried)
/// or `failed` (given up).
pub fn mail_attempt(outcome: &'static str) {
    match outcome {
        "sent" => metrics::counter!("roster_mail_sent_total").increment(1),
        "failed" => metrics::counter!("roster_mail_failed_total").increment(1),
        _ => metrics::counter!("roster_mail_deferred_total").increment(1),
    }
}

pub fn commit(seconds: f64, batch: usize) {
    metrics::histogram!("roster_db_commit_duration_seconds").record(seconds);
    metrics::histogram!("roster_db_commit_batch_size").record(batch as f64);
}

/// `GET /metrics`.
pub async fn endpoint(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    let Some(expected) = app.config.metrics_token.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !crate::web::session::equal(given.trim(), expected.expose()) {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"roster metrics\""),
        );
        return r;
    }
    // Gauges that are cheaper to read at scrape time than to keep current.
    let gauges = app
        .store
        .read(|txn| {
            let sessions = redb::ReadableTableMetadata::len(&txn.open_table(crate::store::tables::SESSIONS)?)?;
            let pending = crate::store::outbox::pending_count(txn)?;
            let members = crate::store::members::listed_count(txn)?;
            let teams = crate::store::teams::count(txn)?;
            Ok((sessions, pending, members, teams))
        })
        .await;
    if let Ok((sessions, pending, members, teams)) = gauges {
        metrics::gauge!("roster_sessions_active").set(sessions as f64);
        metrics::gauge!("roster_outbox_pending").set(pending as f64);
        metrics::gauge!("roster_members").set(members as f64);
        metrics::gauge!("roster_teams").set(teams as f64);
    }
    let body = install().map(|h| h.render()).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
