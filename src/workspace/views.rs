//! Read models for the admin console: filtered, paged listings that stay
//! cheap at 100,000 members. An unfiltered page costs O(page) through the
//! listing index; a filtered one examines at most [`SCAN_BUDGET`] rows per
//! request and hands back a cursor to go on from, so no page view scans
//! the whole database.

use std::collections::HashMap;

use uuid::Uuid;

use super::model::*;
use crate::App;
use crate::store::{self, StoreError};

/// Rows one filtered listing request examines at most.
pub const SCAN_BUDGET: usize = 20_000;

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Matched case-insensitively against email and names.
    pub q: String,
    pub status: Option<Status>,
    pub role: Option<Role>,
    /// `Some(true)`: managed by an IdP; `Some(false)`: unmanaged.
    pub managed: Option<bool>,
}

impl MemberFilter {
    pub fn is_empty(&self) -> bool {
        self.q.trim().is_empty() && self.status.is_none() && self.role.is_none() && self.managed.is_none()
    }

    /// `q` is the query already trimmed and lower-cased (once per listing,
    /// not once per member examined).
    fn matches(&self, m: &Member, q: &str) -> bool {
        if self.status.is_some_and(|s| s != m.status) || self.role.is_some_and(|r| r != m.role) {
            return false;
        }
        if let Some(managed) = self.managed
            && managed != matches!(m.management, Management::Managed(_))
        {
            return false;
        }
        if q.is_empty() {
            return true;
        }
        let hay = [
            Some(m.email.as_str()),
            m.display_name.as_deref(),
            m.given_name.as_deref(),
            m.family_name.as_deref(),
        ];
        hay.iter().flatten().any(|h| h.to_lowercase().contains(q))
            || format!(
                "{} {}",
                m.given_name.as_deref().unwrap_or(""),
                m.family_name.as_deref().unwrap_or("")
            )
            .to_lowercase()
            .contains(q)
    }
}

/// A member with the name of the connection that manages them.
#[derive(Debug, Clone)]
pub struct MemberRow {
    pub member: Member,
    pub managed_by: Option<String>,
}

/// One page of the member listing.
#[derive(Debug, Clone)]
pub struct MemberList {
    pub rows: Vec<MemberRow>,
    /// Listed (not removed) members in the workspace.
    pub total: u64,
    /// Where this page started (a position, or a member id for removed).
    pub from: String,
    /// Where the next page starts, if there is more to look at.
    pub next: Option<String>,
    /// The previous page's start, for unfiltered listings.
    pub prev: Option<String>,
    /// Rows examined by a filtered listing (for "searched N" hints).
    pub examined: usize,
}

fn connection_names(txn: &redb::ReadTransaction) -> Result<HashMap<Uuid, String>, StoreError> {
    Ok(store::connections::list(txn)?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

fn row(names: &HashMap<Uuid, String>, m: Member) -> MemberRow {
    let managed_by = match m.management {
        Management::Managed(c) => Some(names.get(&c).cloned().unwrap_or_else(|| c.to_string())),
        Management::Unmanaged => None,
    };
    MemberRow { member: m, managed_by }
}

/// Members matching `filter`, a page of at most `limit`, from `from`.
pub async fn members(app: &App, filter: MemberFilter, from: String, limit: usize) -> Result<MemberList, StoreError> {
    let limit = limit.clamp(1, 200);
    app.store
        .read(move |txn| {
            let names = connection_names(txn)?;
            let total = store::members::listed_count(txn)?;
            let q = filter.q.trim().to_lowercase();
            let mut rows = Vec::new();
            let mut examined = 0usize;
            if filter.status == Some(Status::Removed) {
                // Removed members are not in the listing index: walk the
                // member table in id order, resuming after the cursor id.
                let after = Uuid::parse_str(&from).ok();
                let mut last = None;
                let mut more = false;
                store::members::scan_all_after(txn, after, |m| {
                    if rows.len() == limit || examined == SCAN_BUDGET {
                        more = true;
                        return false;
                    }
                    examined += 1;
                    last = Some(m.id);
                    if filter.matches(&m, &q) {
                        rows.push(row(&names, m));
                    }
                    true
                })?;
                return Ok(MemberList {
                    rows,
                    total,
                    from,
                    next: if more { last.map(|l| l.to_string()) } else { None },
                    prev: None,
                    examined,
                });
            }
            let start: u64 = from.parse().unwrap_or(0);
            if filter.is_empty() {
                let page = store::members::page(txn, start, limit)?;
                let end = start + page.len() as u64;
                rows = page.into_iter().map(|m| row(&names, m)).collect();
                return Ok(MemberList {
                    rows,
                    total,
                    from: start.to_string(),
                    next: (end < total).then(|| end.to_string()),
                    prev: (start > 0).then(|| start.saturating_sub(limit as u64).to_string()),
                    examined: 0,
                });
            }
            let mut more = false;
            store::members::scan_from(txn, start, |m| {
                if rows.len() == limit || examined == SCAN_BUDGET {
                    more = true;
                    return false;
                }
                examined += 1;
                if filter.matches(&m, &q) {
                    rows.push(row(&names, m));
                }
                true
            })?;
            Ok(MemberList {
                rows,
                total,
                from: start.to_string(),
                next: more.then(|| (start + examined as u64).to_string()),
                prev: None,
                examined,
            })
        })
        .await
}

/// Everything the member page shows.
#[derive(Debug, Clone)]
pub struct MemberDetail {
    pub row: MemberRow,
    pub teams: Vec<(Uuid, String)>,
    pub sessions: usize,
    pub pending_links: usize,
    pub active_admins: u64,
}

pub async fn member(app: &App, id: Uuid) -> Result<Option<MemberDetail>, StoreError> {
    app.store
        .read(move |txn| {
            let Some(m) = store::members::get(txn, id)? else {
                return Ok(None);
            };
            let names = connection_names(txn)?;
            Ok(Some(MemberDetail {
                teams: store::teams::teams_of(txn, id)?,
                sessions: store::sessions::count_for_member(txn, id)?,
                pending_links: store::links::count_for_member(txn, id)?,
                active_admins: store::members::active_admin_count(txn)?,
                row: row(&names, m),
            }))
        })
        .await
}

/// A team with the name of the connection that manages it.
#[derive(Debug, Clone)]
pub struct TeamRow {
    pub team: Team,
    pub managed_by: Option<String>,
}

fn team_row(names: &HashMap<Uuid, String>, t: Team) -> TeamRow {
    let managed_by = match t.management {
        Management::Managed(c) => Some(names.get(&c).cloned().unwrap_or_else(|| c.to_string())),
        Management::Unmanaged => None,
    };
    TeamRow { team: t, managed_by }
}

#[derive(Debug, Clone)]
pub struct TeamList {
    pub rows: Vec<TeamRow>,
    pub total: u64,
    pub from: u64,
    pub next: Option<u64>,
    pub prev: Option<u64>,
}

/// Teams in creation order, a page at a time; `q` filters by name.
pub async fn teams(app: &App, q: String, from: u64, limit: usize) -> Result<TeamList, StoreError> {
    let limit = limit.clamp(1, 200);
    app.store
        .read(move |txn| {
            let names = connection_names(txn)?;
            let total = store::teams::count(txn)?;
            let q = q.trim().to_lowercase();
            if q.is_empty() {
                let page = store::teams::page(txn, from, limit)?;
                let end = from + page.len() as u64;
                return Ok(TeamList {
                    rows: page.into_iter().map(|t| team_row(&names, t)).collect(),
                    total,
                    from,
                    next: (end < total).then_some(end),
                    prev: (from > 0).then(|| from.saturating_sub(limit as u64)),
                });
            }
            let (mut rows, mut seen, mut more) = (Vec::new(), 0u64, false);
            store::teams::scan(txn, |t| {
                seen += 1;
                if seen <= from {
                    return true;
                }
                if rows.len() == limit {
                    more = true;
                    return false;
                }
                if t.name.to_lowercase().contains(&q) {
                    rows.push(team_row(&names, t));
                }
                true
            })?;
            Ok(TeamList {
                rows,
                total,
                from,
                next: more.then_some(seen - 1),
                prev: None,
            })
        })
        .await
}

/// A team and one page of its members (by email).
#[derive(Debug, Clone)]
pub struct TeamDetail {
    pub row: TeamRow,
    pub members: Vec<Member>,
    pub from: usize,
    pub next: Option<usize>,
    pub prev: Option<usize>,
}

pub async fn team(app: &App, id: Uuid, from: usize, limit: usize) -> Result<Option<TeamDetail>, StoreError> {
    let limit = limit.clamp(1, 200);
    app.store
        .read(move |txn| {
            let Some(t) = store::teams::get(txn, id)? else {
                return Ok(None);
            };
            let names = connection_names(txn)?;
            let ids = store::teams::member_ids(txn, id)?;
            let mut members = Vec::new();
            for mid in ids.iter().skip(from).take(limit) {
                if let Some(m) = store::members::get(txn, *mid)? {
                    members.push(m);
                }
            }
            let end = from + limit;
            Ok(Some(TeamDetail {
                row: team_row(&names, t),
                members,
                from,
                next: (end < ids.len()).then_some(end),
                prev: (from > 0).then(|| from.saturating_sub(limit)),
            }))
        })
        .await
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Matched case-insensitively against the actor's description.
    pub actor: String,
    /// Matched case-insensitively against the target (`member:<id>`, a
    /// domain, ...) and the entry's details (e.g. an email).
    pub target: String,
    /// Inclusive bounds, milliseconds since the epoch.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// How an actor is shown (and searched).
pub fn actor_label(a: &Actor) -> String {
    match a {
        Actor::System => "system".into(),
        Actor::Operator => "operator (command line)".into(),
        Actor::Connection { name, .. } => format!("{name} (identity provider)"),
        Actor::Admin { email, .. } => format!("{email} (admin)"),
        Actor::Member { email, .. } => email.clone(),
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<(u64, T)>,
    /// Pass as `before` for the next (older) page.
    pub next: Option<u64>,
    pub examined: usize,
}

/// Audit entries older than `before`, newest first, matching `filter`.
pub async fn audit(
    app: &App,
    filter: AuditFilter,
    before: Option<u64>,
    limit: usize,
) -> Result<Page<AuditEntry>, StoreError> {
    let limit = limit.clamp(1, 500);
    let actor_q = filter.actor.trim().to_lowercase();
    let target_q = filter.target.trim().to_lowercase();
    app.store
        .read(move |txn| {
            let (mut rows, mut examined, mut last, mut more) = (Vec::new(), 0usize, None, false);
            store::audit::scan_back(txn, before, |seq, e| {
                if rows.len() == limit || examined == SCAN_BUDGET {
                    more = true;
                    return false;
                }
                if filter.from_ms.is_some_and(|f| e.at_ms < f) {
                    // Older than the window: nothing further back matches.
                    return false;
                }
                examined += 1;
                last = Some(seq);
                let ok = filter.to_ms.is_none_or(|t| e.at_ms <= t)
                    && (actor_q.is_empty() || actor_label(&e.actor).to_lowercase().contains(&actor_q))
                    && (target_q.is_empty()
                        || e.target.to_lowercase().contains(&target_q)
                        || e.detail.to_string().to_lowercase().contains(&target_q));
                if ok {
                    rows.push((seq, e));
                }
                true
            })?;
            Ok(Page {
                rows,
                next: if more { last } else { None },
                examined,
            })
        })
        .await
}

/// Sync errors older than `before`, newest first.
pub async fn sync_errors(app: &App, before: Option<u64>, limit: usize) -> Result<Page<SyncError>, StoreError> {
    let limit = limit.clamp(1, 500);
    app.store
        .read(move |txn| {
            let (mut rows, mut more) = (Vec::new(), false);
            store::sync_errors::scan_back(txn, before, |seq, e| {
                if rows.len() == limit {
                    more = true;
                    return false;
                }
                rows.push((seq, e));
                true
            })?;
            let next = if more { rows.last().map(|(s, _)| *s) } else { None };
            let examined = rows.len();
            Ok(Page { rows, next, examined })
        })
        .await
}
