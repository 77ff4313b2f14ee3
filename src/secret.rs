//! Random secrets and how they are stored: server-generated values (client secrets, codes,
//! tokens) carry 256 bits of entropy, are shown once, and are kept only as SHA-256 digests that
//! are compared in constant time. A slow hash would add nothing to a 256-bit secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of entropy in every generated token, code and client secret (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// A fresh URL-safe random string of `bytes` bytes of entropy (base64url, no padding:
/// 43 characters for 32 bytes), from the operating system's CSPRNG.
#[must_use]
pub fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh identifier of `len` ASCII letters and digits (5.95 bits each), for values people
/// type and that must never look like a command-line flag, such as `client_id`.
#[must_use]
pub fn random_alphanumeric(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}

/// A fresh 256-bit token (see [`random_string`]).
#[must_use]
pub fn new_token() -> String {
    random_string(TOKEN_BYTES)
}

/// Lower-case hex SHA-256 of `value`: the only form in which secrets are stored.
#[must_use]
pub fn sha256_hex(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Constant-time equality of two byte strings (length is not hidden).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
#[must_use]
pub fn verify_hashed(presented: &str, stored_hash: &str) -> bool {
    ct_eq(sha256_hex(presented).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn hashes_verify() {
        let h = sha256_hex("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(verify_hashed("abc", &h));
        assert!(!verify_hashed("abd", &h));
    }
}
