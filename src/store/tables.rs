//! Every redb table roster uses, in one place. Names carry a version suffix:
//! a change of key or value layout gets a new name and a migration.

use redb::TableDefinition;

/// `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");
/// The one workspace, under the key `"workspace"`.
pub const WORKSPACE: TableDefinition<&str, &[u8]> = TableDefinition::new("workspace_v1");
/// Member id (UUID as u128) → encoded member.
pub const MEMBERS: TableDefinition<u128, &[u8]> = TableDefinition::new("members_v1");
/// Lower-cased email → member id (unique index).
pub const MEMBER_BY_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("member_email_v1");
/// SHA-256 of a one-time link token → encoded link.
pub const ONE_TIME_LINKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("one_time_links_v1");
/// Append-only audit log: sequence number → encoded entry.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_v1");

pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const WORKSPACE_KEY: &str = "workspace";

// ---- schema v2: SCIM users, connections, tokens, outbox ----

/// Listing order of listed (not removed) members: seq → member id.
pub const MEMBER_ORDER: TableDefinition<u64, u128> = TableDefinition::new("member_order_v1");
/// Listed members per block of [`ORDER_BLOCK`] sequence numbers, so the
/// n-th listed member is found without walking the n before it.
pub const MEMBER_ORDER_BLOCKS: TableDefinition<u64, u64> = TableDefinition::new("member_order_blocks_v1");
/// externalId (exact) → member ids (not unique across connections).
pub const MEMBER_BY_EXTERNAL_ID: TableDefinition<(&str, u128), ()> = TableDefinition::new("member_external_id_v1");
/// Every `emails[].value` (lower-cased) and the userName → member ids.
pub const MEMBER_BY_ANY_EMAIL: TableDefinition<(&str, u128), ()> = TableDefinition::new("member_any_email_v1");
/// Members that are active admins (the last-admin rule counts these).
pub const ACTIVE_ADMINS: TableDefinition<u128, ()> = TableDefinition::new("active_admins_v1");
/// A member's outstanding one-time links, to revoke them together.
pub const MEMBER_LINKS: TableDefinition<(u128, &[u8; 32]), ()> = TableDefinition::new("member_links_v1");
/// Session id hash → encoded session.
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions_v1");
/// A member's sessions, to revoke them together.
pub const MEMBER_SESSIONS: TableDefinition<(u128, &[u8; 32]), ()> = TableDefinition::new("member_sessions_v1");
/// Connection id → encoded IdP connection.
pub const CONNECTIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("connections_v1");
/// SCIM bearer token hash → encoded token record.
pub const SCIM_TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("scim_tokens_v1");
/// A connection's tokens, to revoke them together.
pub const CONNECTION_TOKENS: TableDefinition<(u128, &[u8; 32]), ()> = TableDefinition::new("connection_tokens_v1");
/// Mail outbox: sequence → encoded mail.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_v1");
/// SCIM requests refused by a rule: sequence → encoded sync error.
pub const SYNC_ERRORS: TableDefinition<u64, &[u8]> = TableDefinition::new("sync_errors_v1");

/// Sequence numbers per [`MEMBER_ORDER_BLOCKS`] entry.
pub const ORDER_BLOCK: u64 = 256;
/// Next member sequence number (in [`META`]).
pub const META_MEMBER_SEQ: &str = "member_seq";

// ---- schema v3: teams (SCIM Groups) ----

/// Team id → encoded team.
pub const TEAMS: TableDefinition<u128, &[u8]> = TableDefinition::new("teams_v1");
/// Team name (exact, case-sensitive) → team id (unique).
pub const TEAM_BY_NAME: TableDefinition<&str, u128> = TableDefinition::new("team_name_v1");
/// externalId (exact) → team ids.
pub const TEAM_BY_EXTERNAL_ID: TableDefinition<(&str, u128), ()> = TableDefinition::new("team_external_id_v1");
/// Membership, one row per (team, member): adding or removing one member
/// of a 10,000-member team touches one row here and one in MEMBER_TEAMS.
pub const TEAM_MEMBERS: TableDefinition<(u128, u128), ()> = TableDefinition::new("team_members_v1");
/// The same membership keyed by member, for a member's `groups`.
pub const MEMBER_TEAMS: TableDefinition<(u128, u128), ()> = TableDefinition::new("member_teams_v1");
pub const TEAM_ORDER: TableDefinition<u64, u128> = TableDefinition::new("team_order_v1");
pub const TEAM_ORDER_BLOCKS: TableDefinition<u64, u64> = TableDefinition::new("team_order_blocks_v1");
/// Next team sequence number (in [`META`]).
pub const META_TEAM_SEQ: &str = "team_seq";

// ---- schema v4: OAuth authorization server ----

/// client_id → encoded OAuth client.
pub const OAUTH_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_clients_v1");
/// Hash of an authorization code → encoded code (kept after use, to detect
/// replay, until it expires).
pub const OAUTH_CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("oauth_codes_v1");
/// Grant id → encoded grant.
pub const OAUTH_GRANTS: TableDefinition<u128, &[u8]> = TableDefinition::new("oauth_grants_v1");
/// Hash of an access token → encoded access token.
pub const ACCESS_TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("access_tokens_v1");
/// Hash of a refresh token → encoded refresh token.
pub const REFRESH_TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("refresh_tokens_v1");
/// A grant's tokens (access and refresh), to revoke them together.
pub const GRANT_TOKENS: TableDefinition<(u128, &[u8; 32]), ()> = TableDefinition::new("grant_tokens_v1");

// ---- schema v5: mail delivery ----

/// Pending mails by (next attempt ms, outbox seq): the delivery worker
/// takes the due ones from the front without reading the whole outbox.
/// Maintained by `store::outbox` together with [`OUTBOX`].
pub const OUTBOX_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("outbox_due_v1");
