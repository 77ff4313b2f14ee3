//! Signing keys: generated on first start, stored in the database so that every node signs with
//! the same keys, private parts encrypted at rest, rotated with overlap.
//!
//! - One current key per algorithm: RS256 (RSA 2048, always, OIDC Core §15.1), ES256 (P-256)
//!   and EdDSA (Ed25519). Keys are made by aws-lc-rs, signing and verifying is jsonwebtoken's.
//! - The `kid` is the RFC 7638 SHA-256 thumbprint of the public key.
//! - Private keys are PKCS#8 DER sealed with AES-256-GCM under a key derived from
//!   `secrets.secret_key` with HKDF-SHA256; the `kid` is the associated data, so a sealed key
//!   cannot be moved to another row.
//! - `latchkey keys rotate` adds a key that is published at once but signs only from
//!   `activates_at` (now + `oidc.key_cache_seconds`): by then every node has re-read the keys,
//!   so no relying party meets a `kid` that the JWKS it fetched lacks. The key it replaces keeps
//!   verifying until the longest-lived token it could have signed has expired, then leaves the
//!   JWKS.
//! - Each node keeps the keys in memory for `oidc.key_cache_seconds` and re-reads them after
//!   that, or at once when the database disagrees with its cache about the `kid` it is about to
//!   sign or verify with (one primary-key read each time): a cached key that `keys revoke`
//!   deleted, or a stored key it has not cached — the replacement that `keys revoke` makes signs
//!   at once, so another node may have signed with it already. The JWKS compares every stored
//!   kid with the cache on each request.
//! - Private keys are parsed once, when loaded (aws-lc-rs key pairs), not per signature, and
//!   [`KeyStore::sign`] signs on tokio's blocking pool (at most one signature per core at a
//!   time), never on an HTTP worker.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::signing_keys::{self, SigningKeyRow};
use crate::db::{self, tokens, Db, DbConnection, DbError};
pub use crate::domain::SigningAlg;
use crate::secret::Sealer;

/// The jsonwebtoken algorithm of `alg`.
fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

/// Why keys could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored private key does not decrypt: the secret key changed, or the row was altered.
    #[error("signing key {0} cannot be decrypted with the configured secrets.secret_key (was the secret key changed?)")]
    Undecryptable(String),
    /// A stored key is malformed.
    #[error("signing key {kid} is unusable: {message}")]
    Malformed {
        /// The key's id.
        kid: String,
        /// What is wrong.
        message: String,
    },
    /// Key generation or signing failed in the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    /// No usable key for an algorithm (keys were deleted by hand).
    #[error("no active {0} signing key")]
    NoActiveKey(SigningAlg),
    /// No key with this kid is stored (never was, expired, or revoked already).
    #[error("no signing key {0:?} (see `latchkey keys list`)")]
    UnknownKey(String),
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// Why a JWT we are asked to trust was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtVerifyError {
    /// Not one of our JWTs, a bad signature, wrong claims, or expired.
    #[error("{0}")]
    Invalid(String),
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// What `latchkey keys list` shows of a key (never private material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `active`, `pending` (published, signs from `activates_at`), `retired` (verifies only) or
    /// `expired` (out of the JWKS).
    pub status: &'static str,
    /// Generation time (UTC).
    pub created_at: NaiveDateTime,
    /// Start of signing (UTC).
    pub activates_at: NaiveDateTime,
    /// End of signing (UTC).
    pub retired_at: Option<NaiveDateTime>,
    /// Leaves the JWKS (UTC).
    pub expires_at: Option<NaiveDateTime>,
}

/// What [`KeyStore::revoke`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// The revoked key.
    pub kid: String,
    /// Its algorithm.
    pub alg: String,
    /// The key generated to sign in its place, when it was signing or current.
    pub replacement: Option<String>,
    /// Unexpired JWT access tokens it had signed, now revoked.
    pub tokens_revoked: usize,
}

/// A private key parsed once, when loaded: jsonwebtoken's `EncodingKey` keeps the DER and
/// parses it again for every signature (measured: about half the cost of an RS256 signature,
/// and more than the whole ES256 signature).
enum PrivateKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl PrivateKey {
    fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, String> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| e.to_string();
        Ok(match alg {
            SigningAlg::Rs256 => Self::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?),
            SigningAlg::Es256 => Self::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(rejected)?,
            ),
            SigningAlg::EdDsa => Self::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?),
        })
    }

    /// The JWS signature of `input` (RFC 7515 §5.1): RSASSA-PKCS1-v1_5 with SHA-256, ECDSA
    /// P-256 with SHA-256 as the fixed-width `R ‖ S` of RFC 7518 §3.4, or Ed25519 (RFC 8037).
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input,
                    &mut signature,
                )
                .map_err(crypto)?;
                Ok(signature)
            }
            Self::Ec(pair) => Ok(pair
                .sign(&SystemRandom::new(), input)
                .map_err(crypto)?
                .as_ref()
                .to_vec()),
            Self::Ed(pair) => Ok(pair.sign(input).as_ref().to_vec()),
        }
    }
}

/// A key loaded into memory.
struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    jwk: Jwk,
    private: PrivateKey,
    decoding: DecodingKey,
    activates_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
}

impl LoadedKey {
    fn published_at(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// The keys as loaded at one moment.
struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
    loaded: Instant,
}

/// The signing keys' [`Sealer`]: AES-256-GCM under a key derived from the configured secret
/// for this one purpose, with the `kid` as associated data.
struct KeyCipher(Sealer);

impl KeyCipher {
    fn new(secret: &[u8]) -> Result<Self, KeyError> {
        Sealer::new(secret, SIGNING_KEYS_PURPOSE)
            .map(Self)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, KeyError> {
        self.0
            .seal(kid.as_bytes(), plaintext)
            .map_err(|_| KeyError::Crypto("sealing the private key failed".into()))
    }

    fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        self.0
            .open(kid.as_bytes(), sealed)
            .map_err(|_| KeyError::Undecryptable(kid.to_owned()))
    }
}

/// The HKDF `info` of the signing keys' sealing key (changing it makes every stored key
/// undecryptable).
const SIGNING_KEYS_PURPOSE: &str = "signing-keys/v1";

/// A freshly generated key pair: the public JWK and the PKCS#8 private key.
struct Generated {
    jwk: Jwk,
    pkcs8: Vec<u8>,
}

fn crypto(e: impl fmt::Debug) -> KeyError {
    KeyError::Crypto(format!("{e:?}"))
}

fn generate(alg: SigningAlg) -> Result<Generated, KeyError> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (algorithm, pkcs8) = match alg {
        SigningAlg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(crypto)?;
            let public = pair.public_key();
            let params = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(public.modulus().big_endian_without_leading_zero()),
                e: b64(public.exponent().big_endian_without_leading_zero()),
            });
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).map_err(crypto)?;
            (params, der.as_ref().to_vec())
        }
        SigningAlg::Es256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(crypto)?;
            // Uncompressed SEC1 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(KeyError::Crypto(
                    "unexpected P-256 public key encoding".into(),
                ));
            }
            let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(&point[1..33]),
                y: b64(&point[33..65]),
            });
            let der = pair.to_pkcs8v1().map_err(crypto)?;
            (params, der.as_ref().to_vec())
        }
        SigningAlg::EdDsa => {
            let pair = Ed25519KeyPair::generate().map_err(crypto)?;
            let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(pair.public_key().as_ref()),
            });
            let der = pair.to_pkcs8v1().map_err(crypto)?;
            (params, der.as_ref().to_vec())
        }
    };
    let mut jwk = Jwk {
        common: CommonParameters::default(),
        algorithm,
    };
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    jwk.common = CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_algorithm: Some(match alg {
            SigningAlg::Rs256 => KeyAlgorithm::RS256,
            SigningAlg::Es256 => KeyAlgorithm::ES256,
            SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
        }),
        key_id: Some(kid),
        ..CommonParameters::default()
    };
    Ok(Generated { jwk, pkcs8 })
}

/// The signing keys of this deployment. Cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cipher: KeyCipher,
    cache_for: Duration,
    set: RwLock<Option<Arc<KeySet>>>,
    /// Signatures in flight on the blocking pool: at most one per core, so a burst of RS256
    /// signatures waits as futures rather than as blocking threads.
    signing: tokio::sync::Semaphore,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyStore(..)")
    }
}

impl KeyStore {
    /// A store over `db`, encrypting with a key derived from `secret` (the configured
    /// `secrets.secret_key`), re-reading keys after `cache_for`.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the cipher cannot be set up.
    pub fn new(db: Db, secret: &[u8], cache_for: Duration) -> Result<Self, KeyError> {
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                cipher: KeyCipher::new(secret)?,
                cache_for,
                set: RwLock::new(None),
                signing: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
                ),
            }),
        })
    }

    /// Makes sure a current key exists for every algorithm (first start), under a lock shared
    /// by every node, then loads the keys, which proves they decrypt.
    ///
    /// # Errors
    /// [`KeyError`] when storage fails or a stored key does not decrypt.
    pub async fn ensure(&self) -> Result<Vec<String>, KeyError> {
        let this = self.clone();
        let created = self
            .inner
            .db
            .write(move |conn| {
                conn.transaction::<_, KeyError, _>(|conn| {
                    db::lock_for_setup(conn)?;
                    let rows = signing_keys::all(conn)?;
                    let mut created = Vec::new();
                    for alg in SigningAlg::ALL {
                        let has_current = rows
                            .iter()
                            .any(|r| r.alg == alg.as_str() && r.retired_at.is_none());
                        if !has_current {
                            let now = db::now();
                            let row = this.new_row(alg, now, now)?;
                            signing_keys::insert(conn, &row)?;
                            audit::record(
                                conn,
                                AuditEvent::new("signing_key.created")
                                    .detail("kid", row.kid.clone())
                                    .detail("alg", alg.as_str()),
                            )?;
                            created.push(row.kid);
                        }
                    }
                    Ok(created)
                })
            })
            .await?;
        self.reload().await?;
        Ok(created)
    }

    fn new_row(
        &self,
        alg: SigningAlg,
        now: NaiveDateTime,
        activates_at: NaiveDateTime,
    ) -> Result<SigningKeyRow, KeyError> {
        let generated = generate(alg)?;
        let kid = generated.jwk.common.key_id.clone().unwrap_or_default();
        let sealed = self.inner.cipher.seal(&kid, &generated.pkcs8)?;
        let mut pkcs8 = generated.pkcs8;
        pkcs8.fill(0);
        Ok(SigningKeyRow {
            public_jwk: serde_json::to_string(&generated.jwk).map_err(crypto)?,
            kid,
            alg: alg.as_str().to_owned(),
            private_key: sealed,
            created_at: now,
            activates_at,
            retired_at: None,
            expires_at: None,
        })
    }

    /// Adds a new key for each of `algs`; it is published at once and signs from
    /// now + `oidc.key_cache_seconds`. The keys it replaces sign until then and stay published
    /// for `overlap` more (the longest lifetime of a token they signed). Keys whose time is up
    /// are deleted. Returns the new kids.
    ///
    /// # Errors
    /// [`KeyError`] when storage or key generation fails.
    pub async fn rotate(
        &self,
        algs: Vec<SigningAlg>,
        overlap: Duration,
    ) -> Result<Vec<String>, KeyError> {
        self.rotate_where(overlap, move |_, _| algs).await
    }

    /// Rotates (as [`KeyStore::rotate`]) the key of every algorithm whose current key has
    /// signed for `max_age` or longer (`oidc.rotate_keys_days`; the scheduler calls this). A
    /// key published but not yet signing counts as current, so a rotation in progress is not
    /// repeated. The check runs under the same lock as the rotation, so nodes checking at once
    /// rotate once. Returns the new kids (none when nothing was due).
    ///
    /// # Errors
    /// [`KeyError`] when storage or key generation fails.
    pub async fn rotate_due(
        &self,
        max_age: Duration,
        overlap: Duration,
    ) -> Result<Vec<String>, KeyError> {
        let max_age = TimeDelta::from_std(max_age).unwrap_or(TimeDelta::MAX);
        self.rotate_where(overlap, move |rows, now| {
            SigningAlg::ALL
                .into_iter()
                .filter(|alg| {
                    !rows.iter().any(|r| {
                        r.alg == alg.as_str()
                            && r.retired_at.is_none()
                            && now.signed_duration_since(r.activates_at) < max_age
                    })
                })
                .collect()
        })
        .await
    }

    /// Rotates the algorithms `pick` chooses from the stored keys at `now`, in one transaction
    /// under the set-up lock.
    async fn rotate_where<P>(&self, overlap: Duration, pick: P) -> Result<Vec<String>, KeyError>
    where
        P: FnOnce(&[SigningKeyRow], NaiveDateTime) -> Vec<SigningAlg> + Send + 'static,
    {
        let this = self.clone();
        let delay = TimeDelta::from_std(self.inner.cache_for).unwrap_or(TimeDelta::zero());
        let overlap = TimeDelta::from_std(overlap).unwrap_or(TimeDelta::days(1));
        let kids = self
            .inner
            .db
            .write(move |conn| {
                conn.transaction::<_, KeyError, _>(|conn| {
                    db::lock_for_setup(conn)?;
                    let now = db::now();
                    signing_keys::delete_expired(conn, now)?;
                    let algs = pick(&signing_keys::all(conn)?, now);
                    let mut kids = Vec::new();
                    for alg in algs {
                        let activates = now + delay;
                        signing_keys::retire(conn, alg.as_str(), activates, activates + overlap)?;
                        let row = this.new_row(alg, now, activates)?;
                        signing_keys::insert(conn, &row)?;
                        audit::record(
                            conn,
                            AuditEvent::new("signing_key.rotated")
                                .detail("kid", row.kid.clone())
                                .detail("alg", alg.as_str()),
                        )?;
                        kids.push(row.kid);
                    }
                    Ok(kids)
                })
            })
            .await?;
        if !kids.is_empty() {
            self.reload().await?;
        }
        Ok(kids)
    }

    /// Revokes the key `kid` at once (a compromised key): its row, private part included, is
    /// deleted, so it leaves the JWKS and stops signing and verifying on every node at its next
    /// use (each node checks that a cached key still exists before it signs or verifies with
    /// it, and compares the stored kids before serving the JWKS). Unexpired JWT access tokens
    /// it signed are revoked (introspection answers `active: false`, bearer use is refused);
    /// refresh tokens are opaque and keep working, so clients get new access tokens signed by
    /// the replacement. When the key signs now or is its algorithm's current key, a
    /// replacement that signs at once is generated first in the same transaction, so signing
    /// never stops. Recorded as `signing_key.revoked` (and `signing_key.created` for the
    /// replacement), by `actor`.
    ///
    /// # Errors
    /// [`KeyError::UnknownKey`] when no such key is stored; [`KeyError`] when storage or key
    /// generation fails.
    pub async fn revoke(&self, actor: &Actor, kid: &str) -> Result<Revocation, KeyError> {
        let this = self.clone();
        let kid = kid.to_owned();
        let actor = actor.clone();
        let revocation = self
            .inner
            .db
            .write(move |conn| {
                conn.transaction::<_, KeyError, _>(|conn| {
                    db::lock_for_setup(conn)?;
                    let now = db::now();
                    let Some(row) = signing_keys::find(conn, &kid)? else {
                        return Err(KeyError::UnknownKey(kid.clone()));
                    };
                    let signs_now =
                        row.activates_at <= now && row.retired_at.is_none_or(|t| t > now);
                    let alg = row.alg.parse::<SigningAlg>().ok();
                    let replacement = match alg {
                        Some(alg) if signs_now || row.retired_at.is_none() => {
                            // Signs at once: the compromised key must stop now, and nothing
                            // may be left without a key (no publish-then-sign delay here).
                            let new = this.new_row(alg, now, now)?;
                            signing_keys::insert(conn, &new)?;
                            audit::record(
                                conn,
                                AuditEvent::new("signing_key.created")
                                    .by(&actor)
                                    .detail("kid", new.kid.clone())
                                    .detail("alg", alg.as_str())
                                    .detail("replaces", kid.clone()),
                            )?;
                            Some(new.kid)
                        }
                        _ => None,
                    };
                    // Deleting first takes the row lock that a concurrent token mint holds
                    // (shared) until it commits, so the tokens it inserted are visible to the
                    // revocation below (PostgreSQL; SQLite has a single writer).
                    signing_keys::delete(conn, &kid)?;
                    let tokens_revoked = tokens::revoke_signed_by(conn, &kid, now)?;
                    audit::record(
                        conn,
                        AuditEvent::new("signing_key.revoked")
                            .by(&actor)
                            .detail("kid", kid.clone())
                            .detail("alg", row.alg.clone())
                            .detail("replaced_by", replacement.clone())
                            .detail("tokens_revoked", tokens_revoked),
                    )?;
                    Ok(Revocation {
                        kid: kid.clone(),
                        alg: row.alg,
                        replacement,
                        tokens_revoked,
                    })
                })
            })
            .await?;
        self.reload().await?;
        Ok(revocation)
    }

    /// Every stored key, oldest first, with its status at this moment.
    ///
    /// # Errors
    /// [`KeyError::Db`] when storage fails.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows = self
            .inner
            .db
            .read(|conn| signing_keys::all(conn).map_err(DbError::from))
            .await?;
        let now = db::now();
        Ok(rows
            .into_iter()
            .map(|r| KeyInfo {
                status: if r.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else if r.retired_at.is_some_and(|t| t <= now) {
                    "retired"
                } else if r.activates_at > now {
                    "pending"
                } else {
                    "active"
                },
                kid: r.kid,
                alg: r.alg,
                created_at: r.created_at,
                activates_at: r.activates_at,
                retired_at: r.retired_at,
                expires_at: r.expires_at,
            })
            .collect())
    }

    async fn reload(&self) -> Result<Arc<KeySet>, KeyError> {
        let rows = self
            .inner
            .db
            .read(|conn| signing_keys::all(conn).map_err(DbError::from))
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(key) = self.load(row)? {
                keys.push(Arc::new(key));
            }
        }
        let set = Arc::new(KeySet {
            keys,
            loaded: Instant::now(),
        });
        if let Ok(mut slot) = self.inner.set.write() {
            *slot = Some(set.clone());
        }
        Ok(set)
    }

    /// Decrypts a stored key; `None` for an algorithm we do not know.
    fn load(&self, row: SigningKeyRow) -> Result<Option<LoadedKey>, KeyError> {
        let Ok(alg) = row.alg.parse::<SigningAlg>() else {
            return Ok(None);
        };
        let malformed = |message: String| KeyError::Malformed {
            kid: row.kid.clone(),
            message,
        };
        let jwk: Jwk = serde_json::from_str(&row.public_jwk)
            .map_err(|e| malformed(format!("public JWK: {e}")))?;
        let decoding =
            DecodingKey::from_jwk(&jwk).map_err(|e| malformed(format!("public JWK: {e}")))?;
        let mut pkcs8 = self.inner.cipher.open(&row.kid, &row.private_key)?;
        let private = PrivateKey::from_pkcs8(alg, &pkcs8);
        pkcs8.fill(0);
        let private = private.map_err(|e| malformed(format!("private key: {e}")))?;
        Ok(Some(LoadedKey {
            kid: row.kid,
            alg,
            jwk,
            private,
            decoding,
            activates_at: row.activates_at,
            expires_at: row.expires_at,
        }))
    }

    /// Forgets the cached keys: the next use re-reads them.
    fn invalidate(&self) {
        if let Ok(mut slot) = self.inner.set.write() {
            *slot = None;
        }
    }

    /// The keys, re-read when older than the cache time.
    async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        let cached = self.inner.set.read().ok().and_then(|s| s.clone());
        match cached {
            Some(set) if set.loaded.elapsed() < self.inner.cache_for => Ok(set),
            _ => self.reload().await,
        }
    }

    /// The cached keys when they agree with the database about `kid`, or the keys re-read at
    /// once when they do not: a cached key that is no longer stored was revoked since they were
    /// read, and a stored key that is not cached is newer than them — the replacement that
    /// `keys revoke` makes signs at once, so another node may already have signed with it.
    /// One primary-key read: this is what makes a revocation take effect on every node without
    /// waiting for the cache to expire.
    async fn confirmed(&self, set: Arc<KeySet>, kid: &str) -> Result<Arc<KeySet>, KeyError> {
        let cached = set.keys.iter().any(|k| k.kid == kid);
        let kid = kid.to_owned();
        let stored = self
            .inner
            .db
            .read(move |conn| signing_keys::exists(conn, &kid).map_err(DbError::from))
            .await?;
        if stored == cached {
            Ok(set)
        } else {
            self.reload().await
        }
    }

    /// The JWKS document (RFC 7517 §5): every published public key, with `kid`, `kty`, `use`
    /// and `alg`. The stored kids are compared with the cached ones first (one small read), so
    /// a revoked key leaves the document, and a new one joins it, on every node at once.
    ///
    /// # Errors
    /// [`KeyError`] when keys cannot be loaded.
    pub async fn jwks(&self) -> Result<JwkSet, KeyError> {
        let mut set = self.current().await?;
        let stored = self
            .inner
            .db
            .read(|conn| signing_keys::kids(conn).map_err(DbError::from))
            .await?;
        // Rows of an algorithm we do not know are never loaded; leave them out here too.
        let mut stored: Vec<String> = stored
            .into_iter()
            .filter(|(_, alg)| alg.parse::<SigningAlg>().is_ok())
            .map(|(kid, _)| kid)
            .collect();
        stored.sort_unstable();
        let mut cached: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        cached.sort_unstable();
        if stored.iter().map(String::as_str).ne(cached) {
            set = self.reload().await?;
        }
        let now = db::now();
        Ok(JwkSet {
            keys: set
                .keys
                .iter()
                .filter(|k| k.published_at(now))
                .map(|k| k.jwk.clone())
                .collect(),
        })
    }

    /// Signs `claims` as a JWS with the current key for `alg`; `typ` goes in the header
    /// (`JWT`, or `at+jwt` for RFC 9068 access tokens).
    ///
    /// # Errors
    /// [`KeyError::NoActiveKey`] when there is none; [`KeyError::Crypto`] if signing fails.
    pub async fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String, KeyError> {
        let set = self.signing_set(alg).await?;
        self.sign_off_worker(signing_key(&set, alg)?.clone(), typ, claims)
            .await
    }

    /// Signs with `key` on tokio's blocking pool, at most one signature per core at once: an
    /// RS256 signature takes a fraction of a millisecond of a core, which would otherwise hold
    /// up every other request of the HTTP worker it ran on. The claims are serialized here.
    async fn sign_off_worker<T: Serialize>(
        &self,
        key: Arc<LoadedKey>,
        typ: &str,
        claims: &T,
    ) -> Result<String, KeyError> {
        let input = signing_input(&key, typ, claims)?;
        let _permit = self
            .inner
            .signing
            .acquire()
            .await
            .map_err(|_| KeyError::Crypto("the signing gate is closed".into()))?;
        tokio::task::spawn_blocking(move || finish_jws(&key, input))
            .await
            .map_err(|e| KeyError::Crypto(e.to_string()))?
    }

    /// The signer for use inside a blocking database closure: the keys as cached now, re-read
    /// first if `alg`'s signing key was revoked since. [`Signer::sign_held`] confirms the key
    /// again, under a lock, in the transaction that stores what it signed.
    ///
    /// # Errors
    /// [`KeyError`] when keys cannot be loaded.
    pub async fn signer(&self, alg: SigningAlg) -> Result<Signer, KeyError> {
        Ok(Signer {
            set: self.signing_set(alg).await?,
            store: self.clone(),
        })
    }

    /// The signer as the keys are cached now, without the database read of
    /// [`KeyStore::signer`]: for an ID token, whose key [`Signer::confirm`] checks inside the
    /// grant's transaction (one primary-key read on the connection already in use, instead of
    /// a read of its own) before [`Signer::sign`] signs after it.
    ///
    /// # Errors
    /// [`KeyError`] when keys cannot be loaded.
    pub async fn cached_signer(&self) -> Result<Signer, KeyError> {
        Ok(Signer {
            set: self.current().await?,
            store: self.clone(),
        })
    }

    /// The cached keys, confirmed to still hold the key that signs for `alg` now.
    async fn signing_set(&self, alg: SigningAlg) -> Result<Arc<KeySet>, KeyError> {
        let set = self.current().await?;
        match signing_key(&set, alg) {
            Ok(key) => {
                let kid = key.kid.clone();
                self.confirmed(set, &kid).await
            }
            // Nothing to sign with in the cache: perhaps a revocation replaced it meanwhile.
            Err(_) => self.reload().await,
        }
    }

    /// Verifies a JWT we signed: header `typ` (e.g. `JWT` for ID tokens, never `at+jwt`),
    /// known `kid`, its algorithm, signature, `iss` = `issuer`;
    /// `exp` is checked unless `allow_expired` (an `id_token_hint` may have expired, OpenID
    /// Connect RP-Initiated Logout §2). `aud` is left to the caller.
    ///
    /// # Errors
    /// [`JwtVerifyError::Invalid`] with a reason.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
        allow_expired: bool,
    ) -> Result<T, JwtVerifyError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtVerifyError::Invalid(format!("not a JWT: {e}")))?;
        // One key signs several kinds of JWT (ID tokens, RFC 9068 access tokens): the type
        // keeps one from passing for the other (RFC 8725 §3.11).
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(typ))
        {
            return Err(JwtVerifyError::Invalid(format!(
                "the JWT's typ is not {typ}"
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| JwtVerifyError::Invalid("the JWT has no kid".into()))?;
        // The cached keys, confirmed against the database for this kid (one primary-key read,
        // whether the kid is cached or not): a revoked key is deleted, so a cached one must
        // still be stored; and the replacement `keys revoke` makes signs at once, so a kid this
        // node has not cached yet may be one another node signed with since. A rotated key
        // needs neither: it is published on every node before any node signs with it.
        let set = self.confirmed(self.current().await?, &kid).await?;
        let now = db::now();
        let not_current =
            || JwtVerifyError::Invalid("the JWT was not signed by a current key".into());
        let key = set
            .keys
            .iter()
            .find(|k| k.kid == kid && k.published_at(now))
            .ok_or_else(not_current)?;
        if header.alg != jwt_alg(key.alg) {
            return Err(JwtVerifyError::Invalid(
                "the JWT's alg does not match its key".into(),
            ));
        }
        let mut validation = Validation::new(jwt_alg(key.alg));
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.validate_exp = !allow_expired;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["iss", "sub", "exp"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| JwtVerifyError::Invalid(format!("the JWT is invalid: {e}")))
    }
}

/// The keys as cached at one moment, for signing where no `await` is possible. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    set: Arc<KeySet>,
    store: KeyStore,
}

impl Signer {
    /// Whether the key that signs for `alg` in this signer's keys is still stored (it was not
    /// revoked since they were read): one primary-key read on `conn`. `false` also when the
    /// keys hold no signing key for `alg`; then [`KeyStore::sign`] re-reads them.
    ///
    /// # Errors
    /// Query failures.
    pub fn confirm(&self, conn: &mut DbConnection, alg: SigningAlg) -> diesel::QueryResult<bool> {
        match signing_key(&self.set, alg) {
            Ok(key) => signing_keys::exists(conn, &key.kid),
            Err(_) => Ok(false),
        }
    }

    /// Signs like [`KeyStore::sign`] (on the blocking pool) with this signer's keys, which
    /// [`Signer::confirm`] has just confirmed.
    ///
    /// # Errors
    /// [`KeyError::NoActiveKey`]; [`KeyError::Crypto`] if signing fails.
    pub async fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String, KeyError> {
        let key = signing_key(&self.set, alg)?.clone();
        self.store.sign_off_worker(key, typ, claims).await
    }

    /// Signs like [`KeyStore::sign`] for a token stored in the transaction open on `conn`, and
    /// returns the JWS with the `kid` of the key that signed (stored with JWT access tokens, so
    /// that revoking the key revokes them). The key's row is held until that transaction ends
    /// ([`signing_keys::lock_if_present`]): a revocation either committed before — then the
    /// key that signs now is read from `conn` and used instead, and this node's cache is
    /// dropped — or waits for this transaction and then revokes what it stored.
    ///
    /// # Errors
    /// [`KeyError::NoActiveKey`], [`KeyError::Crypto`], [`KeyError::Db`].
    pub fn sign_held<T: Serialize>(
        &self,
        conn: &mut DbConnection,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<(String, String), KeyError> {
        let key = signing_key(&self.set, alg)?;
        if signing_keys::lock_if_present(conn, &key.kid)? {
            return sign_key(key, typ, claims);
        }
        // Revoked since this node read its keys.
        self.store.invalidate();
        let now = db::now();
        let mut rows: Vec<SigningKeyRow> = signing_keys::all(conn)?
            .into_iter()
            .filter(|r| {
                r.alg == alg.as_str()
                    && r.activates_at <= now
                    && r.expires_at.is_none_or(|e| e > now)
            })
            .collect();
        rows.sort_by_key(|r| r.activates_at);
        let row = rows.pop().ok_or(KeyError::NoActiveKey(alg))?;
        if !signing_keys::lock_if_present(conn, &row.kid)? {
            return Err(KeyError::NoActiveKey(alg));
        }
        let key = self.store.load(row)?.ok_or(KeyError::NoActiveKey(alg))?;
        sign_key(&key, typ, claims)
    }
}

/// The key that signs for `alg` now: the most recently activated one. A retired key is chosen
/// only while this node has not yet read its successor (a rotation committing during a
/// reload): it is still published, so its tokens verify, and that beats refusing to sign.
fn signing_key(set: &KeySet, alg: SigningAlg) -> Result<&Arc<LoadedKey>, KeyError> {
    let now = db::now();
    set.keys
        .iter()
        .filter(|k| k.alg == alg && k.activates_at <= now && k.published_at(now))
        .max_by_key(|k| k.activates_at)
        .ok_or(KeyError::NoActiveKey(alg))
}

/// Signs `claims` with `key`, `typ` and `kid` in the header; returns the JWS and the kid.
fn sign_key<T: Serialize>(
    key: &LoadedKey,
    typ: &str,
    claims: &T,
) -> Result<(String, String), KeyError> {
    let input = signing_input(key, typ, claims)?;
    finish_jws(key, input).map(|jwt| (jwt, key.kid.clone()))
}

/// The JWS Signing Input of RFC 7515 §5.1: `BASE64URL(header) '.' BASE64URL(claims)`, with
/// `alg`, `typ` and `kid` in the protected header (jsonwebtoken's `Header`, so the header is
/// the one its `encode` would write).
fn signing_input<T: Serialize>(key: &LoadedKey, typ: &str, claims: &T) -> Result<String, KeyError> {
    let mut header = Header::new(jwt_alg(key.alg));
    header.typ = Some(typ.to_owned());
    header.kid = Some(key.kid.clone());
    let header = serde_json::to_vec(&header).map_err(crypto)?;
    let claims = serde_json::to_vec(claims).map_err(crypto)?;
    let mut input = URL_SAFE_NO_PAD.encode(header);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut input);
    Ok(input)
}

/// The JWS Compact Serialization (RFC 7515 §7.1): the signing input, `.`, the signature.
fn finish_jws(key: &LoadedKey, mut input: String) -> Result<String, KeyError> {
    let signature = key.private.sign(input.as_bytes())?;
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut input);
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_hash_matches_oidc_core_example() {
        // OIDC Core §A.3 uses this access token with RS256 and expects this at_hash.
        assert_eq!(
            SigningAlg::Rs256.half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn sealed_keys_open_only_with_their_kid_and_secret() {
        let cipher = KeyCipher::new(&[7u8; 64]).expect("cipher");
        let sealed = cipher.seal("kid-1", b"private").expect("seal");
        assert_eq!(cipher.open("kid-1", &sealed).expect("open"), b"private");
        assert!(cipher.open("kid-2", &sealed).is_err());
        let other = KeyCipher::new(&[8u8; 64]).expect("cipher");
        assert!(other.open("kid-1", &sealed).is_err());
        assert!(cipher.open("kid-1", "not base64!").is_err());
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in SigningAlg::ALL {
            let generated = generate(alg).expect("generate");
            let decoding = DecodingKey::from_jwk(&generated.jwk).expect("decoding key");
            let key = LoadedKey {
                kid: generated.jwk.common.key_id.clone().expect("kid"),
                alg,
                jwk: generated.jwk.clone(),
                private: PrivateKey::from_pkcs8(alg, &generated.pkcs8).expect("private key"),
                decoding: DecodingKey::from_jwk(&generated.jwk).expect("decoding key"),
                activates_at: db::now(),
                expires_at: None,
            };
            let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
            let (token, kid) = sign_key(&key, "JWT", &claims).expect("sign");
            assert_eq!(Some(kid), generated.jwk.common.key_id);
            let mut validation = Validation::new(jwt_alg(alg));
            validation.validate_aud = false;
            let decoded = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)
                .expect("verify");
            assert_eq!(decoded.claims["sub"], "x");
            assert_eq!(decoded.header.typ.as_deref(), Some("JWT"));
            assert_eq!(decoded.header.kid, generated.jwk.common.key_id);
            assert_eq!(decoded.header.alg, jwt_alg(alg));
        }
    }
}
