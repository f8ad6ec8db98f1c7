//! Time and randomness. Everything that needs the wall clock or random bytes
//! gets them through [`Clock`] and [`Rng`] so tests can substitute their own;
//! `clippy.toml` bans the direct calls elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// Wall-clock time in whole milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place allowed to read the wall clock
    fn now_ms(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn new(now_ms: i64) -> FakeClock {
        FakeClock(AtomicI64::new(now_ms))
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Source of random bytes for tokens and ids.
pub trait Rng: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG through ring.
#[derive(Debug)]
pub struct SystemRng(ring::rand::SystemRandom);

impl Default for SystemRng {
    fn default() -> Self {
        SystemRng(ring::rand::SystemRandom::new())
    }
}

impl Rng for SystemRng {
    fn fill(&self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // getrandom failing means the OS cannot give randomness at all; no
        // token may be issued then, so stopping is the only safe answer.
        if self.0.fill(buf).is_err() {
            panic!("the operating system's random number generator failed");
        }
    }
}

pub type SharedClock = Arc<dyn Clock>;
pub type SharedRng = Arc<dyn Rng>;

/// A version-7 UUID: `ms` (Unix milliseconds) in the top 48 bits, then
/// 74 random bits from the given RNG. Ids made one after another sort
/// together, so a new member's row lands next to the last one in the id
/// table instead of in a random page.
pub fn new_uuid_v7(ms: i64, rng: &dyn Rng) -> uuid::Uuid {
    let mut b = [0u8; 10];
    rng.fill(&mut b);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(ms).unwrap_or(0), &b).into_uuid()
}

/// A random version-4 UUID from the given RNG.
pub fn new_uuid(rng: &dyn Rng) -> uuid::Uuid {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// RFC 3339 text (UTC, millisecond precision) for a millisecond timestamp.
/// Digits are written by hand: every SCIM resource carries two of these, and
/// the format-description path cost ~2,000 instructions each.
pub fn rfc3339(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let Ok(year) = u32::try_from(t.year()) else {
        return rfc3339_described(t);
    };
    if year > 9999 {
        return rfc3339_described(t);
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 3, u32::from(t.millisecond()));
    b.iter().map(|&c| char::from(c)).collect()
}

fn rfc3339_described(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_ids_sort_by_time_and_differ_within_a_millisecond() {
        let rng = SystemRng::default();
        let a = new_uuid_v7(1_700_000_000_000, &rng);
        let b = new_uuid_v7(1_700_000_000_000, &rng);
        let c = new_uuid_v7(1_700_000_000_001, &rng);
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
        assert!(a.as_u128().max(b.as_u128()) < c.as_u128());
        assert_eq!(a.get_timestamp().map(|t| t.to_unix()), Some((1_700_000_000, 0)));
    }

    #[test]
    fn rfc3339_formats_utc_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn hand_written_digits_match_the_time_crate() {
        // Every millisecond field, day of month, leap years, 1970 to 9999.
        let mut ms: i64 = -86_400_000 * 365;
        let step = 7_919_993_111; // about 92 days and a prime number of ms
        while ms < 253_402_300_799_999 {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            assert_eq!(rfc3339(ms), rfc3339_described(t), "{ms}");
            ms += step;
        }
    }

    #[test]
    fn uuid_is_v4() {
        let u = new_uuid(&SystemRng::default());
        assert_eq!(u.get_version_num(), 4);
    }
}
