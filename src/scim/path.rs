//! PATCH target paths (RFC 7644 §3.5.2, Figure 8):
//! `PATH = attrPath / valuePath [subAttr]`, e.g. `members`,
//! `name.givenName`, `emails[type eq "work"].value`,
//! `members[value eq "2819c223"]`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
//!
//! Syntax is parsed by the filter module's lexer and value-filter parser (one
//! grammar, one set of limits); this module owns the [`PatchPath`] type, its
//! printer, and resolution against a [`ResourceDef`].
//!
//! Resolution decisions:
//! - A path equal to a declared schema URN targets that whole schema (the
//!   extension object, or the core attributes).
//! - An unqualified name that is not a core attribute but is defined by
//!   exactly one extension resolves there (Entra's 2018 samples send bare
//!   `manager`). Filters stay strict; only PATCH is lenient here.
//! - A `urn:` prefix naming no schema of the resource type resolves to
//!   [`Target::UnknownExtension`]; the sibling `patch` module decides what to do with it.
//! - Names inside `[...]` must be sub-attributes of the filtered attribute,
//!   otherwise the path is invalid (it could never match).

use std::fmt;

use super::filter::{self, AttrPath, Filter, FilterError, ParseOptions};
use super::schema::{AttrDef, ResourceDef, SchemaDef};

/// A syntactically valid PATCH path.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute path before any `[`.
    pub attr: AttrPath,
    /// The value filter inside `[...]`, when present.
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`, when present.
    pub sub_after_filter: Option<String>,
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(fl) = &self.filter {
            write!(f, "[{fl}]")?;
        }
        if let Some(s) = &self.sub_after_filter {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// An invalid PATCH path; the server answers 400 `invalidPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// 0-based character offset in the path text, when known.
    pub position: Option<usize>,
    pub message: String,
}

impl PathError {
    pub fn scim_type(&self) -> &'static str {
        "invalidPath"
    }
    fn new(message: String) -> PathError {
        PathError {
            position: None,
            message,
        }
    }
}

impl From<FilterError> for PathError {
    fn from(e: FilterError) -> PathError {
        PathError {
            position: e.position,
            message: e.message,
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "invalid path at position {p}: {}", self.message),
            None => write!(f, "invalid path: {}", self.message),
        }
    }
}

impl std::error::Error for PathError {}

/// Parses a PATCH path with the default filter limits.
pub fn parse_path(s: &str) -> Result<PatchPath, PathError> {
    parse_path_with(s, &ParseOptions::default())
}

/// Parses a PATCH path with explicit limits.
pub fn parse_path_with(s: &str, opts: &ParseOptions) -> Result<PatchPath, PathError> {
    let raw = filter::parse_patch_path(s, opts)?;
    Ok(PatchPath {
        attr: raw.attr,
        filter: raw.filter,
        sub_after_filter: raw.sub,
    })
}

impl std::str::FromStr for PatchPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<PatchPath, PathError> {
        parse_path(s)
    }
}

/// What a path designates in a resource of a given type.
#[derive(Debug, Clone)]
pub enum Target {
    /// A whole schema named by its URN: for an extension, the object under
    /// the URN key; for the core schema, the top-level attributes.
    WholeSchema(&'static SchemaDef),
    /// A declared attribute, optionally narrowed by a value filter and/or a
    /// sub-attribute (from `a.b` or `a[...].b`).
    Attr {
        schema: &'static SchemaDef,
        /// True when the value lives under the extension URN key.
        extension: bool,
        attr: &'static AttrDef,
        filter: Option<Filter>,
        sub: Option<&'static AttrDef>,
    },
    /// Data under a URN the resource type does not declare: `urn` is the key,
    /// `name`/`sub` the (unvalidated) attribute inside it, if any.
    UnknownExtension {
        urn: String,
        name: Option<String>,
        sub: Option<String>,
    },
}

impl PatchPath {
    /// Resolves the path against a resource type; unknown attributes and
    /// filters that could never match are `invalidPath`.
    pub fn resolve(&self, def: &ResourceDef) -> Result<Target, PathError> {
        let full = self.attr.to_string();
        if self.attr.sub.is_none()
            && self.filter.is_none()
            && let Some(s) = def.schema_by_urn(&full)
        {
            return Ok(Target::WholeSchema(s));
        }
        let schema = match &self.attr.urn {
            Some(u) => match def.schema_by_urn(u) {
                Some(s) => s,
                None => {
                    if self.filter.is_some() {
                        return Err(PathError::new(format!(
                            "'{full}': value filters are not supported on undeclared extension '{u}'"
                        )));
                    }
                    return Ok(Target::UnknownExtension {
                        urn: u.clone(),
                        name: Some(self.attr.name.clone()),
                        sub: self.attr.sub.clone(),
                    });
                }
            },
            None => {
                if def.core.attr(&self.attr.name).is_some() {
                    def.core
                } else {
                    let mut found = def
                        .extensions
                        .iter()
                        .map(|(s, _)| *s)
                        .filter(|s| s.attr(&self.attr.name).is_some());
                    match (found.next(), found.next()) {
                        (Some(s), None) => s,
                        _ => {
                            return Err(PathError::new(format!(
                                "'{}' is not an attribute of {}",
                                self.attr.name, def.name
                            )));
                        }
                    }
                }
            }
        };
        let Some(attr) = schema.attr(&self.attr.name) else {
            return Err(PathError::new(format!(
                "'{}' is not an attribute of schema {}",
                self.attr.name, schema.id
            )));
        };
        let sub_name = self.attr.sub.as_deref().or(self.sub_after_filter.as_deref());
        let sub = match sub_name {
            Some(n) => Some(
                attr.sub(n)
                    .ok_or_else(|| PathError::new(format!("'{n}' is not a sub-attribute of '{}'", attr.name)))?,
            ),
            None => None,
        };
        if let Some(f) = &self.filter {
            if !attr.is_complex() || !attr.multi_valued {
                return Err(PathError::new(format!(
                    "'{}' is not a multi-valued complex attribute; '[...]' does not apply",
                    attr.name
                )));
            }
            check_filter_names(f, attr, 0)?;
        }
        Ok(Target::Attr {
            schema,
            extension: !std::ptr::eq(schema, def.core),
            attr,
            filter: self.filter.clone(),
            sub,
        })
    }
}

// Parsed value filters nest at most `HARD_MAX_DEPTH`; the explicit bound
// guards hand-built ones.
fn check_filter_names(f: &Filter, parent: &AttrDef, depth: usize) -> Result<(), PathError> {
    if depth > 4 * filter::HARD_MAX_DEPTH {
        return Err(PathError::new("value filter nests too deeply".into()));
    }
    let check = |p: &AttrPath| {
        if p.urn.is_none() && p.sub.is_none() && parent.sub(&p.name).is_some() {
            Ok(())
        } else {
            Err(PathError::new(format!(
                "'{p}' is not a sub-attribute of '{}'",
                parent.name
            )))
        }
    };
    match f {
        Filter::Present(p) | Filter::Compare(p, ..) => check(p),
        Filter::Not(inner) => check_filter_names(inner, parent, depth + 1),
        Filter::And(items) | Filter::Or(items) => {
            items.iter().try_for_each(|x| check_filter_names(x, parent, depth + 1))
        }
        Filter::ValuePath(p, _) => Err(PathError::new(format!("nested value filter on '{p}' is not allowed"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::{CompValue, CompareOp};
    use super::super::schema::{ENTERPRISE_URN, GROUP, USER};
    use super::*;

    fn ok(s: &str) -> PatchPath {
        match parse_path(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_rfc_and_idp_paths() {
        let p = ok("members");
        assert_eq!(
            (p.attr.name.as_str(), &p.filter, &p.sub_after_filter),
            ("members", &None, &None)
        );
        let p = ok("name.givenName");
        assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
        let p = ok(r#"emails[type eq "work"].value"#);
        assert_eq!(p.sub_after_filter.as_deref(), Some("value"));
        assert_eq!(
            p.filter,
            Some(Filter::Compare(
                AttrPath::new("type"),
                CompareOp::Eq,
                CompValue::String("work".into())
            ))
        );
        let p = ok(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#);
        assert!(p.filter.is_some() && p.sub_after_filter.is_none());
        let p = ok("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager");
        assert_eq!(p.attr.urn.as_deref(), Some(ENTERPRISE_URN));
        assert_eq!(p.attr.name, "manager");
        let p = ok("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber");
        assert_eq!(p.attr.name, "employeeNumber");
        let p = ok(r#"addresses[type eq "work" and primary eq true].postalCode"#);
        assert_eq!(
            p.to_string(),
            r#"addresses[type eq "work" and primary eq true].postalCode"#
        );
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in [
            "",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"].",
            "emails[type eq \"work\"].value.x",
            "emails[type eq \"work\"] x",
            "name.givenName[value eq \"x\"]",
            "emails[value eq \"x\"][type eq \"y\"]",
            "a b",
            "1abc",
        ] {
            let e = parse_path(bad).err();
            assert!(e.is_some(), "{bad:?} should fail");
            assert_eq!(e.map(|e| e.scim_type()), Some("invalidPath"));
        }
        let e = parse_path(r#"emails[type eq "work"]x"#).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid path at position 22: expected end of path, found 'x'")
        );
    }

    #[test]
    fn resolves_against_schema() {
        match ok(r#"emails[type eq "work"].value"#).resolve(&USER) {
            Ok(Target::Attr {
                attr,
                sub,
                filter,
                extension,
                ..
            }) => {
                assert_eq!(attr.name, "emails");
                assert_eq!(sub.map(|s| s.name), Some("value"));
                assert!(filter.is_some() && !extension);
            }
            other => panic!("{other:?}"),
        }
        match ok("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User:Manager").resolve(&USER) {
            Ok(Target::Attr { attr, extension, .. }) => assert!(attr.name == "manager" && extension),
            other => panic!("{other:?}"),
        }
        // Lenient: bare extension attribute name.
        match ok("manager").resolve(&USER) {
            Ok(Target::Attr { schema, .. }) => assert_eq!(schema.id, ENTERPRISE_URN),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ok(ENTERPRISE_URN).resolve(&USER), Ok(Target::WholeSchema(_))));
        assert!(matches!(
            ok("urn:example:custom:1.0:User:shoeSize").resolve(&USER),
            Ok(Target::UnknownExtension { name: Some(n), .. }) if n == "shoeSize"
        ));
        for bad in [
            "nope",
            "name.nope",
            r#"name[givenName eq "x"]"#,
            r#"userName[value eq "x"]"#,
            r#"emails[nope eq "x"]"#,
            r#"emails[type eq "work"].nope"#,
            r#"urn:example:x:1.0:User:y[a eq "b"]"#,
        ] {
            let r = ok(bad).resolve(&USER);
            assert!(r.is_err(), "{bad} resolved to {r:?}");
        }
        assert!(ok("userName").resolve(&GROUP).is_err());
        assert!(ok(r#"members[value eq "x"]"#).resolve(&GROUP).is_ok());
    }
}
