//! Bearer secrets: one-time links, session ids, SCIM and OAuth tokens.
//!
//! A token is `{prefix}_{base64url(32 random bytes)}_{crc}`: the prefix makes
//! a leaked token recognisable, the 6-hex-digit checksum rejects typos and
//! garbage before any database lookup. Only the SHA-256 of the whole token is
//! stored; lookups go by that hash and comparisons are constant-time.

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
    let body = format!("{}_{}", kind.prefix(), URL_SAFE_NO_PAD.encode(raw));
    let crc = checksum(body.as_bytes());
    format!("{body}_{crc:06x}")
}

/// True when `token` has the shape and checksum of a token of `kind`.
pub fn well_formed(token: &str, kind: TokenKind) -> bool {
    let Some(rest) = token.strip_prefix(kind.prefix()) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('_') else {
        return false;
    };
    let Some((random, crc)) = rest.rsplit_once('_') else {
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
    fn hashes_compare() {
        let a = hash_token("a");
        assert!(hashes_equal(&a, &hash_token("a")));
        assert!(!hashes_equal(&a, &hash_token("b")));
    }
}
