//! The axum router and the tower layers every request passes through:
//! request id, trace span (method, path, route, status, latency), request
//! timeout and body-size limit.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::{App, paths};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: 16 hex digits, unique within the process and unpredictable
/// across restarts, without a `getrandom` call per request. A per-process
/// random seed (from the App's RNG) is XORed with a counter and mixed with
/// SplitMix64, a bijection, so two requests never share an id.
#[derive(Clone)]
struct RequestIds(std::sync::Arc<(u64, std::sync::atomic::AtomicU64)>);

impl RequestIds {
    fn new(app: &App) -> RequestIds {
        let mut seed = [0u8; 8];
        app.rng.fill(&mut seed);
        RequestIds(std::sync::Arc::new((
            u64::from_le_bytes(seed),
            std::sync::atomic::AtomicU64::new(0),
        )))
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let v = splitmix64(self.0.0 ^ n);
        HeaderValue::from_str(&format!("{v:016x}")).ok().map(RequestId::new)
    }
}

pub fn build(app: App) -> Router {
    let limits = app.config.limits.clone();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let client = req
                .extensions()
                .get::<super::forwarded::ClientIp>()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                id = %id,
                client = %client,
                method = %req.method(),
                path = %req.uri().path(),
                route = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
        .on_failure(DefaultOnFailure::new().level(Level::WARN));

    Router::new()
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(crate::metrics::endpoint))
        .nest(paths::SCIM, crate::scim::router::routes(app.clone()))
        .merge(crate::web::routes(app.clone()))
        .merge(crate::oauth::routes(app.clone()))
        .route_layer(middleware::from_fn(crate::metrics::track))
        .fallback(not_found)
        .with_state(app.clone())
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds::new(&app)))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn(crate::scim::router::scim_error_bodies))
                .layer(middleware::from_fn_with_state(limits.request_timeout, request_deadline))
                .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
                .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes)),
        )
}

/// The request timeout (`limits.request_timeout_secs`): past it the client
/// gets 408, unless one of the request's writes has already started in the
/// writer; then it gets that write's real outcome, however long the commit
/// takes, because a 408 would make an IdP retry a write that happened
/// (issue 17). A write still queued at the deadline never runs.
async fn request_deadline(
    State(limit): State<Duration>,
    req: axum::http::Request<axum::body::Body>,
    next: middleware::Next,
) -> Response {
    let gate = std::sync::Arc::new(crate::store::WriteGate::default());
    let run = crate::store::gated(gate.clone(), next.run(req));
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => r,
        () = tokio::time::sleep(limit) => {
            if gate.close() {
                StatusCode::REQUEST_TIMEOUT.into_response()
            } else {
                tracing::info!(limit_secs = limit.as_secs(), "request past its timeout while its write commits; waiting for the outcome");
                run.await
            }
        }
    }
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n")
}

/// Ready when the database accepts a write transaction through the writer.
async fn readyz(State(app): State<App>) -> Response {
    if let Some(why) = app.store.storage_failure() {
        tracing::warn!(error = %why, "not ready: storage failed; restart roster");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "storage failed; writes are refused until roster is restarted (see the log)\n",
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), app.store.probe_writable()).await {
        Ok(Ok(())) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database not writable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database writer not answering\n").into_response(),
    }
}

/// Unknown addresses: a browser (it asks for HTML) gets the "Page not
/// found" page; API clients get JSON. SCIM paths get their SCIM error from
/// `scim_error_bodies`.
async fn not_found(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let ws = crate::web::workspace_name(&app).await;
        let mut r = crate::web::message(
            &ws,
            StatusCode::NOT_FOUND,
            "Page not found",
            &["There is no page at this address."],
            Some(("/", "Go to the start page")),
        );
        crate::web::apply_security_headers(&mut r);
        return r;
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"not_found","error_description":"no such resource"}"#,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::splitmix64;

    #[test]
    fn request_ids_do_not_repeat() {
        // SplitMix64 is a bijection: distinct counters give distinct ids
        // whatever the seed.
        let seed = 0x1234_5678_9abc_def0;
        let mut seen = std::collections::HashSet::new();
        for n in 0..200_000u64 {
            assert!(seen.insert(splitmix64(seed ^ n)), "repeat at {n}");
        }
        assert_eq!(format!("{:016x}", splitmix64(seed)).len(), 16);
    }
}
