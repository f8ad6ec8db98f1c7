//! Static SCIM schema definitions (RFC 7643) for what roster really supports:
//! the User and Group core schemas, the enterprise User extension and the
//! read-only roster User extension, their attribute characteristics, the
//! resource types that bind them to endpoints, name resolution for attribute
//! paths, and the `/Schemas` and `/ResourceTypes` discovery documents.
//!
//! Everything here is `const`/`static` data: filters, PATCH and projection
//! consult it to learn an attribute's type, `caseExact`, `mutability` and
//! `returned` characteristics.
//!
//! `id`, `externalId` and `meta` are RFC 7643 §3.1 "common attributes", which
//! strictly are not part of a schema. They are listed in the core schemas
//! anyway so that one lookup path serves every attribute and `/Schemas`
//! advertises their characteristics.

use serde_json::{Map, Value, json};

/// RFC 7643 §2.3 attribute data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    /// The name used in `/Schemas` documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub const fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub const fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute (or sub-attribute) definition with its RFC 7643 §2.2
/// characteristics. Built with the `const fn` builder methods so whole schemas
/// are compile-time constants.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub case_exact: bool,
    pub required: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
    pub description: &'static str,
}

impl AttrDef {
    /// RFC 7643 §2.2 defaults: single-valued, not required, caseExact false,
    /// readWrite, returned by default, no uniqueness.
    pub const fn new(name: &'static str, ty: AttrType) -> AttrDef {
        AttrDef {
            name,
            ty,
            multi_valued: false,
            case_exact: false,
            required: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
            description: "",
        }
    }
    pub const fn string(name: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::String)
    }
    pub const fn multi(mut self) -> AttrDef {
        self.multi_valued = true;
        self
    }
    pub const fn case_exact(mut self) -> AttrDef {
        self.case_exact = true;
        self
    }
    pub const fn required(mut self) -> AttrDef {
        self.required = true;
        self
    }
    pub const fn mutability(mut self, m: Mutability) -> AttrDef {
        self.mutability = m;
        self
    }
    pub const fn read_only(self) -> AttrDef {
        self.mutability(Mutability::ReadOnly)
    }
    pub const fn returned(mut self, r: Returned) -> AttrDef {
        self.returned = r;
        self
    }
    pub const fn uniqueness(mut self, u: Uniqueness) -> AttrDef {
        self.uniqueness = u;
        self
    }
    pub const fn canonical(mut self, v: &'static [&'static str]) -> AttrDef {
        self.canonical_values = v;
        self
    }
    pub const fn refs(mut self, v: &'static [&'static str]) -> AttrDef {
        self.reference_types = v;
        self
    }
    pub const fn subs(mut self, v: &'static [AttrDef]) -> AttrDef {
        self.sub_attributes = v;
        self
    }
    pub const fn desc(mut self, d: &'static str) -> AttrDef {
        self.description = d;
        self
    }

    /// Case-insensitive sub-attribute lookup (RFC 7643 §2.1: attribute names
    /// are case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        find_in(self.sub_attributes, name)
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }
}

/// A schema (RFC 7643 §7): URN id, name and top-level attributes.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    /// Case-insensitive top-level attribute lookup.
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        find_in(self.attributes, name)
    }
}

/// A resource type (RFC 7643 §6): binds a core schema and its extensions to an
/// endpoint.
#[derive(Debug)]
pub struct ResourceDef {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: &'static SchemaDef,
    /// Extension schemas and whether each is required.
    pub extensions: &'static [(&'static SchemaDef, bool)],
}

fn find_in(list: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    list.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Where a resolved attribute lives and what it is.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub schema: &'static SchemaDef,
    /// The top-level attribute.
    pub attr: &'static AttrDef,
    /// The sub-attribute, when the path named one.
    pub sub: Option<&'static AttrDef>,
    /// True when `schema` is an extension, i.e. the value lives under the
    /// schema URN key rather than at the top level of the resource.
    pub extension: bool,
}

impl Resolved {
    /// The definition of the innermost attribute the path names.
    pub fn leaf(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }
}

impl ResourceDef {
    /// All schemas of this resource type, core first.
    pub fn schemas(&self) -> impl Iterator<Item = &'static SchemaDef> + '_ {
        std::iter::once(self.core).chain(self.extensions.iter().map(|(s, _)| *s))
    }

    /// The schema whose URN equals `urn` (case-insensitive).
    pub fn schema_by_urn(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.schemas().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Splits a path string into a known schema and the rest of the path.
    ///
    /// `urn:…:enterprise:2.0:User:manager.value` → (enterprise, "manager.value");
    /// a path equal to a schema URN → (schema, ""); an unprefixed path →
    /// (core, path). Returns `Err(urn)` for a `urn:` prefix naming no schema
    /// of this resource type.
    pub fn split_schema<'p>(&self, path: &'p str) -> Result<(&'static SchemaDef, &'p str), &'p str> {
        if !starts_with_ci(path, "urn:") {
            return Ok((self.core, path));
        }
        for s in self.schemas() {
            if let Some(rest) = strip_prefix_ci(path, s.id) {
                if rest.is_empty() {
                    return Ok((s, ""));
                }
                if let Some(r) = rest.strip_prefix(':') {
                    return Ok((s, r));
                }
            }
        }
        // Unknown URN: the attribute name is whatever follows the last colon.
        match path.rfind(':') {
            Some(i) => Err(path.get(..i).unwrap_or(path)),
            None => Err(path),
        }
    }

    /// Resolves an attribute given as separate parts. `urn` may be `None`
    /// (core schema, then extensions are not searched: extension attributes
    /// must be URN-qualified per RFC 7644 §3.10).
    pub fn resolve(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<Resolved> {
        let schema = match urn {
            Some(u) => self.schema_by_urn(u)?,
            None => self.core,
        };
        let attr = schema.attr(name)?;
        let sub = match sub {
            Some(s) => Some(attr.sub(s)?),
            None => None,
        };
        Some(Resolved {
            schema,
            attr,
            sub,
            extension: !std::ptr::eq(schema, self.core),
        })
    }

    /// Like [`ResourceDef::resolve`], but an unqualified name that is not a
    /// core attribute resolves to the one extension defining it, if exactly
    /// one does (clients send bare `manager`, `department`).
    pub fn resolve_lenient(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<Resolved> {
        if urn.is_some() || self.core.attr(name).is_some() {
            return self.resolve(urn, name, sub);
        }
        let mut found = self.extensions.iter().filter(|(s, _)| s.attr(name).is_some());
        match (found.next(), found.next()) {
            (Some((s, _)), None) => self.resolve(Some(s.id), name, sub),
            _ => None,
        }
    }

    /// Resolves a path string such as `name.givenName`,
    /// `urn:ietf:params:scim:schemas:core:2.0:User:name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
    pub fn resolve_str(&self, path: &str) -> Option<Resolved> {
        let (schema, rest) = self.split_schema(path).ok()?;
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if name.is_empty() || sub.is_some_and(|s| s.is_empty() || s.contains('.')) {
            return None;
        }
        self.resolve(Some(schema.id), name, sub)
    }

    /// Resolves a path string to its schema and innermost attribute
    /// definition (the sub-attribute when one is named).
    pub fn find_attr(&self, path: &str) -> Option<(&'static SchemaDef, &'static AttrDef)> {
        self.resolve_str(path).map(|r| (r.schema, r.leaf()))
    }

    /// The `schemas` array a stored resource of this type carries: core plus
    /// the extensions whose key is present in `resource`.
    pub fn schemas_for(&self, resource: &Value) -> Vec<Value> {
        let mut out = vec![Value::from(self.core.id)];
        for (ext, _) in self.extensions {
            if get_ci(resource, ext.id).is_some_and(|v| !v.is_null()) {
                out.push(Value::from(ext.id));
            }
        }
        out
    }
}

/// Case-insensitive JSON object member lookup. Stored resources use canonical
/// names, but client bodies may not (RFC 7643 §2.1).
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    if let Some(x) = obj.get(key) {
        return Some(x);
    }
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The actual key in `obj` matching `key` case-insensitively.
pub fn key_ci(obj: &Map<String, Value>, key: &str) -> Option<String> {
    if obj.contains_key(key) {
        return Some(key.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    strip_prefix_ci(s, prefix).is_some()
}

pub(crate) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Schema URNs
// ---------------------------------------------------------------------------

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ROSTER_URN: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

// ---------------------------------------------------------------------------
// Common attributes
// ---------------------------------------------------------------------------

use AttrType as T;
use Mutability as M;

const ID: AttrDef = AttrDef::string("id")
    .case_exact()
    .read_only()
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server)
    .desc("Unique identifier for the resource, assigned by the service provider.");

const EXTERNAL_ID: AttrDef = AttrDef::string("externalId")
    .case_exact()
    .desc("Identifier for the resource as defined by the provisioning client.");

const META_SUBS: &[AttrDef] = &[
    AttrDef::string("resourceType")
        .case_exact()
        .read_only()
        .desc("Name of the resource type of the resource."),
    AttrDef::new("created", T::DateTime)
        .read_only()
        .desc("Date and time the resource was added to the service provider."),
    AttrDef::new("lastModified", T::DateTime)
        .read_only()
        .desc("Most recent date and time the resource was modified."),
    AttrDef::new("location", T::Reference)
        .case_exact()
        .read_only()
        .refs(&["uri"])
        .desc("URI of the resource being returned."),
    AttrDef::string("version")
        .case_exact()
        .read_only()
        .desc("Version (weak ETag) of the resource."),
];

const META: AttrDef = AttrDef::new("meta", T::Complex)
    .read_only()
    .subs(META_SUBS)
    .desc("Resource metadata.");

const TYPE_WHO: &[&str] = &["work", "home", "other"];

// ---------------------------------------------------------------------------
// User
// ---------------------------------------------------------------------------

const NAME_SUBS: &[AttrDef] = &[
    AttrDef::string("formatted").desc("The full name, formatted for display."),
    AttrDef::string("familyName").desc("The family name (last name)."),
    AttrDef::string("givenName").desc("The given name (first name)."),
    AttrDef::string("middleName").desc("The middle name(s)."),
    AttrDef::string("honorificPrefix").desc("Honorific prefix, e.g. 'Ms.'."),
    AttrDef::string("honorificSuffix").desc("Honorific suffix, e.g. 'III'."),
];

const EMAIL_SUBS: &[AttrDef] = &[
    AttrDef::string("value").desc("Email address."),
    AttrDef::string("display").desc("Human-readable name, for display only."),
    AttrDef::string("type")
        .canonical(TYPE_WHO)
        .desc("Label of the address: 'work', 'home', 'other'."),
    AttrDef::new("primary", T::Boolean).desc("Whether this is the primary address."),
];

const PHONE_SUBS: &[AttrDef] = &[
    AttrDef::string("value").desc("Phone number."),
    AttrDef::string("display").desc("Human-readable name, for display only."),
    AttrDef::string("type")
        .canonical(&["work", "home", "mobile", "fax", "pager", "other"])
        .desc("Label of the number."),
    AttrDef::new("primary", T::Boolean).desc("Whether this is the primary number."),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    AttrDef::string("formatted").desc("Full mailing address, formatted for display."),
    AttrDef::string("streetAddress").desc("Street address."),
    AttrDef::string("locality").desc("City or locality."),
    AttrDef::string("region").desc("State or region."),
    AttrDef::string("postalCode").desc("Zip or postal code."),
    AttrDef::string("country").desc("Country (ISO 3166-1 alpha-2)."),
    AttrDef::string("type")
        .canonical(TYPE_WHO)
        .desc("Label of the address."),
    AttrDef::new("primary", T::Boolean).desc("Whether this is the primary address."),
];

const USER_GROUP_SUBS: &[AttrDef] = &[
    AttrDef::string("value").read_only().desc("Identifier of the group."),
    AttrDef::new("$ref", T::Reference)
        .read_only()
        .refs(&["Group"])
        .desc("URI of the group."),
    AttrDef::string("display").read_only().desc("Name of the group."),
    AttrDef::string("type")
        .read_only()
        .canonical(&["direct", "indirect"])
        .desc("Membership type."),
];

const ROLE_SUBS: &[AttrDef] = &[
    AttrDef::string("value").desc("Role name."),
    AttrDef::string("display").desc("Human-readable name, for display only."),
    AttrDef::string("type").desc("Label of the role."),
    AttrDef::new("primary", T::Boolean).desc("Whether this is the primary role."),
];

const USER_ATTRS: &[AttrDef] = &[
    ID,
    EXTERNAL_ID,
    AttrDef::string("userName")
        .required()
        .uniqueness(Uniqueness::Server)
        .desc("Unique identifier for the user, the member's email address."),
    AttrDef::new("name", T::Complex)
        .subs(NAME_SUBS)
        .desc("The components of the user's name."),
    AttrDef::string("displayName").desc("Name of the user, suitable for display."),
    AttrDef::string("nickName").desc("Casual name of the user."),
    AttrDef::new("profileUrl", T::Reference)
        .refs(&["external"])
        .desc("URI of the user's online profile."),
    AttrDef::string("title").desc("The user's title, e.g. 'Vice President'."),
    AttrDef::string("userType").desc("Relationship between the organization and the user."),
    AttrDef::string("preferredLanguage").desc("Preferred written or spoken language."),
    AttrDef::string("locale").desc("Default location for localization, e.g. 'en-US'."),
    AttrDef::string("timezone").desc("Time zone in IANA format, e.g. 'Europe/Paris'."),
    AttrDef::new("active", T::Boolean).desc("The user's administrative status."),
    AttrDef::string("password")
        .mutability(M::WriteOnly)
        .returned(Returned::Never)
        .desc("The user's cleartext password; never returned."),
    AttrDef::new("emails", T::Complex)
        .multi()
        .subs(EMAIL_SUBS)
        .desc("Email addresses for the user."),
    AttrDef::new("phoneNumbers", T::Complex)
        .multi()
        .subs(PHONE_SUBS)
        .desc("Phone numbers for the user."),
    AttrDef::new("addresses", T::Complex)
        .multi()
        .subs(ADDRESS_SUBS)
        .desc("Physical mailing addresses for the user."),
    AttrDef::new("groups", T::Complex)
        .multi()
        .read_only()
        .subs(USER_GROUP_SUBS)
        .desc("Groups the user belongs to, derived from group membership."),
    AttrDef::new("roles", T::Complex)
        .multi()
        .subs(ROLE_SUBS)
        .desc("Roles of the user."),
    META,
];

pub static USER_SCHEMA: SchemaDef = SchemaDef {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRS,
};

const MANAGER_SUBS: &[AttrDef] = &[
    AttrDef::string("value")
        .case_exact()
        .desc("The id of the SCIM resource representing the manager."),
    AttrDef::new("$ref", T::Reference)
        .refs(&["User"])
        .desc("The URI of the SCIM resource representing the manager."),
    AttrDef::string("displayName")
        .read_only()
        .desc("The displayName of the manager."),
];

const ENTERPRISE_ATTRS: &[AttrDef] = &[
    AttrDef::string("employeeNumber").desc("Numeric or alphanumeric identifier of the user."),
    AttrDef::string("costCenter").desc("Name of a cost center."),
    AttrDef::string("organization").desc("Name of an organization."),
    AttrDef::string("division").desc("Name of a division."),
    AttrDef::string("department").desc("Name of a department."),
    AttrDef::new("manager", T::Complex)
        .subs(MANAGER_SUBS)
        .desc("The user's manager."),
];

pub static ENTERPRISE_SCHEMA: SchemaDef = SchemaDef {
    id: ENTERPRISE_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRS,
};

const ROSTER_ATTRS: &[AttrDef] = &[
    AttrDef::string("status")
        .read_only()
        .canonical(&["invited", "active", "suspended", "removed"])
        .desc("Membership status of the person in roster."),
    AttrDef::new("managed", T::Boolean)
        .read_only()
        .desc("Whether the member is managed by an identity provider."),
];

pub static ROSTER_SCHEMA: SchemaDef = SchemaDef {
    id: ROSTER_URN,
    name: "RosterUser",
    description: "roster membership state (read-only)",
    attributes: ROSTER_ATTRS,
};

pub static USER: ResourceDef = ResourceDef {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    core: &USER_SCHEMA,
    extensions: &[(&ENTERPRISE_SCHEMA, false), (&ROSTER_SCHEMA, false)],
};

// ---------------------------------------------------------------------------
// Group
// ---------------------------------------------------------------------------

const MEMBER_SUBS: &[AttrDef] = &[
    AttrDef::string("value")
        .case_exact()
        .mutability(M::Immutable)
        .desc("Identifier of the member."),
    AttrDef::new("$ref", T::Reference)
        .mutability(M::Immutable)
        .refs(&["User", "Group"])
        .desc("URI of the member resource."),
    AttrDef::string("display").desc("Name of the member, for display only."),
    AttrDef::string("type")
        .mutability(M::Immutable)
        .canonical(&["User", "Group"])
        .desc("Type of the member."),
];

const GROUP_ATTRS: &[AttrDef] = &[
    ID,
    EXTERNAL_ID,
    // caseExact: roster team names are exact; "Ops" and "ops" are two teams.
    AttrDef::string("displayName")
        .required()
        .case_exact()
        .uniqueness(Uniqueness::Server)
        .desc("Human-readable name of the group (team)."),
    AttrDef::new("members", T::Complex)
        .multi()
        .subs(MEMBER_SUBS)
        .desc("Members of the group."),
    META,
];

pub static GROUP_SCHEMA: SchemaDef = SchemaDef {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRS,
};

pub static GROUP: ResourceDef = ResourceDef {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: &GROUP_SCHEMA,
    extensions: &[],
};

/// Every resource type roster serves.
pub static RESOURCE_TYPES: &[&ResourceDef] = &[&USER, &GROUP];

/// Every schema roster advertises.
pub static SCHEMAS: &[&SchemaDef] = &[&USER_SCHEMA, &ENTERPRISE_SCHEMA, &ROSTER_SCHEMA, &GROUP_SCHEMA];

/// The schema with the given URN (case-insensitive).
pub fn schema_by_id(urn: &str) -> Option<&'static SchemaDef> {
    SCHEMAS.iter().copied().find(|s| s.id.eq_ignore_ascii_case(urn))
}

// ---------------------------------------------------------------------------
// Discovery documents
// ---------------------------------------------------------------------------

/// `base_url` is the SCIM base including the version, e.g.
/// `https://roster.example/scim/v2`; a trailing slash is tolerated.
fn join(base_url: &str, tail: &str) -> String {
    format!("{}{}", base_url.trim_end_matches('/'), tail)
}

// Sub-attributes never have sub-attributes in RFC 7643 (§2.3.8), and the
// definitions above respect that, so this recursion stops at depth 2.
fn attr_json(a: &AttrDef, depth: u8) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), a.name.into());
    o.insert("type".into(), a.ty.as_str().into());
    o.insert("multiValued".into(), a.multi_valued.into());
    o.insert("description".into(), a.description.into());
    o.insert("required".into(), a.required.into());
    if a.ty != AttrType::Complex {
        o.insert("caseExact".into(), a.case_exact.into());
    }
    if !a.canonical_values.is_empty() {
        o.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    if !a.reference_types.is_empty() {
        o.insert("referenceTypes".into(), json!(a.reference_types));
    }
    o.insert("mutability".into(), a.mutability.as_str().into());
    o.insert("returned".into(), a.returned.as_str().into());
    o.insert("uniqueness".into(), a.uniqueness.as_str().into());
    if !a.sub_attributes.is_empty() && depth < 2 {
        let subs: Vec<Value> = a.sub_attributes.iter().map(|s| attr_json(s, depth + 1)).collect();
        o.insert("subAttributes".into(), subs.into());
    }
    Value::Object(o)
}

/// The RFC 7643 §7 representation of a schema, as served at
/// `GET {base_url}/Schemas/{id}`.
pub fn schema_json(schema: &SchemaDef, base_url: &str) -> Value {
    let attrs: Vec<Value> = schema.attributes.iter().map(|a| attr_json(a, 0)).collect();
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": attrs,
        "meta": {
            "resourceType": "Schema",
            "location": join(base_url, &format!("/Schemas/{}", schema.id)),
        }
    })
}

/// The RFC 7643 §6 representation of a resource type, as served at
/// `GET {base_url}/ResourceTypes/{name}`.
pub fn resource_type_json(def: &ResourceDef, base_url: &str) -> Value {
    let exts: Vec<Value> = def
        .extensions
        .iter()
        .map(|(s, req)| json!({"schema": s.id, "required": req}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": def.name,
        "name": def.name,
        "endpoint": def.endpoint,
        "description": def.description,
        "schema": def.core.id,
        "schemaExtensions": exts,
        "meta": {
            "resourceType": "ResourceType",
            "location": join(base_url, &format!("/ResourceTypes/{}", def.name)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_case_insensitive_and_urn_qualified() {
        let (s, a) = USER.find_attr("USERNAME").expect("userName");
        assert_eq!(s.id, USER_URN);
        assert_eq!(a.name, "userName");
        assert!(!a.case_exact);

        let (_, a) = USER.find_attr("name.GivenName").expect("sub");
        assert_eq!(a.name, "givenName");

        let (s, a) = USER
            .find_attr("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName")
            .expect("urn core");
        assert_eq!((s.id, a.name), (USER_URN, "givenName"));

        let (s, a) = USER
            .find_attr("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
            .expect("enterprise manager");
        assert_eq!((s.id, a.name), (ENTERPRISE_URN, "manager"));

        let (_, a) = USER
            .find_attr("URN:IETF:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName")
            .expect("manager.displayName");
        assert_eq!(a.mutability, Mutability::ReadOnly);

        let r = USER
            .resolve_str("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .expect("department");
        assert!(r.extension);
    }

    #[test]
    fn unknown_paths_do_not_resolve() {
        assert!(USER.find_attr("nope").is_none());
        assert!(USER.find_attr("name.nope").is_none());
        assert!(USER.find_attr("name.givenName.x").is_none());
        assert!(USER.find_attr("urn:example:unknown:1.0:User:foo").is_none());
        // Extension attributes must be URN-qualified for strict lookup…
        assert!(USER.find_attr("department").is_none());
        // …and the lenient lookup finds the single extension defining them.
        let r = USER.resolve_lenient(None, "department", None).expect("lenient");
        assert_eq!(r.schema.id, ENTERPRISE_URN);
        assert!(USER.resolve_lenient(None, "nope", None).is_none());
        assert!(GROUP.find_attr("userName").is_none());
        assert!(USER.find_attr("").is_none());
        assert!(USER.find_attr("name.").is_none());
    }

    #[test]
    fn split_schema_reports_unknown_urn() {
        assert_eq!(
            USER.split_schema("urn:example:x:1.0:User:foo").err(),
            Some("urn:example:x:1.0:User")
        );
        let (s, rest) = USER.split_schema(ENTERPRISE_URN).expect("bare urn");
        assert_eq!((s.id, rest), (ENTERPRISE_URN, ""));
    }

    #[test]
    fn characteristics_match_rfc_and_roster_choices() {
        let (_, id) = USER.find_attr("id").expect("id");
        assert_eq!(id.returned, Returned::Always);
        assert_eq!(id.mutability, Mutability::ReadOnly);
        let (_, pw) = USER.find_attr("password").expect("pw");
        assert_eq!(pw.returned, Returned::Never);
        assert_eq!(pw.mutability, Mutability::WriteOnly);
        let (_, dn) = GROUP.find_attr("displayName").expect("dn");
        assert!(dn.case_exact && dn.required);
        let (_, mv) = GROUP.find_attr("members.value").expect("mv");
        assert_eq!(mv.mutability, Mutability::Immutable);
        let (_, st) = USER.find_attr(&format!("{ROSTER_URN}:status")).expect("status");
        assert_eq!(st.canonical_values, &["invited", "active", "suspended", "removed"]);
    }

    #[test]
    fn schema_document_shape() {
        let doc = schema_json(&USER_SCHEMA, "https://r.example/scim/v2/");
        assert_eq!(doc["id"], USER_URN);
        assert_eq!(doc["meta"]["resourceType"], "Schema");
        assert_eq!(
            doc["meta"]["location"],
            format!("https://r.example/scim/v2/Schemas/{USER_URN}")
        );
        let attrs = doc["attributes"].as_array().expect("attrs");
        let emails = attrs.iter().find(|a| a["name"] == "emails").expect("emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["type"], "complex");
        let ty = emails["subAttributes"]
            .as_array()
            .and_then(|s| s.iter().find(|a| a["name"] == "type"))
            .expect("type");
        assert_eq!(ty["canonicalValues"], json!(["work", "home", "other"]));
        let pw = attrs.iter().find(|a| a["name"] == "password").expect("pw");
        assert_eq!(pw["returned"], "never");
        assert_eq!(pw["mutability"], "writeOnly");
    }

    #[test]
    fn resource_type_document_shape() {
        let doc = resource_type_json(&USER, "https://r.example/scim/v2");
        assert_eq!(doc["endpoint"], "/Users");
        assert_eq!(doc["schema"], USER_URN);
        assert_eq!(doc["schemaExtensions"][0]["schema"], ENTERPRISE_URN);
        assert_eq!(doc["schemaExtensions"][0]["required"], false);
        assert_eq!(doc["meta"]["location"], "https://r.example/scim/v2/ResourceTypes/User");
        let g = resource_type_json(&GROUP, "https://r.example/scim/v2");
        assert_eq!(g["schemaExtensions"], json!([]));
    }

    #[test]
    fn schemas_for_lists_present_extensions() {
        let r = json!({"userName": "a", ENTERPRISE_URN: {"department": "x"}});
        assert_eq!(USER.schemas_for(&r), vec![json!(USER_URN), json!(ENTERPRISE_URN)]);
    }
}
