//! SCIM 2.0 `/scim/v2/Groups` (= workspace teams), over real HTTPS, against
//! SPEC.md §1 rules 6-9 and §2, IDP-WIRE.md §1.2 (Okta Push Groups), §2.1-2.2
//! (Entra groups), §3.5 (PATCH) and RFC 7643/7644.

use std::collections::BTreeSet;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use roster::workspace::model::{Actor, Management, Team};
use roster::workspace::teams::{self, PersonOp};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::scim_support::*;
use crate::support::*;

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTRA_GROUP_URN: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

// ------------------------------------------------------------------ helpers

/// A well-formed UUID no server assigned (new_v4 is disallowed by clippy.toml).
fn fresh_id() -> Uuid {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Uuid::from_u128(0x0bad_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}

fn group_body(name: &str, members: &[&str]) -> Value {
    let m: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [GROUP_URN], "displayName": name, "members": m})
}

/// POSTs a group and insists on 201; returns the body.
async fn create_group(s: &TestServer, tok: &str, name: &str, members: &[&str]) -> Value {
    let r = scim(s, "POST", "/Groups", Some(tok), Some(group_body(name, members))).await;
    assert_eq!(r.status, 201, "create group {name}: {r}");
    r.body
}

/// Creates a user over SCIM; returns its id.
async fn user(s: &TestServer, tok: &str, email: &str) -> String {
    id_of(&create(s, tok, email, json!({})).await)
}

async fn gpatch(s: &TestServer, tok: &str, gid: &str, ops: Value) -> R {
    scim(s, "PATCH", &format!("/Groups/{gid}"), Some(tok), Some(patch(ops))).await
}

/// PATCH that must succeed with 204 (no `attributes` asked for).
#[track_caller]
fn assert_204(r: &R) {
    assert_eq!(r.status, 204, "{r}");
    assert!(r.text.is_empty(), "204 must have no body: {r}");
}

async fn get_group(s: &TestServer, tok: &str, gid: &str) -> R {
    scim(s, "GET", &format!("/Groups/{gid}"), Some(tok), None).await
}

/// The member ids a group resource lists.
fn member_set(g: &Value) -> BTreeSet<String> {
    g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Members of a group as GET shows them.
async fn members_of(s: &TestServer, tok: &str, gid: &str) -> BTreeSet<String> {
    let r = get_group(s, tok, gid).await;
    assert_eq!(r.status, 200, "{r}");
    member_set(&r.body)
}

fn gfilter(f: &str) -> String {
    format!("/Groups?filter={}", enc(f))
}

async fn team(s: &TestServer, id: &str) -> Option<Team> {
    let id = Uuid::parse_str(id).unwrap();
    s.app
        .store
        .read(move |txn| roster::store::teams::get(txn, id))
        .await
        .unwrap()
}

async fn stored_member_ids(s: &TestServer, id: &str) -> Vec<Uuid> {
    let id = Uuid::parse_str(id).unwrap();
    s.app
        .store
        .read(move |txn| roster::store::teams::member_ids(txn, id))
        .await
        .unwrap()
}

/// Audit rows with `action` on `team:<id>`.
async fn team_audit(s: &TestServer, id: &str, action: &str) -> Vec<roster::workspace::model::AuditEntry> {
    audit(s)
        .await
        .into_iter()
        .filter(|e| e.action == action && e.target == format!("team:{id}"))
        .collect()
}

// ------------------------------------------------------- 1. Okta Push Groups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_push_new_group_rename_op_and_membership_patch() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let id1 = user(&s, &tok, "one@example.com").await;
    let id2 = user(&s, &tok, "two@example.com").await;

    let f = gfilter(r#"displayName eq "Test SCIMv2""#) + "&startIndex=1&count=100";
    let r = scim(&s, "GET", &f, Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");
    assert_eq!(r.body["totalResults"], json!(0), "{r}");

    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "Test SCIMv2", "members": []})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );
    let gid = id_of(&r.body);
    assert!(Uuid::parse_str(&gid).is_ok(), "{r}");
    assert_eq!(r.body["displayName"], json!("Test SCIMv2"), "{r}");
    assert_eq!(r.body["meta"]["resourceType"], json!("Group"), "{r}");
    let loc = r.body["meta"]["location"].as_str().unwrap_or_default().to_owned();
    assert!(loc.ends_with(&format!("/scim/v2/Groups/{gid}")), "{r}");
    assert_eq!(
        r.header("location"),
        Some(loc.as_str()),
        "Location = meta.location: {r}"
    );
    let etag = r.header("etag").expect("ETag header").to_owned();
    assert_eq!(r.body["meta"]["version"], json!(etag), "{r}");
    assert!(etag.starts_with("W/\""), "weak ETag: {r}");

    // The same filter now finds it.
    let r = scim(&s, "GET", &f, Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    assert_eq!(r.ids(), vec![gid.clone()], "{r}");

    // Okta's rename op carrying the group's own id (sent before every push).
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2"}}]),
    )
    .await;
    assert_204(&r);

    // Push id1 first, then Okta's membership PATCH: remove id1, add id2.
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": id1, "display": "one"}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&id1]));
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([
            {"op": "remove", "path": format!("members[value eq \"{id1}\"]")},
            {"op": "add", "path": "members", "value": [{"value": id2, "display": "x"}]}
        ]),
    )
    .await;
    assert_204(&r);

    let r = get_group(&s, &tok, &gid).await;
    assert_eq!(r.status, 200, "{r}");
    let members = r.body["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 1, "{r}");
    let m = &members[0];
    assert_eq!(m["value"], json!(id2), "{r}");
    assert_eq!(
        m["display"],
        json!("D two"),
        "display is the member's display name: {r}"
    );
    assert_eq!(m["type"], json!("User"), "{r}");
    assert!(
        m["$ref"]
            .as_str()
            .is_some_and(|x| x.ends_with(&format!("/scim/v2/Users/{id2}"))),
        "{r}"
    );

    // The member's User resource shows the group; the removed one does not.
    let u = get_user(&s, &tok, &id2).await;
    assert_eq!(u.status, 200, "{u}");
    let groups = u.body["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "{u}");
    assert_eq!(groups[0]["value"], json!(gid), "{u}");
    assert_eq!(groups[0]["display"], json!("Test SCIMv2"), "{u}");
    let u1 = get_user(&s, &tok, &id1).await;
    assert!(u1.body["groups"].as_array().is_none_or(Vec::is_empty), "{u1}");
    s.stop().await;
}

// ------------------------------------------------------- 2. push-and-link

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_links_unmanaged_team_of_exact_name_and_conflicts_otherwise() {
    let s = TestServer::start().await;
    let (okta, okta_id) = connection(&s, "okta").await;
    let (entra, _) = connection(&s, "entra").await;
    let a = user(&s, &okta, "a@example.com").await;
    let b = user(&s, &okta, "b@example.com").await;
    let made = teams::person_create(&s.app, Actor::Operator, "Engineering")
        .await
        .unwrap();
    teams::person_edit(
        &s.app,
        Actor::Operator,
        "Engineering",
        vec![PersonOp::Add("a@example.com".into())],
    )
    .await
    .unwrap();
    assert_eq!(made.management, Management::Unmanaged);

    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&okta),
        Some(group_body("Engineering", &[&b])),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["id"], json!(made.id.to_string()), "linked, same id: {r}");
    assert_eq!(
        member_set(&r.body),
        set(&[&a, &b]),
        "existing member kept, new one added: {r}"
    );
    let gid = made.id.to_string();
    assert_eq!(team_audit(&s, &gid, "team.linked").await.len(), 1);
    let t = team(&s, &gid).await.unwrap();
    assert_eq!(t.management, Management::Managed(okta_id));

    // Same connection again: a conflict, not a second team.
    let r = scim(&s, "POST", "/Groups", Some(&okta), Some(group_body("Engineering", &[]))).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    // Another connection: also a conflict.
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&entra),
        Some(group_body("Engineering", &[])),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));

    // Names are exact: a different case is a different team.
    let r = scim(&s, "POST", "/Groups", Some(&okta), Some(group_body("engineering", &[]))).await;
    assert_eq!(r.status, 201, "{r}");
    assert_ne!(r.body["id"], json!(gid), "{r}");
    assert_eq!(r.body["displayName"], json!("engineering"), "{r}");
    let list = scim(&s, "GET", "/Groups", Some(&okta), None).await;
    assert_eq!(list.body["totalResults"], json!(2), "{list}");
    // The linked team is unchanged by the refused POSTs.
    assert_eq!(members_of(&s, &okta, &gid).await, set(&[&a, &b]));
    s.stop().await;
}

// ------------------------------------------------------------- 3. rename

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_replaces_display_name_and_frees_the_old_name() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let g = create_group(&s, &tok, "Old", &[]).await;
    let gid = id_of(&g);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "displayName", "value": "New"}]),
    )
    .await;
    assert_204(&r);
    let r = get_group(&s, &tok, &gid).await;
    assert_eq!(r.body["displayName"], json!("New"), "{r}");
    assert_eq!(r.header("etag"), Some("W/\"2\""), "version bumped once: {r}");
    let renamed = team_audit(&s, &gid, "team.renamed").await;
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].detail, json!({"from": "Old", "to": "New"}));
    // Index follows: the new name is found, the old one is free.
    let r = scim(&s, "GET", &gfilter(r#"displayName eq "New""#), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![gid.clone()], "{r}");
    let r = scim(&s, "GET", &gfilter(r#"displayName eq "Old""#), Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    let again = create_group(&s, &tok, "Old", &[]).await;
    assert_ne!(id_of(&again), gid);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_to_a_taken_name_is_409_and_changes_nothing() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    create_group(&s, &tok, "Taken", &[]).await;
    let g = create_group(&s, &tok, "Mine", &[&a]).await;
    let gid = id_of(&g);
    let before = team(&s, &gid).await.unwrap();

    // The rename comes second, after a member add: the whole PATCH fails.
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([
            {"op": "add", "path": "members", "value": [{"value": b}]},
            {"op": "replace", "path": "displayName", "value": "Taken"}
        ]),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let after = team(&s, &gid).await.unwrap();
    assert_eq!(after.name, "Mine");
    assert_eq!(after.version, before.version);
    assert_eq!(after.member_count, before.member_count);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    // A person-made unmanaged team's name is taken too.
    teams::person_create(&s.app, Actor::Operator, "Console").await.unwrap();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "value": {"displayName": "Console"}}]),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_eq!(team(&s, &gid).await.unwrap().name, "Mine");
    s.stop().await;
}

// --------------------------------------------------------- 4. membership

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_members_several_at_once_and_repeat_add_is_idempotent() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);

    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": b}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a, &b]));
    let v = team(&s, &gid).await.unwrap();
    assert_eq!(v.member_count, 2);

    // Adding a present member again (even twice in one op) is a no-op success.
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": a}]}]),
    )
    .await;
    assert_204(&r);
    let w = team(&s, &gid).await.unwrap();
    assert_eq!(w.member_count, 2);
    assert_eq!(w.version, v.version, "no change, no new version");
    assert_eq!(stored_member_ids(&s, &gid).await.len(), 2);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a, &b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_remove_with_value_array_removes_only_those_members() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "entra").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let c = user(&s, &tok, "c@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b, &c]).await);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a, &b, &c]));

    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "Remove", "path": "members", "value": [{"value": a}, {"value": b}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&c]));
    assert_eq!(team(&s, &gid).await.unwrap().member_count, 1);
    let removed = team_audit(&s, &gid, "team.members_removed").await;
    assert_eq!(removed.len(), 1);
    let listed: BTreeSet<String> = removed[0].detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, set(&[&a, &b]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_members_sets_exactly_the_given_list() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let c = user(&s, &tok, "c@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "members", "value": [{"value": b}, {"value": c}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&b, &c]));
    assert_eq!(team(&s, &gid).await.unwrap().member_count, 2);
    // Path-less form (Metatavu/keycloak-scim-server#100).
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "value": {"members": [{"value": a}]}}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_push_now_of_empty_group_replace_with_empty_list_clears() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "members", "value": []}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, BTreeSet::new());
    assert_eq!(team(&s, &gid).await.unwrap().member_count, 0);
    assert!(stored_member_ids(&s, &gid).await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_members_without_value_or_filter_clears_the_group() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b]).await);
    let r = gpatch(&s, &tok, &gid, json!([{"op": "remove", "path": "members"}])).await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, BTreeSet::new());
    assert_eq!(team(&s, &gid).await.unwrap().member_count, 0);
    // The users themselves stay.
    assert_eq!(get_user(&s, &tok, &a).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_member_ids_in_add_are_ignored_and_audited() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let ghost = fresh_id().to_string();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": ghost}, {"value": a}, {"value": "not-a-uuid"}]}]),
    )
    .await;
    assert!(r.status == 204 || r.status == 200, "{r}");
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    let ignored = team_audit(&s, &gid, "team.members_ignored").await;
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    let listed = ignored[0].detail.to_string();
    assert!(listed.contains(&ghost), "{listed}");
    assert!(listed.contains("not-a-uuid"), "{listed}");
    assert!(!listed.contains(&a), "{listed}");
    // Also on create: unknown ids are ignored, not a 400.
    let r = scim(&s, "POST", "/Groups", Some(&tok), Some(group_body("H", &[&ghost, &a]))).await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(member_set(&r.body), set(&[&a]), "{r}");
    assert_eq!(team_audit(&s, &id_of(&r.body), "team.members_ignored").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_applies_atomically_a_later_bad_op_undoes_earlier_ones() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([
            {"op": "add", "path": "members", "value": [{"value": a}]},
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "replace", "path": "nickName", "value": "x"}
        ]),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidPath"));
    let t = team(&s, &gid).await.unwrap();
    assert_eq!(t.name, "G");
    assert_eq!(t.version, 1);
    assert!(stored_member_ids(&s, &gid).await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_with_attributes_returns_200_with_body_and_etag_tracks_version() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": a}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(r.header("etag"), Some("W/\"2\""), "{r}");
    let r = scim(
        &s,
        "PATCH",
        &format!("/Groups/{gid}?attributes=displayName"),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "path": "displayName", "value": "H"}]))),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], json!("H"), "{r}");
    assert_eq!(r.body["id"], json!(gid), "id is returned always: {r}");
    assert!(r.body.get("members").is_none(), "not asked for: {r}");
    // If-Match with a stale version → 412, nothing changed.
    let r = scim_with(
        &s,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&tok),
        &[("if-match", "W/\"1\"")],
        Some(serde_json::to_vec(&patch(json!([{"op": "replace", "path": "displayName", "value": "I"}]))).unwrap()),
    )
    .await;
    assert_scim_error(&r, 412, None);
    assert_eq!(team(&s, &gid).await.unwrap().name, "H");
    s.stop().await;
}

// ----------------------------------------------------------- 5. Entra

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_dialect_create_rename_add_and_excluded_members() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "entra").await;
    let uid = user(&s, &tok, "a@example.com").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({
            "schemas": [GROUP_URN, ENTRA_GROUP_URN],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "meta": {"resourceType": "Group"}
        })),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let gid = id_of(&r.body);
    assert_eq!(
        r.body["externalId"],
        json!("8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"),
        "{r}"
    );
    assert_eq!(r.body["meta"]["resourceType"], json!("Group"), "{r}");
    assert!(
        r.body["meta"]["created"].is_string(),
        "server meta, not client meta: {r}"
    );

    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "Replace", "path": "displayName", "value": "x"}]),
    )
    .await;
    assert_204(&r);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": uid}]}]),
    )
    .await;
    assert_204(&r);

    let r = scim(
        &s,
        "GET",
        &(gfilter(r#"displayName eq "x""#) + "&excludedAttributes=members"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    let g = &r.resources()[0];
    assert_eq!(g["id"], json!(gid), "{r}");
    assert_eq!(g["displayName"], json!("x"), "{r}");
    assert!(g.get("members").is_none(), "members excluded: {r}");

    let r = scim(
        &s,
        "GET",
        &format!("/Groups/{gid}?excludedAttributes=members"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(r.body.get("members").is_none(), "{r}");
    assert_eq!(r.body["displayName"], json!("x"), "{r}");
    // excludedAttributes applies to write responses too (RFC 7644 §3.9).
    let r = scim(
        &s,
        "POST",
        "/Groups?excludedAttributes=members",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN, ENTRA_GROUP_URN], "displayName": "y", "members": [{"value": uid}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(r.body.get("members").is_none(), "{r}");
    assert_eq!(r.body["displayName"], json!("y"), "{r}");
    // Without exclusion the member is there.
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&uid]));
    // Entra/AWS-style reference check: is this user in this group?
    let f = format!(r#"id eq "{gid}" and members eq "{uid}""#);
    let r = scim(
        &s,
        "GET",
        &(gfilter(&f) + "&excludedAttributes=members"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    let f = format!(r#"id eq "{gid}" and members eq "{}""#, fresh_id());
    let r = scim(
        &s,
        "GET",
        &(gfilter(&f) + "&excludedAttributes=members"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    s.stop().await;
}

// ------------------------------------------------------------ 6. delete

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_group_removes_team_but_members_stay_in_workspace() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "Doomed", &[&a]).await);
    let r = scim(&s, "DELETE", &format!("/Groups/{gid}"), Some(&tok), None).await;
    assert_eq!(r.status, 204, "{r}");
    assert!(r.text.is_empty(), "{r}");
    let r = get_group(&s, &tok, &gid).await;
    assert_scim_error(&r, 404, None);
    let u = get_user(&s, &tok, &a).await;
    assert_eq!(u.status, 200, "{u}");
    assert!(u.body["groups"].as_array().is_none_or(Vec::is_empty), "{u}");
    assert!(team(&s, &gid).await.is_none());
    assert!(
        stored_member_ids(&s, &gid).await.is_empty(),
        "membership rows go with the team"
    );
    assert_eq!(team_audit(&s, &gid, "team.deleted").await.len(), 1);
    // A second DELETE is 404; the name is free again.
    let r = scim(&s, "DELETE", &format!("/Groups/{gid}"), Some(&tok), None).await;
    assert_scim_error(&r, 404, None);
    let again = create_group(&s, &tok, "Doomed", &[]).await;
    assert_ne!(id_of(&again), gid);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_delete_of_person_made_unmanaged_team_is_403() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let made = teams::person_create(&s.app, Actor::Operator, "Console team")
        .await
        .unwrap();
    let gid = made.id.to_string();
    let r = scim(&s, "DELETE", &format!("/Groups/{gid}"), Some(&tok), None).await;
    assert_scim_error(&r, 403, None);
    let t = team(&s, &gid).await.expect("team still there");
    assert_eq!(
        t.management,
        Management::Unmanaged,
        "a refused DELETE must not link the team"
    );
    assert_eq!(get_group(&s, &tok, &gid).await.status, 200);
    s.stop().await;
}

// --------------------------------------------------- 7. source of truth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_connection_cannot_change_a_managed_team_but_can_read_it() {
    let s = TestServer::start().await;
    let (okta, _) = connection(&s, "okta").await;
    let (entra, _) = connection(&s, "entra").await;
    let a = user(&s, &okta, "a@example.com").await;
    let gid = id_of(&create_group(&s, &okta, "OktaTeam", &[&a]).await);
    let before = team(&s, &gid).await.unwrap();

    let r = gpatch(
        &s,
        &entra,
        &gid,
        json!([{"op": "replace", "path": "displayName", "value": "Hijack"}]),
    )
    .await;
    assert_scim_error(&r, 403, None);
    let r = scim(
        &s,
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&entra),
        Some(group_body("Hijack", &[])),
    )
    .await;
    assert_scim_error(&r, 403, None);
    let r = scim(&s, "DELETE", &format!("/Groups/{gid}"), Some(&entra), None).await;
    assert_scim_error(&r, 403, None);

    let r = get_group(&s, &entra, &gid).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], json!("OktaTeam"), "{r}");
    assert_eq!(member_set(&r.body), set(&[&a]), "{r}");
    assert_eq!(team(&s, &gid).await.unwrap(), before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_may_edit_a_managed_team_and_next_scim_put_restores_idp_membership() {
    let s = TestServer::start().await;
    let (tok, conn) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "Managed", &[&a]).await);

    let t = teams::person_edit(
        &s.app,
        Actor::Operator,
        "Managed",
        vec![PersonOp::Add("b@example.com".into())],
    )
    .await
    .unwrap();
    assert_eq!(
        t.management,
        Management::Managed(conn),
        "still managed after a person's edit"
    );
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a, &b]));

    let r = scim(
        &s,
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&tok),
        Some(group_body("Managed", &[&a])),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(member_set(&r.body), set(&[&a]), "{r}");
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    s.stop().await;
}

// ---------------------------------------------------------------- 8. PUT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_display_name_members_and_external_id() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "displayName": "P", "externalId": "ext-1", "members": [{"value": a}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let gid = id_of(&r.body);
    let mut body = r.body.clone();
    body["displayName"] = json!("Q");
    body["externalId"] = json!("ext-2");
    body["members"] = json!([{"value": b, "display": "whatever"}]);
    let r = scim(&s, "PUT", &format!("/Groups/{gid}"), Some(&tok), Some(body)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], json!("Q"), "{r}");
    assert_eq!(r.body["externalId"], json!("ext-2"), "{r}");
    assert_eq!(member_set(&r.body), set(&[&b]), "{r}");
    assert_eq!(r.header("etag"), r.body["meta"]["version"].as_str(), "{r}");
    let g = get_group(&s, &tok, &gid).await;
    assert_eq!(member_set(&g.body), set(&[&b]), "{g}");
    // externalId index follows the change.
    let r = scim(&s, "GET", &gfilter(r#"externalId eq "ext-1""#), Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    let r = scim(&s, "GET", &gfilter(r#"externalId eq "ext-2""#), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![gid.clone()], "{r}");

    // A PUT without externalId/members clears them (full replace).
    let r = scim(
        &s,
        "PUT",
        &format!("/Groups/{gid}"),
        Some(&tok),
        Some(json!({"displayName": "Q"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(r.body.get("externalId").is_none(), "{r}");
    assert_eq!(member_set(&r.body), BTreeSet::new(), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_another_id_is_400_mutability_and_unknown_id_is_404() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let gid = id_of(&create_group(&s, &tok, "P", &[]).await);
    let mut body = group_body("Q", &[]);
    body["id"] = json!(fresh_id().to_string());
    let r = scim(&s, "PUT", &format!("/Groups/{gid}"), Some(&tok), Some(body)).await;
    assert_scim_error(&r, 400, Some("mutability"));
    assert_eq!(team(&s, &gid).await.unwrap().name, "P");
    // Its own id is fine (RFC 7644 §3.5.1: readOnly values are ignored).
    let mut body = group_body("Q", &[]);
    body["id"] = json!(gid);
    let r = scim(&s, "PUT", &format!("/Groups/{gid}"), Some(&tok), Some(body)).await;
    assert_eq!(r.status, 200, "{r}");

    let unknown = fresh_id();
    let r = scim(
        &s,
        "PUT",
        &format!("/Groups/{unknown}"),
        Some(&tok),
        Some(group_body("Z", &[])),
    )
    .await;
    assert_scim_error(&r, 404, None);
    let r = scim(&s, "GET", "/Groups", Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(1), "PUT must not create: {r}");
    let r = gpatch(
        &s,
        &tok,
        &unknown.to_string(),
        json!([{"op": "replace", "path": "displayName", "value": "Z"}]),
    )
    .await;
    assert_scim_error(&r, 404, None);
    let r = get_group(&s, &tok, "not-a-uuid").await;
    assert_scim_error(&r, 404, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_group_errors_say_group_not_member() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let unknown = fresh_id();
    for (method, body) in [
        ("PUT", Some(group_body("Z", &[]))),
        (
            "PATCH",
            Some(patch(json!([{"op": "replace", "path": "displayName", "value": "Z"}]))),
        ),
        ("DELETE", None),
    ] {
        let r = scim(&s, method, &format!("/Groups/{unknown}"), Some(&tok), body).await;
        assert_scim_error(&r, 404, None);
        let detail = r.body["detail"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            !detail.contains("member"),
            "{method}: a missing Group is not a missing member: {r}"
        );
    }
    s.stop().await;
}

// ------------------------------------------------------------ 9. listing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_filters_sorts_and_includes_unmanaged_teams() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let mut made = Vec::new();
    for i in 0..10 {
        let r = scim(
            &s,
            "POST",
            "/Groups",
            Some(&tok),
            Some(json!({"displayName": format!("team-{i:02}"), "externalId": format!("ext-{i}")})),
        )
        .await;
        assert_eq!(r.status, 201, "{r}");
        made.push(id_of(&r.body));
    }
    for name in ["console-a", "console-b"] {
        made.push(
            teams::person_create(&s.app, Actor::Operator, name)
                .await
                .unwrap()
                .id
                .to_string(),
        );
    }

    // Everything, in one page, then in pages of 5: same order, exact totals.
    let r = scim(&s, "GET", "/Groups?startIndex=1&count=100", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(12), "{r}");
    let all = r.ids();
    assert_eq!(all.len(), 12, "{r}");
    assert_eq!(
        all.iter().cloned().collect::<BTreeSet<_>>(),
        made.iter().cloned().collect(),
        "unmanaged included"
    );
    let mut paged = Vec::new();
    for start in [1, 6, 11] {
        let r = scim(
            &s,
            "GET",
            &format!("/Groups?startIndex={start}&count=5"),
            Some(&tok),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.body["totalResults"], json!(12), "{r}");
        assert_eq!(r.body["startIndex"], json!(start), "{r}");
        let n = if start == 11 { 2 } else { 5 };
        assert_eq!(r.body["itemsPerPage"], json!(n), "{r}");
        paged.extend(r.ids());
    }
    assert_eq!(paged, all, "stable order across pages");
    let r = scim(&s, "GET", "/Groups?startIndex=1&count=100", Some(&tok), None).await;
    assert_eq!(r.ids(), all, "same order on repeat");
    let r = scim(&s, "GET", "/Groups?count=0", Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(12), "{r}");
    assert!(r.resources().is_empty(), "{r}");
    let r = scim(&s, "GET", "/Groups?startIndex=13&count=5", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(12), "{r}");
    assert!(r.resources().is_empty(), "{r}");

    // externalId eq (index).
    let r = scim(&s, "GET", &gfilter(r#"externalId eq "ext-7""#), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![made[7].clone()], "{r}");
    // co (scan), paged.
    let r = scim(
        &s,
        "GET",
        &(gfilter(r#"displayName co "m-0""#) + "&count=4"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(10), "{r}");
    assert_eq!(r.ids(), made[0..4].to_vec(), "{r}");
    let r = scim(
        &s,
        "GET",
        &(gfilter(r#"displayName co "m-0""#) + "&startIndex=9&count=4"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(10), "{r}");
    assert_eq!(r.ids(), made[8..10].to_vec(), "{r}");
    let r = scim(&s, "GET", &gfilter(r#"displayName sw "console""#), Some(&tok), None).await;
    assert_eq!(r.ids(), made[10..12].to_vec(), "{r}");

    // sortBy displayName descending.
    let r = scim(
        &s,
        "GET",
        "/Groups?sortBy=displayName&sortOrder=descending&count=3",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(12), "{r}");
    let names: Vec<String> = r
        .resources()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["team-09", "team-08", "team-07"], "{r}");
    let r = scim(
        &s,
        "GET",
        "/Groups?sortBy=displayName&startIndex=11&count=5",
        Some(&tok),
        None,
    )
    .await;
    let names: Vec<String> = r
        .resources()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["team-08", "team-09"], "ascending by default: {r}");
    s.stop().await;
}

// ------------------------------------------------------------- 10. errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_unknown_path_is_400_invalid_path_and_changes_nothing() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "nickName", "value": "x"}]),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidPath"));
    let t = team(&s, &gid).await.unwrap();
    assert_eq!((t.name.as_str(), t.version), ("G", 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_display_name_is_400() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let r = gpatch(&s, &tok, &gid, json!([{"op": "remove", "path": "displayName"}])).await;
    assert_scim_error(&r, 400, None);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "displayName", "value": ""}]),
    )
    .await;
    assert_scim_error(&r, 400, None);
    assert_eq!(team(&s, &gid).await.unwrap().name, "G");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_errors_are_scim_errors_with_the_right_scim_type() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"schemas": [GROUP_URN], "members": []})),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim(&s, "POST", "/Groups", Some(&tok), Some(json!({"displayName": "   "}))).await;
    assert_scim_error(&r, 400, None);
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"displayName": "U", "nickName": "x"})),
    )
    .await;
    assert_scim_error(&r, 400, None);
    let r = scim_with(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        &[],
        Some(b"{\"displayName\": \"U\",".to_vec()),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"displayName": "U", "members": [{"display": "x"}]})),
    )
    .await;
    assert_scim_error(&r, 400, None);
    let r = scim(&s, "POST", "/Groups", Some(&tok), Some(json!({"displayName": 5}))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = gpatch(&s, &tok, &fresh_id().to_string(), json!([])).await;
    assert!(r.status == 400 || r.status == 404, "{r}");
    // Nothing was created by any of these.
    let r = scim(&s, "GET", "/Groups", Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    // No token → 401 SCIM error.
    let r = scim(&s, "GET", "/Groups", None, None).await;
    assert_scim_error(&r, 401, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_patch_json_is_400_invalid_syntax() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[]).await);
    let r = scim_with(
        &s,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&tok),
        &[],
        Some(b"{\"Operations\": [".to_vec()),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = gpatch(&s, &tok, &gid, json!([{"op": "remove"}])).await;
    assert_scim_error(&r, 400, None);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "frobnicate", "path": "displayName", "value": "x"}]),
    )
    .await;
    assert_scim_error(&r, 400, None);
    assert_eq!(team(&s, &gid).await.unwrap().version, 1);
    s.stop().await;
}

// ----------------------------------------- 11. suspended / removed members

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_members_stay_listed_and_deleted_members_disappear() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b]).await);

    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{a}"),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(get_user(&s, &tok, &a).await.body["active"], json!(false));
    assert_eq!(
        members_of(&s, &tok, &gid).await,
        set(&[&a, &b]),
        "suspended members stay in teams"
    );

    let r = scim(&s, "DELETE", &format!("/Users/{b}"), Some(&tok), None).await;
    assert_eq!(r.status, 204, "{r}");
    assert_eq!(
        members_of(&s, &tok, &gid).await,
        set(&[&a]),
        "a removed member is not listed"
    );
    // Documented behaviour: the membership row stays in storage (nothing is
    // destroyed; restoring the member restores the membership).
    let rows = stored_member_ids(&s, &gid).await;
    assert!(rows.contains(&Uuid::parse_str(&b).unwrap()), "{rows:?}");
    // The removed member cannot be added again by reference (ignored).
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": b}]}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    // Nor does the listing.
    let r = scim(&s, "GET", "/Groups", Some(&tok), None).await;
    assert_eq!(member_set(&r.resources()[0]), set(&[&a]), "{r}");
    // A filter on members does not match the removed member either.
    let r = scim(&s, "GET", &gfilter(&format!(r#"members eq "{b}""#)), Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    s.stop().await;
}

// -------------------------------------------------------------- 12. scale

/// Creates `n` users concurrently (8 in flight); returns their ids.
async fn many_users(s: &TestServer, tok: &str, n: usize) -> Vec<String> {
    let tls = s.tls(&[&rustls::version::TLS13]);
    let addr = s.addr;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (tls, tok, sem) = (tls.clone(), tok.to_owned(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let body = json!({"userName": format!("bulk{i}@example.com")});
            let req = hyper::Request::post("/scim/v2/Users")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {tok}"))
                .header("content-type", "application/scim+json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                .unwrap();
            let r = roster::client::request(tls, addr, "localhost", req).await.unwrap();
            assert_eq!(r.status, 201, "{}", r.text());
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["id"].as_str().unwrap().to_owned()
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.push(r.unwrap());
    }
    ids
}

const SCALE_MEMBERS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_team_adding_one_member_changes_count_and_version_by_one() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let t0 = Instant::now();
    let ids = many_users(&s, &tok, SCALE_MEMBERS + 1).await;
    let created = t0.elapsed();
    let (extra, bulk) = ids.split_last().unwrap();
    let gid = id_of(&create_group(&s, &tok, "Everyone", &[]).await);
    let t1 = Instant::now();
    for chunk in bulk.chunks(500) {
        let values: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let r = gpatch(
            &s,
            &tok,
            &gid,
            json!([{"op": "add", "path": "members", "value": values}]),
        )
        .await;
        assert_204(&r);
    }
    let added = t1.elapsed();
    let before = team(&s, &gid).await.unwrap();
    assert_eq!(before.member_count, SCALE_MEMBERS as u64);
    assert_eq!(stored_member_ids(&s, &gid).await.len(), SCALE_MEMBERS);

    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": extra}]}]),
    )
    .await;
    assert_204(&r);
    let after = team(&s, &gid).await.unwrap();
    assert_eq!(after.member_count, before.member_count + 1);
    assert_eq!(after.version, before.version + 1);
    assert_eq!(stored_member_ids(&s, &gid).await.len(), SCALE_MEMBERS + 1);
    let added_audit = team_audit(&s, &gid, "team.members_added").await;
    assert_eq!(
        added_audit[0].detail,
        json!({"members": [extra]}),
        "newest first: only the one added"
    );

    // Okta's per-member removal on a large team.
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", bulk[0])}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(team(&s, &gid).await.unwrap().member_count, SCALE_MEMBERS as u64);

    let r = scim(
        &s,
        "GET",
        &(gfilter(r#"displayName eq "Everyone""#) + "&excludedAttributes=members"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    assert!(r.resources()[0].get("members").is_none(), "{r}");
    assert!(
        r.text.len() < 2000,
        "no member list materialised: {} bytes",
        r.text.len()
    );
    let r = get_group(&s, &tok, &gid).await;
    assert_eq!(
        r.body["members"].as_array().map(Vec::len),
        Some(SCALE_MEMBERS),
        "full GET lists all"
    );

    // Okta's full re-push with the same list changes nothing (no new version).
    let t2 = Instant::now();
    let version = team(&s, &gid).await.unwrap().version;
    let values: Vec<Value> = member_set(&r.body).into_iter().map(|id| json!({"value": id})).collect();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "members", "value": values}]),
    )
    .await;
    assert_204(&r);
    let t = team(&s, &gid).await.unwrap();
    assert_eq!((t.version, t.member_count), (version, SCALE_MEMBERS as u64));
    let replaced = t2.elapsed();
    eprintln!(
        "scale: created {} users in {created:?}, added to team in {added:?}, same-list replace in {replaced:?}, total {:?}",
        ids.len(),
        t0.elapsed()
    );
    s.stop().await;
}

// ---------------------------------------------------------- 13. discovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_group_resource_type_and_schema() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(&s, "GET", "/ResourceTypes", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    let group = r.resources().into_iter().find(|t| t["id"] == json!("Group"));
    let group = group.unwrap_or_else(|| panic!("no Group resource type: {r}"));
    assert_eq!(group["endpoint"], json!("/Groups"), "{r}");
    assert_eq!(group["schema"], json!(GROUP_URN), "{r}");
    let r = scim(&s, "GET", "/ResourceTypes/Group", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");

    let r = scim(&s, "GET", &format!("/Schemas/{GROUP_URN}"), Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["id"], json!(GROUP_URN), "{r}");
    let attrs = r.body["attributes"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<String> = attrs
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(names.contains("displayName") && names.contains("members"), "{r}");
    let members = attrs.iter().find(|a| a["name"] == json!("members")).unwrap();
    let subs: BTreeSet<String> = members["subAttributes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        subs.contains("value") && subs.contains("display") && subs.contains("$ref"),
        "{r}"
    );
    let r = scim(&s, "GET", "/Schemas", Some(&tok), None).await;
    assert!(r.resources().iter().any(|x| x["id"] == json!(GROUP_URN)), "{r}");
    s.stop().await;
}

// ------------------------------------------------------------- extra probes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_of_one_name_create_exactly_one_team() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let tls = s.tls(&[&rustls::version::TLS13]);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (tls, tok, addr) = (tls.clone(), tok.clone(), s.addr);
        set.spawn(async move {
            let body = json!({"schemas": [GROUP_URN], "displayName": "Race", "members": []});
            let req = hyper::Request::post("/scim/v2/Groups")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {tok}"))
                .header("content-type", "application/scim+json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                .unwrap();
            roster::client::request(tls, addr, "localhost", req)
                .await
                .unwrap()
                .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        statuses.push(r.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409]);
    let r = scim(&s, "GET", "/Groups", Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    s.stop().await;
}

/// Documents current behaviour: a SCIM PATCH on a person-made (unmanaged)
/// team takes it over (Okta "Link Group" pushes to an existing group found
/// by the displayName query without a POST). SPEC §1 rule 8 says unmanaged
/// teams are touched by SCIM only through rule 6 linking; see the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_patch_on_person_made_team_links_it_and_is_audited() {
    let s = TestServer::start().await;
    let (tok, conn) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let made = teams::person_create(&s.app, Actor::Operator, "Console").await.unwrap();
    let gid = made.id.to_string();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "add", "path": "members", "value": [{"value": a}]}]),
    )
    .await;
    assert_204(&r);
    let t = team(&s, &gid).await.unwrap();
    assert_eq!(t.management, Management::Managed(conn));
    assert_eq!(team_audit(&s, &gid, "team.linked").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_paths_are_case_insensitive_and_urn_qualified() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"DISPLAYNAME": "Upper", "Members": [{"Value": a}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["displayName"], json!("Upper"), "{r}");
    assert_eq!(member_set(&r.body), set(&[&a]), "{r}");
    let gid = id_of(&r.body);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([
            {"op": "REPLACE", "path": format!("{GROUP_URN}:displayName"), "value": "Qualified"},
            {"op": "Remove", "path": format!("Members[Value eq \"{a}\"]")}
        ]),
    )
    .await;
    assert_204(&r);
    let g = get_group(&s, &tok, &gid).await;
    assert_eq!(g.body["displayName"], json!("Qualified"), "{g}");
    assert_eq!(member_set(&g.body), BTreeSet::new(), "{g}");
    let r = scim(&s, "GET", &gfilter(r#"DISPLAYNAME EQ "Qualified""#), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![gid], "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_with_or_and_and_on_indexed_attributes() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = id_of(&create_group(&s, &tok, "Alpha", &[]).await);
    let b = id_of(&create_group(&s, &tok, "Beta", &[]).await);
    create_group(&s, &tok, "Gamma", &[]).await;
    let r = scim(
        &s,
        "GET",
        &gfilter(r#"displayName eq "Alpha" or displayName eq "Beta""#),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.ids(), vec![a.clone(), b.clone()], "{r}");
    let r = scim(
        &s,
        "GET",
        &gfilter(r#"displayName eq "Alpha" and externalId eq "nope""#),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    let r = scim(&s, "GET", &gfilter(&format!(r#"id eq "{b}""#)), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![b.clone()], "{r}");
    let r = scim(&s, "GET", &gfilter(r#"id eq "not-a-uuid""#), Some(&tok), None).await;
    assert_eq!((r.status, r.body["totalResults"].clone()), (200, json!(0)), "{r}");
    let r = scim(&s, "GET", &gfilter(r#"not (displayName eq "Alpha")"#), Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(2), "{r}");
    let r = scim(&s, "GET", &gfilter(r#"displayName eq"#), Some(&tok), None).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    // attributes=displayName on a list: id + displayName, no members.
    let r = scim(&s, "GET", "/Groups?attributes=displayName", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    for g in r.resources() {
        assert!(g["id"].is_string() && g["displayName"].is_string(), "{r}");
        assert!(g.get("members").is_none(), "{r}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_frees_the_external_id_index_and_if_match_star_matches() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "entra").await;
    let r = scim(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        Some(json!({"displayName": "E", "externalId": "obj-1"})),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let gid = id_of(&r.body);
    let r = scim_with(
        &s,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&tok),
        &[("if-match", "*")],
        Some(serde_json::to_vec(&patch(json!([{"op": "replace", "path": "displayName", "value": "F"}]))).unwrap()),
    )
    .await;
    assert_204(&r);
    let r = scim_with(
        &s,
        "DELETE",
        &format!("/Groups/{gid}"),
        Some(&tok),
        &[("if-match", "W/\"1\"")],
        None,
    )
    .await;
    assert_scim_error(&r, 412, None);
    let r = scim_with(
        &s,
        "DELETE",
        &format!("/Groups/{gid}"),
        Some(&tok),
        &[("if-match", "W/\"2\"")],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r}");
    let r = scim(&s, "GET", &gfilter(r#"externalId eq "obj-1""#), Some(&tok), None).await;
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_or_control_char_names_are_400_invalid_value() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let long = "x".repeat(201);
    let r = scim(&s, "POST", "/Groups", Some(&tok), Some(json!({"displayName": long}))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim(&s, "POST", "/Groups", Some(&tok), Some(json!({"displayName": "a\nb"}))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let gid = id_of(&create_group(&s, &tok, &"y".repeat(200), &[]).await);
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "displayName", "value": long}]),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    s.stop().await;
}

/// RFC 7644 §3.14 / RFC 7232 §4.1: 304 only while the representation is
/// unchanged. A User's `groups` is part of its representation, so joining a
/// group (or the group's rename) must not leave a client's cached copy
/// "not modified".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_if_none_match_is_not_304_after_its_group_membership_changed() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let before = get_user(&s, &tok, &a).await;
    let etag = before.header("etag").expect("ETag").to_owned();
    let gid = id_of(&create_group(&s, &tok, "Joined", &[&a]).await);
    let r = scim_with(
        &s,
        "GET",
        &format!("/Users/{a}"),
        Some(&tok),
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "groups changed, cached copy is stale: {r}");
    assert_eq!(r.body["groups"][0]["value"], json!(gid), "{r}");
    assert_ne!(r.header("etag"), Some(etag.as_str()), "{r}");
    // A rename changes groups[].display too.
    let etag = r.header("etag").unwrap_or_default().to_owned();
    let p = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]),
    )
    .await;
    assert_204(&p);
    let r = scim_with(
        &s,
        "GET",
        &format!("/Users/{a}"),
        Some(&tok),
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "group renamed, cached copy is stale: {r}");
    assert_eq!(r.body["groups"][0]["display"], json!("Renamed"), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_repeated_rename_op_with_same_name_is_a_no_op() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let gid = id_of(&create_group(&s, &tok, "Same", &[]).await);
    for _ in 0..3 {
        let r = gpatch(
            &s,
            &tok,
            &gid,
            json!([{"op": "replace", "value": {"id": gid, "displayName": "Same"}}]),
        )
        .await;
        assert_204(&r);
        assert_eq!(r.header("etag"), Some("W/\"1\""), "{r}");
    }
    assert_eq!(team(&s, &gid).await.unwrap().version, 1);
    assert!(team_audit(&s, &gid, "team.renamed").await.is_empty());
    // Another id inside the value is refused.
    let other = fresh_id().to_string();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "replace", "value": {"id": other, "displayName": "Same"}}]),
    )
    .await;
    assert_scim_error(&r, 400, Some("mutability"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_name_the_connection_or_the_person() {
    let s = TestServer::start().await;
    let (tok, conn) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "Audited", &[&a]).await);
    teams::person_edit(
        &s.app,
        Actor::Operator,
        "Audited",
        vec![PersonOp::Remove("a@example.com".into())],
    )
    .await
    .unwrap();
    let created = team_audit(&s, &gid, "team.created").await;
    assert_eq!(created.len(), 1);
    assert!(
        matches!(&created[0].actor, Actor::Connection { id, .. } if *id == conn),
        "{created:?}"
    );
    let added = team_audit(&s, &gid, "team.members_added").await;
    assert_eq!(added.len(), 1);
    assert!(
        matches!(&added[0].actor, Actor::Connection { id, .. } if *id == conn),
        "{added:?}"
    );
    assert_eq!(added[0].detail, json!({"members": [a]}));
    let removed = team_audit(&s, &gid, "team.members_removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].actor, Actor::Operator, "{removed:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_filters_by_value_and_display_select_the_right_members() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let a = user(&s, &tok, "a@example.com").await;
    let b = user(&s, &tok, "b@example.com").await;
    let gid = id_of(&create_group(&s, &tok, "G", &[&a, &b]).await);
    let other = id_of(&create_group(&s, &tok, "H", &[&b]).await);
    // Query by members.value.
    let r = scim(
        &s,
        "GET",
        &gfilter(&format!(r#"members.value eq "{a}""#)),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.ids(), vec![gid.clone()], "{r}");
    let r = scim(
        &s,
        "GET",
        &gfilter(&format!(r#"members[value eq "{b}"]"#)),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.ids(), vec![gid.clone(), other.clone()], "{r}");
    // Remove by a non-id filter: display of b is "D b".
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "remove", "path": "members[display eq \"D b\"]"}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    assert_eq!(members_of(&s, &tok, &other).await, set(&[&b]), "other group untouched");
    // A stale id in Okta's remove is not an error.
    let ghost = fresh_id();
    let r = gpatch(
        &s,
        &tok,
        &gid,
        json!([{"op": "remove", "path": format!("members[value eq \"{ghost}\"]")}]),
    )
    .await;
    assert_204(&r);
    assert_eq!(members_of(&s, &tok, &gid).await, set(&[&a]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_application_json_is_accepted_and_replies_are_scim_json() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let body = serde_json::to_vec(&group_body("Json", &[])).unwrap();
    let r = scim_with(
        &s,
        "POST",
        "/Groups",
        Some(&tok),
        &[("content-type", "application/json")],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );
    let r = scim(&s, "GET", "/Groups", Some(&tok), None).await;
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );
    s.stop().await;
}
