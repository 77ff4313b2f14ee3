//! Random secrets and how they are stored: server-generated values (client secrets, codes,
//! tokens) carry 256 bits of entropy, are shown once, and are kept only as SHA-256 digests that
//! are compared in constant time. A slow hash would add nothing to a 256-bit secret.
//!
//! What the server must read back later (signing keys' private parts, a new client secret
//! kept for its one view) is sealed with a [`Sealer`]: AES-256-GCM under a key derived from
//! `secrets.secret_key` with HKDF-SHA256, one derived key per purpose.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
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

/// Why sealing or opening failed (no detail: a sealed value that does not open was made with
/// another secret key or purpose, or was altered).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The crypto library refused to set up the key or to seal.
    #[error("sealing failed")]
    Seal,
    /// The value does not open with this key and associated data.
    #[error("the sealed value cannot be opened")]
    Open,
}

/// AES-256-GCM (random 96-bit nonces) under a 256-bit key derived from the server's secret key
/// with HKDF-SHA256 (salt `latchkey`, `info` the purpose), so each purpose has its own key.
/// A sealed value is base64url(nonce ‖ ciphertext ‖ tag); the associated data given to
/// [`Sealer::seal`] (a row's id) must be given again to open it, so a sealed value cannot be
/// moved to another row.
pub struct Sealer(RandomizedNonceKey);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// The sealer of `purpose` (an HKDF `info` such as `signing-keys/v1`) under `secret`.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library cannot set up the key.
    pub fn new(secret: &[u8], purpose: &str) -> Result<Self, SealError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"latchkey").extract(secret);
        let mut key = [0u8; 32];
        prk.expand(&[purpose.as_bytes()], Len32)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| SealError::Seal)?;
        let sealing = RandomizedNonceKey::new(&AES_256_GCM, &key).map_err(|_| SealError::Seal)?;
        key.fill(0);
        Ok(Self(sealing))
    }

    /// `plaintext` sealed, bound to `aad`.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library fails.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        in_out.fill(0);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext of `sealed`, if it was sealed by this sealer with `aad`.
    ///
    /// # Errors
    /// [`SealError::Open`] otherwise.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Open)?;
        if raw.len() <= NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| SealError::Open)?
            .to_vec();
        in_out.fill(0);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_purpose_and_aad() {
        let a = Sealer::new(&[7u8; 64], "one/v1").expect("sealer");
        let sealed = a.seal(b"row-1", b"plain").expect("seal");
        assert_eq!(a.open(b"row-1", &sealed).expect("open"), b"plain");
        assert!(a.open(b"row-2", &sealed).is_err());
        let b = Sealer::new(&[7u8; 64], "two/v1").expect("sealer");
        assert!(b.open(b"row-1", &sealed).is_err());
    }

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
