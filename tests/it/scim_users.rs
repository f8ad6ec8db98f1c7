//! SCIM 2.0 `/scim/v2/Users` and discovery, over real HTTPS, against
//! SPEC.md §1 (workspace rules) and §2, IDP-WIRE.md (Okta / Entra wire
//! shapes) and RFC 7643/7644.

use roster::workspace::model::{Actor, MailKind, Management, Role, Status};
use serde_json::{Value, json};

use crate::scim_support::*;
use crate::support::*;

const OKTA_CREATE: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
 "name":{"givenName":"Test","familyName":"User"},
 "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
 "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
 "groups":[],"password":"1mz050nq","active":true}"#;

fn okta_create_body() -> Value {
    serde_json::from_str(OKTA_CREATE).unwrap()
}

#[track_caller]
fn assert_no_password(r: &R) {
    assert!(!r.text.contains("1mz050nq"), "password echoed: {r}");
    assert!(
        !r.text.to_lowercase().contains("\"password\""),
        "password attribute returned: {r}"
    );
}

// ---------------------------------------------------------------- 1, 2: Okta

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_connection_test_lists_users_with_integer_paging_fields() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    create(&s, &tok, "jane@example.com", json!({})).await;

    let r = scim(&s, "GET", "/Users?startIndex=1&count=2", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");
    assert!(r.body["totalResults"].is_u64(), "{r}");
    assert_eq!(r.body["totalResults"], json!(2), "admin + jane: {r}");
    assert_eq!(r.body["startIndex"], json!(1), "{r}");
    assert_eq!(r.body["itemsPerPage"], json!(2), "{r}");
    for u in r.resources() {
        assert!(u["id"].as_str().is_some_and(|x| !x.is_empty()), "{u}");
        assert!(u["userName"].as_str().is_some_and(|x| !x.is_empty()), "{u}");
        assert!(u["active"].is_boolean(), "{u}");
        assert!(u["emails"][0]["value"].as_str().is_some_and(|x| !x.is_empty()), "{u}");
    }
    // The SPEC suite's count=1 variant.
    let r = scim(&s, "GET", "/Users?count=1&startIndex=1", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.resources().len(), 1, "{r}");
    assert_eq!(r.body["itemsPerPage"], json!(1), "{r}");
    assert_eq!(r.body["totalResults"], json!(2), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_create_sequence_filter_post_conflict_get() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let f = filter_path(r#"userName eq "test.user@okta.local""#) + "&startIndex=1&count=100";
    let r = scim(&s, "GET", &f, Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");

    let r = scim(&s, "POST", "/Users", Some(&tok), Some(okta_create_body())).await;
    assert_eq!(r.status, 201, "{r}");
    assert_no_password(&r);
    let id = id_of(&r.body);
    assert!(!id.is_empty() && !id.contains("bulkId"));
    assert_eq!(r.body["userName"], "test.user@okta.local", "{r}");
    assert_eq!(r.body["name"]["givenName"], "Test", "{r}");
    assert_eq!(r.body["name"]["familyName"], "User", "{r}");
    assert_eq!(r.body["displayName"], "Test User", "{r}");
    assert_eq!(r.body["locale"], "en-US", "{r}");
    assert_eq!(r.body["externalId"], "00ujl29u0le5T6Aj10h7", "{r}");
    assert_eq!(r.body["active"], true, "{r}");
    assert_eq!(r.body["emails"][0]["value"], "test.user@okta.local", "{r}");
    assert_eq!(r.body["meta"]["resourceType"], "User", "{r}");
    let location = r.body["meta"]["location"].as_str().unwrap_or_default().to_owned();
    assert!(
        location.starts_with("https://") && location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{r}"
    );
    assert_eq!(
        r.header("location"),
        Some(location.as_str()),
        "Location header = meta.location: {r}"
    );
    assert_eq!(
        r.header("etag"),
        r.body["meta"]["version"].as_str(),
        "ETag = meta.version: {r}"
    );
    assert!(
        r.header("etag").unwrap_or_default().starts_with("W/\""),
        "weak ETag: {r}"
    );
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );

    // Case-insensitive userName match (Okta's "Username Case Sensitivity Check").
    let r = scim(
        &s,
        "GET",
        &filter_path(r#"userName eq "TEST.USER@OKTA.LOCAL""#),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(1), "{r}");
    assert_eq!(r.ids(), vec![id.clone()], "{r}");
    assert_no_password(&r);

    // POST again: 409 uniqueness, and also for a case variant.
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(okta_create_body())).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let mut upper = okta_create_body();
    upper["userName"] = json!("TEST.USER@okta.local");
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(upper)).await;
    assert_scim_error(&r, 409, Some("uniqueness"));

    let r = get_user(&s, &tok, &id).await;
    assert_eq!(r.status, 200, "{r}");
    assert_no_password(&r);
    assert_eq!(r.header("etag"), r.body["meta"]["version"].as_str(), "{r}");
    let r = scim(&s, "GET", "/Users", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_no_password(&r);
    assert_eq!(r.body["totalResults"], json!(2), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_password_is_not_stored_unless_accept_passwords() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(okta_create_body())).await;
    assert_eq!(r.status, 201, "{r}");
    let m = member(&s, uuid_of(&r.body)).await.unwrap();
    assert!(!s.app.config.scim_accept_passwords, "default config");
    assert!(
        m.password_hash.is_none(),
        "password stored although scim.accept_passwords is off"
    );
    assert!(
        !format!("{:?}", m.attributes).contains("1mz050nq"),
        "password kept in attributes"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_profile_update_put_with_whole_object_stores_values() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(okta_create_body())).await;
    assert_eq!(r.status, 201, "{r}");
    let id = id_of(&r.body);
    let mut u = get_user(&s, &tok, &id).await.body;
    u["groups"] = json!([]);
    u["name"]["middleName"] = json!("Q");
    u["name"]["givenName"] = json!("Tess");
    u["displayName"] = json!("Tess Q User");
    u["emails"] = json!([{"primary": true, "value": "test.user@okta.local", "type": "work", "display": "Work"}]);
    u["locale"] = json!("fr-FR");
    u["meta"]["created"] = json!("1999-01-01T00:00:00Z");
    let r = scim(&s, "PUT", &format!("/Users/{id}"), Some(&tok), Some(u)).await;
    assert_eq!(r.status, 200, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.body["id"], json!(id), "{g}");
    assert_eq!(g.body["name"]["middleName"], "Q", "{g}");
    assert_eq!(g.body["name"]["givenName"], "Tess", "{g}");
    assert_eq!(g.body["name"]["familyName"], "User", "{g}");
    assert_eq!(g.body["displayName"], "Tess Q User", "{g}");
    assert_eq!(g.body["locale"], "fr-FR", "{g}");
    assert_eq!(g.body["emails"][0]["display"], "Work", "{g}");
    assert_eq!(g.body["active"], true, "{g}");
    assert_ne!(
        g.body["meta"]["created"], "1999-01-01T00:00:00Z",
        "client meta must be ignored: {g}"
    );
    assert_eq!(r.body, g.body, "PUT answer = later GET");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_create_with_meta_nulls_string_boolean_and_empty_roles() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "entra").await;
    let body = json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "UserName": "Test_User_1@testuser.com",
        "active": "True",
        "emails": [{"primary": true, "type": "work", "value": "Test_User_1@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "addresses": null, "phoneNumbers": null, "title": null,
        ENTERPRISE_URN: {"manager": "mgr-1", "department": "Sales"}
    });
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["userName"], "Test_User_1@testuser.com", "stored as sent: {r}");
    assert_eq!(r.body["active"], true, "{r}");
    assert_eq!(r.body["name"]["formatted"], "givenName familyName", "{r}");
    assert_eq!(r.body[ENTERPRISE_URN]["manager"], json!({"value": "mgr-1"}), "{r}");
    assert_eq!(r.body[ENTERPRISE_URN]["department"], "Sales", "{r}");
    let m = member(&s, uuid_of(&r.body)).await.unwrap();
    assert_eq!(m.role, Role::Member);
    s.stop().await;
}

// ---------------------------------------------------------------- rule 1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_on_verified_domain_is_active_with_added_and_welcome_mails() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, conn) = connection(&s, "okta").await;
    let before = mails(&s).await.len();
    let u = create(&s, &tok, "Alice@Example.com", json!({})).await;
    assert_eq!(status_of(&u), "active", "{u}");
    assert_eq!(u["active"], true, "{u}");
    assert_eq!(u[ROSTER_URN]["managed"], true, "{u}");
    let m = member(&s, uuid_of(&u)).await.unwrap();
    assert_eq!(m.status, Status::Active);
    assert_eq!(m.role, Role::Member);
    assert_eq!(m.management, Management::Managed(conn));

    let all = mails(&s).await;
    assert_eq!(all.len(), before + 2, "added + welcome: {all:#?}");
    let to_alice: Vec<_> = all
        .iter()
        .filter(|m| m.to.eq_ignore_ascii_case("alice@example.com"))
        .collect();
    assert!(
        to_alice.iter().any(|m| m.kind == MailKind::AddedToWorkspace),
        "{to_alice:#?}"
    );
    let welcome = to_alice
        .iter()
        .find(|m| m.kind == MailKind::Welcome)
        .unwrap_or_else(|| panic!("no welcome mail: {to_alice:#?}"));
    assert!(welcome.body.contains("/password/set?token=rst_"), "{}", welcome.body);
    assert!(
        welcome.body.contains(&s.app.config.public_url),
        "absolute link: {}",
        welcome.body
    );
    assert!(!to_alice.iter().any(|m| m.kind == MailKind::Invite), "{to_alice:#?}");
    assert_eq!(link_count(&s, m.id).await, 1, "one set-password link");
    let rows = audit(&s).await;
    assert_eq!(
        audit_rows(&rows, conn, "member.created", &m.id.to_string()).len(),
        1,
        "{rows:#?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_on_unverified_domain_invites() {
    let s = TestServer::start().await;
    domain(&s, "pending.com", false).await;
    let (tok, _) = connection(&s, "okta").await;
    let before = mails(&s).await.len();
    let u = create(&s, &tok, "bob@pending.com", json!({})).await;
    assert_eq!(status_of(&u), "invited", "{u}");
    assert_eq!(u["active"], true, "invited counts as active for the IdP: {u}");
    // A domain the workspace has never heard of is not verified either.
    let v = create(&s, &tok, "carol@elsewhere.org", json!({})).await;
    assert_eq!(status_of(&v), "invited", "{v}");

    let all = mails(&s).await;
    assert_eq!(all.len(), before + 2, "{all:#?}");
    for who in ["bob@pending.com", "carol@elsewhere.org"] {
        let to: Vec<_> = all.iter().filter(|m| m.to.eq_ignore_ascii_case(who)).collect();
        assert_eq!(to.len(), 1, "{to:#?}");
        assert_eq!(to[0].kind, MailKind::Invite, "{to:#?}");
        assert!(to[0].body.contains("/invite/accept?token="), "{}", to[0].body);
    }
    assert_eq!(link_count(&s, uuid_of(&u)).await, 1);
    s.stop().await;
}

// ---------------------------------------------------------------- rule 2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_links_existing_unmanaged_member_keeping_id_and_role() {
    let s = TestServer::start().await;
    let (a, conn_a) = connection(&s, "okta").await;
    let (b, _) = connection(&s, "entra").await;
    let admin0 = admin(&s).await;
    assert_eq!(admin0.management, Management::Unmanaged);
    let before = audit(&s).await.len();

    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&a),
        Some(user_body("ADMIN@localhost", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["id"], json!(admin0.id.to_string()), "same id: {r}");
    assert_eq!(r.body[ROSTER_URN]["managed"], true, "{r}");
    assert_eq!(r.body[ROSTER_URN]["status"], "active", "{r}");
    assert!(r.header("location").is_some(), "{r}");
    let m = member(&s, admin0.id).await.unwrap();
    assert_eq!(m.management, Management::Managed(conn_a));
    assert_eq!(m.role, Role::Admin, "absent roles keep the role on link");
    assert_eq!(m.status, Status::Active);
    assert_eq!(m.created_ms, admin0.created_ms, "keeps history");
    let rows = audit(&s).await;
    assert!(rows.len() > before, "{rows:#?}");
    assert_eq!(
        audit_rows(&rows, conn_a, "member.linked", &admin0.id.to_string()).len(),
        1,
        "{rows:#?}"
    );
    let after_link = rows.len();
    assert_eq!(list_all(&s, &a).await.len(), 1, "no duplicate");

    // Now managed by A: A again → 409; B → 409.
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&a),
        Some(user_body("admin@localhost", json!({}))),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&b),
        Some(user_body("admin@LOCALHOST", json!({}))),
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    assert_scim_error(&r, 409, None);
    assert_eq!(
        member(&s, admin0.id).await.unwrap().management,
        Management::Managed(conn_a)
    );
    assert_eq!(audit(&s).await.len(), after_link, "refused creates leave no audit row");
    s.stop().await;
}

// ---------------------------------------------------------------- rule 3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_map_case_insensitively_admin_wins_unknown_is_member() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let cases = [
        ("r1@example.com", json!({"roles": [{"value": "Admin"}]}), Role::Admin),
        ("r2@example.com", json!({"roles": [{"value": "owner"}]}), Role::Member),
        (
            "r3@example.com",
            json!({"roles": [{"value": "member"}, {"value": "ADMIN"}]}),
            Role::Admin,
        ),
        ("r4@example.com", json!({}), Role::Member),
        ("r5@example.com", json!({"roles": []}), Role::Member),
    ];
    for (email, extra, want) in cases {
        let u = create(&s, &tok, email, extra.clone()).await;
        let m = member(&s, uuid_of(&u)).await.unwrap();
        assert_eq!(m.role, want, "{email} {extra}");
        let want_s = if want == Role::Admin { "admin" } else { "member" };
        let roles = u["roles"].as_array().cloned().unwrap_or_default();
        assert!(
            roles
                .iter()
                .any(|r| r["value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(want_s))),
            "{email}: roles {roles:?}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_without_roles_keeps_role_and_patch_roles_downgrades() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, conn) = connection(&s, "okta").await;
    let u = create(&s, &tok, "boss@example.com", json!({"roles": [{"value": "admin"}]})).await;
    let id = id_of(&u);
    let put = user_body("boss@example.com", json!({"displayName": "The Boss"}));
    let r = scim(&s, "PUT", &format!("/Users/{id}"), Some(&tok), Some(put)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["displayName"], "The Boss", "{r}");
    assert_eq!(
        member(&s, uuid_of(&u)).await.unwrap().role,
        Role::Admin,
        "PUT without roles keeps admin"
    );

    // admin@localhost is another active admin, so a downgrade is allowed.
    let by_conn = |rows: &[roster::workspace::model::AuditEntry]| {
        rows.iter()
            .filter(|e| e.target == format!("member:{id}"))
            .filter(|e| matches!(&e.actor, Actor::Connection { id, .. } if *id == conn))
            .count()
    };
    let rows = audit(&s).await;
    let (before, before_conn) = (rows.len(), by_conn(&rows));
    let body = patch(json!([{"op": "replace", "path": "roles", "value": [{"value": "member"}]}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(body)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(member(&s, uuid_of(&u)).await.unwrap().role, Role::Member);
    let rows = audit(&s).await;
    assert_eq!(rows.len(), before + 1, "{rows:#?}");
    assert_eq!(by_conn(&rows), before_conn + 1, "{rows:#?}");

    // PUT with roles admin upgrades again.
    let put = user_body(
        "boss@example.com",
        json!({"roles": [{"value": "Admin", "primary": true}]}),
    );
    let r = scim(&s, "PUT", &format!("/Users/{id}"), Some(&tok), Some(put)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(member(&s, uuid_of(&u)).await.unwrap().role, Role::Admin);
    s.stop().await;
}

// ---------------------------------------------------------------- rule 4

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_deactivate_suspends_revokes_sessions_and_links_then_reactivates() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, conn) = connection(&s, "okta").await;
    let u = create(&s, &tok, "dee@example.com", json!({})).await;
    let id = id_of(&u);
    let uid = uuid_of(&u);
    add_session(&s, uid, "rst_sess_dee").await;
    assert!(has_session(&s, "rst_sess_dee").await);
    assert_eq!(link_count(&s, uid).await, 1, "welcome link outstanding");

    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    if r.status == 200 {
        assert_eq!(r.body["active"], false, "{r}");
    }
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.status, 200, "deactivated users are still readable: {g}");
    assert_eq!(g.body["active"], false, "{g}");
    assert_eq!(status_of(&g.body), "suspended", "{g}");
    assert!(!has_session(&s, "rst_sess_dee").await, "session must be revoked");
    assert_eq!(link_count(&s, uid).await, 0, "one-time links must be revoked");
    let rows = audit(&s).await;
    assert_eq!(audit_rows(&rows, conn, "member.suspended", &id).len(), 1, "{rows:#?}");
    // Still listed; active eq false finds it.
    let r = scim(&s, "GET", &filter_path("active eq false"), Some(&tok), None).await;
    assert_eq!(r.ids(), vec![id.clone()], "{r}");

    let on = patch(json!([{"op": "replace", "value": {"active": true}}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(on)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.body["active"], true, "{g}");
    assert_eq!(status_of(&g.body), "active", "{g}");
    let rows = audit(&s).await;
    assert_eq!(audit_rows(&rows, conn, "member.restored", &id).len(), 1, "{rows:#?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactivating_a_never_accepted_invite_restores_invited() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "ivy@unverified.test", json!({})).await;
    let id = id_of(&u);
    assert_eq!(status_of(&u), "invited");
    assert_eq!(link_count(&s, uuid_of(&u)).await, 1);
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(status_of(&g.body), "suspended", "{g}");
    assert_eq!(g.body["active"], false, "{g}");
    assert_eq!(link_count(&s, uuid_of(&u)).await, 0, "invite link revoked");
    let on = patch(json!([{"op": "replace", "path": "active", "value": true}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(on)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(status_of(&g.body), "invited", "never accepted → invited: {g}");
    assert_eq!(g.body["active"], true, "{g}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_string_boolean_disable_and_add_enable() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "entra").await;
    let u = create(&s, &tok, "eve@example.com", json!({})).await;
    let id = id_of(&u);
    let off = patch(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.body["active"], false, "{g}");
    assert_eq!(status_of(&g.body), "suspended", "{g}");
    // Entra also uses Add to set active, with a lowercase string.
    let on = patch(json!([{"op": "Add", "path": "active", "value": "true"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(on)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.body["active"], true, "{g}");
    assert_eq!(status_of(&g.body), "active", "{g}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_active_false_deprovisions() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "pat@example.com", json!({})).await;
    let id = id_of(&u);
    add_session(&s, uuid_of(&u), "rst_sess_pat").await;
    let put = user_body("pat@example.com", json!({"active": false}));
    let r = scim(&s, "PUT", &format!("/Users/{id}"), Some(&tok), Some(put)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["active"], false, "{r}");
    assert_eq!(status_of(&r.body), "suspended", "{r}");
    assert!(!has_session(&s, "rst_sess_pat").await);
    assert_eq!(link_count(&s, uuid_of(&u)).await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_softly_and_a_new_create_relinks_same_id() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, conn) = connection(&s, "entra").await;
    let u = create(&s, &tok, "del@example.com", json!({"externalId": "ext-del"})).await;
    let id = id_of(&u);
    add_session(&s, uuid_of(&u), "rst_sess_del").await;
    let r = scim(&s, "DELETE", &format!("/Users/{id}"), Some(&tok), None).await;
    assert_eq!(r.status, 204, "{r}");
    assert!(r.text.is_empty(), "{r}");
    assert!(!has_session(&s, "rst_sess_del").await);
    assert_eq!(link_count(&s, uuid_of(&u)).await, 0);
    let g = get_user(&s, &tok, &id).await;
    assert_scim_error(&g, 404, None);
    assert!(
        !list_all(&s, &tok).await.iter().any(|x| x["id"] == json!(id)),
        "removed are not listed"
    );
    let f = scim(
        &s,
        "GET",
        &filter_path(r#"userName eq "del@example.com""#),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(f.body["totalResults"], json!(0), "{f}");
    let f = scim(&s, "GET", &filter_path(&format!(r#"id eq "{id}""#)), Some(&tok), None).await;
    assert_eq!(f.body["totalResults"], json!(0), "{f}");
    let f = scim(&s, "GET", &filter_path(r#"externalId eq "ext-del""#), Some(&tok), None).await;
    assert_eq!(f.body["totalResults"], json!(0), "{f}");
    // PUT/PATCH/DELETE on a removed member: 404 as well.
    let r = scim(&s, "DELETE", &format!("/Users/{id}"), Some(&tok), None).await;
    assert_scim_error(&r, 404, None);
    let r = scim(
        &s,
        "PUT",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(user_body("del@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 404, None);
    let m = member(&s, uuid_of(&u)).await.expect("data kept");
    assert_eq!(m.status, Status::Removed);
    assert_eq!(m.email, "del@example.com");
    let rows = audit(&s).await;
    assert_eq!(audit_rows(&rows, conn, "member.removed", &id).len(), 1, "{rows:#?}");

    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("Del@example.com", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["id"], json!(id), "same member comes back: {r}");
    assert_eq!(get_user(&s, &tok, &id).await.status, 200);
    s.stop().await;
}

// ---------------------------------------------------------------- rule 5

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_active_admin_cannot_be_suspended_removed_or_downgraded() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("admin@localhost", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let id = id_of(&r.body);
    let m0 = admin(&s).await;
    let g0 = get_user(&s, &tok, &id).await.body;
    let audit0 = audit(&s).await.len();
    let errs0 = sync_errors(&s).await.len();

    let attempts: Vec<(&str, Option<Value>)> = vec![
        (
            "PATCH",
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        ),
        (
            "PATCH",
            Some(patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
        ),
        (
            "PATCH",
            Some(patch(
                json!([{"op": "replace", "path": "roles", "value": [{"value": "member"}]}]),
            )),
        ),
        ("PUT", Some(user_body("admin@localhost", json!({"active": false})))),
        (
            "PUT",
            Some(user_body("admin@localhost", json!({"roles": [{"value": "member"}]}))),
        ),
        ("DELETE", None),
    ];
    for (n, (method, body)) in attempts.into_iter().enumerate() {
        let r = scim(&s, method, &format!("/Users/{id}"), Some(&tok), body.clone()).await;
        assert_scim_error(&r, 409, None);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("last active admin"),
            "{method} {body:?}: {r}"
        );
        let m = admin(&s).await;
        assert_eq!(
            (m.role, m.status, m.version),
            (m0.role, m0.status, m0.version),
            "{method} changed it"
        );
        assert_eq!(get_user(&s, &tok, &id).await.body, g0);
        assert_eq!(audit(&s).await.len(), audit0, "no audit row for a refused change");
        assert_eq!(
            sync_errors(&s).await.len(),
            errs0 + n + 1,
            "each refusal is a sync error"
        );
    }
    let e = sync_errors(&s).await;
    assert!(
        e.iter().any(|e| e.target.contains(&id) || e.detail.contains("admin")),
        "{e:#?}"
    );

    // An invited admin is not an *active* admin: still refused.
    let inv = create(&s, &tok, "boss@unverified.test", json!({"roles": [{"value": "admin"}]})).await;
    assert_eq!(status_of(&inv), "invited");
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(off.clone())).await;
    assert_scim_error(&r, 409, None);

    // A second active admin makes it allowed.
    let b = create(&s, &tok, "boss@example.com", json!({"roles": [{"value": "admin"}]})).await;
    assert_eq!(status_of(&b), "active");
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(admin(&s).await.status, Status::Suspended);
    // ...and now boss is the last one.
    let r = scim(&s, "DELETE", &format!("/Users/{}", id_of(&b)), Some(&tok), None).await;
    assert_scim_error(&r, 409, None);
    s.stop().await;
}

// ---------------------------------------------------------------- rule 8

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_connection_cannot_write_a_managed_member_but_can_read_it() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (a, _) = connection(&s, "okta").await;
    let (b, _) = connection(&s, "entra").await;
    let u = create(&s, &a, "owned@example.com", json!({})).await;
    let id = id_of(&u);
    let g0 = get_user(&s, &a, &id).await.body;
    let audit0 = audit(&s).await.len();
    let writes: Vec<(&str, Option<Value>)> = vec![
        (
            "PUT",
            Some(user_body("owned@example.com", json!({"displayName": "hijack"}))),
        ),
        (
            "PATCH",
            Some(patch(
                json!([{"op": "replace", "path": "displayName", "value": "hijack"}]),
            )),
        ),
        (
            "PATCH",
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        ),
        ("DELETE", None),
    ];
    for (method, body) in writes {
        let r = scim(&s, method, &format!("/Users/{id}"), Some(&b), body).await;
        assert_scim_error(&r, 403, None);
        assert_eq!(get_user(&s, &a, &id).await.body, g0, "{method} changed it");
    }
    assert_eq!(audit(&s).await.len(), audit0);
    let r = get_user(&s, &b, &id).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body, g0);
    assert!(list_all(&s, &b).await.iter().any(|x| x["id"] == json!(id)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_never_touches_an_unmanaged_member() {
    let s = TestServer::start().await;
    let (a, _) = connection(&s, "okta").await;
    let adm = admin(&s).await;
    let id = adm.id.to_string();
    // Listed for import, and shown as unmanaged.
    assert!(list_all(&s, &a).await.iter().any(|x| x["id"] == json!(id)));
    assert_eq!(get_user(&s, &a, &id).await.body[ROSTER_URN]["managed"], false);
    let audit0 = audit(&s).await.len();
    let r = scim(&s, "DELETE", &format!("/Users/{id}"), Some(&a), None).await;
    assert_scim_error(&r, 403, None);
    assert_eq!(admin(&s).await, adm, "unchanged");
    assert_eq!(audit(&s).await.len(), audit0);
    s.stop().await;
}

/// SPEC rule 8 says unmanaged members are touched only by rule-2 linking
/// (a create), but IDP-WIRE §1.2 says Okta, having found a person with its
/// `userName eq` filter, does not POST: it links on its side and PUTs. The
/// server therefore links an unmanaged member on a PUT/PATCH too; this pins
/// that down: the write links (audited as a link), and from then on only
/// that connection may write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_or_patch_on_an_unmanaged_member_links_it_to_the_writer() {
    let writes: Vec<(&str, Value)> = vec![
        ("PUT", user_body("admin@localhost", json!({"displayName": "Linked"}))),
        (
            "PATCH",
            patch(json!([{"op": "replace", "path": "displayName", "value": "Linked"}])),
        ),
    ];
    for (method, body) in writes {
        let s = TestServer::start().await;
        let (a, conn_a) = connection(&s, "okta").await;
        let (b, _) = connection(&s, "entra").await;
        let adm = admin(&s).await;
        let id = adm.id.to_string();
        let r = scim(&s, method, &format!("/Users/{id}"), Some(&a), Some(body.clone())).await;
        assert!(r.status == 200 || r.status == 204, "{method}: {r}");
        let m = admin(&s).await;
        assert_eq!(m.management, Management::Managed(conn_a), "{method}");
        assert_eq!(m.display_name.as_deref(), Some("Linked"), "{method}");
        assert_eq!(m.role, Role::Admin, "{method}: no roles in the write keeps the role");
        let rows = audit(&s).await;
        assert_eq!(
            audit_rows(&rows, conn_a, "member.linked", &id).len(),
            1,
            "{method}: {rows:#?}"
        );
        let r = scim(&s, method, &format!("/Users/{id}"), Some(&b), Some(body)).await;
        assert_scim_error(&r, 403, None);
        s.stop().await;
    }
}

// ---------------------------------------------------------------- rule 9

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scim_change_is_audited_and_failures_are_not() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, conn) = connection(&s, "okta").await;
    let u = create(&s, &tok, "aud@example.com", json!({})).await;
    let id = id_of(&u);
    let n0 = audit(&s).await.len();
    let put = user_body("aud@example.com", json!({"displayName": "Audited"}));
    assert_eq!(
        scim(&s, "PUT", &format!("/Users/{id}"), Some(&tok), Some(put))
            .await
            .status,
        200
    );
    let p = patch(json!([{"op": "replace", "path": "nickName", "value": "au"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(p)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let rows = audit(&s).await;
    assert_eq!(rows.len(), n0 + 2, "{rows:#?}");
    assert_eq!(audit_rows(&rows, conn, "member.updated", &id).len(), 2, "{rows:#?}");

    // Failures: duplicate, bad patch, bad JSON, 404, 412: no rows.
    let n1 = rows.len();
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("AUD@example.com", json!({}))),
    )
    .await;
    assert_eq!(r.status, 409, "{r}");
    let p = patch(json!([{"op": "replace", "path": "id", "value": "x"}]));
    assert_eq!(
        scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(p))
            .await
            .status,
        400
    );
    let r = scim_with(&s, "POST", "/Users", Some(&tok), &[], Some(b"{\"userName\":".to_vec())).await;
    assert_eq!(r.status, 400, "{r}");
    let p = patch(json!([{"op": "replace", "path": "nickName", "value": "zz"}]));
    let r = scim_with(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        &[("if-match", "W/\"nope\"")],
        Some(serde_json::to_vec(&p).unwrap()),
    )
    .await;
    assert_eq!(r.status, 412, "{r}");
    assert_eq!(audit(&s).await.len(), n1, "failed requests must not add audit rows");

    // A no-op write is allowed to be audited or not, but the DELETE is.
    let r = scim(&s, "DELETE", &format!("/Users/{id}"), Some(&tok), None).await;
    assert_eq!(r.status, 204, "{r}");
    let rows = audit(&s).await;
    assert_eq!(audit_rows(&rows, conn, "member.removed", &id).len(), 1, "{rows:#?}");
    s.stop().await;
}

// ---------------------------------------------------------------- filters

async fn filter_ids(s: &TestServer, tok: &str, filter: &str) -> Vec<String> {
    let r = scim(s, "GET", &filter_path(filter), Some(tok), None).await;
    assert_eq!(r.status, 200, "filter {filter:?}: {r}");
    assert_eq!(r.body["totalResults"], json!(r.resources().len()), "{r}");
    let mut ids = r.ids();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_follow_rfc7644_grammar_and_case_rules() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let a = id_of(
        &create(
            &s,
            &tok,
            "ann@example.com",
            json!({"externalId": "ExtAnn", "name": {"givenName": "Ann", "familyName": "Smith"},
                   ENTERPRISE_URN: {"employeeNumber": "701984"}}),
        )
        .await,
    );
    let b = id_of(
        &create(
            &s,
            &tok,
            "ben@other.org",
            json!({"externalId": "ExtBen", "name": {"givenName": "Ben", "familyName": "Smithers"},
                   "emails": [{"value": "ben@other.org", "type": "work", "primary": true},
                              {"value": "ben.home@example.com", "type": "home"}]}),
        )
        .await,
    );
    let c = id_of(
        &create(
            &s,
            &tok,
            "cat@example.com",
            json!({"externalId": "ExtCat", "name": {"givenName": "Cat", "familyName": "Jones"}}),
        )
        .await,
    );
    let adm = admin(&s).await.id.to_string();
    let all = sorted(vec![a.clone(), b.clone(), c.clone(), adm.clone()]);

    assert_eq!(
        filter_ids(&s, &tok, r#"userName eq "ann@example.com""#).await,
        vec![a.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"USERNAME EQ "ANN@EXAMPLE.COM""#).await,
        vec![a.clone()]
    );
    assert_eq!(filter_ids(&s, &tok, r#"externalId eq "ExtBen""#).await, vec![b.clone()]);
    assert_eq!(
        filter_ids(&s, &tok, r#"externalId eq "extben""#).await,
        Vec::<String>::new(),
        "caseExact"
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"emails.value eq "BEN.HOME@example.com""#).await,
        vec![b.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"emails eq "cat@example.com""#).await,
        vec![c.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"emails[type eq "work" and value co "@example.com"]"#).await,
        sorted(vec![a.clone(), c.clone()]),
        "ben's example.com address is a home one"
    );
    assert_eq!(filter_ids(&s, &tok, &format!(r#"id eq "{c}""#)).await, vec![c.clone()]);
    assert_eq!(
        filter_ids(&s, &tok, r#"name.familyName sw "smith""#).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"name.familyName ew "ERS""#).await,
        vec![b.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"name.givenName pr and name.givenName ne "Ann""#).await,
        sorted(vec![b.clone(), c.clone()])
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"not (userName eq "ann@example.com")"#).await,
        sorted(vec![b.clone(), c.clone(), adm.clone()])
    );
    // and binds tighter than or.
    assert_eq!(
        filter_ids(
            &s,
            &tok,
            r#"userName eq "ann@example.com" or userName eq "ben@other.org" and userName eq "cat@example.com""#
        )
        .await,
        vec![a.clone()]
    );
    assert_eq!(
        filter_ids(
            &s,
            &tok,
            r#"(userName eq "ann@example.com" or userName eq "ben@other.org") and name.familyName sw "Smith""#
        )
        .await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        filter_ids(&s, &tok, &format!(r#"{ENTERPRISE_URN}:employeeNumber eq "701984""#)).await,
        vec![a.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"meta.created gt "2000-01-01T00:00:00Z""#).await,
        all
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"meta.created gt "2999-01-01T00:00:00Z""#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"meta.lastModified le "2999-01-01T00:00:00Z""#).await,
        all
    );
    assert_eq!(filter_ids(&s, &tok, "active eq true").await, all);
    assert_eq!(filter_ids(&s, &tok, "active eq false").await, Vec::<String>::new());
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let r = scim(&s, "PATCH", &format!("/Users/{b}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(filter_ids(&s, &tok, "active eq false").await, vec![b.clone()]);
    assert_eq!(filter_ids(&s, &tok, r#"nosuchattr eq "x""#).await, Vec::<String>::new());
    s.stop().await;
}

/// `emails.value eq` finds a member by their userName and by any other
/// address, and follows changes of both (the index keeps rows only for the
/// addresses other than the userName; the userName comes from its own index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_lookup_follows_username_and_email_changes() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let id = id_of(
        &create(
            &s,
            &tok,
            "dora@example.com",
            json!({"emails": [{"value": "dora@example.com", "primary": true},
                              {"value": "Dora.Home@example.com", "type": "home"}]}),
        )
        .await,
    );
    let q = |e: &str| format!(r#"emails.value eq "{e}""#);
    for e in ["dora@example.com", "DORA@example.com", "dora.home@example.com"] {
        assert_eq!(filter_ids(&s, &tok, &q(e)).await, vec![id.clone()], "{e}");
    }
    // New userName; the old one stays as a second address.
    patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "userName", "value": "dora.new@example.com"},
               {"op": "replace", "path": "emails", "value": [
                   {"value": "dora.new@example.com", "primary": true},
                   {"value": "dora@example.com", "type": "other"}]}]),
    )
    .await;
    for e in ["dora.new@example.com", "dora@example.com"] {
        assert_eq!(filter_ids(&s, &tok, &q(e)).await, vec![id.clone()], "{e}");
    }
    assert_eq!(
        filter_ids(&s, &tok, &q("dora.home@example.com")).await,
        Vec::<String>::new()
    );
    // Back to one address: the dropped ones find nobody.
    patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "emails", "value": [{"value": "dora.new@example.com", "primary": true}]}]),
    )
    .await;
    assert_eq!(filter_ids(&s, &tok, &q("dora@example.com")).await, Vec::<String>::new());
    assert_eq!(filter_ids(&s, &tok, &q("dora.new@example.com")).await, vec![id.clone()]);
    // The index rows themselves: only dora's non-userName addresses ever had
    // one, and none is left.
    let rows = s
        .app
        .store
        .read(|txn| {
            let t = txn.open_table(roster::store::tables::MEMBER_BY_ANY_EMAIL)?;
            Ok(redb::ReadableTableMetadata::len(&t)?)
        })
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_400_invalid_filter_and_entra_test_connection_is_empty_200() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "entra").await;
    let r = scim(
        &s,
        "GET",
        &filter_path(r#"userName eq "5b0c2d8e-6f3a-4b1c-9d2e-7a8f9e0b1c2d""#),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(0), "{r}");
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");

    let long = format!(r#"userName eq "{}""#, "a".repeat(5000));
    let deep = format!("{}userName eq \"x\"{}", "(".repeat(30), ")".repeat(30));
    let bad = [
        "userName eq",
        r#"userName zz "x""#,
        r#"userName eq "x" and"#,
        r#"(userName eq "x""#,
        r#"userName eq "unterminated"#,
        "not userName eq \"x\"",
        r#"emails[type eq "work""#,
        r#"active gt true"#,
        long.as_str(),
        deep.as_str(),
    ];
    for f in bad {
        let r = scim(&s, "GET", &filter_path(f), Some(&tok), None).await;
        assert_eq!(r.status, 400, "filter {:?}: {r}", &f[..f.len().min(60)]);
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
    s.stop().await;
}

// ---------------------------------------------------------------- paging, sorting, projection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_and_one_based_with_count_zero_and_caps() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    for i in 0..12 {
        create(&s, &tok, &format!("p{i:02}@example.com"), json!({})).await;
    }
    let total = 13; // + admin@localhost
    let full: Vec<String> = list_all(&s, &tok).await.iter().map(id_of).collect();
    assert_eq!(full.len(), total);

    let mut paged = Vec::new();
    for start in [1, 6, 11] {
        let r = scim(
            &s,
            "GET",
            &format!("/Users?startIndex={start}&count=5"),
            Some(&tok),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.body["startIndex"], json!(start), "{r}");
        assert_eq!(r.body["totalResults"], json!(total), "{r}");
        let want = (total - (start - 1)).min(5);
        assert_eq!(r.resources().len(), want, "{r}");
        assert_eq!(r.body["itemsPerPage"], json!(want), "{r}");
        paged.extend(r.ids());
    }
    assert_eq!(paged, full, "pages concatenate to the full, stable listing");
    // Same page twice: same answer.
    let p1 = scim(&s, "GET", "/Users?startIndex=6&count=5", Some(&tok), None)
        .await
        .ids();
    let p2 = scim(&s, "GET", "/Users?startIndex=6&count=5", Some(&tok), None)
        .await
        .ids();
    assert_eq!(p1, p2);

    let r = scim(&s, "GET", "/Users?count=0", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(total), "{r}");
    assert!(r.resources().is_empty(), "count=0 returns no resources: {r}");
    let r = scim(&s, "GET", "/Users?count=-3", Some(&tok), None).await;
    assert_eq!(r.status, 200, "negative count is 0: {r}");
    assert!(r.resources().is_empty(), "{r}");

    for start in ["0", "-5"] {
        let r = scim(
            &s,
            "GET",
            &format!("/Users?startIndex={start}&count=5"),
            Some(&tok),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.body["startIndex"], json!(1), "{r}");
        assert_eq!(r.ids(), full[..5].to_vec(), "{r}");
    }
    let r = scim(&s, "GET", "/Users?startIndex=100&count=5", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(total), "{r}");
    assert!(r.resources().is_empty(), "{r}");

    let spc = scim(&s, "GET", "/ServiceProviderConfig", Some(&tok), None).await;
    let max = spc.body["filter"]["maxResults"].as_u64().expect("filter.maxResults");
    assert!(max <= 1000, "pages are capped at 1000: {spc}");
    let r = scim(&s, "GET", "/Users?count=5000", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert!(r.resources().len() as u64 <= max.min(1000), "{r}");
    assert_eq!(r.resources().len(), total, "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_username_both_orders() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    for n in ["mike", "Alpha", "zed", "bravo"] {
        create(&s, &tok, &format!("{n}@example.com"), json!({})).await;
    }
    let names = |r: &R| -> Vec<String> {
        r.resources()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let r = scim(&s, "GET", "/Users?sortBy=userName", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    let mut want = names(&r);
    want.sort();
    assert_eq!(names(&r), want, "ascending by default, case-insensitively: {r}");
    let r = scim(
        &s,
        "GET",
        "/Users?sortBy=userName&sortOrder=descending",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    want.reverse();
    assert_eq!(names(&r), want, "{r}");
    let r = scim(
        &s,
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(names(&r), want[1..3].to_vec(), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_and_excluded_attributes_project_responses() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "proj@example.com", json!({})).await;
    let id = id_of(&u);
    let r = scim(&s, "GET", "/Users?attributes=userName", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    for res in r.resources() {
        let keys: Vec<&String> = res.as_object().unwrap().keys().collect();
        assert!(
            keys.iter().any(|k| *k == "id") && keys.iter().any(|k| *k == "userName"),
            "{res}"
        );
        for k in &keys {
            assert!(
                ["id", "userName", "schemas", "meta"].contains(&k.as_str()),
                "unexpected {k}: {res}"
            );
        }
    }
    let r = scim(
        &s,
        "GET",
        &format!("/Users/{id}?attributes=name.givenName,emails.value"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["name"], json!({"givenName": "G-proj"}), "{r}");
    assert_eq!(r.body["emails"], json!([{"value": "proj@example.com"}]), "{r}");
    assert!(r.body.get("displayName").is_none(), "{r}");

    let r = scim(
        &s,
        "GET",
        &format!("/Users/{id}?excludedAttributes=emails,id"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(r.body.get("emails").is_none(), "{r}");
    assert_eq!(r.body["id"], json!(id), "id is returned always: {r}");
    assert_eq!(r.body["userName"], "proj@example.com", "{r}");
    let r = scim(&s, "GET", "/Users?excludedAttributes=emails", Some(&tok), None).await;
    assert!(
        r.resources()
            .iter()
            .all(|x| x.get("emails").is_none() && x.get("userName").is_some()),
        "{r}"
    );

    // Applies to write responses too (RFC 7644 §3.9).
    let p = patch(json!([{"op": "replace", "path": "displayName", "value": "P"}]));
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}?attributes=displayName"),
        Some(&tok),
        Some(p),
    )
    .await;
    assert_eq!(r.status, 200, "PATCH with attributes must answer 200 + body: {r}");
    assert_eq!(r.body["displayName"], "P", "{r}");
    assert!(r.body.get("emails").is_none(), "{r}");
    s.stop().await;
}

// ---------------------------------------------------------------- PATCH

async fn patch_ok(s: &TestServer, tok: &str, id: &str, ops: Value) -> Value {
    let r = scim(s, "PATCH", &format!("/Users/{id}"), Some(tok), Some(patch(ops.clone()))).await;
    assert!(r.status == 200 || r.status == 204, "{ops}: {r}");
    let g = get_user(s, tok, id).await;
    assert_eq!(g.status, 200, "{g}");
    if r.status == 200 {
        assert_eq!(r.body, g.body, "PATCH answer = later GET");
    }
    g.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_patch_dialects_are_understood() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "entra").await;
    let u = create(
        &s,
        &tok,
        "pd@example.com",
        json!({"emails": [{"value": "pd.home@example.org", "type": "home"}]}),
    )
    .await;
    let id = id_of(&u);

    // Path-less replace with dotted and URN-qualified keys.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "value": {
            "displayName": "PD New", "name.givenName": "Pe", "name.familyName": "Dee",
            format!("{ENTERPRISE_URN}:department"): "Ops",
            format!("{ENTERPRISE_URN}:employeeNumber"): "42"}}]),
    )
    .await;
    assert_eq!(g["displayName"], "PD New", "{g}");
    assert_eq!(g["name"]["givenName"], "Pe", "{g}");
    assert_eq!(g["name"]["familyName"], "Dee", "{g}");
    assert_eq!(g[ENTERPRISE_URN]["department"], "Ops", "{g}");
    assert_eq!(g[ENTERPRISE_URN]["employeeNumber"], "42", "{g}");
    assert!(g.get("name.givenName").is_none(), "dotted key stored literally: {g}");
    assert!(g["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE_URN)), "{g}");

    // Replace on a work email that does not exist creates it.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "pd.work@example.com"}]),
    )
    .await;
    let emails = g["emails"].as_array().cloned().unwrap_or_default();
    assert!(
        emails
            .iter()
            .any(|e| e["type"] == "work" && e["value"] == "pd.work@example.com"),
        "{g}"
    );
    assert!(
        emails
            .iter()
            .any(|e| e["type"] == "home" && e["value"] == "pd.home@example.org"),
        "{g}"
    );
    // ...and replacing it again changes the same element, not a second one.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "pd.work2@example.com"}]),
    )
    .await;
    let work: Vec<_> = g["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "work")
        .collect();
    assert_eq!(work.len(), 1, "{g}");
    assert_eq!(work[0]["value"], "pd.work2@example.com", "{g}");

    // Add on a single-valued attribute.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Add", "path": "nickName", "value": "Babs"}]),
    )
    .await;
    assert_eq!(g["nickName"], "Babs", "{g}");
    // Attribute names in paths are case-insensitive.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "Name.GivenName", "value": "Pia"}]),
    )
    .await;
    assert_eq!(g["name"]["givenName"], "Pia", "{g}");

    // Manager as a bare string → returned as {"value": ...}.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Add", "path": format!("{ENTERPRISE_URN}:manager"), "value": "boss-1"}]),
    )
    .await;
    assert_eq!(g[ENTERPRISE_URN]["manager"], json!({"value": "boss-1"}), "{g}");
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Replace", "path": format!("{ENTERPRISE_URN}:manager"), "value": "boss-2"}]),
    )
    .await;
    assert_eq!(g[ENTERPRISE_URN]["manager"]["value"], "boss-2", "{g}");
    // Replace with empty clears the manager (gallery SCIM_Update_Manager_Test).
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Replace", "path": format!("{ENTERPRISE_URN}:manager"), "value": ""}]),
    )
    .await;
    let mgr = &g[ENTERPRISE_URN]["manager"];
    assert!(mgr.is_null() || mgr["value"].is_null(), "manager cleared: {g}");

    // "" and null clear (SCIM_Null_Update_Test).
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "nickName", "value": ""}]),
    )
    .await;
    assert!(g.get("nickName").is_none_or(|v| v.is_null() || v == ""), "{g}");
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "path": "displayName", "value": null}]),
    )
    .await;
    assert!(g.get("displayName").is_none_or(|v| v.is_null()), "{g}");
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "value": {"locale": null, "title": ""}}]),
    )
    .await;
    assert!(g.get("locale").is_none_or(|v| v.is_null()), "{g}");
    assert!(g.get("title").is_none_or(|v| v.is_null() || v == ""), "{g}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_errors_are_scim_400s_and_okta_own_id_is_accepted() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "pe@example.com", json!({})).await;
    let id = id_of(&u);

    // Okta: path-less replace carrying the resource's own id.
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "replace", "value": {"id": id, "displayName": "Okta Name"}}]),
    )
    .await;
    assert_eq!(g["displayName"], "Okta Name", "{g}");
    assert_eq!(g["id"], json!(id));

    let before = get_user(&s, &tok, &id).await.body;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "name..givenName", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "another-id"}]),
            "mutability",
        ),
        (json!([{"op": "replace", "value": {"id": "another-id"}}]), "mutability"),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                   {"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                   {"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
    ];
    for (ops, scim_type) in cases {
        let r = scim(
            &s,
            "PATCH",
            &format!("/Users/{id}"),
            Some(&tok),
            Some(patch(ops.clone())),
        )
        .await;
        assert_eq!(r.status, 400, "{ops}: {r}");
        assert_scim_error(&r, 400, Some(scim_type));
        let now = get_user(&s, &tok, &id).await.body;
        assert_eq!(now, before, "atomic: {ops} changed the resource");
        assert_eq!(now["meta"]["version"], before["meta"]["version"]);
    }
    // Unknown op, missing Operations: 400 too.
    for body in [
        json!({"schemas": [PATCH_URN], "Operations": [{"op": "frobnicate", "path": "displayName", "value": "x"}]}),
        json!({"schemas": [PATCH_URN]}),
        json!({"schemas": [PATCH_URN], "Operations": "nope"}),
    ] {
        let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {r}");
        assert_scim_error(&r, 400, None);
    }
    assert_eq!(get_user(&s, &tok, &id).await.body, before);
    // PATCH on an unknown id: 404.
    let r = scim(
        &s,
        "PATCH",
        "/Users/00000000-0000-4000-8000-000000000000",
        Some(&tok),
        Some(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]))),
    )
    .await;
    assert_scim_error(&r, 404, None);
    s.stop().await;
}

// ---------------------------------------------------------------- ETags

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_match_meta_version_and_preconditions_are_enforced() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "et@example.com", json!({})).await;
    let id = id_of(&u);
    let path = format!("/Users/{id}");
    let v1 = u["meta"]["version"].as_str().unwrap().to_owned();

    let r = scim_with(&s, "GET", &path, Some(&tok), &[("if-none-match", &v1)], None).await;
    assert_eq!(r.status, 304, "{r}");
    let r = scim_with(&s, "GET", &path, Some(&tok), &[("if-none-match", "W/\"other\"")], None).await;
    assert_eq!(r.status, 200, "{r}");

    let body = serde_json::to_vec(&user_body("et@example.com", json!({"displayName": "v2"}))).unwrap();
    let r = scim_with(&s, "PUT", &path, Some(&tok), &[("if-match", &v1)], Some(body)).await;
    assert_eq!(r.status, 200, "{r}");
    let v2 = r.body["meta"]["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2, "version changes on write");
    assert_eq!(r.header("etag"), Some(v2.as_str()), "{r}");
    assert_eq!(get_user(&s, &tok, &id).await.header("etag"), Some(v2.as_str()));

    let before = get_user(&s, &tok, &id).await.body;
    let body = serde_json::to_vec(&user_body("et@example.com", json!({"displayName": "stale"}))).unwrap();
    let r = scim_with(&s, "PUT", &path, Some(&tok), &[("if-match", &v1)], Some(body)).await;
    assert_scim_error(&r, 412, None);
    let p = serde_json::to_vec(&patch(
        json!([{"op": "replace", "path": "displayName", "value": "stale"}]),
    ))
    .unwrap();
    let r = scim_with(&s, "PATCH", &path, Some(&tok), &[("if-match", &v1)], Some(p.clone())).await;
    assert_scim_error(&r, 412, None);
    let r = scim_with(&s, "DELETE", &path, Some(&tok), &[("if-match", &v1)], None).await;
    assert_scim_error(&r, 412, None);
    assert_eq!(get_user(&s, &tok, &id).await.body, before);

    let r = scim_with(&s, "PATCH", &path, Some(&tok), &[("if-match", &v2)], Some(p)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let g = get_user(&s, &tok, &id).await;
    assert_eq!(g.body["displayName"], "stale", "{g}");
    let v3 = g.body["meta"]["version"].as_str().unwrap().to_owned();
    if r.status == 200 {
        assert_eq!(r.header("etag"), Some(v3.as_str()), "{r}");
    }
    let r = scim_with(&s, "DELETE", &path, Some(&tok), &[("if-match", "*")], None).await;
    assert_eq!(r.status, 204, "If-Match: * matches any current version: {r}");
    s.stop().await;
}

// ---------------------------------------------------------------- errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_401_scim_errors_with_www_authenticate() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    for (hdrs, what) in [
        (vec![], "no token"),
        (
            vec![("authorization", "Bearer rst_scim_not_a_real_token")],
            "unknown token",
        ),
        (vec![("authorization", "non-token")], "Okta SPEC suite"),
        (vec![("authorization", "Basic YWRtaW46YWRtaW4=")], "basic"),
        (vec![("authorization", "Bearer ")], "empty bearer"),
    ] {
        for path in [
            "/Users",
            "/Users/00000000-0000-4000-8000-000000000000",
            "/ServiceProviderConfig",
            "/Bulk",
        ] {
            let r = scim_with(&s, "GET", path, None, &hdrs, None).await;
            assert_scim_error(&r, 401, None);
            let www = r.header("www-authenticate").unwrap_or_default();
            assert!(www.to_ascii_lowercase().starts_with("bearer"), "{what} {path}: {r}");
        }
        let r = scim_with(
            &s,
            "POST",
            "/Users",
            None,
            &hdrs,
            Some(serde_json::to_vec(&user_body("x@example.com", json!({}))).unwrap()),
        )
        .await;
        assert_scim_error(&r, 401, None);
    }
    assert_eq!(list_all(&s, &tok).await.len(), 1, "nothing was created");
    // Okta "HTTP Header" mode: the bare token works.
    let r = scim_with(&s, "GET", "/Users", None, &[("authorization", tok.as_str())], None).await;
    assert_eq!(r.status, 200, "{r}");
    // The scheme is case-insensitive (RFC 7235).
    let r = scim_with(
        &s,
        "GET",
        "/Users",
        None,
        &[("authorization", &format!("bearer {tok}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_refused() {
    let s = TestServer::start().await;
    let (tok, id) = connection(&s, "okta").await;
    assert_eq!(scim(&s, "GET", "/Users", Some(&tok), None).await.status, 200);
    // The first use records "last used" in the background; once it is in,
    // the next requests are answered from the bearer cache, which a
    // revocation must still defeat on the very next request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let c = s
            .app
            .store
            .read(move |txn| roster::store::connections::get(txn, id))
            .await
            .unwrap()
            .unwrap();
        if c.last_used_ms.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last used never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(scim(&s, "GET", "/Users", Some(&tok), None).await.status, 200);
    }
    roster::workspace::connections::revoke(&s.app, "okta", Actor::Operator)
        .await
        .unwrap();
    let r = scim(&s, "GET", "/Users", Some(&tok), None).await;
    assert_scim_error(&r, 401, None);
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("late@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 401, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_errors_are_scim_errors() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = get_user(&s, &tok, "00000000-0000-4000-8000-000000000000").await;
    assert_scim_error(&r, 404, None);
    let r = get_user(&s, &tok, "not-a-uuid").await;
    assert_scim_error(&r, 404, None);
    let r = scim(&s, "GET", "/Nope", Some(&tok), None).await;
    assert_scim_error(&r, 404, None);
    let r = scim(&s, "GET", "/Users/a/b", Some(&tok), None).await;
    assert_scim_error(&r, 404, None);
    let r = scim(
        &s,
        "PUT",
        "/Users",
        Some(&tok),
        Some(user_body("x@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 405, None);
    let r = scim(&s, "DELETE", "/Users", Some(&tok), None).await;
    assert_scim_error(&r, 405, None);
    let r = scim(
        &s,
        "POST",
        "/Users/00000000-0000-4000-8000-000000000000",
        Some(&tok),
        Some(json!({})),
    )
    .await;
    assert_scim_error(&r, 405, None);
    let r = scim(
        &s,
        "PUT",
        "/Users/00000000-0000-4000-8000-000000000000",
        Some(&tok),
        Some(user_body("new@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 404, None);
    assert_eq!(list_all(&s, &tok).await.len(), 1, "PUT must not create");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_scim_400s_and_change_nothing() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "keep@example.com", json!({})).await;
    let id = id_of(&u);
    let snapshot = list_all(&s, &tok).await;
    let audit0 = audit(&s).await.len();
    let mails0 = mails(&s).await.len();
    let good = serde_json::to_vec(&user_body("new@example.com", json!({}))).unwrap();

    // 415 for a media type SCIM does not speak.
    let r = scim_with(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        &[("content-type", "text/plain")],
        Some(good.clone()),
    )
    .await;
    assert_scim_error(&r, 415, None);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_obj = format!(
        r#"{{"userName":"deep@example.com","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let bodies: Vec<(String, Vec<u8>, Option<&str>)> = vec![
        ("malformed".into(), b"{\"userName\": \"x@example.com\",".to_vec(), Some("invalidSyntax")),
        ("not json".into(), b"hello".to_vec(), Some("invalidSyntax")),
        ("empty".into(), Vec::new(), None),
        ("array".into(), b"[]".to_vec(), None),
        ("deep array".into(), deep.into_bytes(), None),
        ("deep in object".into(), deep_obj.into_bytes(), None),
        ("userName number".into(), br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":5}"#.to_vec(), None),
        (
            "active maybe".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"m@example.com","active":"maybe"}"#.to_vec(),
            None,
        ),
        (
            "name not object".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"n@example.com","name":"Bob"}"#.to_vec(),
            None,
        ),
        (
            "emails not array".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"e@example.com","emails":7}"#.to_vec(),
            None,
        ),
        (
            "missing userName".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"displayName":"Nobody"}"#.to_vec(),
            Some("invalidValue"),
        ),
        (
            "empty userName".into(),
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":""}"#.to_vec(),
            Some("invalidValue"),
        ),
        ("invalid utf-8".into(), b"{\"userName\":\"\xff\xfe@example.com\"}".to_vec(), None),
    ];
    for (what, body, scim_type) in &bodies {
        let r = scim_with(&s, "POST", "/Users", Some(&tok), &[], Some(body.clone())).await;
        assert_eq!(r.status, 400, "POST {what}: {r}");
        assert_scim_error(&r, 400, *scim_type);
        let r = scim_with(&s, "PUT", &format!("/Users/{id}"), Some(&tok), &[], Some(body.clone())).await;
        assert_eq!(r.status, 400, "PUT {what}: {r}");
        assert_scim_error(&r, 400, None);
    }
    for (what, body, _) in &bodies[..6] {
        let r = scim_with(
            &s,
            "PATCH",
            &format!("/Users/{id}"),
            Some(&tok),
            &[],
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "PATCH {what}: {r}");
        assert_scim_error(&r, 400, None);
    }
    assert_eq!(list_all(&s, &tok).await, snapshot, "bad requests changed data");
    assert_eq!(audit(&s).await.len(), audit0);
    assert_eq!(mails(&s).await.len(), mails0);

    // application/json is accepted too.
    let r = scim_with(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        &[("content-type", "application/json")],
        Some(good),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/scim+json"),
        "{r}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_one_mib_is_413_scim_error() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    let text = raw_exchange(&s, &head, b"{\"userName\":").await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/scim+json"), "{text}");
    assert!(text.contains(ERROR_URN), "{text}");
    assert!(text.contains("\"status\":\"413\""), "{text}");
    assert_eq!(list_all(&s, &tok).await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_create_uniqueness_conflicts_are_409() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    create(&s, &tok, "one@example.com", json!({})).await;
    let two = create(&s, &tok, "two@example.com", json!({})).await;
    let before = get_user(&s, &tok, &id_of(&two)).await.body;
    // Renaming two to one's address (in another case) collides.
    let r = scim(
        &s,
        "PUT",
        &format!("/Users/{}", id_of(&two)),
        Some(&tok),
        Some(user_body("ONE@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let p = patch(json!([{"op": "replace", "path": "userName", "value": "One@Example.com"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{}", id_of(&two)), Some(&tok), Some(p)).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_eq!(get_user(&s, &tok, &id_of(&two)).await.body, before);
    // Renaming two to a fresh address is fine and frees the old one.
    let p = patch(json!([{"op": "replace", "path": "userName", "value": "deux@example.com"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{}", id_of(&two)), Some(&tok), Some(p)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert_eq!(
        filter_ids(&s, &tok, r#"userName eq "deux@example.com""#).await,
        vec![id_of(&two)]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"userName eq "two@example.com""#).await,
        Vec::<String>::new()
    );
    create(&s, &tok, "two@example.com", json!({})).await;
    s.stop().await;
}

// ---------------------------------------------------------------- discovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints_describe_what_is_supported() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(&s, "GET", "/ServiceProviderConfig", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    let c = &r.body;
    assert_eq!(
        c["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]),
        "{r}"
    );
    assert_eq!(c["patch"]["supported"], true, "{r}");
    assert_eq!(c["sort"]["supported"], true, "{r}");
    assert_eq!(c["etag"]["supported"], true, "{r}");
    assert_eq!(c["filter"]["supported"], true, "{r}");
    assert!(c["filter"]["maxResults"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert_eq!(c["bulk"]["supported"], false, "{r}");
    assert_eq!(c["changePassword"]["supported"], false, "{r}");
    let schemes = c["authenticationSchemes"].as_array().cloned().unwrap_or_default();
    assert!(schemes.iter().any(|a| a["type"] == "oauthbearertoken"), "{r}");
    assert_eq!(c["meta"]["resourceType"], "ServiceProviderConfig", "{r}");

    let r = scim(&s, "GET", "/ResourceTypes", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");
    let user = r
        .resources()
        .into_iter()
        .find(|x| x["id"] == "User")
        .unwrap_or_else(|| panic!("no User resource type: {r}"));
    assert_eq!(user["endpoint"], "/Users", "{r}");
    assert_eq!(user["schema"], USER_URN, "{r}");
    let ext: Vec<_> = user["schemaExtensions"].as_array().cloned().unwrap_or_default();
    assert!(
        ext.iter()
            .any(|e| e["schema"] == ENTERPRISE_URN && e["required"] == false),
        "{r}"
    );
    let r1 = scim(&s, "GET", "/ResourceTypes/User", Some(&tok), None).await;
    assert_eq!(r1.status, 200, "{r1}");
    assert_eq!(r1.body["id"], "User", "{r1}");
    assert_eq!(r1.body["endpoint"], "/Users", "{r1}");
    let r = scim(&s, "GET", "/ResourceTypes/Nope", Some(&tok), None).await;
    assert_scim_error(&r, 404, None);

    let r = scim(&s, "GET", "/Schemas", Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{r}");
    let ids: Vec<String> = r.ids();
    for urn in [USER_URN, ENTERPRISE_URN, ROSTER_URN] {
        assert!(ids.iter().any(|i| i == urn), "{urn} missing from {ids:?}");
    }
    let r = scim(&s, "GET", &format!("/Schemas/{USER_URN}"), Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["id"], USER_URN, "{r}");
    let attrs = r.body["attributes"].as_array().cloned().unwrap_or_default();
    let find = |n: &str| attrs.iter().find(|a| a["name"] == n).cloned();
    let un = find("userName").unwrap_or_else(|| panic!("no userName: {r}"));
    assert_eq!(un["caseExact"], false, "{un}");
    assert_eq!(un["uniqueness"], "server", "{un}");
    assert_eq!(un["required"], true, "{un}");
    if let Some(pw) = find("password") {
        assert_eq!(pw["returned"], "never", "{pw}");
    }
    if let Some(g) = find("groups") {
        assert_eq!(g["mutability"], "readOnly", "{g}");
    }
    for a in &attrs {
        let ty = a["type"].as_str().unwrap_or_default();
        assert!(
            [
                "string",
                "boolean",
                "decimal",
                "integer",
                "dateTime",
                "reference",
                "binary",
                "complex"
            ]
            .contains(&ty),
            "{a}"
        );
    }
    let r = scim(&s, "GET", "/Schemas/urn:example:nope", Some(&tok), None).await;
    assert_scim_error(&r, 404, None);

    for path in ["/Bulk", "/Me"] {
        let r = scim(&s, "GET", path, Some(&tok), None).await;
        assert_scim_error(&r, 501, None);
    }
    let r = scim(
        &s,
        "POST",
        "/Bulk",
        Some(&tok),
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []})),
    )
    .await;
    assert_scim_error(&r, 501, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_attributes_are_kept_or_rejected_never_500() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body(
            "custom@example.com",
            json!({"favoriteColor": "teal", "urn:example:custom:1.0:User": {"badge": "B7"},
                   "schemas": [USER_URN, "urn:example:custom:1.0:User"]}),
        )),
    )
    .await;
    assert!(r.status == 201 || r.status == 400, "{r}");
    if r.status == 201 {
        let g = get_user(&s, &tok, &id_of(&r.body)).await;
        assert_eq!(g.body["favoriteColor"], "teal", "kept, not silently dropped: {g}");
        assert_eq!(g.body["urn:example:custom:1.0:User"]["badge"], "B7", "{g}");
    } else {
        let t = r.body["scimType"].as_str().unwrap_or_default();
        assert!(t == "invalidSyntax" || t == "invalidPath", "{r}");
    }
    s.stop().await;
}

/// SPEC §2 "Auth: ... Anything else → 401": the bearer check comes before
/// routing, so an unauthenticated caller cannot probe which endpoints exist
/// and always gets the 401 + `WWW-Authenticate` challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_to_unknown_scim_paths_are_401() {
    let s = TestServer::start().await;
    let mut wrong = Vec::new();
    for (method, path) in [
        ("GET", "/Nope"),
        ("GET", "/Users/a/b"),
        ("PUT", "/Users"),
        ("DELETE", "/Schemas"),
    ] {
        let r = scim(&s, method, path, None, None).await;
        if r.status != 401 || r.header("www-authenticate").is_none() {
            wrong.push(format!("{method} {path} → {} {}", r.status, r.text));
        } else {
            assert_scim_error(&r, 401, None);
        }
    }
    assert!(wrong.is_empty(), "want 401 + WWW-Authenticate:\n{}", wrong.join("\n"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_write_only_and_never_match_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.scim_accept_passwords = true;
    let s = TestServer::start_with(dir, config).await;
    let (tok, _) = connection(&s, "okta").await;
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(okta_create_body())).await;
    assert_eq!(r.status, 201, "{r}");
    assert_no_password(&r);
    let id = id_of(&r.body);
    let m = member(&s, uuid_of(&r.body)).await.unwrap();
    let hash = m
        .password_hash
        .clone()
        .expect("stored when scim.accept_passwords = true");
    assert!(!hash.contains("1mz050nq"), "hashed, not plain");
    assert!(!format!("{:?}", m.attributes).contains("1mz050nq"));
    for f in [r#"password eq "1mz050nq""#, "password pr", r#"password sw "1""#] {
        let r = scim(&s, "GET", &filter_path(f), Some(&tok), None).await;
        assert!(r.status == 200 || r.status == 400 || r.status == 403, "{f}: {r}");
        assert!(
            r.resources().is_empty(),
            "a filter on password must not match: {f}: {r}"
        );
    }
    // Okta password sync: path-less replace.
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "value": {"password": "n3w-s3cret"}}]))),
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    assert!(!r.text.contains("n3w-s3cret"), "{r}");
    let m2 = member(&s, uuid_of(&json!({"id": id}))).await.unwrap();
    assert_ne!(m2.password_hash, Some(hash), "password sync changed the hash");
    let r = scim(&s, "GET", &format!("/Users/{id}?attributes=password"), Some(&tok), None).await;
    assert_eq!(r.status, 200, "{r}");
    assert!(!r.text.contains("password"), "returned: never even when asked: {r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_user_make_exactly_one() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let (tok, _) = connection(&s, "okta").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let tok = tok.clone();
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.push(tokio::spawn(async move {
            scim(&s, "POST", "/Users", Some(&tok), Some(user_body(email, json!({})))).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status != 201 {
            assert_scim_error(&r, 409, Some("uniqueness"));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(filter_ids(&s, &tok, r#"userName eq "race@example.com""#).await.len(), 1);
    assert_eq!(list_all(&s, &tok).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_filter_shapes_idps_send() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "entra").await;
    let q = id_of(&create(&s, &tok, "quote@example.com", json!({"displayName": "Say \"hi\" now"})).await);
    let m = id_of(
        &create(
            &s,
            &tok,
            "mgr@example.com",
            json!({"displayName": "Boss", ENTERPRISE_URN: {"manager": {"value": "abc"}}}),
        )
        .await,
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"displayName eq "Say \"hi\" now""#).await,
        vec![q.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"displayName eq "boss""#).await,
        vec![m.clone()],
        "caseExact false"
    );
    assert_eq!(
        filter_ids(&s, &tok, r#"displayName co "\"HI\"""#).await,
        vec![q.clone()]
    );
    // Entra's email matching attribute.
    assert_eq!(
        filter_ids(&s, &tok, r#"emails[type eq "work"].value eq "QUOTE@example.com""#).await,
        vec![q.clone()],
        "IDP-WIRE §2.2: Entra matches on emails[type eq \"work\"].value"
    );
    // Entra's reference check.
    assert_eq!(
        filter_ids(
            &s,
            &tok,
            &format!(r#"id eq "{m}" and {ENTERPRISE_URN}:manager eq "abc""#)
        )
        .await,
        vec![m.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, &format!(r#"id eq "{m}" and manager eq "abc""#)).await,
        vec![m.clone()]
    );
    assert_eq!(
        filter_ids(&s, &tok, &format!(r#"{ENTERPRISE_URN}:manager.value eq "abc""#)).await,
        vec![m.clone()]
    );
    // Filter + paging: totalResults counts matches, not the table.
    let r = scim(
        &s,
        "GET",
        &(filter_path(r#"userName ew "@example.com""#) + "&startIndex=1&count=1"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["totalResults"], json!(2), "{r}");
    assert_eq!(r.resources().len(), 1, "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_on_multi_valued_attributes() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(
        &s,
        &tok,
        "mv@example.com",
        json!({"emails": [{"value": "mv@example.com", "type": "work", "primary": true},
                          {"value": "mv@home.example", "type": "home"}],
               "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}]}),
    )
    .await;
    let id = id_of(&u);
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    )
    .await;
    assert_eq!(g["emails"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["emails"][0]["value"], "mv@example.com", "{g}");
    // Adding a value already present is a no-op (RFC 7644 §3.5.2.1).
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0100", "type": "work"}]}]),
    )
    .await;
    assert_eq!(g["phoneNumbers"].as_array().unwrap().len(), 1, "{g}");
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0199", "type": "mobile"}]}]),
    )
    .await;
    assert_eq!(g["phoneNumbers"].as_array().unwrap().len(), 2, "{g}");
    let g = patch_ok(
        &s,
        &tok,
        &id,
        json!([{"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0142"}]),
    )
    .await;
    assert!(
        g["phoneNumbers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"] == "+1 555 0142" && p["type"] == "mobile"),
        "{g}"
    );
    let g = patch_ok(&s, &tok, &id, json!([{"op": "remove", "path": "phoneNumbers"}])).await;
    assert!(
        g.get("phoneNumbers")
            .is_none_or(|p| p.as_array().is_some_and(Vec::is_empty)),
        "{g}"
    );
    // replace on a non-type valuePath with no match: 400 noTarget.
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(patch(
            json!([{"op": "replace", "path": "emails[value eq \"nobody@example.com\"].display", "value": "x"}]),
        )),
    )
    .await;
    assert_scim_error(&r, 400, Some("noTarget"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_honours_active_false_and_ignores_client_id() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "entra").await;
    for (email, active) in [("off1@example.com", json!(false)), ("off2@example.com", json!("False"))] {
        let r = scim(
            &s,
            "POST",
            "/Users",
            Some(&tok),
            Some(user_body(email, json!({"active": active, "id": "client-chosen"}))),
        )
        .await;
        assert_eq!(r.status, 201, "{r}");
        assert_ne!(r.body["id"], "client-chosen", "server assigns id: {r}");
        let g = get_user(&s, &tok, &id_of(&r.body)).await;
        assert_eq!(g.body["active"], false, "created inactive as the IdP asked: {g}");
        assert_eq!(status_of(&g.body), "suspended", "{g}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_ignores_read_only_attributes_and_accepts_charset_media_types() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "ro@example.com", json!({})).await;
    let id = id_of(&u);
    let body = user_body(
        "ro@example.com",
        json!({"id": id, "displayName": "RO",
               "meta": {"version": "W/\"999\"", "created": "2001-01-01T00:00:00Z"},
               "groups": [{"value": "g1"}],
               ROSTER_URN: {"status": "removed", "managed": false}}),
    );
    let r = scim_with(
        &s,
        "PUT",
        &format!("/Users/{id}"),
        Some(&tok),
        &[("content-type", "application/scim+json; charset=utf-8")],
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await;
    assert_eq!(
        r.status, 200,
        "SPEC §2: client meta, groups and its own id are ignored: {r}"
    );
    assert_eq!(r.body["id"], json!(id), "{r}");
    assert_eq!(r.body["displayName"], "RO", "{r}");
    assert_eq!(status_of(&r.body), "active", "{r}");
    assert_eq!(r.body[ROSTER_URN]["managed"], true, "{r}");
    assert_eq!(r.body["meta"]["created"], u["meta"]["created"], "{r}");
    assert!(
        r.body.get("groups").is_none_or(|g| !g.to_string().contains("g1")),
        "{r}"
    );
    // A different id: see put_error_details_speak_of_the_put_body.
    let r = scim_with(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        &[("content-type", "application/json; charset=utf-8")],
        Some(serde_json::to_vec(&user_body("cs@example.com", json!({}))).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relinked_removed_member_is_active_again_and_sort_and_projection_edges() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "back@example.com", json!({"roles": [{"value": "admin"}]})).await;
    let id = id_of(&u);
    assert_eq!(
        scim(&s, "DELETE", &format!("/Users/{id}"), Some(&tok), None)
            .await
            .status,
        204
    );
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("back@example.com", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["id"], json!(id), "{r}");
    assert_eq!(r.body["active"], true, "{r}");
    assert_eq!(status_of(&r.body), "active", "re-provisioned on a verified domain: {r}");

    // roles are filterable; admins are admin@localhost and back@.
    let admins = filter_ids(&s, &tok, r#"roles.value eq "admin""#).await;
    assert!(admins.contains(&admin(&s).await.id.to_string()), "{admins:?}");
    assert_eq!(filter_ids(&s, &tok, r#"meta.resourceType eq "User""#).await.len(), 2);
    assert_eq!(filter_ids(&s, &tok, "userName pr").await.len(), 2);
    assert_eq!(
        filter_ids(&s, &tok, &format!(r#"{ROSTER_URN}:status eq "active""#))
            .await
            .len(),
        2
    );

    // Sorting by something odd never 500s.
    for q in [
        "sortBy=nosuch",
        "sortBy=emails",
        "sortBy=meta.created&sortOrder=descending",
        "sortOrder=sideways",
    ] {
        let r = scim(&s, "GET", &format!("/Users?{q}"), Some(&tok), None).await;
        assert!(r.status == 200 || r.status == 400, "{q}: {r}");
        if r.status == 400 {
            assert_scim_error(&r, 400, None);
        }
    }
    // URN-qualified attributes parameter.
    let p = patch(json!([{"op": "replace", "path": format!("{ENTERPRISE_URN}:department"), "value": "R&D"}]));
    let r = scim(&s, "PATCH", &format!("/Users/{id}"), Some(&tok), Some(p)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let r = scim(
        &s,
        "GET",
        &format!(
            "/Users/{id}?attributes={}",
            enc(&format!("{ENTERPRISE_URN}:department"))
        ),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body[ENTERPRISE_URN], json!({"department": "R&D"}), "{r}");
    assert!(r.body.get("userName").is_none(), "{r}");
    assert_eq!(r.body["id"], json!(id), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_admin_does_not_count_and_restoring_works() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    // Link admin@localhost, add a second admin, suspend the second.
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("admin@localhost", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201, "{r}");
    let first = id_of(&r.body);
    let second = id_of(&create(&s, &tok, "two@example.com", json!({"roles": [{"value": "admin"}]})).await);
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let on = patch(json!([{"op": "replace", "value": {"active": true}}]));
    let r = scim(&s, "PATCH", &format!("/Users/{second}"), Some(&tok), Some(off.clone())).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    // A suspended admin is not an active admin: the first is the last one.
    let r = scim(&s, "PATCH", &format!("/Users/{first}"), Some(&tok), Some(off.clone())).await;
    assert_scim_error(&r, 409, None);
    // Restoring the second brings the count back.
    let r = scim(&s, "PATCH", &format!("/Users/{second}"), Some(&tok), Some(on)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    let r = scim(&s, "PATCH", &format!("/Users/{first}"), Some(&tok), Some(off)).await;
    assert!(r.status == 200 || r.status == 204, "{r}");
    // Downgrading the now-last active admin is refused, upgrading others is fine.
    let down = patch(json!([{"op": "replace", "path": "roles", "value": [{"value": "member"}]}]));
    let r = scim(&s, "PATCH", &format!("/Users/{second}"), Some(&tok), Some(down)).await;
    assert_scim_error(&r, 409, None);
    s.stop().await;
}

/// RFC 7644 §3.5.1 ignores readOnly values in a PUT; refusing a *different*
/// id with 400 mutability is tolerable (SPEC §2 only promises to ignore the
/// resource's own id), but every PUT error detail must speak of the PUT
/// body, not of PATCH "operations": Okta shows `detail` to admins
/// (IDP-WIRE §1.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_error_details_speak_of_the_put_body() {
    let s = TestServer::start().await;
    domain(&s, "example.com", true).await;
    let (tok, _) = connection(&s, "okta").await;
    let u = create(&s, &tok, "pd@example.com", json!({})).await;
    let id = id_of(&u);
    let mut wrong = Vec::new();
    for extra in [
        json!({"id": "00000000-0000-4000-8000-000000000001"}),
        json!({"active": "maybe"}),
        json!({"name": "Bob"}),
        json!({"emails": 7}),
    ] {
        let r = scim(
            &s,
            "PUT",
            &format!("/Users/{id}"),
            Some(&tok),
            Some(user_body("pd@example.com", extra.clone())),
        )
        .await;
        if r.status == 200 {
            assert_eq!(r.body["id"], json!(id), "{r}");
            continue;
        }
        assert_scim_error(&r, 400, None);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        if detail.to_lowercase().contains("operation") {
            wrong.push(format!("PUT {extra} → {detail:?}"));
        }
    }
    for (n, extra) in [json!({"active": "maybe"}), json!({"name": "Bob"})]
        .into_iter()
        .enumerate()
    {
        let r = scim(
            &s,
            "POST",
            "/Users",
            Some(&tok),
            Some(user_body(&format!("post{n}@example.com"), extra.clone())),
        )
        .await;
        assert_scim_error(&r, 400, None);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        if detail.to_lowercase().contains("operation") {
            wrong.push(format!("POST {extra} → {detail:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "PUT/POST errors that talk about PATCH operations:\n{}",
        wrong.join("\n")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_inputs_are_400_never_500() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    for q in [
        "count=abc",
        "startIndex=abc",
        "startIndex=99999999999999999999999",
        "count=1.5",
    ] {
        let r = scim(&s, "GET", &format!("/Users?{q}"), Some(&tok), None).await;
        assert!(r.status == 200 || r.status == 400, "{q}: {r}");
        if r.status == 400 {
            assert_scim_error(&r, 400, None);
        }
    }
    let long = format!("{}@example.com", "a".repeat(10_000));
    for name in [long.as_str(), "bad\u{0}name@example.com", "   ", "no-at-sign"] {
        let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body(name, json!({})))).await;
        assert!(
            r.status == 201 || r.status == 400,
            "{}: {r}",
            &name[..name.len().min(30)]
        );
        if r.status == 400 {
            assert_scim_error(&r, 400, None);
        }
    }
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("bad\u{0}name@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body("   ", json!({})))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    s.stop().await;
}

/// Case-insensitive uniqueness beyond ASCII no longer arises for
/// addresses: since issue 17 they are ASCII only, so `ümlaut@` and
/// `ÜMLAUT@` are both refused rather than compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_uniqueness_is_case_insensitive_beyond_ascii() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "okta").await;
    for name in ["\u{fc}mlaut@example.com", "\u{dc}MLAUT@example.com"] {
        let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body(name, json!({})))).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
    }
    let u = create(&s, &tok, "umlaut@example.com", json!({})).await;
    let r = scim(
        &s,
        "POST",
        "/Users",
        Some(&tok),
        Some(user_body("UMLAUT@example.com", json!({}))),
    )
    .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_eq!(
        filter_ids(&s, &tok, "userName eq \"UMLAUT@EXAMPLE.COM\"").await,
        vec![id_of(&u)]
    );
    s.stop().await;
}
