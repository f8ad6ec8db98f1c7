//! The properties the fuzz targets check (`fuzz/fuzz_targets/*.rs`), in the
//! library so that the same code runs under libFuzzer (full mode, by hand)
//! and in the test suite's quick mode (`tests/it/fuzz_quick.rs`: the seed
//! corpus, every regression input and a few thousand mutations of them).
//! Each function panics when its property does not hold; any input that
//! does not even parse is simply uninteresting.

use std::path::Path;

use serde_json::Value;

use crate::config::Config;
use crate::scim::filter::{ParseOptions, parse_with};
use crate::scim::{json, model, patch, schema};

/// Filter parser: parse or fail without panicking; a parsed filter prints
/// to text that parses back to the same AST (with `max_len` lifted: the
/// canonical text can be longer than the input, see `Filter`'s `Display`).
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = ParseOptions::default();
    if let Ok(f) = parse_with(text, &opts) {
        let printed = f.to_string();
        let reparse = ParseOptions {
            max_len: usize::MAX,
            ..opts
        };
        match parse_with(&printed, &reparse) {
            Ok(again) => assert_eq!(
                f, again,
                "re-parse of printed filter differs\ninput:   {text:?}\nprinted: {printed:?}"
            ),
            Err(e) => panic!("printed filter does not parse\ninput:   {text:?}\nprinted: {printed:?}\nerror:   {e}"),
        }
    }
}

/// A fixed User the PATCH property applies operations to.
pub fn sample_user() -> Value {
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

/// PATCH engine: strict JSON → `parse_patch` → `apply` on [`sample_user`];
/// no panic, and a failed apply leaves the resource unchanged (atomic
/// PATCH, RFC 7644 §3.5.2).
pub fn patch(data: &[u8]) {
    let Ok(body) = json::from_slice(data) else { return };
    let Ok(ops) = patch::parse_patch(&body) else { return };
    let before = sample_user();
    let mut user = before.clone();
    if let Err(e) = patch::apply(&mut user, &ops, &schema::USER) {
        assert_eq!(user, before, "failed PATCH ({e}) changed the resource; body: {body}");
    }
}

/// Strict JSON decoder: whatever it accepts, `serde_json` accepts as an
/// equal value (it only refuses more: duplicate keys, depth).
pub fn json(data: &[u8]) {
    if let Ok(v) = json::from_slice(data) {
        match serde_json::from_slice::<Value>(data) {
            Ok(w) => assert_eq!(
                v,
                w,
                "strict and serde_json disagree on {:?}",
                String::from_utf8_lossy(data)
            ),
            Err(e) => panic!(
                "strict accepted what serde_json refuses ({e}): {:?}",
                String::from_utf8_lossy(data)
            ),
        }
    }
}

/// Config parser: any text parses or fails without panicking.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(text, Path::new("fuzz.toml"));
}

/// SCIM ingest of a create body: no panic.
pub fn ingest(data: &[u8]) {
    let Ok(v) = json::from_slice(data) else { return };
    let _ = model::ingest_body(&v, None);
}

/// A property: panics on an input that breaks it.
pub type Property = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/` and `fuzz/corpus/` name them.
pub const TARGETS: [(&str, Property); 5] = [
    ("filter", filter),
    ("patch", patch),
    ("json", json),
    ("config", config),
    ("ingest", ingest),
];
