//! The JWS signing algorithms Latchkey signs ID tokens and JWT access tokens with: a name that
//! clients and configuration carry, and the hash rule of `at_hash` / `c_hash`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

/// JWS algorithms Latchkey signs with (RFC 7518 §3.1, RFC 8037 §3.1 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys. Required by OIDC Core §15.1; the default.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm, RS256 first.
    pub const ALL: [Self; 3] = [Self::Rs256, Self::Es256, Self::EdDsa];

    /// The JOSE name: `RS256`, `ES256`, `EdDSA`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The left-most half of the hash of `value` that `at_hash` / `c_hash` carry (OIDC Core
    /// §3.1.3.6): SHA-256 for RS256 and ES256, SHA-512 for Ed25519 (the hash EdDSA uses
    /// internally, as relying-party libraries expect), base64url without padding.
    #[must_use]
    pub fn half_hash(self, value: &str) -> String {
        let digest: Vec<u8> = match self {
            Self::Rs256 | Self::Es256 => Sha256::digest(value.as_bytes()).to_vec(),
            Self::EdDsa => Sha512::digest(value.as_bytes()).to_vec(),
        };
        URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown signing algorithm {s:?} (RS256, ES256 or EdDSA)"))
    }
}
