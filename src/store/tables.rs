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
