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
use crate::db::users::UserRow;

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (bounds hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Lowest zxcvbn score accepted (0–4; 2 = "somewhat guessable": at least 10⁸ guesses, which
/// online guessing behind the login limits never reaches).
pub const MIN_ZXCVBN_SCORE: u8 = 2;
/// Django's `UserAttributeSimilarityValidator.DEFAULT_MAX_SIMILARITY`.
const MAX_SIMILARITY: f64 = 0.7;

/// The user's own details, which a password must not resemble and which zxcvbn counts as
/// easy dictionary words.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserInputs<'a> {
    /// Login name.
    pub username: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Given name.
    pub first_name: &'a str,
    /// Family name.
    pub last_name: &'a str,
}

impl<'a> UserInputs<'a> {
    /// The details of a stored user.
    #[must_use]
    pub fn of(user: &'a UserRow) -> Self {
        Self {
            username: &user.username,
            email: &user.email,
            first_name: &user.first_name,
            last_name: &user.last_name,
        }
    }
}

/// Every way `password` fails the policy, as sentence fragments for the user (empty when it
/// passes). The checks are those Django's `AUTH_PASSWORD_VALIDATORS` usually list:
///
/// * length: at least [`MIN_PASSWORD_CHARS`] characters (NIST SP 800-63B §5.1.1.2), at most
///   [`MAX_PASSWORD_BYTES`] bytes, not only spaces — a password failing these gets only that
///   message, and the costlier checks below do not run;
/// * `NumericPasswordValidator`: not entirely numeric;
/// * `UserAttributeSimilarityValidator`: not too similar to the username, email address or
///   names (Django's algorithm: a `quick_ratio` of at least 0.7 against the whole value or any
///   of its words);
/// * `CommonPasswordValidator`, done with zxcvbn instead of a fixed list: a score of at least
///   [`MIN_ZXCVBN_SCORE`] with the user's details as extra dictionary words; the message passes
///   on zxcvbn's warning and suggestions.
#[must_use]
pub fn problems(password: &SecretString, user: &UserInputs<'_>) -> Vec<String> {
    let p = password.expose_secret();
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return vec![format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )];
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return vec![format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        )];
    }
    if p.trim().is_empty() {
        return vec!["the password must not be only spaces".to_owned()];
    }
    let mut found = Vec::new();
    if p.chars().all(char::is_numeric) {
        found.push("the password is entirely numeric".to_owned());
    }
    let attributes = [
        ("username", user.username),
        ("email address", user.email),
        ("first name", user.first_name),
        ("last name", user.last_name),
    ];
    if let Some((what, _)) = attributes.iter().find(|(_, value)| too_similar(p, value)) {
        found.push(format!("the password is too similar to your {what}"));
    }
    let local_part = user.email.split('@').next().unwrap_or_default();
    let inputs = [
        user.username,
        user.email,
        local_part,
        user.first_name,
        user.last_name,
        "latchkey",
    ];
    let inputs: Vec<&str> = inputs.into_iter().filter(|s| !s.is_empty()).collect();
    let estimate = zxcvbn::zxcvbn(p, &inputs);
    if u8::from(estimate.score()) < MIN_ZXCVBN_SCORE {
        let mut advice: Vec<String> = Vec::new();
        if let Some(feedback) = estimate.feedback() {
            advice.extend(feedback.warning().map(|w| w.to_string()));
            advice.extend(feedback.suggestions().iter().map(ToString::to_string));
        }
        if advice.is_empty() {
            advice.push("Add another word or two. Uncommon words are better.".to_owned());
        }
        found.push(format!(
            "the password is too easy to guess: {}",
            lowercase_first(&advice.join(" "))
        ));
    }
    found
}

/// Django's `UserAttributeSimilarityValidator` for one attribute: the lower-cased password
/// against the lower-cased value and each of its words (split at non-word characters).
fn too_similar(password: &str, value: &str) -> bool {
    let password = password.to_lowercase();
    let value = value.to_lowercase();
    if value.is_empty() {
        return false;
    }
    let parts = value
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .chain(std::iter::once(value.as_str()));
    parts
        .filter(|part| !part.is_empty())
        .filter(|part| !exceeds_maximum_length_ratio(&password, part))
        .any(|part| quick_ratio(&password, part) >= MAX_SIMILARITY)
}

/// Django's `exceeds_maximum_length_ratio`: a password ten times longer than the value cannot
/// be "too similar" to it.
fn exceeds_maximum_length_ratio(password: &str, value: &str) -> bool {
    let password_len = password.chars().count();
    let value_len = value.chars().count();
    #[allow(clippy::cast_precision_loss)] // lengths are at most 1024
    let bound = MAX_SIMILARITY / 2.0 * password_len as f64;
    #[allow(clippy::cast_precision_loss)]
    let short = (value_len as f64) < bound;
    password_len >= 10 * value_len && short
}

/// Python's `difflib.SequenceMatcher.quick_ratio`: `2·M / T` where `M` counts the characters
/// the two strings have in common (as multisets) and `T` their total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let mut available: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = available.get_mut(&c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)] // lengths are at most a few thousand
    let ratio = 2.0 * matches as f64 / total as f64;
    ratio
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

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

    /// Checks the password policy (the validators Django ships, see [`problems`]) and returns
    /// every problem found as one sentence fragment, joined with `; `.
    ///
    /// # Errors
    /// A sentence fragment for the user, e.g. `the password is entirely numeric`.
    pub fn validate(password: &SecretString, user: &UserInputs<'_>) -> Result<(), String> {
        let found = problems(password, user);
        if found.is_empty() {
            Ok(())
        } else {
            Err(found.join("; "))
        }
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

    fn check(password: &str, user: &UserInputs<'_>) -> Vec<String> {
        problems(&SecretString::from(password), user)
    }

    #[test]
    fn policy() {
        let none = UserInputs::default();
        let ok = |p: &str| PasswordHasher::validate(&SecretString::from(p), &none);
        assert_eq!(
            ok("short"),
            Err("the password must have at least 8 characters".to_owned())
        );
        assert_eq!(
            ok("          "),
            Err("the password must not be only spaces".to_owned())
        );
        assert!(ok(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(ok("blue tiger morning lamp").is_ok());
        assert!(ok("correct horse battery staple").is_ok());
    }

    #[test]
    fn numeric_common_and_similar_passwords_are_refused() {
        let none = UserInputs::default();
        let numeric = check("83920174625", &none);
        assert!(
            numeric.contains(&"the password is entirely numeric".to_owned()),
            "{numeric:?}"
        );
        let common = check("password123", &none);
        assert_eq!(common.len(), 1, "{common:?}");
        assert!(
            common[0]
                .starts_with("the password is too easy to guess: this is a very common password."),
            "{common:?}"
        );
        let margaret = UserInputs {
            username: "mhamilton",
            email: "margaret.hamilton@example.com",
            first_name: "Margaret",
            last_name: "Hamilton",
        };
        let similar = check("hamilton1936", &margaret);
        assert!(
            similar.contains(&"the password is too similar to your username".to_owned()),
            "{similar:?}"
        );
        let peggy = UserInputs {
            username: "peggy",
            ..margaret
        };
        let similar = check("margaret.1936", &peggy);
        assert!(
            similar.contains(&"the password is too similar to your email address".to_owned()),
            "{similar:?}"
        );
        // The same password is fine for somebody else.
        assert!(check("hamilton-sextant-1936", &none).is_empty());
    }

    #[test]
    fn quick_ratio_matches_python() {
        // difflib.SequenceMatcher(a="abcd", b="bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert!((quick_ratio("abc", "abc") - 1.0).abs() < 1e-9);
        assert!(quick_ratio("abc", "xyz") < 1e-9);
        // A long password is not "similar" to a one-letter first name.
        assert!(!too_similar("abcdefghijklmnopqrstuvwxyz", "a"));
    }
}
