//! PATCH engine: bytes -> strict JSON -> parse_patch -> apply to a fixed
//! User. Must not panic; a failed apply must leave the resource unchanged
//! (PATCH is atomic, RFC 7644 §3.5.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roster::scim::{json, patch, schema};
use serde_json::Value;

fn sample_user() -> Value {
    serde_json::json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"}
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = json::from_slice(data) else { return };
    let Ok(ops) = patch::parse_patch(&body) else { return };
    let before = sample_user();
    let mut user = before.clone();
    if let Err(e) = patch::apply(&mut user, &ops, &schema::USER) {
        assert_eq!(user, before, "failed PATCH ({e}) changed the resource; body: {body}");
    }
});
