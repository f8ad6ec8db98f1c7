//! The domain types of SPEC.md §1. Stored with a format-version byte (see
//! `store::codec`); new fields must carry `#[serde(default)]` so older rows
//! still decode.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workspace {
    pub name: String,
    pub created_ms: i64,
    /// Lower-cased email domains and whether each is verified.
    #[serde(default)]
    pub domains: Vec<EmailDomain>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmailDomain {
    pub name: String,
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Invited,
    Active,
    Suspended,
    Removed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    /// As given; uniqueness is on its lower-cased form.
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub role: Role,
    pub status: Status,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Bumped on every change; the SCIM weak ETag.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// Signs the member in once (first admin, recovery).
    Login,
}

/// A one-time link; only the hash of its token is stored (as the key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OneTimeLink {
    pub member_id: Uuid,
    pub purpose: LinkPurpose,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Who made a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The server itself (first-start bootstrap).
    System,
    /// An operator at the command line.
    Operator,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: Actor,
    /// What was changed, e.g. `member:<uuid>` or `workspace`.
    pub target: String,
    /// Short verb, e.g. `member.created`.
    pub action: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}
