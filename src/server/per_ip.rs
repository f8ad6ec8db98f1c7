//! The per-address connection cap (`limits.max_connections_per_ip`): one
//! client address may hold only so many of the `max_connections` slots, so
//! a single host opening idle sockets cannot take them all.
//!
//! It is decided at accept time from the TCP peer address, never from
//! `X-Forwarded-For` (no request has been read yet, and a header is the
//! client's word). Behind a reverse proxy every connection comes from the
//! proxy, so there the cap must be raised or turned off.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What the cap counts by: an IPv4 address, or the /64 an IPv6 address is
/// in (one host is usually handed a whole /64 and can use any address in
/// it, so counting single IPv6 addresses would cap nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrKey {
    V4(Ipv4Addr),
    /// The upper 64 bits of the address.
    V6Net(u64),
}

impl AddrKey {
    pub fn of(ip: IpAddr) -> AddrKey {
        // A dual-stack listener ("[::]:443") sees IPv4 clients as
        // ::ffff:a.b.c.d; without this they would all share one /64.
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddrKey::V4(v4),
            IpAddr::V6(v6) => AddrKey::V6Net((v6.to_bits() >> 64) as u64),
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrKey::V4(v4) => write!(f, "{v4}"),
            AddrKey::V6Net(net) => write!(f, "{}/64", Ipv6Addr::from_bits(u128::from(*net) << 64)),
        }
    }
}

/// Open connections per address. Only addresses with at least one open
/// connection have an entry, so the map is as large as the set of
/// connected clients (itself bounded by `max_connections`).
pub struct PerIpCap {
    max: usize,
    open: Mutex<HashMap<AddrKey, usize>>,
}

impl PerIpCap {
    /// `None` when `max` is 0 (no cap).
    pub fn new(max: usize) -> Option<Arc<PerIpCap>> {
        (max > 0).then(|| {
            Arc::new(PerIpCap {
                max,
                open: Mutex::new(HashMap::new()),
            })
        })
    }

    /// A slot for one more connection from `ip`, or the key that is full.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, AddrKey> {
        let key = AddrKey::of(ip);
        // The critical sections below cannot panic, so a poisoned lock still
        // holds consistent counts.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return Err(key);
        }
        *n += 1;
        Ok(IpSlot { cap: self.clone(), key })
    }

    #[cfg(test)]
    fn open(&self, key: AddrKey) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&key).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One connection's place in its address's count; dropping it (when the
/// connection task ends, however it ends) gives the place back.
pub struct IpSlot {
    cap: Arc<PerIpCap>,
    key: AddrKey,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut e) = open.entry(self.key) {
            let n = e.get_mut();
            *n = n.saturating_sub(1);
            if *n == 0 {
                e.remove();
            }
        }
    }
}

/// Refused connections are logged at debug each, and at warn at most once
/// per this period, so a flood from one address cannot flood the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Rate limit for the warning about refused connections.
#[derive(Default)]
pub struct RefusalLog {
    last_warning: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    /// Counts one refusal; returns how many to report (this one included)
    /// when a warning is due now.
    pub fn refused(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        match self.last_warning {
            Some(t) if now.saturating_duration_since(t) < WARN_EVERY => None,
            _ => {
                self.last_warning = Some(now);
                Some(std::mem::take(&mut self.since))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_by_its_address() {
        let a = AddrKey::of(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, AddrKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(a, AddrKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            AddrKey::of(ip("::ffff:192.0.2.7")),
            AddrKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
        assert_ne!(AddrKey::of(ip("::ffff:192.0.2.7")), AddrKey::of(ip("::ffff:192.0.2.8")));
        assert_eq!(AddrKey::of(ip("192.0.2.7")).to_string(), "192.0.2.7");
        assert_ne!(AddrKey::of(ip("192.0.2.7")), AddrKey::of(ip("192.0.2.8")));
    }

    #[test]
    fn cap_counts_per_address_and_forgets_closed_ones() {
        assert!(PerIpCap::new(0).is_none(), "0 means no cap");
        let cap = PerIpCap::new(2).unwrap();
        let a = ip("192.0.2.1");
        let s1 = cap.try_acquire(a).unwrap();
        let s2 = cap.try_acquire(a).unwrap();
        assert_eq!(cap.try_acquire(a).err(), Some(AddrKey::of(a)));
        // Another address, and another /64, have their own count.
        let b = cap.try_acquire(ip("192.0.2.2")).unwrap();
        let v6 = cap.try_acquire(ip("2001:db8::1")).unwrap();
        let v6b = cap.try_acquire(ip("2001:db8::2")).unwrap();
        assert!(cap.try_acquire(ip("2001:db8::3")).is_err(), "same /64");
        assert!(cap.try_acquire(ip("2001:db8:0:1::3")).is_ok(), "next /64");
        assert_eq!(cap.open(AddrKey::of(a)), 2);

        drop(s1);
        assert_eq!(cap.open(AddrKey::of(a)), 1);
        let s3 = cap.try_acquire(a).unwrap();
        drop((s2, s3, b, v6, v6b));
        assert_eq!(cap.addresses(), 0, "no entry left for addresses without connections");
    }

    #[test]
    fn refusals_warn_once_a_minute_with_a_count() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        assert_eq!(log.refused(t), Some(1));
        assert_eq!(log.refused(t + Duration::from_secs(1)), None);
        assert_eq!(log.refused(t + Duration::from_secs(59)), None);
        assert_eq!(log.refused(t + Duration::from_secs(60)), Some(3));
        assert_eq!(log.refused(t + Duration::from_secs(61)), None);
    }
}
