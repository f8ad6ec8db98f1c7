//! Signing in over HTTPS with a cookie jar: the password form, its
//! throttle, open-redirect refusal, sign-out, session cookies, sessions
//! ending on deprovisioning, and the invitation / welcome links from the
//! mail outbox.

use roster::workspace::model::{MailKind, Status};
use serde_json::json;

use crate::oauth::{ADMIN, PASSWORD, plain_member, set_password, sign_in};
use crate::scim_support::{USER_URN, connection, domain, link_count, mails, member, patch, scim, uuid_of};
use crate::support::{TestServer, Web};

const BAD: &str = "Email or password is incorrect.";

async fn has_session_cookie(s: &TestServer, cookie: &str) -> bool {
    let h = roster::secret::hash_token(cookie);
    s.app
        .store
        .read(move |txn| roster::store::sessions::get(txn, &h))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let mut web = Web::new(&s);
    let wrong = sign_in(&mut web, ADMIN, "not the password", "/").await;
    let unknown = sign_in(&mut web, "nobody@localhost", "not the password", "/").await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, 401, "{r}");
        assert!(r.text.contains(BAD), "{r}");
        assert!(r.header("location").is_none(), "{r}");
    }
    assert!(web.cookie("__Host-roster_session").is_none());
}

#[tokio::test]
async fn sixth_failed_sign_in_within_five_minutes_is_throttled() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let mut web = Web::new(&s);
    for i in 1..=5 {
        let r = sign_in(&mut web, ADMIN, "guess guess guess", "/").await;
        assert_eq!(r.status, 401, "attempt {i}: {r}");
    }
    let r = sign_in(&mut web, ADMIN, "guess guess guess", "/").await;
    assert_eq!(r.status, 429, "{r}");
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("Retry-After missing: {r}"))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=300).contains(&retry), "{r}");
    // The right password is refused too while the account is throttled.
    let r = sign_in(&mut web, ADMIN, PASSWORD, "/").await;
    assert_eq!(r.status, 429, "{r}");
}

#[tokio::test]
async fn next_never_redirects_off_site() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    for next in ["//evil.example", "https://evil.example", "/\\evil", "/\\/evil.example"] {
        let mut web = Web::new(&s);
        let r = sign_in(&mut web, ADMIN, PASSWORD, next).await;
        assert_eq!(r.status, 303, "next={next:?}: {r}");
        assert_eq!(r.location(), "/", "next={next:?}");
        // Also when the hidden field is tampered with, not only the query.
        let mut web = Web::new(&s);
        let f = web.get("/login").await;
        let csrf = f.input("csrf").unwrap();
        let r = web
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("next", next),
                    ("email", ADMIN),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{r}");
        assert_eq!(r.location(), "/", "posted next={next:?}");
    }
}

#[tokio::test]
async fn session_cookie_is_host_only_secure_and_logout_ends_it() {
    let s = TestServer::start().await;
    set_password(&s, ADMIN, PASSWORD).await;
    let mut web = Web::new(&s);
    let r = sign_in(&mut web, ADMIN, PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{r}");
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-roster_session="))
        .unwrap_or_else(|| panic!("no session cookie: {r}"));
    let attrs: Vec<String> = set.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    for want in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {set}");
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain=")),
        "__Host- forbids Domain: {set}"
    );
    let token = web.cookie("__Host-roster_session").unwrap().to_owned();
    assert!(has_session_cookie(&s, &token).await);

    let home = web.get("/").await;
    assert_eq!(home.status, 200, "{home}");
    assert!(home.text.contains(ADMIN), "{home}");
    let csrf = home.input("csrf").unwrap();

    // Sign-out without the CSRF token does nothing.
    let r = web.post_form("/logout", &[("csrf", "nope")]).await;
    assert_eq!(r.status, 403, "{r}");
    assert!(has_session_cookie(&s, &token).await);

    let r = web.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{r}");
    let cleared = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-roster_session="))
        .unwrap_or_else(|| panic!("logout must clear the cookie: {r}"));
    assert!(cleared.to_ascii_lowercase().contains("max-age=0"), "{cleared}");
    assert!(web.cookie("__Host-roster_session").is_none());
    assert!(!has_session_cookie(&s, &token).await, "session row removed");

    // The old cookie value no longer signs anyone in.
    let mut replay = Web::new(&s);
    replay.jar.insert("__Host-roster_session".into(), token);
    let r = replay.get("/").await;
    assert_eq!(r.status, 303, "{r}");
    assert!(r.location().starts_with("/login"), "{r}");
}

#[tokio::test]
async fn deprovisioning_ends_the_session_at_once() {
    let s = TestServer::start().await;
    let (tok, id) = plain_member(&s, "dana@example.com").await;
    let mut web = Web::new(&s);
    let r = sign_in(&mut web, "dana@example.com", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{r}");
    let cookie = web.cookie("__Host-roster_session").unwrap().to_owned();
    let home = web.get("/").await;
    assert_eq!(home.status, 200, "{home}");
    assert!(home.text.contains("dana@example.com"), "{home}");

    let r = scim(
        &s,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&tok),
        Some(patch(json!([{"op": "replace", "path": "active", "value": false}]))),
    )
    .await;
    assert_eq!(r.status, 200, "{r}");

    let home = web.get("/").await;
    assert_eq!(home.status, 303, "{home}");
    assert!(home.location().starts_with("/login"), "{home}");
    assert!(!home.text.contains("dana@example.com"));
    assert!(!has_session_cookie(&s, &cookie).await, "session row removed");
    let r = sign_in(&mut Web::new(&s), "dana@example.com", PASSWORD, "/").await;
    assert_eq!(r.status, 401, "a suspended member cannot sign in: {r}");
}

/// The `/path?token=...` of the newest mail of `kind` to `to`.
async fn link_in_mail(s: &TestServer, to: &str, kind: MailKind, path: &str) -> String {
    let m = mails(s)
        .await
        .into_iter()
        .rev()
        .find(|m| m.to == to && m.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} mail to {to}"));
    let prefix = format!("{}{path}?token=", s.app.config.public_url);
    let at = m
        .body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {:?}", m.body));
    let url: String = m.body[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    url[s.app.config.public_url.len()..].to_owned()
}

/// Walks a password-choosing link: mismatch, too short, then success.
async fn choose_password_via<'a>(s: &'a TestServer, link: &str, action: &str, pw: &str) -> Web<'a> {
    let mut web = Web::new(s);
    let form = web.get(link).await;
    assert_eq!(form.status, 200, "{form}");
    assert_eq!(form.header("referrer-policy"), Some("no-referrer"));
    let csrf = form.input("csrf").unwrap();
    let token = form.input("token").unwrap();
    assert!(form.text.contains("name=\"password2\""), "{form}");

    let r = web
        .post_form(
            action,
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", pw),
                ("password2", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("The passwords do not match."), "{r}");
    let r = web
        .post_form(
            action,
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "short"),
                ("password2", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.text.contains("at least 10 characters"), "{r}");
    // Without the CSRF value nothing happens.
    let r = web
        .post_form(action, &[("token", &token), ("password", pw), ("password2", pw)])
        .await;
    assert_eq!(r.status, 403, "{r}");

    let r = web
        .post_form(
            action,
            &[("csrf", &csrf), ("token", &token), ("password", pw), ("password2", pw)],
        )
        .await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.location(), "/");
    assert!(web.cookie("__Host-roster_session").is_some(), "{r}");

    // Used: neither shown nor usable again.
    let mut again = Web::new(s);
    let g = again.get(link).await;
    assert_eq!(g.status, 404, "{g}");
    let f = again.get("/login").await;
    let c2 = f.input("csrf").unwrap();
    let r = again
        .post_form(
            action,
            &[("csrf", &c2), ("token", &token), ("password", pw), ("password2", pw)],
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    assert!(again.cookie("__Host-roster_session").is_none());
    web
}

#[tokio::test]
async fn invitation_link_accepts_and_signs_in_once() {
    let s = TestServer::start().await;
    let (tok, _) = connection(&s, "Okta").await;
    let email = "ivy@unverified.example";
    let body = json!({"schemas": [USER_URN], "userName": email, "emails": [{"value": email, "primary": true}]});
    let r = scim(&s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    let id = uuid::Uuid::parse_str(r.body["id"].as_str().unwrap()).unwrap();
    assert_eq!(member(&s, id).await.unwrap().status, Status::Invited);

    let link = link_in_mail(&s, email, MailKind::Invite, "/invite/accept").await;
    let mut web = choose_password_via(&s, &link, "/invite/accept", "a long enough password").await;
    assert_eq!(member(&s, id).await.unwrap().status, Status::Active);
    let home = web.get("/").await;
    assert_eq!(home.status, 200, "{home}");
    assert!(home.text.contains(email), "{home}");

    let r = sign_in(&mut Web::new(&s), email, "a long enough password", "/").await;
    assert_eq!(r.status, 303, "{r}");
}

/// New links are stored under a time-ordered key (`secret::link_key`); a
/// link an older roster stored under the token's plain SHA-256 keeps
/// working after the upgrade, once.
#[tokio::test]
async fn links_are_stored_in_time_order_and_old_plain_hash_links_still_work() {
    use redb::ReadableTable;
    use roster::store::tables::{MEMBER_LINKS, ONE_TIME_LINKS};
    let s = TestServer::start().await;
    let email = "olga@verified.example";
    let (member_id, link) = provisioned_with_welcome_link(&s, email).await;
    let id = member_id.as_u128();
    let token = link.split_once("token=").expect("token in link").1.to_owned();
    let (new_key, old_key) = (roster::secret::link_key(&token), roster::secret::hash_token(&token));
    assert_ne!(new_key, old_key);

    // Move the row (and its index entry) to where an older roster kept it.
    let moved = s
        .app
        .store
        .write(move |txn| {
            let mut t = txn.open_table(ONE_TIME_LINKS)?;
            let row = t.remove(&new_key)?.map(|v| v.value().to_vec());
            let Some(row) = row else {
                return Ok(Err("no row under the time-ordered key"));
            };
            if t.get(&old_key)?.is_some() {
                return Ok(Err("a row under the plain hash too"));
            }
            t.insert(&old_key, row.as_slice())?;
            let mut idx = txn.open_table(MEMBER_LINKS)?;
            idx.remove((id, &new_key))?;
            idx.insert((id, &old_key), ())?;
            Ok(Ok(()))
        })
        .await
        .unwrap();
    assert_eq!(moved, Ok(()));

    let _ = choose_password_via(&s, &link, "/password/set", "welcome aboard friend").await;
    let r = sign_in(&mut Web::new(&s), email, "welcome aboard friend", "/").await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(link_count(&s, member_id).await, 0, "used up");
    assert_eq!(Web::new(&s).get(&link).await.status, 404, "a used link is gone");
}

/// An IdP connection creates `email` on the verified domain
/// `verified.example`; the member's id and the `/password/set` link of the
/// welcome mail they got.
async fn provisioned_with_welcome_link(s: &TestServer, email: &str) -> (uuid::Uuid, String) {
    domain(s, "verified.example", true).await;
    let (tok, _) = connection(s, "Okta").await;
    let body = json!({"schemas": [USER_URN], "userName": email, "emails": [{"value": email, "primary": true}]});
    let r = scim(s, "POST", "/Users", Some(&tok), Some(body)).await;
    assert_eq!(r.status, 201, "{r}");
    let link = link_in_mail(s, email, MailKind::Welcome, "/password/set").await;
    (uuid_of(&r.body), link)
}

#[tokio::test]
async fn welcome_link_sets_the_password_used_at_login() {
    let s = TestServer::start().await;
    let email = "wes@verified.example";
    let (_, link) = provisioned_with_welcome_link(&s, email).await;
    let _ = choose_password_via(&s, &link, "/password/set", "welcome aboard friend").await;

    let mut web = Web::new(&s);
    let r = sign_in(&mut web, email, "welcome aboard friend", "/").await;
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.location(), "/");
    let home = web.get("/").await;
    assert_eq!(home.status, 200, "{home}");
    assert!(home.text.contains(email), "{home}");
}

/// Issue 17 (finding 4, ASVS V3.3.3): choosing a new password through a
/// link ends the member's other sessions; only the session the link starts
/// stays.
#[tokio::test]
async fn r17_new_password_ends_other_sessions() {
    let s = TestServer::start().await;
    let email = "pat@verified.example";
    let (_, link) = provisioned_with_welcome_link(&s, email).await;
    // Two sessions signed in with an old password (a laptop and a stolen
    // phone, say).
    set_password(&s, email, "first password here").await;
    let mut laptop = Web::new(&s);
    assert_eq!(
        sign_in(&mut laptop, email, "first password here", "/").await.status,
        303
    );
    let mut phone = Web::new(&s);
    assert_eq!(sign_in(&mut phone, email, "first password here", "/").await.status, 303);
    let laptop_cookie = laptop.cookie("__Host-roster_session").unwrap().to_owned();
    let phone_cookie = phone.cookie("__Host-roster_session").unwrap().to_owned();
    assert!(has_session_cookie(&s, &laptop_cookie).await);
    assert!(has_session_cookie(&s, &phone_cookie).await);
    assert_eq!(phone.get("/").await.status, 200);

    let fresh = choose_password_via(&s, &link, "/password/set", "second password here").await;
    let fresh_cookie = fresh.cookie("__Host-roster_session").unwrap().to_owned();

    assert!(
        !has_session_cookie(&s, &laptop_cookie).await,
        "old session 1 still alive"
    );
    assert!(
        !has_session_cookie(&s, &phone_cookie).await,
        "old session 2 still alive"
    );
    assert!(has_session_cookie(&s, &fresh_cookie).await, "the new session must stay");
    let home = phone.get("/").await;
    assert_ne!(home.status, 200, "the old cookie still opens the home page: {home}");
    s.stop().await;
}
