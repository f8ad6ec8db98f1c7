//! Password hashing: argon2id at OWASP's recommended minimum (m=19456 KiB,
//! t=2, p=1), PHC strings, salts from the injected RNG. Hashing costs tens
//! of milliseconds of CPU, so callers run it on the blocking pool, never
//! inside a write transaction.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::clock::Rng;

/// Longest password accepted (argon2 itself has no practical limit, but
/// hashing megabytes on request is a cheap denial of service).
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's documented ranges.
    let params = match Params::new(19_456, 2, 1, None) {
        Ok(p) => p,
        Err(e) => unreachable!("argon2 parameters rejected: {e}"),
    };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be 1 to {MAX_PASSWORD_BYTES} bytes")]
    Length,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) for `password`.
pub fn hash(password: &str, rng: &dyn Rng) -> Result<String, PasswordError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (constant-time compare
/// inside argon2).
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES && hasher().verify_password(password.as_bytes(), phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse", &SystemRng::default()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("x", "not a phc string"));
        assert!(matches!(hash("", &SystemRng::default()), Err(PasswordError::Length)));
    }
}
