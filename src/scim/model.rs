//! Translation between workspace members and SCIM User resources.
//!
//! Rendering merges the member's own fields (userName, names, role, status,
//! ...) over the attributes the IdP sent and adds the read-only parts (id,
//! groups, meta, the roster extension). Ingesting goes the other way: the
//! request body is applied to a bare resource as one path-less `replace`
//! through the PATCH engine, so POST, PUT and PATCH share the same IdP
//! tolerance (case-insensitive names, dotted and URN keys, string booleans,
//! null/"" clearing, bare-string manager), then the member's fields are
//! taken out and the rest kept as sent.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::patch::{self, Op, PatchOperation};
use super::schema::{self, ROSTER_URN, USER, USER_URN};
use crate::clock::rfc3339;
use crate::workspace::members::{MemberInput, etag};
use crate::workspace::model::{Management, Member, Role, Status};

/// Attributes the member record owns; everything else lives in
/// `Member::attributes`.
const OWNED: &[&str] = &[
    "schemas",
    "id",
    "meta",
    "userName",
    "displayName",
    "locale",
    "externalId",
    "active",
    "roles",
    "password",
    "groups",
    ROSTER_URN,
];

/// The absolute URL of a user resource.
pub fn user_location(public_url: &str, id: &uuid::Uuid) -> String {
    format!("{public_url}{}/Users/{id}", crate::paths::SCIM)
}

pub(super) fn role_str(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

pub(super) fn status_str(s: Status) -> &'static str {
    match s {
        Status::Invited => "invited",
        Status::Active => "active",
        Status::Suspended => "suspended",
        Status::Removed => "removed",
    }
}

/// The full SCIM representation of a member (before projection).
/// `groups` are the member's teams as `(id, name)`.
pub fn render_user(m: &Member, public_url: &str, groups: &[(uuid::Uuid, String)]) -> Value {
    let mut obj: Map<String, Value> = m.attributes.clone();
    obj.insert("id".into(), json!(m.id.to_string()));
    if let Some(e) = &m.external_id {
        obj.insert("externalId".into(), json!(e));
    }
    obj.insert("userName".into(), json!(m.email));
    let mut name = obj
        .remove("name")
        .and_then(|n| n.as_object().cloned())
        .unwrap_or_default();
    if let Some(g) = &m.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &m.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        obj.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = &m.display_name {
        obj.insert("displayName".into(), json!(d));
    }
    if let Some(l) = &m.locale {
        obj.insert("locale".into(), json!(l));
    }
    // Invited members count as active for the IdP: they are provisioned and
    // not deprovisioned; the roster extension tells the real status.
    obj.insert(
        "active".into(),
        json!(matches!(m.status, Status::Active | Status::Invited)),
    );
    // Members created in the console have no emails attribute; Okta maps
    // the primary email, so give it the member's address.
    if obj.get("emails").is_none_or(|e| e.as_array().is_none_or(Vec::is_empty)) {
        obj.insert(
            "emails".into(),
            json!([{"value": m.email, "type": "work", "primary": true}]),
        );
    }
    obj.insert("roles".into(), json!([{"value": role_str(m.role), "primary": true}]));
    if !groups.is_empty() {
        let base = format!("{public_url}{}/Groups/", crate::paths::SCIM);
        let g: Vec<Value> = groups
            .iter()
            .map(|(id, name)| json!({"value": id.to_string(), "$ref": format!("{base}{id}"), "display": name, "type": "direct"}))
            .collect();
        obj.insert("groups".into(), Value::Array(g));
    }
    obj.insert(
        ROSTER_URN.into(),
        json!({"status": status_str(m.status), "managed": m.management != Management::Unmanaged}),
    );
    let mut schemas = vec![json!(USER_URN)];
    for k in obj.keys() {
        if k.starts_with("urn:") {
            schemas.push(json!(k));
        }
    }
    obj.insert("schemas".into(), Value::Array(schemas));
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": rfc3339(m.created_ms),
            "lastModified": rfc3339(m.updated_ms),
            "location": user_location(public_url, &m.id),
            "version": etag(m.version),
        }),
    );
    Value::Object(obj)
}

/// Splits a request body into what the User schema knows (and extension
/// URNs) and top-level names it does not. Unknown top-level attributes
/// (Okta custom attributes in the core namespace) are kept as sent.
fn split_unknown(body: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let mut known = Map::new();
    let mut unknown = Map::new();
    for (k, v) in body {
        let is_known = k.starts_with("urn:")
            || k.contains('.')
            || OWNED.iter().any(|o| o.eq_ignore_ascii_case(k))
            || USER.resolve_str(k).is_some();
        if is_known {
            known.insert(k.clone(), v.clone());
        } else {
            unknown.insert(k.clone(), v.clone());
        }
    }
    (known, unknown)
}

/// What a POST or PUT body says: the member input plus the plaintext
/// password if one was sent (hashed by the caller, outside the transaction).
pub struct Ingested {
    pub input: MemberInput,
    pub password: Option<String>,
}

/// Parses a POST/PUT body. `own_id` is the resource's id for PUT (an `id`
/// equal to it is ignored; any other is a mutability error); for POST a
/// client-sent `id` is ignored (RFC 7644 §3.3).
pub fn ingest_body(body: &Value, own_id: Option<&str>) -> Result<Ingested, ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the request body must be a JSON object",
        ));
    };
    // Before the PATCH engine de-duplicates multi-valued attributes, so a
    // crafted body costs no more than its size.
    check_values(body, "")?;
    let (mut known, unknown) = split_unknown(obj);
    let id_key = schema::key_ci(&known, "id");
    if let Some(k) = id_key {
        let same = own_id.is_some_and(|own| known.get(&k).and_then(Value::as_str) == Some(own));
        if own_id.is_none() || same {
            known.remove(&k);
        }
    }
    // The read-only roster extension is ignored like meta and groups.
    if let Some(k) = schema::key_ci(&known, ROSTER_URN) {
        known.remove(&k);
    }
    let mut resource = match own_id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    };
    let op = PatchOperation {
        op: Op::Replace,
        path: None,
        value: Some(Value::Object(known)),
    };
    // The body went through the PATCH engine as one operation; its errors
    // speak of "operation 1", which means nothing to a POST/PUT client.
    patch::apply(&mut resource, std::slice::from_ref(&op), &USER).map_err(|e| {
        let m = e.message();
        ScimError::bad(e.scim_type(), m.strip_prefix("operation 1: ").unwrap_or(m).to_owned())
    })?;
    if let Some(o) = resource.as_object_mut() {
        for (k, v) in unknown {
            if !v.is_null() && v != json!("") {
                o.insert(k, v);
            }
        }
    }
    from_resource(&resource)
}

/// Longest string value accepted anywhere in a resource.
pub const MAX_VALUE_CHARS: usize = 4096;

/// Most values one multi-valued attribute of a User may hold (`emails`,
/// `phoneNumbers`, `addresses`, ...). IdPs send a handful; the cap keeps a
/// crafted body from making de-duplication and every later write of that
/// member expensive (issue 17).
pub const MAX_MULTI_VALUES: usize = 100;

/// Strings that may span lines: RFC 7643 §4.1.2 says `addresses.formatted`
/// "MAY contain newlines". Every other string of a User is one line.
fn multi_line(path: &str) -> bool {
    path.eq_ignore_ascii_case("addresses.formatted")
}

/// Checks every value of a User body, resource or PATCH value: strings at
/// most [`MAX_VALUE_CHARS`] and free of control characters (names and
/// addresses go into mails and onto terminals: a CR/LF or an ESC sequence
/// there is an injection; tab, CR and LF only where a value may span
/// lines), arrays at most [`MAX_MULTI_VALUES`] long. `path` names the
/// attribute for the error (`name.givenName`).
pub fn check_values(v: &Value, path: &str) -> Result<(), ScimError> {
    check_at(v, path, 0)
}

/// The attribute a PATCH operation's value lands in, for [`check_values`]:
/// `addresses[type eq "work"].formatted` → `addresses.formatted`; the
/// schema URN prefix dropped. Empty for a path-less operation (the value
/// names its attributes itself).
pub fn value_path(path: Option<&super::path::PatchPath>) -> String {
    let Some(p) = path else { return String::new() };
    let mut out = p.attr.name.clone();
    for sub in [&p.attr.sub, &p.sub_after_filter].into_iter().flatten() {
        out.push('.');
        out.push_str(sub);
    }
    out
}

fn check_at(v: &Value, path: &str, depth: usize) -> Result<(), ScimError> {
    if depth > 64 {
        return Err(ScimError::bad("invalidValue", format!("{path}: nested too deeply")));
    }
    match v {
        Value::String(s) => {
            if s.chars().count() > MAX_VALUE_CHARS {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("{path}: values are limited to {MAX_VALUE_CHARS} characters"),
                ));
            }
            let lines = multi_line(path);
            if let Some(c) = s
                .chars()
                .find(|c| c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t')))
            {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!(
                        "{path}: control characters are not allowed (found U+{:04X})",
                        u32::from(c)
                    ),
                ));
            }
            Ok(())
        }
        Value::Array(a) => {
            if a.len() > MAX_MULTI_VALUES {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!(
                        "{path}: at most {MAX_MULTI_VALUES} values are accepted (got {})",
                        a.len()
                    ),
                ));
            }
            a.iter().try_for_each(|x| check_at(x, path, depth + 1))
        }
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_at(x, &p, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// Takes the member's fields out of a (canonical) User resource.
pub fn from_resource(resource: &Value) -> Result<Ingested, ScimError> {
    let Some(obj) = resource.as_object() else {
        return Err(ScimError::bad("invalidSyntax", "the resource must be a JSON object"));
    };
    check_values(resource, "")?;
    let mut attributes = obj.clone();
    let text = |key: &str| -> Result<Option<String>, ScimError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::bad("invalidValue", format!("{key} must be a string"))),
        }
    };
    let user_name = text("userName")?
        .ok_or_else(|| ScimError::bad("invalidValue", "userName is required (the member's email address)"))?;
    let display_name = text("displayName")?;
    let locale = text("locale")?;
    let external_id = text("externalId")?;
    let password = text("password")?;
    let active = match obj.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ScimError::bad("invalidValue", "active must be a boolean")),
    };
    let role = roles(obj.get("roles"));
    let (mut given_name, mut family_name) = (None, None);
    if let Some(Value::Object(name)) = attributes.get_mut("name") {
        given_name = name.remove("givenName").and_then(|v| v.as_str().map(str::to_owned));
        family_name = name.remove("familyName").and_then(|v| v.as_str().map(str::to_owned));
        if name.is_empty() {
            attributes.remove("name");
        }
    }
    for k in OWNED {
        attributes.remove(*k);
    }
    Ok(Ingested {
        input: MemberInput {
            user_name,
            display_name,
            given_name,
            family_name,
            locale,
            external_id,
            role,
            active,
            password_hash: None,
            attributes,
        },
        password,
    })
}

/// SPEC rule 3: `admin` (any case) anywhere wins; any other value counts as
/// `member`; absent or empty means "not said".
fn roles(v: Option<&Value>) -> Option<Role> {
    let items: Vec<&Value> = match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Null) | None => return None,
        Some(other) => vec![other],
    };
    let values: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    if values.iter().any(|v| v.trim().eq_ignore_ascii_case("admin")) {
        Some(Role::Admin)
    } else {
        Some(Role::Member)
    }
}

/// The password a PATCH sets, if any, so it can be hashed before the
/// transaction (path `password`, or a path-less value with that key).
pub fn patch_password(ops: &[PatchOperation]) -> Option<String> {
    ops.iter().rev().find_map(|op| {
        if matches!(op.op, Op::Remove) {
            return None;
        }
        match (&op.path, &op.value) {
            (Some(p), Some(Value::String(s))) if p.to_string().eq_ignore_ascii_case("password") => Some(s.clone()),
            (None, Some(Value::Object(o))) => schema::key_ci(o, "password")
                .and_then(|k| o.get(&k))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_URN;

    #[test]
    fn roles_rule() {
        assert_eq!(roles(None), None);
        assert_eq!(roles(Some(&json!([]))), None);
        assert_eq!(roles(Some(&json!([{"value": "Admin"}]))), Some(Role::Admin));
        assert_eq!(
            roles(Some(&json!([{"value": "member"}, {"value": "ADMIN"}]))),
            Some(Role::Admin)
        );
        assert_eq!(roles(Some(&json!([{"value": "owner"}]))), Some(Role::Member));
        assert_eq!(roles(Some(&json!(["admin"]))), Some(Role::Admin));
    }

    #[test]
    fn ingest_okta_create() {
        let body = json!({"schemas":[USER_URN],"userName":"test.user@okta.local",
            "name":{"givenName":"Test","familyName":"User"},
            "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
            "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
            "groups":[],"password":"1mz050nq","active":true, "customAttr": "kept"});
        let i = ingest_body(&body, None).unwrap();
        assert_eq!(i.input.user_name, "test.user@okta.local");
        assert_eq!(i.input.given_name.as_deref(), Some("Test"));
        assert_eq!(i.input.family_name.as_deref(), Some("User"));
        assert_eq!(i.input.external_id.as_deref(), Some("00ujl29u0le5T6Aj10h7"));
        assert_eq!(i.input.active, Some(true));
        assert_eq!(i.input.role, None);
        assert_eq!(i.password.as_deref(), Some("1mz050nq"));
        assert!(!i.input.attributes.contains_key("password"));
        assert!(!i.input.attributes.contains_key("groups"));
        assert_eq!(i.input.attributes["customAttr"], "kept");
        assert!(i.input.attributes.contains_key("emails"));
    }

    #[test]
    fn ingest_entra_create_with_string_boolean_and_nulls() {
        let body = json!({"schemas":[USER_URN, ENTERPRISE_URN],"externalId":"0a21f0f2","userName":"Test@Contoso.com",
            "active":"True","meta":{"resourceType":"User"},
            "name":{"formatted":"g f","familyName":"f","givenName":"g"},"roles":[],
            "addresses":null,"title":null,
            ENTERPRISE_URN: {"manager": "mgr-1", "department": "Eng"}});
        let i = ingest_body(&body, None).unwrap();
        assert_eq!(i.input.active, Some(true));
        assert_eq!(i.input.role, None);
        assert!(!i.input.attributes.contains_key("addresses"));
        assert!(!i.input.attributes.contains_key("meta"));
        assert_eq!(i.input.attributes["name"]["formatted"], "g f");
        assert_eq!(i.input.attributes[ENTERPRISE_URN]["manager"], json!({"value": "mgr-1"}));
    }

    #[test]
    fn render_then_ingest_round_trips() {
        let body = json!({"userName":"a@x.com","name":{"givenName":"A","familyName":"B","formatted":"A B"},
            "displayName":"A B","emails":[{"value":"a@x.com","type":"work","primary":true}],
            ENTERPRISE_URN: {"employeeNumber": "7"}});
        let i = ingest_body(&body, None).unwrap().input;
        let m = Member {
            display_name: i.display_name.clone(),
            given_name: i.given_name.clone(),
            family_name: i.family_name.clone(),
            attributes: i.attributes.clone(),
            ..Member::sample(7, &i.user_name)
        };
        let rendered = render_user(&m, "https://r.example", &[]);
        let again = from_resource(&rendered).unwrap().input;
        assert_eq!(again.attributes, i.attributes);
        assert_eq!(again.given_name, i.given_name);
        assert_eq!(again.role, Some(Role::Member));
        assert_eq!(
            rendered["meta"]["location"],
            "https://r.example/scim/v2/Users/00000000-0000-0000-0000-000000000007"
        );
        assert_eq!(rendered[ROSTER_URN]["status"], "active");
    }

    #[test]
    fn put_with_foreign_id_is_refused() {
        let e = ingest_body(&json!({"id": "other", "userName": "a@x.com"}), Some("mine"))
            .err()
            .unwrap();
        assert_eq!(e.scim_type, Some("mutability"));
        assert!(ingest_body(&json!({"id": "mine", "userName": "a@x.com"}), Some("mine")).is_ok());
        assert!(ingest_body(&json!({"id": "client-made", "userName": "a@x.com"}), None).is_ok());
    }
}
