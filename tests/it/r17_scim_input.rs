//! Issue 17 (red-team findings 2, 5 and 7): what a SCIM client may put into
//! a member. Multi-valued attributes are capped (their de-duplication must
//! stay cheap), strings shown to people or written into mails carry no
//! control characters, and look-alike addresses are not addresses. Each
//! refusal is a SCIM 400 `invalidValue` that changes nothing.

use serde_json::{Value, json};

use crate::scim_support::{USER_URN, assert_scim_error, connection, create, get_user, id_of, patch, scim, user_body};
use crate::support::TestServer;

fn emails(n: usize, domain: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"value": format!("alias{i}@{domain}"), "type": "other"}))
            .collect(),
    )
}

#[tokio::test]
async fn r17_multi_valued_attributes_are_capped() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;

    // At the cap: accepted; one more: refused with the cap in the detail.
    let mut at_cap = emails(99, "cap.example");
    at_cap
        .as_array_mut()
        .unwrap()
        .push(json!({"value": "full@cap.example", "primary": true}));
    let body = json!({"schemas": [USER_URN], "userName": "full@cap.example", "emails": at_cap});
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 100, "{r}");
    let full = id_of(&r.body);
    let version = r.body["meta"]["version"].clone();

    let body = json!({"schemas": [USER_URN], "userName": "over@cap.example", "emails": emails(101, "cap.example")});
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("at most 100"), "{r}");
    let r = scim(
        &s,
        "GET",
        "/Users?filter=userName%20eq%20%22over@cap.example%22",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], json!(0), "nothing created: {r}");

    // phoneNumbers the same, also on PUT.
    let phones: Vec<Value> = (0..150).map(|i| json!({"value": format!("+1 555 {i:04}")})).collect();
    let r = scim(
        &s,
        "PUT",
        &format!("/Users/{full}"),
        Some(&tok),
        Some(user_body("full@cap.example", json!({"phoneNumbers": phones}))),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));

    // A PATCH whose value is over the cap is refused before the writer;
    // one that would take the member over the cap is refused too, and the
    // member is unchanged.
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{full}"),
        Some(&tok),
        Some(patch(
            json!([{"op": "add", "path": "emails", "value": emails(101, "p.example")}]),
        )),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{full}"),
        Some(&tok),
        Some(patch(
            json!([{"op": "add", "path": "emails", "value": emails(5, "more.example")}]),
        )),
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = get_user(&s, &tok, &full).await;
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 100, "{r}");
    assert_eq!(r.body["meta"]["version"], version, "unchanged: {r}");

    // De-duplication still merges an element given again in another case.
    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{full}"),
        Some(&tok),
        Some(patch(json!([{"op": "add", "path": "emails", "value": [{"value": "ALIAS7@CAP.EXAMPLE", "type": "other", "display": "seven"}]}]))),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");
    let list = r.body["emails"].as_array().unwrap();
    assert_eq!(list.len(), 100, "merged, not appended: {r}");
    assert!(list.iter().any(|e| e["display"] == json!("seven")), "{r}");
    s.stop().await;
}

#[tokio::test]
async fn r17_control_characters_in_names_are_refused() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;
    let cases = [
        (
            "cr1@example.com",
            json!({"displayName": "Eve\r\nBcc: victim@example.com"}),
        ),
        (
            "cr2@example.com",
            json!({"name": {"givenName": "Eve\u{1b}[2J", "familyName": "X"}}),
        ),
        (
            "cr3@example.com",
            json!({"name": {"givenName": "Eve", "familyName": "X\nY"}}),
        ),
        ("cr4@example.com", json!({"title": "boss\u{7}"})),
        ("cr5@example.com", json!({"nickName": "tab\there"})),
        (
            "cr6@example.com",
            json!({"emails": [{"value": "cr6@example.com", "display": "a\u{85}b", "primary": true}]}),
        ),
    ];
    for (email, extra) in cases {
        let r = scim(&s, "POST", "/Users", Some(&tok), Some(user_body(email, extra.clone()))).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
        assert!(
            r.body["detail"].as_str().unwrap().contains("control characters"),
            "{extra}: {r}"
        );
    }
    assert_eq!(
        scim(&s, "GET", "/Users?filter=userName%20sw%20%22cr%22", Some(&tok), None)
            .await
            .body["totalResults"],
        json!(0)
    );

    // A mailing address may span lines (RFC 7643 §4.1.2).
    let ok = create(
        &s,
        &tok,
        "lines@example.com",
        json!({"addresses": [{"type": "work", "formatted": "1 Main St\nSpringfield\r\n12345"}]}),
    )
    .await;
    let id = id_of(&ok);
    let version = ok["meta"]["version"].clone();
    assert_eq!(
        ok["addresses"][0]["formatted"],
        json!("1 Main St\nSpringfield\r\n12345")
    );

    // PATCH: by path, path-less and through a value filter.
    for ops in [
        json!([{"op": "replace", "path": "displayName", "value": "x\ry"}]),
        json!([{"op": "replace", "value": {"name.givenName": "\u{1b}]0;pwned\u{7}"}}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].display", "value": "a\u{0}b"}]),
    ] {
        let r = scim(
            &s,
            "PATCH",
            &format!("/Users/{id}"),
            Some(&tok),
            Some(patch(ops.clone())),
        )
        .await;
        assert_scim_error(&r, 400, Some("invalidValue"));
    }
    let r = get_user(&s, &tok, &id).await;
    assert_eq!(r.body["meta"]["version"], version, "unchanged: {r}");
    s.stop().await;
}

#[tokio::test]
async fn r17_look_alike_addresses_are_not_addresses() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;
    for look_alike in [
        "\u{ff41}dmin@localhost",
        "adm\u{131}n@localhost",
        "ADM\u{130}N@localhost",
        "\u{212a}elvin@localhost",
        "j\u{fc}rgen@example.com",
    ] {
        let r = scim(
            &s,
            "POST",
            "/Users",
            Some(&tok),
            Some(json!({"schemas": [USER_URN], "userName": look_alike})),
        )
        .await;
        assert_scim_error(&r, 400, Some("invalidValue"));
        assert!(
            r.body["detail"].as_str().unwrap().contains("ASCII"),
            "{look_alike}: {r}"
        );
    }
    // The punycode form of an internationalised domain is an address.
    create(&s, &tok, "juergen@xn--bcher-kva.example", json!({})).await;
    let all = scim(&s, "GET", "/Users?count=100", Some(&tok), None).await;
    assert_eq!(all.body["totalResults"], json!(2), "admin and juergen only: {all}");
    s.stop().await;
}
