//! SCIM PATCH (RFC 7644 §3.5.2): parsing a `PatchOp` request body and
//! applying its operations atomically to a resource held as a
//! `serde_json::Value` in SCIM wire shape, validated against the resource
//! type's schema, with the IdP tolerances roster promises (SPEC §2,
//! IDP-WIRE.md §2.1 and §3.5).
//!
//! # Semantics and decisions
//!
//! - `op` and the `Operations`/`schemas`/`op`/`path`/`value` keys match
//!   case-insensitively (Entra sends `"Replace"`). An empty `Operations`
//!   array is accepted as a no-op.
//! - Path-less `add`/`replace`: every key of the value object is treated as a
//!   path, so dotted (`name.givenName`) and URN-qualified keys work (Entra),
//!   a declared schema URN key holding an object addresses that schema's
//!   attributes, and `schemas` is ignored (the server derives it).
//! - `add` on a single-valued attribute replaces it; on a multi-valued one it
//!   appends, merging an element into an existing "same" element instead of
//!   duplicating it (same `value`, and same `type` when both have one).
//! - `add`/`replace` on a complex single-valued attribute merges the given
//!   sub-attributes (RFC 7644 §3.5.2.3), except when the new `value`
//!   sub-attribute differs from the stored one (a different manager): then
//!   the object is replaced so stale `$ref`/`displayName` do not survive.
//! - `replace` on `attr[filter]` merges the value into every matching element.
//!   `add`/`replace` on `attr[filter]` or `attr[filter].sub` with no match
//!   creates the element when the filter is `type eq "…"`, optionally `and`-ed
//!   with more `eq` comparisons on sub-attributes (Entra/Okta rely on it);
//!   otherwise it fails with `noTarget`.
//! - `remove` needs a path (`noTarget` otherwise). `remove` with a value array
//!   on a multi-valued attribute removes only the listed elements (Entra's
//!   member removal). `remove attr[filter]` with no match succeeds unchanged
//!   (Okta removing a member already gone must not fail the whole PATCH).
//! - `null`, `""` and `{}` as an add/replace value clear the target; `[]`
//!   clears a multi-valued attribute on replace and is a no-op on add.
//! - Values are checked against the attribute type; Boolean attributes accept
//!   `"true"`/`"false"` strings in any case and store real booleans; a bare
//!   string given for a complex attribute becomes `{"value": …}` (manager);
//!   a one-element array given for a single-valued complex attribute is
//!   unwrapped (Entra's 2018 manager form). Wrong types are `invalidValue`.
//! - Unknown core attributes or sub-attributes are `invalidPath`. Data under
//!   an undeclared extension URN follows [`UnknownExtensions`] (default:
//!   kept verbatim, per SPEC §2 "unknown extensions are kept").
//! - readOnly attributes: changing them is `mutability`, except that ops on
//!   `meta` and `groups` are ignored, setting `id` to the resource's own id is
//!   ignored, and setting any other readOnly attribute to its current value is
//!   ignored. readOnly sub-attributes inside a value (e.g.
//!   `manager.displayName`) are dropped. Immutable sub-attributes
//!   (`members.value`) may be set on new elements but not changed.
//! - Removing or clearing a `required` attribute (`userName`, Group
//!   `displayName`) is `invalidValue`.
//! - Setting an element's `primary` to true clears `primary` on the others.

use std::fmt;

use serde_json::{Map, Value};

use super::filter::{self, CompValue, CompareOp, Filter, ParseOptions};
use super::path::{PatchPath, Target, parse_path_with};
use super::schema::{AttrDef, AttrType, Mutability, ResourceDef, SchemaDef, get_ci, key_ci};

pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const DEFAULT_MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: Op,
    pub path: Option<PatchPath>,
    /// `None` when the operation had no `value` member (only valid for
    /// `remove`); `Some(Value::Null)` for an explicit `null`.
    pub value: Option<Value>,
}

/// What to do with data addressed to an extension URN the resource type does
/// not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownExtensions {
    /// Store it verbatim under the URN key (no validation).
    Keep,
    /// Skip those operations (or value members) silently.
    Ignore,
    /// Fail with `invalidPath`.
    Reject,
}

#[derive(Debug, Clone, Copy)]
pub struct PatchOptions {
    pub max_operations: usize,
    /// Limits for the value filters inside paths.
    pub filter: ParseOptions,
    pub unknown_extensions: UnknownExtensions,
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions {
            max_operations: DEFAULT_MAX_OPERATIONS,
            filter: ParseOptions::default(),
            unknown_extensions: UnknownExtensions::Keep,
        }
    }
}

/// A rejected PATCH; the server answers 400 with [`PatchError::scim_type`]
/// and the `Display` text as `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    InvalidSyntax(String),
    InvalidPath(String),
    InvalidFilter(String),
    InvalidValue(String),
    Mutability(String),
    NoTarget(String),
}

impl PatchError {
    pub fn scim_type(&self) -> &'static str {
        match self {
            PatchError::InvalidSyntax(_) => "invalidSyntax",
            PatchError::InvalidPath(_) => "invalidPath",
            PatchError::InvalidFilter(_) => "invalidFilter",
            PatchError::InvalidValue(_) => "invalidValue",
            PatchError::Mutability(_) => "mutability",
            PatchError::NoTarget(_) => "noTarget",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            PatchError::InvalidSyntax(m)
            | PatchError::InvalidPath(m)
            | PatchError::InvalidFilter(m)
            | PatchError::InvalidValue(m)
            | PatchError::Mutability(m)
            | PatchError::NoTarget(m) => m,
        }
    }

    fn prefixed(self, index: usize) -> PatchError {
        let wrap = |m: String| format!("operation {}: {m}", index + 1);
        match self {
            PatchError::InvalidSyntax(m) => PatchError::InvalidSyntax(wrap(m)),
            PatchError::InvalidPath(m) => PatchError::InvalidPath(wrap(m)),
            PatchError::InvalidFilter(m) => PatchError::InvalidFilter(wrap(m)),
            PatchError::InvalidValue(m) => PatchError::InvalidValue(wrap(m)),
            PatchError::Mutability(m) => PatchError::Mutability(wrap(m)),
            PatchError::NoTarget(m) => PatchError::NoTarget(wrap(m)),
        }
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PatchError {}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Parses a PatchOp body with default limits.
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    parse_patch_with(body, &PatchOptions::default())
}

pub fn parse_patch_with(body: &Value, opts: &PatchOptions) -> Result<Vec<PatchOperation>, PatchError> {
    if !body.is_object() {
        return Err(PatchError::InvalidSyntax("a PATCH body must be a JSON object".into()));
    }
    let has_urn = get_ci(body, "schemas").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_URN)))
    });
    if !has_urn {
        return Err(PatchError::InvalidSyntax(format!(
            "'schemas' must contain \"{PATCH_OP_URN}\""
        )));
    }
    let Some(ops) = get_ci(body, "Operations") else {
        return Err(PatchError::InvalidSyntax("missing 'Operations' array".into()));
    };
    let Some(ops) = ops.as_array() else {
        return Err(PatchError::InvalidSyntax("'Operations' must be an array".into()));
    };
    if ops.len() > opts.max_operations {
        return Err(PatchError::InvalidSyntax(format!(
            "{} operations in one PATCH; the maximum is {}",
            ops.len(),
            opts.max_operations
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, o)| parse_operation(o, opts).map_err(|e| e.prefixed(i)))
        .collect()
}

fn parse_operation(o: &Value, opts: &PatchOptions) -> Result<PatchOperation, PatchError> {
    if !o.is_object() {
        return Err(PatchError::InvalidSyntax("each operation must be a JSON object".into()));
    }
    let op = match get_ci(o, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(s) => {
            return Err(PatchError::InvalidSyntax(format!(
                "unknown op \"{s}\"; expected add, remove or replace"
            )));
        }
        None => {
            return Err(PatchError::InvalidSyntax(
                "missing 'op' (add, remove or replace)".into(),
            ));
        }
    };
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(parse_path_with(s, &opts.filter).map_err(|e| PatchError::InvalidPath(format!("path \"{s}\": {e}")))?)
        }
        Some(_) => {
            return Err(PatchError::InvalidSyntax("'path' must be a string".into()));
        }
    };
    let value = get_ci(o, "value").cloned();
    match op {
        Op::Remove if path.is_none() => Err(PatchError::NoTarget("remove requires a 'path'".into())),
        Op::Add | Op::Replace if value.is_none() => Err(PatchError::InvalidSyntax(format!(
            "{} requires a 'value'",
            if op == Op::Add { "add" } else { "replace" }
        ))),
        _ => Ok(PatchOperation { op, path, value }),
    }
}

// ---------------------------------------------------------------------------
// Application
// ---------------------------------------------------------------------------

/// Applies `ops` to `resource` atomically with default options: on error the
/// resource is left exactly as it was.
pub fn apply(resource: &mut Value, ops: &[PatchOperation], def: &ResourceDef) -> Result<(), PatchError> {
    apply_with(resource, ops, def, &PatchOptions::default())
}

pub fn apply_with(
    resource: &mut Value,
    ops: &[PatchOperation],
    def: &ResourceDef,
    opts: &PatchOptions,
) -> Result<(), PatchError> {
    if !resource.is_object() {
        return Err(PatchError::InvalidValue(
            "the stored resource is not a JSON object".into(),
        ));
    }
    let ctx = Ctx {
        def,
        own_id: get_ci(resource, "id").and_then(Value::as_str).map(str::to_string),
        opts,
    };
    let mut work = resource.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut work, op, &ctx).map_err(|e| e.prefixed(i))?;
    }
    *resource = work;
    Ok(())
}

struct Ctx<'a> {
    def: &'a ResourceDef,
    own_id: Option<String>,
    opts: &'a PatchOptions,
}

fn apply_op(res: &mut Value, op: &PatchOperation, ctx: &Ctx<'_>) -> Result<(), PatchError> {
    match &op.path {
        Some(p) => {
            let target = p
                .resolve(ctx.def)
                .map_err(|e| PatchError::InvalidPath(format!("path \"{p}\": {}", e.message)))?;
            apply_target(res, op.op, target, op.value.as_ref(), ctx)
        }
        None => {
            let Some(Value::Object(members)) = &op.value else {
                return Err(PatchError::InvalidValue(
                    "without a 'path', 'value' must be an object of attributes".into(),
                ));
            };
            for (key, val) in members {
                apply_keyed(res, op.op, key, val, ctx)?;
            }
            Ok(())
        }
    }
}

fn resolve_key(key: &str, ctx: &Ctx<'_>) -> Result<Target, PatchError> {
    let p = parse_path_with(key, &ctx.opts.filter)
        .map_err(|e| PatchError::InvalidPath(format!("attribute \"{key}\": {e}")))?;
    p.resolve(ctx.def)
        .map_err(|e| PatchError::InvalidPath(format!("attribute \"{key}\": {}", e.message)))
}

/// One member of a path-less add/replace value object.
fn apply_keyed(res: &mut Value, op: Op, key: &str, val: &Value, ctx: &Ctx<'_>) -> Result<(), PatchError> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    let target = match ctx.def.split_schema(key) {
        Ok((schema, "")) => Target::WholeSchema(schema),
        // An undeclared URN key holding an object is taken as a whole
        // extension (the usual shape); with a scalar it names an attribute.
        Err(_) if val.is_object() => Target::UnknownExtension {
            urn: key.to_string(),
            name: None,
            sub: None,
        },
        _ => resolve_key(key, ctx)?,
    };
    apply_target(res, op, target, Some(val), ctx)
}

fn apply_target(
    res: &mut Value,
    op: Op,
    target: Target,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    match target {
        Target::WholeSchema(schema) => apply_extension(res, op, schema, value, ctx),
        Target::UnknownExtension { urn, name, sub } => match ctx.opts.unknown_extensions {
            UnknownExtensions::Ignore => Ok(()),
            UnknownExtensions::Reject => Err(PatchError::InvalidPath(format!(
                "'{urn}' is not a schema of {}",
                ctx.def.name
            ))),
            UnknownExtensions::Keep => apply_unknown(res, op, &urn, name, sub, value),
        },
        Target::Attr {
            schema,
            extension,
            attr,
            filter,
            sub,
        } => {
            let t = AttrTarget {
                schema,
                extension,
                attr,
                filter: filter.as_ref(),
                sub,
            };
            apply_attr(res, op, &t, value, ctx)
        }
    }
}

fn apply_extension(
    res: &mut Value,
    op: Op,
    schema: &'static SchemaDef,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let is_ext = !std::ptr::eq(schema, ctx.def.core);
    let members = match (op, value) {
        (Op::Remove, _) => None,
        (_, Some(v)) if is_clear(v) => None,
        (_, Some(Value::Object(m))) => Some(m),
        _ => {
            return Err(PatchError::InvalidValue(format!(
                "the value for '{}' must be an object",
                schema.id
            )));
        }
    };
    match members {
        Some(m) => {
            for (k, v) in m {
                let Some(attr) = schema.attr(k) else {
                    return Err(PatchError::InvalidPath(format!(
                        "'{k}' is not an attribute of {}",
                        schema.id
                    )));
                };
                let t = AttrTarget {
                    schema,
                    extension: is_ext,
                    attr,
                    filter: None,
                    sub: None,
                };
                apply_attr(res, op, &t, Some(v), ctx)?;
            }
        }
        None => {
            // Clearing the extension is removing each attribute, so readOnly
            // and required checks still apply.
            for attr in schema.attributes {
                let container = if is_ext { get_ci(res, schema.id) } else { Some(&*res) };
                let present = container.and_then(|e| get_ci(e, attr.name)).is_some();
                if present {
                    let t = AttrTarget {
                        schema,
                        extension: is_ext,
                        attr,
                        filter: None,
                        sub: None,
                    };
                    apply_attr(res, Op::Remove, &t, None, ctx)?;
                }
            }
            if is_ext
                && let Some(obj) = res.as_object_mut()
                && let Some(k) = key_ci(obj, schema.id)
            {
                obj.remove(&k);
            }
        }
    }
    Ok(())
}

fn apply_unknown(
    res: &mut Value,
    op: Op,
    urn: &str,
    name: Option<String>,
    sub: Option<String>,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let clear = op == Op::Remove || value.is_none_or(is_clear);
    let Some(root) = res.as_object_mut() else {
        return Ok(());
    };
    let key = key_ci(root, urn).unwrap_or_else(|| urn.to_string());
    let Some(name) = name else {
        match value {
            Some(Value::Object(m)) if !clear => {
                let ext = root.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !ext.is_object() {
                    *ext = Value::Object(Map::new());
                }
                if let Some(ext) = ext.as_object_mut() {
                    for (k, v) in m {
                        put_raw(ext, k, if is_clear(v) { None } else { Some(v.clone()) });
                    }
                }
            }
            _ => {
                root.remove(&key);
            }
        }
        drop_if_empty(root, &key);
        return Ok(());
    };
    let ext = root.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
    if !ext.is_object() {
        *ext = Value::Object(Map::new());
    }
    if let Some(ext) = ext.as_object_mut() {
        let new = if clear { None } else { value.cloned() };
        match sub {
            None => put_raw(ext, &name, new),
            Some(s) => {
                let k = key_ci(ext, &name).unwrap_or_else(|| name.clone());
                let inner = ext.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !inner.is_object() {
                    *inner = Value::Object(Map::new());
                }
                if let Some(inner) = inner.as_object_mut() {
                    put_raw(inner, &s, new);
                }
                drop_if_empty(ext, &k);
            }
        }
    }
    drop_if_empty(root, &key);
    Ok(())
}

fn put_raw(obj: &mut Map<String, Value>, name: &str, v: Option<Value>) {
    let k = key_ci(obj, name);
    if let Some(k) = &k {
        obj.remove(k);
    }
    if let Some(v) = v {
        obj.insert(k.unwrap_or_else(|| name.to_string()), v);
    }
}

fn drop_if_empty(obj: &mut Map<String, Value>, key: &str) {
    if obj.get(key).is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
        obj.remove(key);
    }
}

struct AttrTarget<'f> {
    schema: &'static SchemaDef,
    extension: bool,
    attr: &'static AttrDef,
    filter: Option<&'f Filter>,
    sub: Option<&'static AttrDef>,
}

impl AttrTarget<'_> {
    fn describe(&self) -> String {
        let mut s = if self.extension {
            format!("{}:{}", self.schema.id, self.attr.name)
        } else {
            self.attr.name.to_string()
        };
        if let Some(f) = self.filter {
            s.push_str(&format!("[{f}]"));
        }
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }
}

fn apply_attr(
    res: &mut Value,
    op: Op,
    t: &AttrTarget<'_>,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let r = apply_attr_inner(res, op, t, value, ctx);
    // The extension object may have been created for nothing (ignored op)
    // or emptied; an empty extension is not kept.
    if t.extension
        && let Some(root) = res.as_object_mut()
        && let Some(k) = key_ci(root, t.schema.id)
    {
        drop_if_empty(root, &k);
    }
    r
}

fn apply_attr_inner(
    res: &mut Value,
    op: Op,
    t: &AttrTarget<'_>,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), PatchError> {
    let attr = t.attr;
    let Some(root) = res.as_object_mut() else {
        return Err(PatchError::InvalidValue("resource is not an object".into()));
    };
    let ext_key = if t.extension {
        let k = key_ci(root, t.schema.id).unwrap_or_else(|| t.schema.id.to_string());
        let e = root.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !e.is_object() {
            return Err(PatchError::InvalidValue(format!(
                "stored '{}' is not an object",
                t.schema.id
            )));
        }
        Some(k)
    } else {
        None
    };
    let container = match &ext_key {
        Some(k) => root.get_mut(k).and_then(Value::as_object_mut),
        None => Some(root),
    };
    let Some(container) = container else {
        return Ok(());
    };
    let key = key_ci(container, attr.name);
    let current = key.as_ref().and_then(|k| container.get(k));

    if attr.mutability == Mutability::ReadOnly {
        if !t.extension && (attr.name.eq_ignore_ascii_case("meta") || attr.name.eq_ignore_ascii_case("groups")) {
            return Ok(());
        }
        if op != Op::Remove
            && t.filter.is_none()
            && t.sub.is_none()
            && let Some(v) = value
        {
            let same = if !t.extension && attr.name == "id" {
                v.as_str().is_some() && v.as_str() == ctx.own_id.as_deref()
            } else {
                coerce(v, attr, false).ok().as_ref() == current
            };
            if same {
                return Ok(());
            }
        }
        return Err(PatchError::Mutability(format!("'{}' is read-only", t.describe())));
    }
    if let Some(sub) = t.sub
        && sub.mutability == Mutability::ReadOnly
    {
        return Err(PatchError::Mutability(format!("'{}' is read-only", t.describe())));
    }

    let current = match &key {
        Some(k) => container.remove(k),
        None => None,
    };
    let new = compute(op, t, current, value)?;
    if new.is_none() && attr.required {
        return Err(PatchError::InvalidValue(format!(
            "'{}' is required and cannot be removed",
            t.describe()
        )));
    }
    if let Some(v) = new {
        container.insert(attr.name.to_string(), v);
    }
    Ok(())
}

fn is_clear(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn type_err(v: &Value, def: &AttrDef, want: &str) -> PatchError {
    let got = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    PatchError::InvalidValue(format!("'{}' expects {want}, got {got}", def.name))
}

/// Checks and normalises a single (non-array) value for `def`. For complex
/// values, sub-attributes given as `null` are kept as `Null` markers when
/// `keep_nulls` (merge semantics: "clear this sub-attribute").
fn coerce(v: &Value, def: &AttrDef, keep_nulls: bool) -> Result<Value, PatchError> {
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(type_err(v, def, "a string")),
        },
        AttrType::DateTime => match v {
            Value::String(s) if filter::parse_datetime(s).is_some() => Ok(v.clone()),
            _ => Err(type_err(v, def, "an RFC 3339 date-time string")),
        },
        AttrType::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(type_err(v, def, "a boolean")),
        },
        AttrType::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            _ => Err(type_err(v, def, "an integer")),
        },
        AttrType::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            _ => Err(type_err(v, def, "a number")),
        },
        AttrType::Complex => {
            let obj = match v {
                Value::Object(o) => o,
                Value::String(s) if def.sub("value").is_some() => {
                    let mut m = Map::new();
                    m.insert("value".into(), Value::String(s.clone()));
                    return Ok(Value::Object(m));
                }
                Value::Array(a) if !def.multi_valued && a.len() == 1 => match a.first() {
                    Some(Value::Object(o)) => o,
                    _ => return Err(type_err(v, def, "an object")),
                },
                _ if def.multi_valued => return Err(type_err(v, def, "an array of objects")),
                _ => return Err(type_err(v, def, "an object")),
            };
            let mut out = Map::new();
            for (k, sv) in obj {
                let Some(sub) = def.sub(k) else {
                    return Err(PatchError::InvalidPath(format!(
                        "'{k}' is not a sub-attribute of '{}'",
                        def.name
                    )));
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if sv.is_null() {
                    if keep_nulls {
                        out.insert(sub.name.to_string(), Value::Null);
                    }
                    continue;
                }
                out.insert(sub.name.to_string(), coerce(sv, sub, false)?);
            }
            Ok(Value::Object(out))
        }
    }
}

fn coerce_multi(v: &Value, def: &AttrDef) -> Result<Vec<Value>, PatchError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        if item.is_null() {
            continue;
        }
        let c = coerce(item, def, false)?;
        if !(def.is_complex() && is_clear(&c)) {
            out.push(c);
        }
    }
    Ok(out)
}

fn str_eq(a: Option<&Value>, b: Option<&Value>, case_exact: bool) -> bool {
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => {
            if case_exact {
                x == y
            } else {
                x.to_lowercase() == y.to_lowercase()
            }
        }
        (x, y) => x == y,
    }
}

/// "Same element" for add de-duplication: same `value` (per its caseExact)
/// and, when both carry one, the same `type`; without a `value`
/// sub-attribute, JSON equality.
fn same_element(a: &Value, b: &Value, def: &AttrDef) -> bool {
    let Some(vdef) = def.sub("value") else {
        return a == b;
    };
    let (av, bv) = (get_ci(a, "value"), get_ci(b, "value"));
    if av.is_none() && bv.is_none() {
        return a == b;
    }
    if !str_eq(av, bv, vdef.case_exact) {
        return false;
    }
    match (get_ci(a, "type"), get_ci(b, "type")) {
        (Some(x), Some(y)) => str_eq(Some(x), Some(y), false),
        _ => true,
    }
}

/// An element's `value` as a de-duplication key: lower-cased unless the
/// sub-attribute is caseExact. `None` when it has no string `value`.
fn value_key(e: &Value, case_exact: bool) -> Option<String> {
    match get_ci(e, "value") {
        Some(Value::String(s)) if case_exact => Some(s.clone()),
        Some(Value::String(s)) => Some(s.to_lowercase()),
        _ => None,
    }
}

/// Positions of a multi-valued attribute's elements by [`value_key`], so
/// adding n values to m stored ones costs n + m look-ups instead of n × m
/// comparisons, each lower-casing both sides (issue 17: 31,000 emails
/// stalled the writer for 30 s).
struct ElementIndex {
    case_exact: Option<bool>,
    by_value: std::collections::HashMap<String, Vec<usize>>,
}

impl ElementIndex {
    fn new(elems: &[Value], def: &AttrDef) -> ElementIndex {
        let mut index = ElementIndex {
            case_exact: def.sub("value").map(|d| d.case_exact),
            by_value: std::collections::HashMap::new(),
        };
        for (i, e) in elems.iter().enumerate() {
            index.add(e, i);
        }
        index
    }

    fn add(&mut self, e: &Value, at: usize) {
        if let Some(k) = self.case_exact.and_then(|ce| value_key(e, ce)) {
            self.by_value.entry(k).or_default().push(at);
        }
    }

    /// The first element that is [`same_element`] as `inc`. Elements with
    /// a string `value` can only match one with an equal key; anything
    /// else is compared one by one (the cap on values bounds that).
    fn find(&self, elems: &[Value], inc: &Value, def: &AttrDef) -> Option<usize> {
        match self.case_exact.and_then(|ce| value_key(inc, ce)) {
            Some(k) => self
                .by_value
                .get(&k)?
                .iter()
                .copied()
                .find(|&i| elems.get(i).is_some_and(|e| same_element(e, inc, def))),
            None => elems.iter().position(|e| same_element(e, inc, def)),
        }
    }
}

/// Does stored element `e` match an element listed in a remove value?
fn listed_match(e: &Value, listed: &Value, def: &AttrDef) -> bool {
    if let (Some(vdef), Some(lv)) = (def.sub("value"), get_ci(listed, "value")) {
        return str_eq(get_ci(e, "value"), Some(lv), vdef.case_exact);
    }
    match listed {
        Value::Object(l) => l.iter().all(|(k, v)| get_ci(e, k) == Some(v)),
        other => e == other,
    }
}

fn merge_into(
    existing: &mut Map<String, Value>,
    incoming: &Map<String, Value>,
    def: &AttrDef,
) -> Result<(), PatchError> {
    for (k, v) in incoming {
        let sub = def.sub(k);
        let cur_key = key_ci(existing, k);
        let cur = cur_key.as_ref().and_then(|ck| existing.get(ck));
        if let Some(sub) = sub
            && sub.mutability == Mutability::Immutable
            && let Some(c) = cur
            && (v.is_null() || c != v)
        {
            return Err(PatchError::Mutability(format!(
                "'{}.{}' is immutable",
                def.name, sub.name
            )));
        }
        if let Some(ck) = cur_key {
            existing.remove(&ck);
        }
        if !v.is_null() {
            existing.insert(sub.map(|s| s.name).unwrap_or(k).to_string(), v.clone());
        }
    }
    Ok(())
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).collect()),
        other => other,
    }
}

fn into_vec(v: Option<Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
    }
}

fn from_vec(v: Vec<Value>) -> Option<Value> {
    (!v.is_empty()).then_some(Value::Array(v))
}

/// After elements at `touched` were written: if one of them is primary, no
/// other element may be (RFC 7643 §2.4).
fn fix_primary(elems: &mut [Value], touched: &[usize]) {
    let chosen = touched
        .iter()
        .rev()
        .copied()
        .find(|&i| elems.get(i).and_then(|e| get_ci(e, "primary")) == Some(&Value::Bool(true)));
    if let Some(c) = chosen {
        for (i, e) in elems.iter_mut().enumerate() {
            if i != c
                && let Some(o) = e.as_object_mut()
                && let Some(k) = key_ci(o, "primary")
                && o.get(&k) == Some(&Value::Bool(true))
            {
                o.insert(k, Value::Bool(false));
            }
        }
    }
}

/// The element to create when `attr[filter]` matches nothing: only for a
/// `type eq "…"` filter, optionally and-ed with further `eq` comparisons.
fn element_from_filter(f: &Filter, attr: &AttrDef) -> Option<Map<String, Value>> {
    let items: Vec<&Filter> = match f {
        Filter::And(v) => v.iter().collect(),
        other => vec![other],
    };
    let mut out = Map::new();
    for item in items {
        let Filter::Compare(p, CompareOp::Eq, cv) = item else {
            return None;
        };
        let sub = attr.sub(&p.name)?;
        let raw = match cv {
            CompValue::String(s) => Value::String(s.clone()),
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::Null => return None,
        };
        out.insert(sub.name.to_string(), coerce(&raw, sub, false).ok()?);
    }
    out.contains_key("type").then_some(out)
}

fn require_value<'v>(value: Option<&'v Value>, t: &AttrTarget<'_>) -> Result<&'v Value, PatchError> {
    value.ok_or_else(|| PatchError::InvalidSyntax(format!("missing value for '{}'", t.describe())))
}

fn compute(
    op: Op,
    t: &AttrTarget<'_>,
    current: Option<Value>,
    value: Option<&Value>,
) -> Result<Option<Value>, PatchError> {
    let attr = t.attr;
    match (t.filter, t.sub) {
        (Some(f), sub) => compute_filtered(op, t, f, sub, current, value),
        (None, Some(sub)) => {
            let new_sub = match op {
                Op::Remove => None,
                _ => {
                    let v = require_value(value, t)?;
                    if is_clear(v) {
                        None
                    } else {
                        Some(coerce(v, sub, false)?)
                    }
                }
            };
            if attr.multi_valued {
                let mut elems = into_vec(current);
                if elems.is_empty() {
                    if let Some(nv) = new_sub {
                        let mut m = Map::new();
                        m.insert(sub.name.to_string(), nv);
                        elems.push(Value::Object(m));
                    }
                    return Ok(from_vec(elems));
                }
                let patch = single_sub_patch(sub, new_sub);
                for e in elems.iter_mut() {
                    if let Some(o) = e.as_object_mut() {
                        merge_into(o, &patch, attr)?;
                    }
                }
                let touched: Vec<usize> = (0..elems.len()).collect();
                fix_primary(&mut elems, &touched);
                Ok(from_vec(elems))
            } else {
                let mut obj = match current {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                merge_into(&mut obj, &single_sub_patch(sub, new_sub), attr)?;
                Ok((!obj.is_empty()).then_some(Value::Object(obj)))
            }
        }
        (None, None) => compute_whole(op, t, current, value),
    }
}

fn single_sub_patch(sub: &AttrDef, v: Option<Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(sub.name.to_string(), v.unwrap_or(Value::Null));
    m
}

fn compute_filtered(
    op: Op,
    t: &AttrTarget<'_>,
    f: &Filter,
    sub: Option<&'static AttrDef>,
    current: Option<Value>,
    value: Option<&Value>,
) -> Result<Option<Value>, PatchError> {
    let attr = t.attr;
    let mut elems = into_vec(current);
    let hits: Vec<usize> = elems
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_object() && filter::matches_element(f, e, attr))
        .map(|(i, _)| i)
        .collect();
    let clear = op == Op::Remove || value.is_some_and(is_clear);
    let mut touched = Vec::new();
    match sub {
        Some(sub) => {
            let new_sub = if clear {
                None
            } else {
                Some(coerce(require_value(value, t)?, sub, false)?)
            };
            if hits.is_empty() {
                if let Some(nv) = new_sub {
                    let Some(mut el) = element_from_filter(f, attr) else {
                        return Err(no_target(t));
                    };
                    el.insert(sub.name.to_string(), nv);
                    elems.push(Value::Object(el));
                    touched.push(elems.len() - 1);
                }
            } else {
                let patch = single_sub_patch(sub, new_sub);
                for &i in &hits {
                    if let Some(o) = elems.get_mut(i).and_then(Value::as_object_mut) {
                        merge_into(o, &patch, attr)?;
                    }
                }
                touched = hits;
            }
        }
        None if clear => {
            let mut i = 0;
            elems.retain(|_| {
                let keep = !hits.contains(&i);
                i += 1;
                keep
            });
        }
        None => {
            let incoming = coerce(require_value(value, t)?, attr, true)?;
            let Value::Object(incoming) = incoming else {
                return Err(PatchError::InvalidValue(format!(
                    "'{}' expects an object",
                    t.describe()
                )));
            };
            if hits.is_empty() {
                let Some(mut el) = element_from_filter(f, attr) else {
                    return Err(no_target(t));
                };
                merge_into(&mut el, &incoming, attr)?;
                elems.push(Value::Object(el));
                touched.push(elems.len() - 1);
            } else {
                for &i in &hits {
                    if let Some(o) = elems.get_mut(i).and_then(Value::as_object_mut) {
                        merge_into(o, &incoming, attr)?;
                    }
                }
                touched = hits;
            }
        }
    }
    fix_primary(&mut elems, &touched);
    Ok(from_vec(elems))
}

fn no_target(t: &AttrTarget<'_>) -> PatchError {
    PatchError::NoTarget(format!("no value matches '{}'", t.describe()))
}

fn compute_whole(
    op: Op,
    t: &AttrTarget<'_>,
    current: Option<Value>,
    value: Option<&Value>,
) -> Result<Option<Value>, PatchError> {
    let attr = t.attr;
    if op == Op::Remove {
        return match value {
            Some(v) if attr.multi_valued && !is_clear(v) => {
                let listed = coerce_multi(v, attr)?;
                let mut elems = into_vec(current);
                // Listed values found by key (one hash look-up per stored
                // element); only listed elements without a string `value`
                // are compared one by one.
                let case_exact = attr.sub("value").map(|d| d.case_exact);
                let (keys, others): (std::collections::HashSet<String>, Vec<&Value>) = match case_exact {
                    Some(ce) => {
                        let mut keys = std::collections::HashSet::new();
                        let mut others = Vec::new();
                        for l in &listed {
                            match value_key(l, ce) {
                                Some(k) => {
                                    keys.insert(k);
                                }
                                None => others.push(l),
                            }
                        }
                        (keys, others)
                    }
                    None => (Default::default(), listed.iter().collect()),
                };
                elems.retain(|e| {
                    let keyed = case_exact
                        .and_then(|ce| value_key(e, ce))
                        .is_some_and(|k| keys.contains(&k));
                    !keyed && !others.iter().any(|l| listed_match(e, l, attr))
                });
                Ok(from_vec(elems))
            }
            _ => Ok(None),
        };
    }
    let v = require_value(value, t)?;
    if is_clear(v) {
        return Ok(None);
    }
    if attr.multi_valued {
        let incoming = coerce_multi(v, attr)?;
        let mut elems = if op == Op::Replace {
            if incoming.is_empty() {
                return Ok(None);
            }
            Vec::new()
        } else {
            into_vec(current)
        };
        let mut touched = Vec::new();
        let mut index = ElementIndex::new(&elems, attr);
        for inc in incoming {
            match index.find(&elems, &inc, attr) {
                Some(i) => {
                    if let (Some(o), Value::Object(m)) = (elems.get_mut(i).and_then(Value::as_object_mut), &inc) {
                        merge_into(o, m, attr)?;
                    }
                    touched.push(i);
                }
                None => {
                    index.add(&inc, elems.len());
                    elems.push(inc);
                    touched.push(elems.len() - 1);
                }
            }
        }
        fix_primary(&mut elems, &touched);
        return Ok(from_vec(elems));
    }
    if attr.is_complex() {
        let Value::Object(incoming) = coerce(v, attr, true)? else {
            return Err(type_err(v, attr, "an object"));
        };
        let replaces_referent = attr.sub("value").is_some()
            && incoming.get("value").is_some_and(|nv| !nv.is_null())
            && current.as_ref().and_then(|c| get_ci(c, "value")) != incoming.get("value");
        let merged = match current {
            Some(Value::Object(mut obj)) if !replaces_referent => {
                merge_into(&mut obj, &incoming, attr)?;
                Value::Object(obj)
            }
            _ => strip_nulls(Value::Object(incoming)),
        };
        return Ok((!is_clear(&merged)).then_some(merged));
    }
    coerce(v, attr, false).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_URN, GROUP, ROSTER_URN, USER};
    use super::*;
    use serde_json::json;

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_URN], "Operations": ops})
    }

    fn run(resource: &Value, ops: Value, def: &ResourceDef) -> Result<Value, PatchError> {
        let ops = parse_patch(&body(ops))?;
        let mut r = resource.clone();
        apply(&mut r, &ops, def)?;
        Ok(r)
    }

    fn ok(resource: &Value, ops: Value, def: &ResourceDef) -> Value {
        match run(resource, ops, def) {
            Ok(v) => v,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn err(resource: &Value, ops: Value, def: &ResourceDef) -> PatchError {
        let mut r = resource.clone();
        let e = match parse_patch(&body(ops)) {
            Ok(ops) => match apply(&mut r, &ops, def) {
                Ok(()) => panic!("expected an error, got {r}"),
                Err(e) => e,
            },
            Err(e) => e,
        };
        // Atomic: nothing changed.
        assert_eq!(&r, resource);
        e
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "u-1",
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "active": true,
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
            ROSTER_URN: {"status": "active", "managed": true}
        })
    }

    fn group() -> Value {
        json!({
            "id": "g-1",
            "displayName": "Ops",
            "members": [{"value": "u-1", "display": "a"}, {"value": "u-2", "display": "b"}]
        })
    }

    #[test]
    fn parse_rules() {
        let ops = parse_patch(&json!({
            "schemas": [PATCH_OP_URN.to_uppercase()],
            "operations": [{"OP": "Replace", "Path": "active", "Value": "False"}]
        }))
        .expect("parse");
        assert_eq!(ops.len(), 1);
        assert_eq!(ops.first().map(|o| o.op), Some(Op::Replace));
        let e = parse_patch(&json!({"Operations": []})).err();
        assert_eq!(e.map(|e| e.scim_type()), Some("invalidSyntax"));
        let e = parse_patch(&body(json!([{"op": "move", "path": "a"}]))).err();
        assert_eq!(e.map(|e| e.scim_type()), Some("invalidSyntax"));
        let e = parse_patch(&body(json!([{"op": "remove"}]))).err();
        assert_eq!(e.map(|e| e.scim_type()), Some("noTarget"));
        let e = parse_patch(&body(json!([{"op": "add", "path": "a"}]))).err();
        assert_eq!(e.map(|e| e.scim_type()), Some("invalidSyntax"));
        let Err(e) = parse_patch(&body(json!([{"op": "add", "path": "emails[type eq", "value": 1}]))) else {
            panic!("bad path accepted")
        };
        assert_eq!(e.scim_type(), "invalidPath");
        assert!(e.to_string().starts_with("operation 1: path \"emails[type eq\""), "{e}");
        let many: Vec<Value> = (0..1001)
            .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
            .collect();
        assert!(parse_patch(&body(Value::Array(many))).is_err());
        assert!(parse_patch(&body(json!([]))).is_ok_and(|v| v.is_empty()));
    }

    // ----- Okta -----

    #[test]
    fn okta_deactivate_pathless() {
        let r = ok(&user(), json!([{"op": "replace", "value": {"active": false}}]), &USER);
        assert_eq!(r["active"], false);
        assert_eq!(r["userName"], "bjensen@example.com");
        // Password sync, both forms.
        let r = ok(&r, json!([{"op": "replace", "value": {"password": "p1"}}]), &USER);
        assert_eq!(r["password"], "p1");
        let r = ok(&r, json!([{"op": "replace", "path": "password", "value": "p2"}]), &USER);
        assert_eq!(r["password"], "p2");
        assert!(super::super::project::strip_never(&r, &USER).get("password").is_none());
    }

    #[test]
    fn okta_group_rename_with_own_id() {
        let r = ok(
            &group(),
            json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Ops2"}}]),
            &GROUP,
        );
        assert_eq!(r["displayName"], "Ops2");
        assert_eq!(r["id"], "g-1");
        let e = err(
            &group(),
            json!([{"op": "replace", "value": {"id": "other", "displayName": "Ops2"}}]),
            &GROUP,
        );
        assert_eq!(e.scim_type(), "mutability");
    }

    #[test]
    fn okta_membership_push() {
        let r = ok(
            &group(),
            json!([
                {"op": "remove", "path": "members[value eq \"u-2\"]"},
                {"op": "add", "path": "members", "value": [
                    {"value": "u-3", "display": "c"}, {"value": "u-1", "display": "a2"}
                ]}
            ]),
            &GROUP,
        );
        assert_eq!(
            r["members"],
            json!([{"value": "u-1", "display": "a2"}, {"value": "u-3", "display": "c"}])
        );
        // Removing a member who is already gone is not an error.
        let r2 = ok(
            &r,
            json!([{"op": "remove", "path": "members[value eq \"zz\"]"}]),
            &GROUP,
        );
        assert_eq!(r2, r);
        // Full re-push and the empty-group push.
        let r3 = ok(
            &r,
            json!([{"op": "replace", "path": "members", "value": [{"value": "u-9"}]}]),
            &GROUP,
        );
        assert_eq!(r3["members"], json!([{"value": "u-9"}]));
        let r4 = ok(&r, json!([{"op": "replace", "path": "members", "value": []}]), &GROUP);
        assert!(r4.get("members").is_none());
        let r5 = ok(
            &r,
            json!([{"op": "replace", "value": {"members": [{"value": "u-7"}]}}]),
            &GROUP,
        );
        assert_eq!(r5["members"], json!([{"value": "u-7"}]));
    }

    // ----- Entra -----

    #[test]
    fn entra_string_booleans() {
        let r = ok(
            &user(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            &USER,
        );
        assert_eq!(r["active"], false);
        let r = ok(&r, json!([{"op": "Add", "path": "active", "value": "true"}]), &USER);
        assert_eq!(r["active"], true);
        let e = err(
            &user(),
            json!([{"op": "Replace", "path": "active", "value": "nope"}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "invalidValue");
    }

    #[test]
    fn entra_add_work_email_creates_element() {
        let u = json!({"id": "u-1", "userName": "x"});
        let r = ok(
            &u,
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@example.com"}]),
            &USER,
        );
        assert_eq!(r["emails"], json!([{"type": "work", "value": "x@example.com"}]));
        // Replacing it again updates in place.
        let r = ok(
            &r,
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "y@example.com"}]),
            &USER,
        );
        assert_eq!(r["emails"], json!([{"type": "work", "value": "y@example.com"}]));
        // A filter that does not name a type cannot be created.
        let e = err(
            &r,
            json!([{"op": "replace", "path": "emails[value eq \"q@x\"].display", "value": "Q"}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "noTarget");
        // type + primary creates with both.
        let r = ok(
            &u,
            json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\" and primary eq true].value", "value": "+1"}]),
            &USER,
        );
        assert_eq!(
            r["phoneNumbers"],
            json!([{"type": "mobile", "primary": true, "value": "+1"}])
        );
    }

    #[test]
    fn entra_pathless_dotted_and_urn_keys() {
        let r = ok(
            &user(),
            json!([{"op": "replace", "value": {
                "displayName": "Babs",
                "name.givenName": "Barb",
                "name.familyName": "J",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42"
            }}]),
            &USER,
        );
        assert_eq!(r["displayName"], "Babs");
        assert_eq!(r["name"], json!({"givenName": "Barb", "familyName": "J"}));
        assert_eq!(r[ENTERPRISE_URN], json!({"department": "R&D", "employeeNumber": "42"}));
    }

    #[test]
    fn entra_remove_members_with_value_array() {
        let r = ok(
            &group(),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u-1"}]}]),
            &GROUP,
        );
        assert_eq!(r["members"], json!([{"value": "u-2", "display": "b"}]));
        let r = ok(&group(), json!([{"op": "remove", "path": "members"}]), &GROUP);
        assert!(r.get("members").is_none());
    }

    #[test]
    fn entra_member_add_with_null_ref_and_manager_forms() {
        let r = ok(
            &group(),
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u-5"}]}]),
            &GROUP,
        );
        assert_eq!(r["members"].as_array().map(Vec::len), Some(3));
        assert_eq!(r["members"][2], json!({"value": "u-5"}));

        let mgr_path = format!("{ENTERPRISE_URN}:manager");
        let r = ok(&user(), json!([{"op": "Add", "path": mgr_path, "value": "m-1"}]), &USER);
        assert_eq!(r[ENTERPRISE_URN]["manager"], json!({"value": "m-1"}));
        let r = ok(
            &r,
            json!([{"op": "Replace", "path": "manager", "value": [{"$ref": "https://x/Users/m-2", "value": "m-2"}]}]),
            &USER,
        );
        assert_eq!(
            r[ENTERPRISE_URN]["manager"],
            json!({"$ref": "https://x/Users/m-2", "value": "m-2"})
        );
        let r = ok(
            &r,
            json!([{"op": "Replace", "path": mgr_path, "value": {"value": "m-3"}}]),
            &USER,
        );
        assert_eq!(
            r[ENTERPRISE_URN]["manager"],
            json!({"value": "m-3"}),
            "stale $ref dropped"
        );
        let r = ok(&r, json!([{"op": "Replace", "path": mgr_path, "value": ""}]), &USER);
        assert!(r.get(ENTERPRISE_URN).is_none(), "{r}");
    }

    #[test]
    fn null_and_empty_clear() {
        let r = ok(
            &user(),
            json!([
                {"op": "replace", "path": "name.givenName", "value": ""},
                {"op": "replace", "path": "active", "value": null},
                {"op": "replace", "value": {"emails": null}}
            ]),
            &USER,
        );
        assert_eq!(r["name"], json!({"familyName": "Jensen"}));
        assert!(r.get("active").is_none() && r.get("emails").is_none());
        let e = err(
            &user(),
            json!([{"op": "replace", "path": "userName", "value": null}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "invalidValue");
        let e = err(&group(), json!([{"op": "remove", "path": "displayName"}]), &GROUP);
        assert_eq!(e.scim_type(), "invalidValue");
    }

    // ----- RFC 7644 §3.5.2 examples -----

    #[test]
    fn rfc_add_examples() {
        let r = ok(
            &user(),
            json!([{"op": "add", "value": {
                "emails": [{"value": "babs@jensen.org", "type": "home"}],
                "nickName": "Babs"
            }}]),
            &USER,
        );
        assert_eq!(r["nickName"], "Babs");
        assert_eq!(r["emails"].as_array().map(Vec::len), Some(2));
        // Adding an existing value again changes nothing.
        let r2 = ok(
            &r,
            json!([{"op": "add", "path": "emails", "value": [{"value": "BABS@jensen.org", "type": "home"}]}]),
            &USER,
        );
        assert_eq!(r2["emails"].as_array().map(Vec::len), Some(2));
        // Complex single-valued add merges.
        let r3 = ok(
            &r,
            json!([{"op": "add", "path": "name", "value": {"middleName": "M"}}]),
            &USER,
        );
        assert_eq!(
            r3["name"],
            json!({"givenName": "Barbara", "familyName": "Jensen", "middleName": "M"})
        );
    }

    #[test]
    fn rfc_replace_examples() {
        let u = json!({"id": "u", "userName": "x", "addresses": [
            {"type": "work", "streetAddress": "1 A St", "locality": "X"},
            {"type": "home", "streetAddress": "2 B St"}
        ]});
        let r = ok(
            &u,
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
            &USER,
        );
        assert_eq!(
            r["addresses"][0],
            json!({"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "X"})
        );
        assert_eq!(r["addresses"][1], u["addresses"][1]);
        let r = ok(
            &u,
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"type": "work", "postalCode": "9"}}]),
            &USER,
        );
        assert_eq!(r["addresses"][0]["postalCode"], "9");
        let r = ok(
            &u,
            json!([{"op": "remove", "path": "addresses[type eq \"work\"].locality"}]),
            &USER,
        );
        assert_eq!(r["addresses"][0], json!({"type": "work", "streetAddress": "1 A St"}));
        let r = ok(
            &u,
            json!([{"op": "remove", "path": "addresses[type eq \"home\"]"}]),
            &USER,
        );
        assert_eq!(r["addresses"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn primary_is_exclusive() {
        let r = ok(
            &user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home", "primary": "True"}]}]),
            &USER,
        );
        assert_eq!(r["emails"][0]["primary"], false);
        assert_eq!(r["emails"][1]["primary"], true);
    }

    #[test]
    fn atomicity() {
        let e = err(
            &user(),
            json!([
                {"op": "replace", "path": "displayName", "value": "changed"},
                {"op": "replace", "path": "nope", "value": "x"}
            ]),
            &USER,
        );
        assert_eq!(e.scim_type(), "invalidPath");
        assert!(e.to_string().starts_with("operation 2:"), "{e}");
    }

    #[test]
    fn mutability_rules() {
        let e = err(
            &user(),
            json!([{"op": "replace", "path": "id", "value": "other"}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "mutability");
        let e = err(&user(), json!([{"op": "remove", "path": "id"}]), &USER);
        assert_eq!(e.scim_type(), "mutability");
        let status = format!("{ROSTER_URN}:status");
        let e = err(
            &user(),
            json!([{"op": "replace", "path": status, "value": "suspended"}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "mutability");
        // Same value: tolerated.
        let r = ok(
            &user(),
            json!([{"op": "replace", "path": status, "value": "active"}]),
            &USER,
        );
        assert_eq!(r, user());
        let r = ok(
            &user(),
            json!([{"op": "replace", "value": {ROSTER_URN: {"managed": "True"}}}]),
            &USER,
        );
        assert_eq!(r, user());
        let e = err(
            &user(),
            json!([{"op": "replace", "path": format!("{ENTERPRISE_URN}:manager.displayName"), "value": "x"}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "mutability");
        // Immutable members.value: new elements fine, changing one is not.
        let e = err(
            &group(),
            json!([{"op": "replace", "path": "members[value eq \"u-1\"].value", "value": "u-9"}]),
            &GROUP,
        );
        assert_eq!(e.scim_type(), "mutability");
        let e = err(
            &group(),
            json!([{"op": "replace", "path": "members[value eq \"u-1\"]", "value": {"value": "u-9"}}]),
            &GROUP,
        );
        assert_eq!(e.scim_type(), "mutability");
        let r = ok(
            &group(),
            json!([{"op": "replace", "path": "members[value eq \"u-1\"].display", "value": "A"}]),
            &GROUP,
        );
        assert_eq!(r["members"][0], json!({"value": "u-1", "display": "A"}));
    }

    #[test]
    fn idp_tolerated_meta_groups_id() {
        let r = ok(
            &user(),
            json!([
                {"op": "replace", "value": {"id": "u-1", "meta": {"resourceType": "X"}, "groups": [], "schemas": ["x"]}},
                {"op": "add", "path": "groups", "value": [{"value": "g"}]},
                {"op": "remove", "path": "meta"},
                {"op": "replace", "path": "meta.lastModified", "value": "2030-01-01T00:00:00Z"}
            ]),
            &USER,
        );
        assert_eq!(r, user());
    }

    #[test]
    fn type_validation() {
        for (path, v) in [
            ("displayName", json!({"a": 1})),
            ("displayName", json!(5)),
            ("name", json!(5)),
            ("emails", json!([5])),
            ("name.givenName", json!(true)),
        ] {
            let e = err(&user(), json!([{"op": "replace", "path": path, "value": v}]), &USER);
            assert_eq!(e.scim_type(), "invalidValue", "{path}");
        }
        let e = err(
            &user(),
            json!([{"op": "replace", "path": "name", "value": {"bogus": "x"}}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "invalidPath");
        let e = err(
            &user(),
            json!([{"op": "replace", "value": {"customThing": "x"}}]),
            &USER,
        );
        assert_eq!(e.scim_type(), "invalidPath");
        let e = err(&user(), json!([{"op": "replace", "value": "x"}]), &USER);
        assert_eq!(e.scim_type(), "invalidValue");
    }

    #[test]
    fn unknown_extensions_policy() {
        let urn = "urn:example:custom:1.0:User";
        let ops = json!([
            {"op": "add", "value": {urn: {"shoeSize": 44}}},
            {"op": "replace", "path": format!("{urn}:team"), "value": "red"}
        ]);
        let r = ok(&user(), ops.clone(), &USER);
        assert_eq!(r[urn], json!({"shoeSize": 44, "team": "red"}));
        let r2 = ok(&r, json!([{"op": "remove", "path": format!("{urn}:shoeSize")}]), &USER);
        assert_eq!(r2[urn], json!({"team": "red"}));

        let parsed = parse_patch(&body(ops)).expect("parse");
        for (policy, expect_ok) in [(UnknownExtensions::Ignore, true), (UnknownExtensions::Reject, false)] {
            let opts = PatchOptions {
                unknown_extensions: policy,
                ..PatchOptions::default()
            };
            let mut u = user();
            let res = apply_with(&mut u, &parsed, &USER, &opts);
            assert_eq!(res.is_ok(), expect_ok);
            assert_eq!(u, user());
        }
    }

    fn arb_op() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let ops = prop::sample::select(vec!["add", "Remove", "replace", "Replace", "ADD"]);
        let paths = prop::option::of(prop::sample::select(vec![
            "members",
            "members[value eq \"u-1\"]",
            "members[value eq \"u-1\"].display",
            "members[value eq \"u-1\"].value",
            "displayName",
            "id",
            "meta",
            "emails[type eq \"work\"].value",
            "emails[type eq \"work\" and primary eq true]",
            "emails",
            "emails.value",
            "name.givenName",
            "name",
            "active",
            "userName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:roster:params:scim:schemas:extension:roster:2.0:User:status",
            "urn:x:y:1.0:User:z",
            "groups",
            "nope",
        ]));
        let values = prop::option::of(prop::sample::select(vec![
            json!(null),
            json!(""),
            json!("False"),
            json!(true),
            json!(7),
            json!({}),
            json!([]),
            json!({"value": "u-1"}),
            json!([{"value": "u-3", "display": "c"}, {"value": "u-1"}]),
            json!({"active": "true", "name.givenName": "G", "displayName": "X"}),
            json!({"givenName": "G", "bogus": 1}),
            json!([{"value": "a@x", "type": "work", "primary": "True"}]),
            json!({"department": "D", "manager": "m"}),
            json!({"id": "u-1", "meta": {}}),
        ]));
        (ops, paths, values).prop_map(|(op, path, value)| {
            let mut o = serde_json::Map::new();
            o.insert("op".into(), json!(op));
            if let Some(p) = path {
                o.insert("path".into(), json!(p));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            Value::Object(o)
        })
    }

    proptest::proptest! {
        #[test]
        fn random_patches_never_panic_and_stay_atomic(
            ops in proptest::collection::vec(arb_op(), 1..5),
            is_group in proptest::prelude::any::<bool>(),
        ) {
            let (start, def) = if is_group { (group(), &GROUP) } else { (user(), &USER) };
            if let Ok(parsed) = parse_patch(&body(Value::Array(ops))) {
                let mut r = start.clone();
                match apply(&mut r, &parsed, def) {
                    Err(_) => proptest::prop_assert_eq!(&r, &start),
                    Ok(()) => {
                        // readOnly data is never changed by a successful PATCH.
                        proptest::prop_assert_eq!(&r["id"], &start["id"]);
                        proptest::prop_assert_eq!(&r["meta"], &start["meta"]);
                        if !is_group {
                            // (For a Group that URN is undeclared, so kept verbatim.)
                            proptest::prop_assert_eq!(&r[ROSTER_URN], &start[ROSTER_URN]);
                        }
                        // required attributes survive.
                        let req = if is_group { "displayName" } else { "userName" };
                        proptest::prop_assert!(r.get(req).is_some_and(Value::is_string));
                    }
                }
            }
        }
    }

    #[test]
    fn core_urn_keys() {
        let r = ok(
            &user(),
            json!([{"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:core:2.0:User": {"displayName": "D"},
                "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "N"
            }}]),
            &USER,
        );
        assert_eq!(
            (r["displayName"].as_str(), r["nickName"].as_str()),
            (Some("D"), Some("N"))
        );
        assert!(r.get("urn:ietf:params:scim:schemas:core:2.0:User").is_none());
    }

    #[test]
    fn whole_extension_object() {
        let r = ok(
            &user(),
            json!([{"op": "add", "path": ENTERPRISE_URN, "value": {"department": "D", "manager": {"value": "m"}}}]),
            &USER,
        );
        assert_eq!(r[ENTERPRISE_URN], json!({"department": "D", "manager": {"value": "m"}}));
        let r = ok(&r, json!([{"op": "remove", "path": ENTERPRISE_URN}]), &USER);
        assert!(r.get(ENTERPRISE_URN).is_none());
        let e = err(&user(), json!([{"op": "remove", "path": ROSTER_URN}]), &USER);
        assert_eq!(e.scim_type(), "mutability");
    }
}
