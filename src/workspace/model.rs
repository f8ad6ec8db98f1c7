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

/// Who manages a member or team: nobody (people in the console), or one
/// IdP connection whose SCIM writes are authoritative (SPEC rule 8).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "kind", content = "connection", rename_all = "snake_case")]
pub enum Management {
    #[default]
    Unmanaged,
    Managed(Uuid),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    /// Listing position: assigned at creation, never reused.
    #[serde(default)]
    pub seq: u64,
    /// As given (the SCIM userName); uniqueness is on its lower-cased form.
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    pub role: Role,
    pub status: Status,
    /// Whether the member ever became active (accepted an invite or was
    /// added on a verified domain): decides what `active=true` restores.
    #[serde(default)]
    pub accepted: bool,
    #[serde(default)]
    pub management: Management,
    /// argon2id PHC string; `None` until a password is set.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Every other SCIM attribute the IdP sent (name.formatted, emails,
    /// phoneNumbers, the enterprise extension, unknown extensions, ...), as
    /// sent, in SCIM wire shape. Rendering merges the fields above over it.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Bumped on every change; the SCIM weak ETag.
    pub version: u64,
}

#[cfg(test)]
impl Member {
    /// For tests: an active, unmanaged member with no optional field set.
    pub(crate) fn sample(id: u128, email: &str) -> Member {
        Member {
            id: Uuid::from_u128(id),
            seq: 1,
            email: email.to_owned(),
            display_name: None,
            given_name: None,
            family_name: None,
            locale: None,
            external_id: None,
            role: Role::Member,
            status: Status::Active,
            accepted: true,
            management: Management::Unmanaged,
            password_hash: None,
            attributes: serde_json::Map::new(),
            created_ms: 0,
            updated_ms: 0,
            version: 1,
        }
    }
}

impl Member {
    /// An active admin counts for the last-admin rule.
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && self.status == Status::Active
    }

    /// Listed by SCIM and the console (removed members are hidden).
    pub fn is_listed(&self) -> bool {
        self.status != Status::Removed
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// Signs the member in once (first admin, recovery).
    Login,
    /// Lets a new member choose a password (welcome mail).
    SetPassword,
    /// Accepts an invitation (makes an invited member active).
    Invite,
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
    /// An IdP connection writing over SCIM.
    Connection { id: Uuid, name: String },
    /// A workspace admin in the console.
    Admin { id: Uuid, email: String },
    /// A member acting on their own account (sign-in, password).
    Member { id: Uuid, email: String },
}

/// An identity-provider connection: what a SCIM bearer token or OAuth grant
/// belongs to, and what "managed" points at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connection {
    pub id: Uuid,
    pub name: String,
    pub kind: ConnectionKind,
    pub created_ms: i64,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
    /// When a static token of this connection last authenticated a SCIM
    /// request (recorded at most once a minute).
    #[serde(default)]
    pub last_used_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// An admin-issued static SCIM bearer token.
    StaticToken,
    /// An OAuth grant (the OAuth issue).
    OAuthGrant,
}

/// A bearer credential for SCIM, stored under the hash of its token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScimToken {
    pub connection_id: Uuid,
    pub created_ms: i64,
    /// `None`: does not expire (static tokens; Entra quarantines a job whose
    /// token expires).
    #[serde(default)]
    pub expires_ms: Option<i64>,
}

/// A mail waiting in (or delivered from) the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub kind: MailKind,
    pub subject: String,
    pub body: String,
    pub created_ms: i64,
    pub status: MailStatus,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the mail delivery worker may next try it (ms; 0 = at once).
    #[serde(default)]
    pub next_attempt_ms: i64,
    /// When the SMTP relay accepted it.
    #[serde(default)]
    pub sent_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Invite,
    AddedToWorkspace,
    Welcome,
    SetPassword,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Pending,
    Sent,
    Failed,
}

/// A SCIM request refused by a workspace rule, shown to admins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncError {
    pub at_ms: i64,
    pub connection_id: Uuid,
    pub connection_name: String,
    pub operation: String,
    pub target: String,
    pub detail: String,
}

/// A signed-in browser session (created by the sign-in pages; revoked by
/// deprovisioning).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub member_id: Uuid,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// Absolute end; the idle limit is checked against `last_seen_ms`.
    pub expires_ms: i64,
    /// The CSRF token every form of this session carries.
    #[serde(default)]
    pub csrf: String,
}

impl Session {
    /// Past its absolute end, or unused for `idle_ms`.
    pub fn expired(&self, now_ms: i64, idle_ms: i64) -> bool {
        self.expires_ms <= now_ms || self.last_seen_ms + idle_ms <= now_ms
    }
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

/// A team: what a SCIM Group is in roster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Team {
    pub id: Uuid,
    pub seq: u64,
    /// Exact and unique (case-sensitive).
    pub name: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub management: Management,
    /// Kept with each membership change (one row), so listings need not
    /// count the membership table.
    #[serde(default)]
    pub member_count: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: u64,
}

/// How an OAuth client authenticates and which grants it may use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Authorization code with a client secret (Okta).
    Confidential,
    /// Authorization code without a secret; PKCE S256 required.
    Public,
    /// Client credentials only (Entra ID gallery apps).
    Service,
}

/// A client secret: only its hash is kept. A client holds at most two, so
/// it can rotate without downtime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientSecret {
    pub hash: [u8; 32],
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<ClientSecret>,
    /// The IdP connection this client's grants act as (what "managed"
    /// points at), shared by all its grants.
    pub connection_id: Uuid,
    #[serde(default)]
    pub allow_insecure_redirect: bool,
    pub created_ms: i64,
}

/// An authorization code, stored under its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub member_id: Uuid,
    pub scope: String,
    /// Whether the authorization request named the redirect URI (then the
    /// token request must repeat it, RFC 6749 §4.1.3).
    #[serde(default)]
    pub redirect_uri_explicit: bool,
    /// PKCE S256 challenge, when the client sent one.
    #[serde(default)]
    pub challenge: Option<String>,
    pub expires_ms: i64,
    /// The grant it was exchanged for; a second exchange revokes it.
    #[serde(default)]
    pub exchanged_for: Option<Uuid>,
}

/// An OAuth grant: what an admin authorised (or a service client obtained).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: String,
    pub connection_id: Uuid,
    /// The admin who confirmed; `None` for client credentials.
    #[serde(default)]
    pub authorized_by: Option<Uuid>,
    pub scope: String,
    pub created_ms: i64,
    #[serde(default)]
    pub last_used_ms: Option<i64>,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
    /// Why it was revoked when roster did it by itself (the admin who
    /// authorised it lost admin rights): shown to admins, who must then
    /// re-authenticate the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessToken {
    pub grant_id: Uuid,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshToken {
    pub grant_id: Uuid,
    pub expires_ms: i64,
    /// When it was exchanged for a new pair; using it again after the grace
    /// window revokes the grant.
    #[serde(default)]
    pub rotated_ms: Option<i64>,
}
