//! In-memory fixed-window throttles for sign-in and the token endpoint:
//! per source address and per account, so neither a single address nor a
//! distributed guess at one account gets far. State is per process and
//! bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most keys remembered; beyond it, expired windows are dropped first and
/// then the table is cleared (failing open for memory, not for auth: the
/// argon2 cost still applies).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// A limit: at most `max` events per `window_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u32,
    pub window_ms: i64,
}

/// Failed sign-ins per account: 5 per 5 minutes.
pub const LOGIN_PER_ACCOUNT: Limit = Limit {
    max: 5,
    window_ms: 300_000,
};
/// Sign-in attempts per source address: 30 per 5 minutes.
pub const LOGIN_PER_ADDRESS: Limit = Limit {
    max: 30,
    window_ms: 300_000,
};
/// Token-endpoint requests per source address: 120 per minute.
pub const TOKEN_PER_ADDRESS: Limit = Limit {
    max: 120,
    window_ms: 60_000,
};

impl Throttle {
    /// Seconds to wait if `key` is over `limit` now, without counting.
    pub fn blocked(&self, key: &str, limit: Limit, now_ms: i64) -> Option<u64> {
        let w = self.windows.lock().ok()?;
        let (start, n) = *w.get(key)?;
        if now_ms - start < limit.window_ms && n >= limit.max {
            Some(
                u64::try_from((start + limit.window_ms - now_ms + 999) / 1000)
                    .unwrap_or(1)
                    .max(1),
            )
        } else {
            None
        }
    }

    /// Counts one event for `key`.
    pub fn hit(&self, key: &str, limit: Limit, now_ms: i64) {
        let Ok(mut w) = self.windows.lock() else { return };
        if w.len() >= MAX_KEYS {
            w.retain(|_, (start, _)| now_ms - *start < limit.window_ms);
            if w.len() >= MAX_KEYS {
                w.clear();
            }
        }
        let e = w.entry(key.to_owned()).or_insert((now_ms, 0));
        if now_ms - e.0 >= limit.window_ms {
            *e = (now_ms, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Forgets `key` (a successful sign-in clears the account's failures).
    pub fn clear(&self, key: &str) {
        if let Ok(mut w) = self.windows.lock() {
            w.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_blocks_then_reopens() {
        let t = Throttle::default();
        let l = Limit {
            max: 2,
            window_ms: 1000,
        };
        assert!(t.blocked("k", l, 0).is_none());
        t.hit("k", l, 0);
        t.hit("k", l, 10);
        assert_eq!(t.blocked("k", l, 20), Some(1));
        assert!(t.blocked("k", l, 1000).is_none());
        t.clear("k");
        assert!(t.blocked("k", l, 30).is_none());
    }
}
