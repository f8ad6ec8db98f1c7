//! Email domains of the workspace. A member provisioned with an address on
//! a verified domain becomes active at once; otherwise they are invited.

use serde_json::json;

use super::model::*;
use crate::App;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0:?} is not a domain name")]
    BadName(String),
    #[error("domain {0} is already listed")]
    Exists(String),
    #[error("domain {0} is not listed; add it first")]
    Unknown(String),
    #[error("the workspace has not been created yet; run roster init")]
    NoWorkspace,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lower-cased, trailing dot removed; letters, digits, `-` and `.` only.
pub fn normalise(name: &str) -> Result<String, DomainError> {
    let d = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(DomainError::BadName(name.to_owned()))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum DomainChange {
    Add { verified: bool },
    Verify,
    Remove,
}

/// Adds, verifies or removes a domain, with its audit row.
pub async fn change(app: &App, name: &str, what: DomainChange, actor: Actor) -> Result<Workspace, DomainError> {
    let d = normalise(name)?;
    let now = app.clock.now_ms();
    app.store
        .write(move |txn| {
            let Some(mut ws) = store::workspace::get_w(txn)? else {
                return Ok(Err(DomainError::NoWorkspace));
            };
            let pos = ws.domains.iter().position(|x| x.name == d);
            let action = match (what, pos) {
                (DomainChange::Add { .. }, Some(_)) => return Ok(Err(DomainError::Exists(d.clone()))),
                (DomainChange::Add { verified }, None) => {
                    ws.domains.push(EmailDomain {
                        name: d.clone(),
                        verified,
                    });
                    ws.domains.sort_by(|a, b| a.name.cmp(&b.name));
                    if verified {
                        "domain.added_verified"
                    } else {
                        "domain.added"
                    }
                }
                (DomainChange::Verify | DomainChange::Remove, None) => {
                    return Ok(Err(DomainError::Unknown(d.clone())));
                }
                (DomainChange::Verify, Some(i)) => {
                    ws.domains[i].verified = true;
                    "domain.verified"
                }
                (DomainChange::Remove, Some(i)) => {
                    ws.domains.remove(i);
                    "domain.removed"
                }
            };
            store::workspace::put(txn, &ws)?;
            store::audit::append(
                txn,
                &AuditEntry {
                    at_ms: now,
                    actor: actor.clone(),
                    target: format!("domain:{d}"),
                    action: action.into(),
                    detail: json!({}),
                },
            )?;
            Ok(Ok(ws))
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn domain_names() {
        assert_eq!(normalise(" Example.COM. ").unwrap(), "example.com");
        assert!(normalise("exa mple.com").is_err());
        assert!(normalise("-x.com").is_err());
        assert!(normalise("a..b").is_err());
        assert!(normalise("").is_err());
    }
}
