//! Housekeeping: deletes rows that can no longer be used — expired browser
//! sessions (absolute or idle), one-time links, OAuth authorization codes,
//! access and refresh tokens — with their index rows. Each is refused once
//! expired anyway (the sweep changes no answer); without it they would
//! stay in the database for ever: one welcome link per provisioned member,
//! one access token per IdP token request.
//!
//! Rows are found in read transactions, `CHUNK` at a time, and deleted in
//! one short write each, re-checked inside it; the server runs a sweep
//! every [`INTERVAL`] (`server::scheduled`).

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::App;
use crate::store::tables::{
    ACCESS_TOKENS, GRANT_TOKENS, MEMBER_LINKS, MEMBER_SESSIONS, OAUTH_CODES, ONE_TIME_LINKS, REFRESH_TOKENS, SESSIONS,
};
use crate::store::{self, StoreError};
use crate::workspace::model::{AccessToken, AuthCode, OneTimeLink, RefreshToken, Session};

/// How often the server sweeps.
pub const INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Rows looked up and deleted per write transaction.
const CHUNK: usize = 1_000;

/// How many rows one sweep deleted, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: usize,
    pub links: usize,
    pub codes: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.sessions + self.links + self.codes + self.access_tokens + self.refresh_tokens
    }
}

/// Deletes every row that expired before now (the app's clock).
pub async fn sweep(app: &App) -> Result<Swept, StoreError> {
    let now = app.clock.now_ms();
    let idle = app.config.session_idle_ms;
    Ok(Swept {
        sessions: sweep_table(app, SESSIONS, Some(MEMBER_SESSIONS), move |s: &Session| {
            s.expired(now, idle).then_some(s.member_id.as_u128())
        })
        .await?,
        links: sweep_table(app, ONE_TIME_LINKS, Some(MEMBER_LINKS), move |l: &OneTimeLink| {
            (l.expires_ms <= now).then_some(l.member_id.as_u128())
        })
        .await?,
        codes: sweep_table(app, OAUTH_CODES, None, move |c: &AuthCode| {
            (c.expires_ms <= now).then_some(0)
        })
        .await?,
        access_tokens: sweep_table(app, ACCESS_TOKENS, Some(GRANT_TOKENS), move |t: &AccessToken| {
            (t.expires_ms <= now).then_some(t.grant_id.as_u128())
        })
        .await?,
        refresh_tokens: sweep_table(app, REFRESH_TOKENS, Some(GRANT_TOKENS), move |t: &RefreshToken| {
            (t.expires_ms <= now).then_some(t.grant_id.as_u128())
        })
        .await?,
    })
}

/// Deletes the rows of `table` for which `expired` gives their owner (the
/// first half of their key in `index`), `CHUNK` at a time.
async fn sweep_table<T: DeserializeOwned + 'static>(
    app: &App,
    table: redb::TableDefinition<'static, &'static [u8; 32], &'static [u8]>,
    index: Option<redb::TableDefinition<'static, (u128, &'static [u8; 32]), ()>>,
    expired: impl Fn(&T) -> Option<u128> + Copy + Send + Sync + 'static,
) -> Result<usize, StoreError> {
    let mut total = 0;
    let mut after = None;
    loop {
        let keys = app
            .store
            .read(move |txn| store::expired_keys(txn, table, after, CHUNK, |row: &T| expired(row).is_some()))
            .await?;
        let (Some(&last), found) = (keys.last(), keys.len()) else {
            return Ok(total);
        };
        // The next look starts after this chunk, not again at the start of
        // a table whose live rows come first.
        after = Some(last);
        let removed = app
            .store
            .write(move |txn| {
                let n = store::remove_expired(txn, table, index, &keys, expired)?;
                Ok(Ok::<usize, ()>(n))
            })
            .await?
            .unwrap_or(0);
        total += removed;
        if found < CHUNK {
            return Ok(total);
        }
    }
}
