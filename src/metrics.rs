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

/// Route middleware, one per request (one layer instead of three: each
/// `from_fn` layer costs a boxed future and a cloned service per request):
/// puts the route template on the request's log span, counts and times the
/// request by route, and counts SCIM operations by resource, kind and
/// outcome.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    if let Some(r) = &route {
        tracing::Span::current().record("route", r.as_str());
    }
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = resp.status();
    metrics::counter!("roster_http_requests_total", "route" => route.to_owned(), "method" => method, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("roster_http_request_duration_seconds", "route" => route.to_owned()).record(elapsed);
    if let Some((resource, kind)) = scim_operation(route, method) {
        let outcome = if status.is_success() { "ok" } else { "error" };
        metrics::counter!("roster_scim_operations_total", "resource" => resource, "kind" => kind, "outcome" => outcome)
            .increment(1);
    }
    resp
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status code as a label without an allocation for the usual ones.
fn status_label(s: StatusCode) -> metrics::SharedString {
    let common = match s.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        303 => "303",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        412 => "412",
        429 => "429",
        503 => "503",
        _ => return s.as_u16().to_string().into(),
    };
    common.into()
}

/// A SCIM route template's resource (`Users`, `Groups` or `other` for the
/// discovery endpoints) and operation kind; `None` outside `/scim/v2`.
fn scim_operation(route: &str, method: &str) -> Option<(&'static str, &'static str)> {
    let rest = route.strip_prefix(crate::paths::SCIM)?.trim_start_matches('/');
    let (first, by_id) = match rest.split_once('/') {
        Some((first, _)) => (first, true),
        None => (rest, false),
    };
    let resource = match first {
        "Users" => "Users",
        "Groups" => "Groups",
        _ => "other",
    };
    // Discovery endpoints (`/ServiceProviderConfig`, ...) answer one
    // resource each: a "get", as for a resource by id.
    let by_id = by_id || resource == "other";
    let kind = match (method, by_id) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "replace",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "other",
    };
    Some((resource, kind))
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

#[cfg(test)]
mod tests {
    use super::scim_operation;

    #[test]
    fn scim_operations_from_route_templates() {
        assert_eq!(scim_operation("/scim/v2/Users", "POST"), Some(("Users", "create")));
        assert_eq!(scim_operation("/scim/v2/Users", "GET"), Some(("Users", "list")));
        assert_eq!(scim_operation("/scim/v2/Users/{id}", "GET"), Some(("Users", "get")));
        assert_eq!(
            scim_operation("/scim/v2/Groups/{id}", "PATCH"),
            Some(("Groups", "patch"))
        );
        assert_eq!(
            scim_operation("/scim/v2/Groups/{id}", "DELETE"),
            Some(("Groups", "delete"))
        );
        assert_eq!(
            scim_operation("/scim/v2/ServiceProviderConfig", "GET"),
            Some(("other", "get"))
        );
        assert_eq!(scim_operation("/scim/v2/Schemas/{urn}", "GET"), Some(("other", "get")));
        assert_eq!(scim_operation("/healthz", "GET"), None);
        assert_eq!(scim_operation("unmatched", "GET"), None);
    }
}
