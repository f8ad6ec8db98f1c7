//! Issue 17 (finding 2, last part): a request is never answered 408 after
//! its write committed. With the disk made slow (every sync waits), a
//! create whose commit outlives the request timeout gets its real 201; a
//! create still queued behind it at its deadline gets 408 and is never
//! written.

use std::time::Duration;

use serde_json::json;

use crate::scim_support::{USER_URN, connection, scim};
use crate::support::{TestServer, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_no_408_after_the_write_committed_and_none_written_after_a_408() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.request_timeout = Duration::from_secs(1);
    let s = TestServer::start_with(dir, config).await;
    let (tok, _) = connection(&s, "Okta").await;

    // Every sync of the database file now takes 1.5 s, longer than the
    // request timeout.
    s.app.store.inject_sync_delay(Some(Duration::from_millis(1500)));
    let body = |email: &str| json!({"schemas": [USER_URN], "userName": email});
    let first = scim(&s, "POST", "/Users", Some(&tok), Some(body("first@example.com")));
    let second = async {
        // Queued while the first one's commit is syncing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        scim(&s, "POST", "/Users", Some(&tok), Some(body("second@example.com"))).await
    };
    let (first, second) = tokio::join!(first, second);
    s.app.store.inject_sync_delay(None);

    assert_eq!(
        first.status, 201,
        "the write committed, so the answer is its outcome: {first}"
    );
    assert_eq!(second.status, 408, "queued past its deadline: {second}");
    assert_eq!(second.body["status"], json!("408"), "a SCIM error body: {second}");

    let find = |email: &'static str| {
        let path = format!("/Users?filter=userName%20eq%20%22{email}%22");
        let s = &s;
        let tok = tok.clone();
        async move { scim(s, "GET", &path, Some(&tok), None).await.body["totalResults"].clone() }
    };
    assert_eq!(find("first@example.com").await, json!(1));
    // A write that began syncing before the disk was made fast again (the
    // mail worker's, say) ends within 1.5 s; after it, a create goes
    // through the writer's queue behind the skipped one, which must not
    // have run.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let probe = scim(&s, "POST", "/Users", Some(&tok), Some(body("third@example.com"))).await;
    assert_eq!(probe.status, 201, "{probe}");
    assert_eq!(
        find("second@example.com").await,
        json!(0),
        "a 408'd create was written later"
    );
    s.stop().await;
}
