//! argon2id password hashing on the blocking pool, behind a semaphore so that a login flood
//! cannot use more than `max_concurrent × memory_kib` at once.
//!
//! The argon2 working memory (19 MiB with the OWASP parameters) comes from a pool of at most
//! `max_concurrent` buffers that are wiped after every use and kept for the next hash. Allocating
//! it per hash costs thousands of page faults each time, and glibc keeps freed buffers of that
//! size resident in per-thread arenas (measured: 670 MB after 1,000 logins); the pool bounds the
//! memory at `max_concurrent` buffers and nearly doubles throughput.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::Argon2Settings;

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (bounds hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashing failed for a reason that is not the caller's input.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords with argon2id.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    dummy: Arc<OnceCell<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

/// A working-memory buffer borrowed from the pool; wiped and returned on drop.
struct Memory {
    blocks: Vec<Block>,
    pool: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Drop for Memory {
    fn drop(&mut self) {
        // The blocks would let an attacker test password guesses without the memory cost.
        self.blocks.fill(Block::default());
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(std::mem::take(&mut self.blocks));
        }
    }
}

impl PasswordHasher {
    /// A hasher with the configured parameters.
    ///
    /// # Errors
    /// When argon2 rejects the parameters.
    pub fn new(settings: &Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError(e.to_string()))?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            buffers: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    /// A pooled buffer of at least `blocks` blocks (call with a semaphore permit held, which
    /// bounds how many exist).
    fn memory(&self, blocks: usize) -> Memory {
        let reused = self.buffers.lock().ok().and_then(|mut pool| pool.pop());
        let mut buffer = reused.unwrap_or_default();
        if buffer.len() < blocks {
            buffer = vec![Block::default(); blocks];
        }
        Memory {
            blocks: buffer,
            pool: Arc::clone(&self.buffers),
        }
    }

    /// Checks the password policy: at least 8 characters, at most 1024 bytes, not only spaces.
    ///
    /// # Errors
    /// A sentence for the user.
    pub fn validate(password: &SecretString) -> Result<(), String> {
        let p = password.expose_secret();
        if p.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            ));
        }
        if p.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "the password must have at most {MAX_PASSWORD_BYTES} bytes"
            ));
        }
        if p.trim().is_empty() {
            return Err("the password must not be only spaces".to_owned());
        }
        Ok(())
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…`).
    ///
    /// # Errors
    /// [`HashError`] if the blocking task fails.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let params = self.params.clone();
        let mut memory = self.memory(params.block_count());
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            hash_phc(
                password.expose_secret().as_bytes(),
                salt.as_salt(),
                params,
                &mut memory.blocks,
            )
            .map_err(|e| HashError(e.to_string()))
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
    }

    /// Whether `password` matches `hash`. With `hash = None` (unknown user, or no password set)
    /// a dummy hash is verified instead, so the answer takes as long either way, and is `false`.
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> bool {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => match self.dummy_hash().await {
                Some(h) => (h, false),
                None => return false,
            },
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let mut memory = self.memory(self.params.block_count());
        let matched = tokio::task::spawn_blocking(move || {
            verify_phc(
                password.expose_secret().as_bytes(),
                &hash,
                &mut memory.blocks,
            )
        })
        .await
        .unwrap_or(false);
        matched && real
    }

    async fn dummy_hash(&self) -> Option<String> {
        self.dummy
            .get_or_try_init(|| async {
                self.hash(SecretString::from(crate::secret::new_token()))
                    .await
            })
            .await
            .ok()
            .cloned()
    }
}

/// argon2id of `password` as a PHC string, computed in `blocks` (what
/// `argon2::PasswordHasher::hash_password` does, with caller-provided memory).
fn hash_phc(
    password: &[u8],
    salt: Salt<'_>,
    params: Params,
    blocks: &mut [Block],
) -> argon2::password_hash::Result<String> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored` (any argon2 variant and parameters; a
/// hash needing more memory than `blocks` gets its own buffer). Constant-time comparison.
fn verify_phc(password: &[u8], stored: &str, blocks: &mut Vec<Block>) -> bool {
    let mut check = || -> argon2::password_hash::Result<bool> {
        let phc = PasswordHash::new(stored)?;
        let algorithm = Algorithm::try_from(phc.algorithm)?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&phc)?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Ok(false);
        };
        if blocks.len() < params.block_count() {
            *blocks = vec![Block::default(); params.block_count()];
        }
        let argon2 = Argon2::new(algorithm, version, params);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let computed =
            Output::init_with(expected.len(), |out| {
                Ok(argon2.hash_password_into_with_memory(
                    password,
                    salt_bytes,
                    out,
                    &mut blocks[..],
                )?)
            })?;
        // `Output` compares in constant time.
        Ok(computed == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        })
        .expect("valid params")
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let h = hasher();
        let hash = h
            .hash(SecretString::from("correct horse"))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            h.verify(SecretString::from("correct horse"), Some(hash.clone()))
                .await
        );
        assert!(
            !h.verify(SecretString::from("wrong horse"), Some(hash))
                .await
        );
        assert!(!h.verify(SecretString::from("anything"), None).await);
    }

    #[tokio::test]
    async fn verifies_hashes_made_by_the_argon2_crate_itself() {
        use argon2::password_hash::PasswordHasher as _;
        let h = hasher();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw from elsewhere", &salt)
        .expect("hash")
        .to_string();
        assert!(
            h.verify(
                SecretString::from("pw from elsewhere"),
                Some(theirs.clone())
            )
            .await
        );
        assert!(!h.verify(SecretString::from("other"), Some(theirs)).await);
        // And ours verify with the crate's own verifier.
        use argon2::password_hash::PasswordVerifier as _;
        let ours = h
            .hash(SecretString::from("round trip"))
            .await
            .expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"round trip", &parsed)
            .is_ok());
        assert!(
            !h.verify(SecretString::from("x"), Some("not a phc string".into()))
                .await
        );
    }

    #[test]
    fn policy() {
        assert!(PasswordHasher::validate(&SecretString::from("short")).is_err());
        assert!(PasswordHasher::validate(&SecretString::from("         ")).is_err());
        assert!(PasswordHasher::validate(&SecretString::from("long enough")).is_ok());
    }
}
