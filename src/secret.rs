//! Bearer secrets: one-time links, session ids, SCIM and OAuth tokens.
//!
//! A token is `{prefix}_{base64url(32 random bytes)}_{crc}`: the prefix makes
//! a leaked token recognisable, the 6-hex-digit checksum rejects typos and
//! garbage before any database lookup. Only the SHA-256 of the whole token is
//! stored; lookups go by that hash and comparisons are constant-time. One-time
//! links put their issue time in front of the hash (see [`link_key`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::clock::Rng;

/// The kinds of token roster issues, each with its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// One-time login link (first admin, recovery).
    Login,
    /// Static SCIM bearer token issued by an admin.
    Scim,
    AccessToken,
    RefreshToken,
    Session,
    /// OAuth authorization code.
    AuthCode,
    /// OAuth client secret.
    ClientSecret,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Login => "rst_login",
            TokenKind::Scim => "rst_scim",
            TokenKind::AccessToken => "rst_at",
            TokenKind::RefreshToken => "rst_rt",
            TokenKind::Session => "rst_sess",
            TokenKind::AuthCode => "rst_ac",
            TokenKind::ClientSecret => "rst_cs",
        }
    }
}

/// SHA-256 of a token: what the database keys on.
pub type TokenHash = [u8; 32];

pub fn hash_token(token: &str) -> TokenHash {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A fresh token of the given kind.
pub fn new_token(kind: TokenKind, rng: &dyn Rng) -> String {
    let mut raw = [0u8; 32];
    rng.fill(&mut raw);
    encode_token(kind, &raw)
}

fn encode_token(kind: TokenKind, raw: &[u8; 32]) -> String {
    let body = format!("{}_{}", kind.prefix(), URL_SAFE_NO_PAD.encode(raw));
    let crc = checksum(body.as_bytes());
    format!("{body}_{crc:06x}")
}

/// A one-time-link token (kind `Login`) issued at `now_ms`: the same shape
/// as any token, but its first 6 bytes are the issue time (Unix ms,
/// big-endian) and the other 26 (208 bits) are random. The time is not a
/// secret (the link's row records it anyway); it lets the link's row be
/// stored in time order (see [`link_key`]).
pub fn new_link_token(now_ms: i64, rng: &dyn Rng) -> String {
    let mut raw = [0u8; 32];
    rng.fill(&mut raw[6..]);
    raw[..6].copy_from_slice(&u64::try_from(now_ms).unwrap_or(0).to_be_bytes()[2..]);
    encode_token(TokenKind::Login, &raw)
}

/// The key a one-time link is stored under: the token's first 6 bytes (its
/// issue time, see [`new_link_token`]) and then the first 26 bytes of the
/// token's SHA-256. Keyed by the plain hash, every new link landed in a
/// random page of a large table and a batch of SCIM creates copied one
/// B-tree leaf per new member for it; in time order the links of a batch
/// share pages. The secret part is still only stored hashed (208 bits of
/// the hash), and a lookup still needs the whole token. A token whose body
/// does not decode gets its plain hash (it matches nothing new).
pub fn link_key(token: &str) -> TokenHash {
    time_keyed(token, hash_token(token))
}

/// Where to look a one-time link up, in order: its [`link_key`], then the
/// plain token hash that links issued by roster before time-ordered keys
/// are stored under (they stay usable until they expire).
pub fn link_keys(token: &str) -> [TokenHash; 2] {
    let hash = hash_token(token);
    [time_keyed(token, hash), hash]
}

/// [`link_key`] from the token and its SHA-256.
fn time_keyed(token: &str, hash: TokenHash) -> TokenHash {
    let raw = parts(token, TokenKind::Login)
        .filter(|(random, _)| random.len() == 43)
        .and_then(|(random, _)| URL_SAFE_NO_PAD.decode(random).ok());
    let Some(raw) = raw.filter(|r| r.len() == 32) else {
        return hash;
    };
    let mut key = [0u8; 32];
    key[..6].copy_from_slice(&raw[..6]);
    key[6..].copy_from_slice(&hash[..26]);
    key
}

/// The random part and the checksum of a token of `kind`, split by shape
/// only (prefix and separators; nothing is checked).
fn parts(token: &str, kind: TokenKind) -> Option<(&str, &str)> {
    token.strip_prefix(kind.prefix())?.strip_prefix('_')?.rsplit_once('_')
}

/// True when `token` has the shape and checksum of a token of `kind`.
pub fn well_formed(token: &str, kind: TokenKind) -> bool {
    let Some((random, crc)) = parts(token, kind) else {
        return false;
    };
    if random.len() != 43 || crc.len() != 6 {
        return false;
    }
    let Ok(crc) = u32::from_str_radix(crc, 16) else {
        return false;
    };
    let body_len = token.len() - 7;
    checksum(&token.as_bytes()[..body_len]) == crc
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &TokenHash, b: &TokenHash) -> bool {
    a.ct_eq(b).into()
}

/// 24-bit checksum (truncated SHA-256): catches typos, not an integrity MAC.
fn checksum(body: &[u8]) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let b = d.as_ref();
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn tokens_round_trip_and_reject_typos() {
        let rng = SystemRng::default();
        let t = new_token(TokenKind::Scim, &rng);
        assert!(t.starts_with("rst_scim_"));
        assert!(well_formed(&t, TokenKind::Scim));
        assert!(!well_formed(&t, TokenKind::Login));
        let mut typo = t.clone().into_bytes();
        typo[12] = if typo[12] == b'A' { b'B' } else { b'A' };
        assert!(!well_formed(std::str::from_utf8(&typo).unwrap(), TokenKind::Scim));
        assert!(!well_formed("rst_scim_", TokenKind::Scim));
        assert!(!well_formed("", TokenKind::Scim));
    }

    #[test]
    fn link_tokens_are_time_ordered_login_tokens() {
        let rng = SystemRng::default();
        let t1 = new_link_token(1_700_000_000_000, &rng);
        let t2 = new_link_token(1_700_000_000_000, &rng);
        let t3 = new_link_token(1_700_000_000_001, &rng);
        for t in [&t1, &t2, &t3] {
            assert!(well_formed(t, TokenKind::Login), "{t}");
        }
        let (k1, k2, k3) = (link_key(&t1), link_key(&t2), link_key(&t3));
        assert_ne!(k1, k2);
        assert!(k1.max(k2) < k3, "a later link sorts after earlier ones");
        assert_eq!(k1[..6], 1_700_000_000_000u64.to_be_bytes()[2..]);
        // The rest is the token's hash, not anything of the secret itself.
        assert_eq!(k1[6..], hash_token(&t1)[..26]);
        assert_eq!(link_keys(&t1), [k1, hash_token(&t1)]);
        // Garbage gets the plain hash instead of a panic.
        assert_eq!(link_key("rst_login_x"), hash_token("rst_login_x"));
        assert_eq!(link_key(""), hash_token(""));
    }

    #[test]
    fn hashes_compare() {
        let a = hash_token("a");
        assert!(hashes_equal(&a, &hash_token("a")));
        assert!(!hashes_equal(&a, &hash_token("b")));
    }
}
