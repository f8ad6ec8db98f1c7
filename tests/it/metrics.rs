//! Prometheus metrics at /metrics behind a bearer token.

use http_body_util::Full;
use hyper::body::Bytes;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_and_show_requests_scim_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics_token = roster::config::Config::parse(
        "[metrics]\ntoken = \"scrape-me-0123456789\"\n",
        std::path::Path::new("m.toml"),
    )
    .unwrap()
    .metrics_token;
    let s = TestServer::start_with(dir, config).await;
    let token =
        roster::workspace::connections::create_static_token(&s.app, "okta", roster::workspace::model::Actor::Operator)
            .await
            .unwrap()
            .token;
    let r = s
        .send(
            hyper::Request::post("/scim/v2/Users")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/scim+json")
                .body(Full::new(Bytes::from(r#"{"userName":"m@example.com"}"#)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/healthz").await.status, 200);

    let scrape = |auth: Option<&str>| {
        let mut b = hyper::Request::get("/metrics").header("host", "localhost");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    assert_eq!(s.send(scrape(None)).await.status, 401);
    assert_eq!(s.send(scrape(Some("Bearer wrong-token-0123456789"))).await.status, 401);
    let r = s.send(scrape(Some("Bearer scrape-me-0123456789"))).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for needle in [
        "roster_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}",
        "roster_http_request_duration_seconds_bucket",
        "roster_scim_operations_total{resource=\"Users\",kind=\"create\",outcome=\"ok\"}",
        "roster_db_commit_duration_seconds",
        "roster_db_commit_batch_size",
        "roster_sessions_active",
        "roster_outbox_pending",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_endpoint_without_a_token() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/metrics").await.status, 404);
    s.stop().await;
}
