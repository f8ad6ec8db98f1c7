//! Query parameters shared by listings and single-resource reads (RFC 7644
//! §3.4.2): filter, startIndex, count, sortBy, sortOrder, attributes,
//! excludedAttributes; and the ListResponse envelope.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::error::ScimError;
use super::filter::{self, AttrPath, Filter, ParseOptions};
use super::project;
use super::schema::ResourceDef;

pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Page size when the client sends no `count`.
pub const DEFAULT_COUNT: usize = 100;
/// Largest page served (advertised as `filter.maxResults`).
pub const MAX_COUNT: usize = 1000;
/// Longest filter accepted, and deepest nesting.
pub const MAX_FILTER_LEN: usize = 4096;
pub const MAX_FILTER_DEPTH: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<Filter>,
    /// 0-based offset (startIndex - 1).
    pub offset: u64,
    pub count: usize,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Query {
    /// Parses the query string. `listing` enables filter/paging/sorting;
    /// single-resource reads accept only attributes/excludedAttributes.
    pub fn parse(params: &HashMap<String, String>, def: &ResourceDef, listing: bool) -> Result<Query, ScimError> {
        let get = |name: &str| -> Option<&String> {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let mut q = Query {
            count: DEFAULT_COUNT,
            ..Query::default()
        };
        if let Some(a) = get("attributes") {
            q.attributes =
                project::parse_attr_list(a).map_err(|e| ScimError::bad("invalidValue", format!("attributes: {e}")))?;
        }
        if let Some(a) = get("excludedAttributes") {
            q.excluded = project::parse_attr_list(a)
                .map_err(|e| ScimError::bad("invalidValue", format!("excludedAttributes: {e}")))?;
        }
        if !listing {
            return Ok(q);
        }
        if let Some(f) = get("filter").filter(|f| !f.trim().is_empty()) {
            let opts = ParseOptions {
                max_len: MAX_FILTER_LEN,
                max_depth: MAX_FILTER_DEPTH,
                // Entra filters on `emails[type eq "work"].value eq "..."`.
                value_path_sub: true,
                ..ParseOptions::default()
            };
            let parsed = filter::parse_with(f, &opts)?;
            filter::validate(&parsed, def)?;
            q.filter = Some(parsed);
        }
        if let Some(s) = get("startIndex") {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| ScimError::bad("invalidValue", format!("startIndex {s:?} is not an integer")))?;
            // RFC 7644 §3.4.2.4: a value below 1 is taken as 1.
            q.offset = u64::try_from(n.max(1) - 1).unwrap_or(0);
        }
        if let Some(c) = get("count") {
            let n: i64 = c
                .trim()
                .parse()
                .map_err(|_| ScimError::bad("invalidValue", format!("count {c:?} is not an integer")))?;
            // Negative counts are taken as 0; larger than the maximum, capped.
            q.count = usize::try_from(n.max(0)).unwrap_or(0).min(MAX_COUNT);
        }
        if let Some(s) = get("sortBy").filter(|s| !s.trim().is_empty()) {
            filter::parse_attr_path(s).map_err(|e| ScimError::bad("invalidValue", format!("sortBy: {e}")))?;
            q.sort_by = Some(s.trim().to_owned());
        }
        if let Some(o) = get("sortOrder") {
            q.descending = match o.trim().to_ascii_lowercase().as_str() {
                "ascending" | "" => false,
                "descending" => true,
                _ => {
                    return Err(ScimError::bad(
                        "invalidValue",
                        format!("sortOrder {o:?} must be \"ascending\" or \"descending\""),
                    ));
                }
            };
        }
        Ok(q)
    }

    /// Applies attributes / excludedAttributes (and drops `returned: never`),
    /// moving kept values out of `resource` instead of cloning them.
    pub fn project_owned(&self, resource: Value, def: &ResourceDef) -> Value {
        project::project_owned(resource, def, &self.attributes, &self.excluded)
    }
}

/// RFC 7644 §3.4.2.3 ordering of two rendered resources by `sort_by`
/// (caseExact-aware; resources without a value sort last).
pub fn compare(a: &Value, b: &Value, def: &ResourceDef, sort_by: &str, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let ord = match (filter::sort_value(a, def, sort_by), filter::sort_value(b, def, sort_by)) {
        (Some((attr, va)), Some((_, vb))) => filter::compare_for_sort(&va, &vb, attr),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    if descending { ord.reverse() } else { ord }
}

/// The ListResponse envelope around an already projected page.
pub fn list_response(total: u64, offset: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// [`list_response`] around resources already serialised (each one JSON
/// object): the bytes of `to_vec(list_response(..))` (tested), in its key
/// order (serde_json's map is sorted).
pub fn list_bytes(total: u64, offset: u64, resources: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = resources.iter().map(|r| r.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 160);
    out.extend_from_slice(b"{\"Resources\":[");
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    let tail = format!(
        "],\"itemsPerPage\":{},\"schemas\":[\"{LIST_URN}\"],\"startIndex\":{},\"totalResults\":{total}}}",
        resources.len(),
        offset + 1
    );
    out.extend_from_slice(tail.as_bytes());
    out
}
