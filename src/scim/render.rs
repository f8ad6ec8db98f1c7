//! A member's SCIM User resource written straight to JSON bytes, for the
//! default attribute set (no `attributes` / `excludedAttributes`), which is
//! nearly every GET and every write response.
//!
//! [`super::model::render_user`] builds a `serde_json::Value` (a map with a
//! `String` key and a value per attribute, cloned from the member), the
//! projection moves it into the default set and the serialiser walks it
//! again: about a fifth of the instructions of a GET /Users/{id}, and most of
//! its allocations. Here the same members are collected as borrowed entries
//! in key order and serialised once. The bytes are identical to
//! `to_vec(project_owned(render_user(..)))` (tested against it, on members
//! with every kind of attribute); when the default projection would change
//! an attribute the IdP sent (a schema attribute that is never returned),
//! [`user_default`] answers `None` and the caller takes the general path.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use uuid::Uuid;

use super::model::{role_str, status_str};
use super::project::default_keeps;
use super::schema::{ROSTER_URN, USER, USER_URN};
use crate::clock::rfc3339;
use crate::workspace::members::etag;
use crate::workspace::model::{Management, Member, Status};

/// One member of the rendered object.
enum Out<'a> {
    Sent(&'a Value),
    Str(&'a str),
    Bool(bool),
    Name(BTreeMap<&'a str, NamePart<'a>>),
    DefaultEmail(&'a str),
    Role(&'static str),
    Groups(&'a [(Uuid, String)], String),
    Roster { managed: bool, status: &'static str },
    Schemas(Vec<&'a str>),
    Meta(Meta),
}

enum NamePart<'a> {
    Sent(&'a Value),
    Str(&'a str),
}

impl Serialize for NamePart<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NamePart::Sent(v) => v.serialize(s),
            NamePart::Str(v) => s.serialize_str(v),
        }
    }
}

// Field order is key order (serde_json's map is sorted): these serialise
// exactly as the `json!` objects of `render_user` do.
#[derive(Serialize)]
struct Email<'a> {
    primary: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct RoleRef {
    primary: bool,
    value: &'static str,
}

/// A multi-valued reference (`$ref`, `display`, `type`, `value`), in key
/// order: a member's groups here, a team's members in groups.rs.
#[derive(Serialize)]
pub(super) struct Reference<'a> {
    #[serde(rename = "$ref")]
    pub reference: String,
    pub display: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

#[derive(Serialize)]
struct RosterExt {
    managed: bool,
    status: &'static str,
}

/// A resource's `meta`, in key order; also used for Groups (groups.rs).
#[derive(Serialize)]
pub(super) struct Meta {
    pub created: String,
    #[serde(rename = "lastModified")]
    pub last_modified: String,
    pub location: String,
    #[serde(rename = "resourceType")]
    pub resource_type: &'static str,
    pub version: String,
}

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Sent(v) => v.serialize(s),
            Out::Str(v) => s.serialize_str(v),
            Out::Bool(b) => s.serialize_bool(*b),
            Out::Name(parts) => {
                let mut m = s.serialize_map(Some(parts.len()))?;
                for (k, v) in parts {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Out::DefaultEmail(email) => [Email {
                primary: true,
                kind: "work",
                value: email,
            }]
            .serialize(s),
            Out::Role(role) => [RoleRef {
                primary: true,
                value: role,
            }]
            .serialize(s),
            Out::Groups(groups, base) => s.collect_seq(groups.iter().map(|(id, name)| Reference {
                reference: format!("{base}{id}"),
                display: name,
                kind: "direct",
                value: id.to_string(),
            })),
            Out::Roster { managed, status } => RosterExt {
                managed: *managed,
                status,
            }
            .serialize(s),
            Out::Schemas(urns) => urns.serialize(s),
            Out::Meta(meta) => meta.serialize(s),
        }
    }
}

/// The JSON bytes of `project_owned(render_user(m, public_url, groups),
/// USER, [], [])`, or `None` when an attribute the IdP sent would be changed
/// by the projection (then use that).
pub fn user_default(m: &Member, public_url: &str, groups: &[(Uuid, String)]) -> Option<Vec<u8>> {
    // What `render_user` starts from: the attributes as sent...
    let mut obj: BTreeMap<&str, Out<'_>> = m.attributes.iter().map(|(k, v)| (k.as_str(), Out::Sent(v))).collect();
    // ... then the member's own fields over them, in the same order.
    let id = m.id.to_string();
    obj.insert("id", Out::Str(&id));
    if let Some(e) = &m.external_id {
        obj.insert("externalId", Out::Str(e));
    }
    obj.insert("userName", Out::Str(&m.email));
    let mut name: BTreeMap<&str, NamePart<'_>> = match obj.remove("name") {
        Some(Out::Sent(Value::Object(sent))) => sent.iter().map(|(k, v)| (k.as_str(), NamePart::Sent(v))).collect(),
        _ => BTreeMap::new(),
    };
    if let Some(g) = &m.given_name {
        name.insert("givenName", NamePart::Str(g));
    }
    if let Some(f) = &m.family_name {
        name.insert("familyName", NamePart::Str(f));
    }
    if !name.is_empty() {
        obj.insert("name", Out::Name(name));
    }
    if let Some(d) = &m.display_name {
        obj.insert("displayName", Out::Str(d));
    }
    if let Some(l) = &m.locale {
        obj.insert("locale", Out::Str(l));
    }
    obj.insert(
        "active",
        Out::Bool(matches!(m.status, Status::Active | Status::Invited)),
    );
    let has_emails = matches!(obj.get("emails"), Some(Out::Sent(Value::Array(a))) if !a.is_empty());
    if !has_emails {
        obj.insert("emails", Out::DefaultEmail(&m.email));
    }
    obj.insert("roles", Out::Role(role_str(m.role)));
    if !groups.is_empty() {
        let base = format!("{public_url}{}/Groups/", crate::paths::SCIM);
        obj.insert("groups", Out::Groups(groups, base));
    }
    obj.insert(
        ROSTER_URN,
        Out::Roster {
            managed: m.management != Management::Unmanaged,
            status: status_str(m.status),
        },
    );
    let mut schemas = vec![USER_URN];
    schemas.extend(obj.keys().copied().filter(|k| k.starts_with("urn:")));
    obj.insert("schemas", Out::Schemas(schemas));
    obj.insert(
        "meta",
        Out::Meta(Meta {
            created: rfc3339(m.created_ms),
            last_modified: rfc3339(m.updated_ms),
            location: super::model::user_location(public_url, &m.id),
            resource_type: "User",
            version: etag(m.version),
        }),
    );
    // The default projection, on what the IdP sent; roster's own members
    // are all in the default set as they are (the tests check it).
    let mut keep = Vec::with_capacity(obj.len());
    for (k, v) in &obj {
        keep.push(match v {
            Out::Sent(v) => default_keeps(k, v, &USER)?,
            Out::Roster { .. } => true,
            // roster's own top-level members: the projection looks only at
            // their schema definitions, never at their values.
            _ => default_keeps(k, &Value::Null, &USER)?,
        });
    }
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(None).ok()?;
    for ((k, v), keep) in obj.iter().zip(keep) {
        if keep {
            map.serialize_entry(k, v).ok()?;
        }
    }
    map.end().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::model::render_user;
    use super::super::project::project_owned;
    use super::super::schema::ENTERPRISE_URN;
    use super::*;
    use crate::workspace::model::Role;
    use serde_json::json;

    /// Attribute sets an IdP can leave on a member, from plain to odd.
    fn attribute_choices() -> Vec<(&'static str, Value)> {
        vec![
            (
                "emails",
                json!([{"value": "a@example.com", "type": "work", "primary": true}]),
            ),
            ("emails", json!([])),
            ("emails", json!("not a list")),
            ("name", json!({"formatted": "Ms A B", "middleName": "C"})),
            ("name", json!("not an object")),
            ("title", json!("Engineer")),
            ("phoneNumbers", json!([{"value": "+1 555", "type": "work"}])),
            (
                "addresses",
                json!([{"streetAddress": "1 Main St", "country": "US", "primary": true}]),
            ),
            ("password", json!("never returned")),
            ("groups", json!([{"value": "sent-by-idp"}])),
            ("x509Certificates", json!([{"value": "MIIB"}])),
            ("customTopLevel", json!({"nested": [1, 2, {"k": null}]})),
            ("$odd key", json!(true)),
            ("Emails", json!([{"value": "upper@example.com"}])),
            (
                ENTERPRISE_URN,
                json!({"department": "R&D", "manager": {"value": "m-1", "displayName": "M"}}),
            ),
            (ENTERPRISE_URN, json!({})),
            (ENTERPRISE_URN, json!("not an object")),
            (ROSTER_URN, json!({"status": "forged", "managed": false})),
            ("urn:ietf:params:scim:schemas:core:2.0:User", json!({"userName": "x"})),
            ("urn:example:custom:1.0:User", json!({"shoeSize": 44})),
            ("schemas", json!(["urn:forged"])),
        ]
    }

    fn member(seed: u64) -> Member {
        let pick = |bit: u64| seed >> bit & 1 == 1;
        let mut attributes = serde_json::Map::new();
        for (i, (k, v)) in attribute_choices().into_iter().enumerate() {
            // A different subset of the choices for every seed.
            if (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i % 60)) & 3 == 0 {
                attributes.insert(k.to_owned(), v);
            }
        }
        Member {
            id: Uuid::from_u128(u128::from(seed) * 0x1234_5678_9abc_def1),
            seq: seed,
            email: format!("user{seed}@Example.com"),
            display_name: pick(1).then(|| format!("User \"{seed}\" <b>")),
            given_name: pick(2).then(|| "Given".to_owned()),
            family_name: pick(3).then(|| "Family".to_owned()),
            locale: pick(4).then(|| "en-US".to_owned()),
            external_id: pick(5).then(|| format!("00u{seed}")),
            role: if pick(6) { Role::Admin } else { Role::Member },
            status: [Status::Invited, Status::Active, Status::Suspended, Status::Removed][(seed % 4) as usize],
            accepted: pick(7),
            management: if pick(8) {
                Management::Unmanaged
            } else {
                Management::Managed(Uuid::from_u128(7))
            },
            password_hash: None,
            attributes,
            created_ms: 1_700_000_000_123,
            updated_ms: 1_700_000_000_456 + seed as i64,
            version: seed + 1,
        }
    }

    #[test]
    fn same_bytes_as_render_then_project() {
        let teams = [
            (Uuid::from_u128(1), "Ops".to_owned()),
            (Uuid::from_u128(2), "Dev \"core\"".to_owned()),
        ];
        let mut fast = 0;
        for seed in 0..3000u64 {
            let m = member(seed);
            let groups: &[(Uuid, String)] = if seed % 3 == 0 { &teams } else { &[] };
            let expected = serde_json::to_vec(&project_owned(
                render_user(&m, "https://r.example", groups),
                &USER,
                &[],
                &[],
            ))
            .unwrap();
            if let Some(bytes) = user_default(&m, "https://r.example", groups) {
                assert_eq!(
                    String::from_utf8(bytes).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "member {seed}: {:?}",
                    m.attributes
                );
                fast += 1;
            } else {
                // Only an attribute the projection reshapes sends a member
                // down the general path.
                assert!(
                    m.attributes.keys().any(|k| k.eq_ignore_ascii_case("password")),
                    "seed {seed}"
                );
            }
        }
        assert!(fast > 1500, "the direct path applied to only {fast} of 3000 members");
    }
}
