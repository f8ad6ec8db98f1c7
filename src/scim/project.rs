//! Response shaping: the `attributes` / `excludedAttributes` query
//! parameters (RFC 7644 §3.4.2.5, §3.9) and the `returned` characteristic
//! (RFC 7643 §2.4) applied to resources in SCIM wire shape.
//!
//! Decisions:
//! - `returned: never` and `writeOnly` attributes and sub-attributes
//!   (`password`) are removed from every output, even when requested.
//! - `returned: always` attributes (`id`) and `schemas` are always included,
//!   even when excluded or not requested.
//! - `returned: request` attributes appear only when named in `attributes`.
//! - With `attributes`, only the named attributes (plus the always ones)
//!   appear; naming a sub-attribute (`name.givenName`, `emails.value`) keeps
//!   just that sub-attribute, in every element of a multi-valued attribute;
//!   naming an extension URN keeps the whole extension object. `meta` is in
//!   the default set, so it is dropped by `attributes` unless named.
//! - When both parameters are given, `attributes` wins and
//!   `excludedAttributes` is ignored (IdPs never send both; this cannot fail).
//! - Names that resolve to nothing are ignored. Unqualified names resolve to
//!   the core schema, else to the one extension defining them.
//! - Data the schema does not describe (undeclared extension URNs, unknown
//!   sub-attributes) is part of the default set and is dropped when
//!   `attributes` does not name it; an undeclared extension can be named or
//!   excluded by its URN.

use serde_json::{Map, Value};

use super::filter::{AttrPath, FilterError, parse_attr_path};
use super::schema::{AttrDef, Mutability, ResourceDef, Returned, SchemaDef};

/// Parses a comma-separated attribute list (`userName,name.givenName,
/// urn:…:enterprise:2.0:User:manager`). Empty items are skipped.
pub fn parse_attr_list(s: &str) -> Result<Vec<AttrPath>, FilterError> {
    s.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(parse_attr_path)
        .collect()
}

/// A parsed selection item, normalised against the resource type.
enum Sel {
    /// A whole schema (extension URN), by lowercase URN.
    Schema(String),
    /// An attribute (lowercase schema URN, lowercase name, lowercase sub).
    Attr {
        urn: String,
        name: String,
        sub: Option<String>,
    },
}

fn normalise(p: &AttrPath, def: &ResourceDef) -> Sel {
    let full = p.to_string();
    if p.sub.is_none()
        && let Some(s) = def.schema_by_urn(&full)
    {
        return Sel::Schema(s.id.to_lowercase());
    }
    // An undeclared URN given alone ("urn:x:1.0:Ext") splits into a bogus
    // urn/name pair; keep the full text as a schema selection too.
    let urn = match &p.urn {
        Some(u) => def
            .schema_by_urn(u)
            .map(|s| s.id.to_string())
            .unwrap_or_else(|| u.clone()),
        None => {
            if def.core.attr(&p.name).is_some() {
                def.core.id.to_string()
            } else {
                let mut found = def.extensions.iter().filter(|(s, _)| s.attr(&p.name).is_some());
                match (found.next(), found.next()) {
                    (Some((s, _)), None) => s.id.to_string(),
                    _ => def.core.id.to_string(),
                }
            }
        }
    };
    if p.urn.is_some() && def.schema_by_urn(&urn).is_none() {
        return Sel::Schema(full.to_lowercase());
    }
    Sel::Attr {
        urn: urn.to_lowercase(),
        name: p.name.to_lowercase(),
        sub: p.sub.as_ref().map(|s| s.to_lowercase()),
    }
}

/// For one attribute: is it selected whole, or only some sub-attributes?
enum Pick {
    None,
    Whole,
    Subs(Vec<String>),
}

/// `urn` and `name` come from the schema definitions (ASCII), so an ASCII
/// case-insensitive compare with the lower-cased selections is exact and
/// allocates nothing (this runs for every attribute of every resource sent).
fn pick(sels: &[Sel], urn: &str, name: &str) -> Pick {
    if sels.is_empty() {
        return Pick::None;
    }
    let mut subs = Vec::new();
    for s in sels {
        match s {
            Sel::Schema(u) if u.eq_ignore_ascii_case(urn) => return Pick::Whole,
            Sel::Attr { urn: u, name: n, sub } if u.eq_ignore_ascii_case(urn) && n.eq_ignore_ascii_case(name) => {
                match sub {
                    None => return Pick::Whole,
                    Some(x) => subs.push(x.clone()),
                }
            }
            _ => {}
        }
    }
    if subs.is_empty() { Pick::None } else { Pick::Subs(subs) }
}

fn hidden(a: &AttrDef) -> bool {
    a.returned == Returned::Never || a.mutability == Mutability::WriteOnly
}

/// Shapes one complex object: drops hidden sub-attributes, then keeps only
/// `keep` (when given) or removes `drop`.
fn shape_object(o: Map<String, Value>, attr: &AttrDef, keep: Option<&[String]>, drop: &[String]) -> Map<String, Value> {
    o.into_iter()
        .filter(|(k, _)| {
            // Lower-cased only when a selection has to be matched.
            let lk = (keep.is_some() || !drop.is_empty()).then(|| k.to_lowercase());
            let named = |ks: &[String]| lk.as_ref().is_some_and(|lk| ks.contains(lk));
            let visible = match attr.sub(k) {
                Some(sub) => !hidden(sub) && (sub.returned != Returned::Request || keep.is_some_and(named)),
                None => true,
            };
            visible && keep.is_none_or(named) && !named(drop)
        })
        .collect()
}

/// Applies sub-attribute shaping to a complex value (object or array of
/// objects). Returns `None` when nothing is left.
fn shape_value(v: Value, attr: &AttrDef, keep: Option<&[String]>, drop: &[String]) -> Option<Value> {
    if !attr.is_complex() || (keep.is_none() && drop.is_empty() && attr.sub_attributes.iter().all(|s| !hidden(s))) {
        return Some(v);
    }
    match v {
        Value::Object(o) => {
            let m = shape_object(o, attr, keep, drop);
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items
                .into_iter()
                .filter_map(|e| match e {
                    Value::Object(o) => {
                        let m = shape_object(o, attr, keep, drop);
                        (!m.is_empty()).then_some(Value::Object(m))
                    }
                    other => Some(other),
                })
                .collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        other => Some(other),
    }
}

fn is_urn(k: &str) -> bool {
    k.len() >= 4 && k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// Shapes the attributes of one schema (the resource's non-URN members for
/// the core schema, the extension object otherwise), moving kept values.
fn project_schema(
    obj: impl IntoIterator<Item = (String, Value)>,
    schema: &SchemaDef,
    attributes: Option<&[Sel]>,
    excluded: &[Sel],
    out: &mut Map<String, Value>,
    is_core: bool,
) {
    for (k, v) in obj {
        if is_core && k.eq_ignore_ascii_case("schemas") {
            out.insert(k, v);
            continue;
        }
        let Some(attr) = schema.attr(&k) else {
            // Undescribed data: default set only. (Extension objects are
            // handled by the caller, never here.)
            if attributes.is_none() && !(is_core && is_urn(&k)) {
                out.insert(k, v);
            }
            continue;
        };
        if hidden(attr) {
            continue;
        }
        if attr.returned == Returned::Always {
            if let Some(x) = shape_value(v, attr, None, &[]) {
                out.insert(k, x);
            }
            continue;
        }
        let shaped = match attributes {
            Some(sels) => match pick(sels, schema.id, attr.name) {
                Pick::None => None,
                Pick::Whole => shape_value(v, attr, None, &[]),
                Pick::Subs(subs) => shape_value(v, attr, Some(&subs), &[]),
            },
            None => {
                if attr.returned == Returned::Request {
                    None
                } else {
                    match pick(excluded, schema.id, attr.name) {
                        Pick::Whole => None,
                        Pick::None => shape_value(v, attr, None, &[]),
                        Pick::Subs(subs) => shape_value(v, attr, None, &subs),
                    }
                }
            }
        };
        if let Some(x) = shaped {
            out.insert(k, x);
        }
    }
}

/// A resource's members, moved out of its map.
type Members = Vec<(String, Value)>;

/// Shapes `resource` for output. `attributes` and `excluded` are the parsed
/// query parameters (empty when absent). See the module documentation for
/// the rules.
pub fn project(resource: &Value, def: &ResourceDef, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    project_owned(resource.clone(), def, attributes, excluded)
}

/// [`project`] on an owned resource: kept values are moved, not cloned
/// (callgrind: the clones were most of the projection's cost per GET).
pub fn project_owned(resource: Value, def: &ResourceDef, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(mut obj) = resource else {
        return resource;
    };
    if attributes.is_empty() && excluded.is_empty() {
        default_set_in_place(&mut obj, def);
        return Value::Object(obj);
    }
    project_selected(obj, def, attributes, excluded)
}

/// The general projection: builds the output from the kept members.
fn project_selected(
    obj: Map<String, Value>,
    def: &ResourceDef,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    let attrs: Vec<Sel> = attributes.iter().map(|p| normalise(p, def)).collect();
    let excl: Vec<Sel> = if attrs.is_empty() {
        excluded.iter().map(|p| normalise(p, def)).collect()
    } else {
        Vec::new()
    };
    let attrs_opt = (!attrs.is_empty()).then_some(attrs.as_slice());

    // Core attribute names never start with "urn:", so the core pass only
    // ever keeps non-URN members and the extension pass only URN members.
    let (urns, core): (Members, Members) = obj.into_iter().partition(|(k, _)| is_urn(k));
    let mut out = Map::new();
    project_schema(core, def.core, attrs_opt, &excl, &mut out, true);
    for (k, v) in urns {
        match def.schema_by_urn(&k) {
            Some(s) if !std::ptr::eq(s, def.core) => {
                let Value::Object(ext) = v else { continue };
                let mut sub_out = Map::new();
                project_schema(ext, s, attrs_opt, &excl, &mut sub_out, false);
                if !sub_out.is_empty() {
                    out.insert(k, Value::Object(sub_out));
                }
            }
            Some(_) => {}
            None => {
                let lk = k.to_lowercase();
                let named = |sels: &[Sel]| sels.iter().any(|s| matches!(s, Sel::Schema(u) if *u == lk));
                let include = match attrs_opt {
                    Some(sels) => named(sels),
                    None => !named(&excl),
                };
                if include {
                    out.insert(k, v);
                }
            }
        }
    }
    Value::Object(out)
}

/// What the default projection does to one top-level member `(k, v)` of a
/// resource, without touching it: `Some(true)` keeps it exactly as it is,
/// `Some(false)` drops it, `None` changes it (shapes sub-attributes). For
/// renderers that write a resource straight to bytes (`render`), which
/// fall back to [`project_owned`] on `None`.
pub(super) fn default_keeps(k: &str, v: &Value, def: &ResourceDef) -> Option<bool> {
    if !is_urn(k) {
        return keeps_unchanged(k, def.core, true);
    }
    match def.schema_by_urn(k) {
        Some(s) if !std::ptr::eq(s, def.core) => match v {
            Value::Object(ext) => {
                for k in ext.keys() {
                    if keeps_unchanged(k, s, false)? {
                        continue;
                    }
                    return None;
                }
                Some(!ext.is_empty())
            }
            _ => Some(false),
        },
        Some(_) => Some(false),
        None => Some(true),
    }
}

/// The default set's decision on one member of a schema's attributes, as
/// [`project_schema`] takes it with no selections: `Ok(keep)` when the
/// value stays exactly as it is (or goes), `Err(attr)` when it stays but its
/// sub-attributes are shaped (a complex attribute with hidden ones).
fn default_decision(k: &str, schema: &SchemaDef, is_core: bool) -> Result<bool, &'static AttrDef> {
    if is_core && k.eq_ignore_ascii_case("schemas") {
        return Ok(true);
    }
    let Some(attr) = schema.attr(k) else {
        return Ok(true);
    };
    if hidden(attr) || attr.returned == Returned::Request {
        return Ok(false);
    }
    // `shape_value` returns such a value as it is.
    if !attr.is_complex() || attr.sub_attributes.iter().all(|s| !hidden(s)) {
        return Ok(true);
    }
    Err(attr)
}

/// [`default_decision`] for a value that must not be touched.
fn keeps_unchanged(k: &str, schema: &SchemaDef, is_core: bool) -> Option<bool> {
    default_decision(k, schema, is_core).ok()
}

/// [`project_owned`] without `attributes` or `excludedAttributes` (nearly
/// every request): the same rules, applied by removing from the resource's
/// own map instead of building a new one, since almost everything stays.
fn default_set_in_place(obj: &mut Map<String, Value>, def: &ResourceDef) {
    obj.retain(|k, v| {
        if !is_urn(k) {
            return keep_by_default(k, v, def.core, true);
        }
        match def.schema_by_urn(k) {
            Some(s) if !std::ptr::eq(s, def.core) => match v {
                Value::Object(ext) => {
                    ext.retain(|k, v| keep_by_default(k, v, s, false));
                    !ext.is_empty()
                }
                _ => false,
            },
            Some(_) => false,
            None => true,
        }
    });
}

/// Whether one member of a schema's attributes stays in the default set,
/// shaping its sub-attributes in place when [`default_decision`] says so.
fn keep_by_default(k: &str, v: &mut Value, schema: &SchemaDef, is_core: bool) -> bool {
    let attr = match default_decision(k, schema, is_core) {
        Ok(keep) => return keep,
        Err(attr) => attr,
    };
    match shape_value(std::mem::take(v), attr, None, &[]) {
        Some(x) => {
            *v = x;
            true
        }
        None => false,
    }
}

/// Removes `returned: never` and `writeOnly` attributes (and sub-attributes)
/// from a resource, leaving everything else; use on every outgoing resource
/// that does not go through [`project`].
pub fn strip_never(resource: &Value, def: &ResourceDef) -> Value {
    project(resource, def, &[], &[])
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_URN, GROUP, ROSTER_URN, USER};
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
            "id": "u-1",
            "userName": "bjensen",
            "password": "secret",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"value": "a@x", "type": "work", "primary": true},
                {"value": "b@x", "type": "home"}
            ],
            "meta": {"resourceType": "User", "location": "https://x/Users/u-1"},
            ENTERPRISE_URN: {"department": "R&D", "manager": {"value": "m", "displayName": "M"}},
            ROSTER_URN: {"status": "active", "managed": false},
            "urn:example:custom:1.0:User": {"shoeSize": 44}
        })
    }

    fn list(s: &str) -> Vec<AttrPath> {
        match parse_attr_list(s) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    }

    #[test]
    fn parses_lists() {
        let l = list(" userName , name.givenName,,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager");
        assert_eq!(l.len(), 3);
        assert_eq!(l.get(1).and_then(|p| p.sub.as_deref()), Some("givenName"));
        assert_eq!(l.get(2).and_then(|p| p.urn.as_deref()), Some(ENTERPRISE_URN));
        assert!(parse_attr_list("a b").is_err());
        assert!(parse_attr_list("emails[type eq \"work\"]").is_err());
        assert_eq!(parse_attr_list("").map(|v| v.len()), Ok(0));
    }

    #[test]
    fn default_set_hides_password_only() {
        let out = strip_never(&user(), &USER);
        assert!(out.get("password").is_none());
        let mut expected = keys(&user());
        expected.retain(|k| k != "password");
        assert_eq!(keys(&out), expected);
        assert_eq!(out["meta"], user()["meta"]);
        assert_eq!(out[ENTERPRISE_URN], user()[ENTERPRISE_URN]);
    }

    #[test]
    fn attributes_selects_plus_always() {
        let out = project(
            &user(),
            &USER,
            &list("userName,name.givenName,emails.value,password"),
            &[],
        );
        assert_eq!(
            out,
            json!({
                "schemas": user()["schemas"],
                "id": "u-1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "a@x"}, {"value": "b@x"}]
            })
        );
        let out = project(&user(), &USER, &list("USERNAME"), &[]);
        assert_eq!(keys(&out), vec!["id", "schemas", "userName"]);
    }

    #[test]
    fn attributes_with_extensions() {
        let out = project(
            &user(),
            &USER,
            &list("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,meta"),
            &[],
        );
        assert_eq!(
            out[ENTERPRISE_URN],
            json!({"manager": {"value": "m", "displayName": "M"}})
        );
        assert!(out.get("meta").is_some());
        assert!(out.get(ROSTER_URN).is_none());
        let out = project(&user(), &USER, &list(ENTERPRISE_URN), &[]);
        assert_eq!(out[ENTERPRISE_URN], user()[ENTERPRISE_URN]);
        let out = project(&user(), &USER, &list("department"), &[]);
        assert_eq!(out[ENTERPRISE_URN], json!({"department": "R&D"}));
        let out = project(&user(), &USER, &list("urn:example:custom:1.0:User"), &[]);
        assert_eq!(out["urn:example:custom:1.0:User"], json!({"shoeSize": 44}));
    }

    #[test]
    fn excluded_attributes() {
        let g = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g", "displayName": "Ops",
                       "members": [{"value": "u"}], "meta": {"resourceType": "Group"}});
        let out = project(&g, &GROUP, &[], &list("members"));
        assert_eq!(keys(&out), vec!["displayName", "id", "meta", "schemas"]);
        // id is returned always and cannot be excluded.
        let out = project(&g, &GROUP, &[], &list("id,displayName"));
        assert_eq!(keys(&out), vec!["id", "members", "meta", "schemas"]);
        let out = project(
            &user(),
            &USER,
            &[],
            &list("name.givenName,emails.type,urn:example:custom:1.0:User"),
        );
        assert_eq!(out["name"], json!({"familyName": "Jensen"}));
        assert_eq!(
            out["emails"],
            json!([{"value": "a@x", "primary": true}, {"value": "b@x"}])
        );
        assert!(out.get("urn:example:custom:1.0:User").is_none());
        let out = project(&user(), &USER, &[], &list(&format!("{ENTERPRISE_URN},{ROSTER_URN}")));
        assert!(out.get(ENTERPRISE_URN).is_none() && out.get(ROSTER_URN).is_none());
        assert!(out.get("password").is_none());
    }

    #[test]
    fn attributes_wins_over_excluded() {
        let out = project(&user(), &USER, &list("userName"), &list("userName"));
        assert_eq!(out["userName"], "bjensen");
    }

    #[test]
    fn default_set_in_place_matches_the_general_projection() {
        let mut cases = vec![
            user(),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g", "displayName": "Ops",
                   "members": [{"value": "u", "display": "U"}], "meta": {"resourceType": "Group"}}),
        ];
        // Edge cases of the extension pass and of hidden attributes.
        let mut u = user();
        u[ENTERPRISE_URN] = json!({});
        u[ROSTER_URN] = json!("not an object");
        u["urn:ietf:params:scim:schemas:core:2.0:User"] = json!({"userName": "x"});
        u["PASSWORD"] = json!("also hidden");
        u["customTopLevel"] = json!({"kept": true});
        u["emails"] = json!([]);
        cases.push(u);
        let mut u = user();
        u[ENTERPRISE_URN] = json!({"employeeNumber": "7", "unknownSub": 1});
        u["name"] = json!({"givenName": "B", "shoe": 44});
        cases.push(u);
        for v in cases {
            for def in [&USER, &GROUP] {
                let Value::Object(obj) = v.clone() else { unreachable!() };
                let general = project_selected(obj.clone(), def, &[], &[]);
                let mut fast = obj;
                default_set_in_place(&mut fast, def);
                assert_eq!(Value::Object(fast), general, "{v}");
            }
        }
    }

    #[test]
    fn non_object_passes_through() {
        assert_eq!(project(&json!(5), &USER, &[], &[]), json!(5));
    }
}
