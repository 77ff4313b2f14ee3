//! argon2id password hashing and the password policy, on threads of their own at a lower
//! scheduling priority, behind semaphores so that a login or registration flood cannot use more
//! than `max_concurrent` cores for hashes (and `max_concurrent × memory_kib` of memory) and half
//! as many for policy checks at once: surplus hashes queue as futures while the HTTP workers
//! keep answering everything else; surplus policy checks past `argon2.policy_queue` are refused.
//!
//! The argon2 working memory (19 MiB with the OWASP parameters) comes from a pool of at most
//! `max_concurrent` buffers that are wiped after every use and kept for the next hash. Allocating
//! it per hash costs thousands of page faults each time, and glibc keeps freed buffers of that
//! size resident in per-thread arenas (measured: 670 MB after 1,000 logins); the pool bounds the
//! memory at `max_concurrent` buffers and nearly doubles throughput.
//!
//! Work per password is bounded before any of it runs: a password longer than
//! [`PasswordPolicy::max_chars`] is refused without running a validator or a hash (also at
//! login, where it is simply wrong), and zxcvbn reads at most [`ZXCVBN_MAX_CHARS`] characters
//! (the crate stops there too since 3.0; the cut here keeps the bound whatever its version).
//! Even 100 characters can be costly: its l33t matcher enumerates substitutions, and 100
//! characters of `4@3!1|70$5+%2869` take about 0.2 s of one core (release build) — which is why
//! the validators run on password threads too, not on an HTTP worker, behind a semaphore of
//! their own with a bounded queue (`argon2.policy_queue`, refused with [`HashError::Busy`]), so
//! that a flood of registrations neither delays logins' hashes nor waits without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::config::Argon2Settings;
use crate::db::users::UserRow;

/// Default shortest password, in characters (OWASP ASVS 4.0.3 V2.1.1: at least 12 characters,
/// runs of spaces counting once); `accounts.min_password_length`.
pub const DEFAULT_MIN_PASSWORD_CHARS: usize = 12;
/// Default longest password, in characters (ASVS V2.1.2: at least 64 permitted, more than 128
/// denied); `accounts.max_password_length`. Characters rather than bytes because that is what a
/// person (and the form's help text) counts; 128 characters are at most 512 bytes of UTF-8, so
/// the limit bounds the work in bytes too.
pub const DEFAULT_MAX_PASSWORD_CHARS: usize = 128;
/// zxcvbn estimates the strength of at most this many leading characters: its cost grows
/// faster than the length, and 100 characters that pass the other checks are strong anyway.
pub const ZXCVBN_MAX_CHARS: usize = 100;

/// Lowest zxcvbn score accepted (0–4; 2 = "somewhat guessable": at least 10⁸ guesses, which
/// online guessing behind the login limits never reaches).
pub const MIN_ZXCVBN_SCORE: u8 = 2;
/// Django's `UserAttributeSimilarityValidator.DEFAULT_MAX_SIMILARITY`.
const MAX_SIMILARITY: f64 = 0.7;

/// The length rules for passwords (`accounts.min_password_length`,
/// `accounts.max_password_length`), in characters (Unicode scalar values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest password set, counting a run of spaces once (ASVS V2.1.1).
    pub min_chars: usize,
    /// Longest password set *or checked*: a longer one is refused before any validator or hash
    /// runs.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: DEFAULT_MIN_PASSWORD_CHARS,
            max_chars: DEFAULT_MAX_PASSWORD_CHARS,
        }
    }
}

impl PasswordPolicy {
    /// Whether `password` is short enough to be checked at all. Looks at no more than
    /// `max_chars + 1` characters, whatever the input's size.
    #[must_use]
    pub fn within_max(&self, password: &str) -> bool {
        password.chars().nth(self.max_chars).is_none()
    }

    /// The length problem of `password` as a sentence fragment for the user, or `None`. Cheap
    /// (one bounded pass), so it runs on the caller's thread and an over-long password is
    /// answered at once.
    #[must_use]
    pub fn length_problem(&self, password: &str) -> Option<String> {
        if !self.within_max(password) {
            return Some(format!(
                "the password must have at most {} characters",
                self.max_chars
            ));
        }
        if password.trim().is_empty() && !password.is_empty() {
            return Some("the password must not be only spaces".to_owned());
        }
        // ASVS V2.1.1: the length after runs of spaces are combined.
        let mut previous_space = false;
        let length = password
            .chars()
            .filter(|c| {
                let counted = !(previous_space && *c == ' ');
                previous_space = *c == ' ';
                counted
            })
            .count();
        (length < self.min_chars).then(|| {
            format!(
                "the password must have at least {} characters",
                self.min_chars
            )
        })
    }
}

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
/// * length ([`PasswordPolicy::length_problem`]): at least `min_chars` (ASVS V2.1.1), at most
///   `max_chars`, not only spaces — a password failing these gets only that message, and the
///   costlier checks below do not run;
/// * `NumericPasswordValidator`: not entirely numeric;
/// * `UserAttributeSimilarityValidator`: not too similar to the username, email address or
///   names (Django's algorithm: a `quick_ratio` of at least 0.7 against the whole value or any
///   of its words);
/// * `CommonPasswordValidator`, done with zxcvbn instead of a fixed list: a score of at least
///   [`MIN_ZXCVBN_SCORE`] for the first [`ZXCVBN_MAX_CHARS`] characters, with the user's details
///   as extra dictionary words; the message passes on zxcvbn's warning and suggestions.
///
/// CPU-bound (zxcvbn takes milliseconds): call it through [`PasswordHasher::check`], which runs
/// it on the blocking pool behind the policy semaphore.
#[must_use]
pub fn problems(
    password: &SecretString,
    user: &UserInputs<'_>,
    policy: &PasswordPolicy,
) -> Vec<String> {
    let p = password.expose_secret();
    if let Some(problem) = policy.length_problem(p) {
        return vec![problem];
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
    let head: String = p.chars().take(ZXCVBN_MAX_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&head, &inputs);
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
    #[allow(clippy::cast_precision_loss)] // lengths are at most a few thousand
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
pub enum HashError {
    /// The password thread could not run or failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// Too many password-policy checks are running or waiting (`argon2.policy_queue`): the
    /// check was refused at once rather than queued. Answer 503 with `Retry-After`
    /// ([`BUSY_RETRY_AFTER_SECONDS`]).
    #[error("too many password checks are waiting; try again shortly")]
    Busy,
}

impl HashError {
    /// Whether this is [`HashError::Busy`] (a full queue, not a failure).
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy)
    }
}

/// The `Retry-After` (seconds) of an answer refused with [`HashError::Busy`].
pub const BUSY_RETRY_AFTER_SECONDS: u64 = 5;

/// Hashes and verifies passwords with argon2id behind a semaphore of `argon2.max_concurrent`
/// permits, and applies the password policy behind a semaphore of its own (half as many
/// permits, at least one) with a bounded queue (`argon2.policy_queue`), all on password
/// threads: a flood of registrations (policy checks) neither delays logins' hashes nor waits
/// without end.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    policy: PasswordPolicy,
    permits: Arc<Semaphore>,
    /// Policy checks running at once.
    policy_slots: Arc<Semaphore>,
    /// Policy checks running or waiting; one more is refused with [`HashError::Busy`].
    policy_queue: Arc<Semaphore>,
    /// The sizes of `permits` and `policy_queue`, and the tasks waiting for a permit (metrics).
    sizes: (usize, usize),
    waiting: Arc<AtomicUsize>,
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

/// One of the hasher's `max_concurrent` slots, held while a password is checked: see
/// [`PasswordHasher::permit`].
#[derive(Debug)]
pub struct HashPermit {
    _slot: OwnedSemaphorePermit,
}

/// One task counted in a waiting count while it lives (a caller that stops waiting drops it).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn on(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The user's details owned, to cross to the blocking pool.
struct OwnedInputs {
    username: String,
    email: String,
    first_name: String,
    last_name: String,
}

impl OwnedInputs {
    fn of(user: &UserInputs<'_>) -> Self {
        Self {
            username: user.username.to_owned(),
            email: user.email.to_owned(),
            first_name: user.first_name.to_owned(),
            last_name: user.last_name.to_owned(),
        }
    }

    fn borrow(&self) -> UserInputs<'_> {
        UserInputs {
            username: &self.username,
            email: &self.email,
            first_name: &self.first_name,
            last_name: &self.last_name,
        }
    }
}

impl PasswordHasher {
    /// A hasher with the configured argon2 parameters and password length rules.
    ///
    /// # Errors
    /// When argon2 rejects the parameters.
    pub fn new(settings: &Argon2Settings, policy: PasswordPolicy) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let sizes = (settings.max_concurrent.max(1), settings.policy_queue.max(1));
        Ok(Self {
            params,
            policy,
            permits: Arc::new(Semaphore::new(sizes.0)),
            policy_slots: Arc::new(Semaphore::new((settings.max_concurrent / 2).max(1))),
            policy_queue: Arc::new(Semaphore::new(sizes.1)),
            sizes,
            waiting: Arc::new(AtomicUsize::new(0)),
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

    /// The slots, the queue for them and the policy checks now, for the metrics.
    #[must_use]
    pub fn load(&self) -> crate::metrics::PasswordLoad {
        crate::metrics::PasswordLoad {
            slots: self.sizes.0,
            in_flight: self
                .sizes
                .0
                .saturating_sub(self.permits.available_permits()),
            waiting: self.waiting.load(Ordering::Relaxed),
            policy_queued: self
                .sizes
                .1
                .saturating_sub(self.policy_queue.available_permits()),
        }
    }

    /// The password length rules.
    #[must_use]
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Every problem of `password` under the policy ([`problems`]), as sentence fragments
    /// (empty when it passes). The length rules are checked at once; the validators then run on
    /// a password thread behind the policy semaphore (not the hashing one: logins' hashes do
    /// not wait for a flood of registrations), so hostile passwords do not occupy the HTTP
    /// workers. At most `argon2.policy_queue` checks run or wait at once; one more is refused.
    ///
    /// # Errors
    /// [`HashError::Busy`] when the queue is full; [`HashError::Failed`] if the password
    /// thread fails.
    pub async fn check(
        &self,
        password: &SecretString,
        user: &UserInputs<'_>,
    ) -> Result<Vec<String>, HashError> {
        if let Some(problem) = self.policy.length_problem(password.expose_secret()) {
            return Ok(vec![problem]);
        }
        let _queued = Arc::clone(&self.policy_queue)
            .try_acquire_owned()
            .map_err(|_| {
                crate::metrics::limit_tripped("password_policy_queue");
                HashError::Busy
            })?;
        let slot = Arc::clone(&self.policy_slots)
            .acquire_owned()
            .await
            .map(|slot| HashPermit { _slot: slot })
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let password = password.clone();
        let inputs = OwnedInputs::of(user);
        let policy = self.policy;
        let (found, _slot) =
            run(slot, move || problems(&password, &inputs.borrow(), &policy)).await?;
        Ok(found)
    }

    /// [`PasswordHasher::check`] as one message: every problem joined with `; `.
    ///
    /// # Errors
    /// `Ok(Err(message))` when the password fails the policy, e.g. `the password is entirely
    /// numeric`; [`HashError`] if the password thread fails.
    pub async fn validate(
        &self,
        password: &SecretString,
        user: &UserInputs<'_>,
    ) -> Result<Result<(), String>, HashError> {
        let found = self.check(password, user).await?;
        Ok(if found.is_empty() {
            Ok(())
        } else {
            Err(found.join("; "))
        })
    }

    /// Waits for one of the `max_concurrent` slots. A caller that must look at the login limits
    /// right before a hash (and count a failure right after it) holds the slot meanwhile, so at
    /// most `max_concurrent` guesses per node are between their check and their count: that is
    /// the most a limit can be overshot by parallel guesses.
    ///
    /// # Errors
    /// [`HashError`] if the semaphore was closed (it never is).
    pub async fn permit(&self) -> Result<HashPermit, HashError> {
        // The dummy hash takes a slot of its own: make it before holding one.
        self.dummy_hash().await;
        self.slot().await
    }

    async fn slot(&self) -> Result<HashPermit, HashError> {
        let _waiting = Waiting::on(&self.waiting);
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map(|slot| HashPermit { _slot: slot })
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…`).
    ///
    /// # Errors
    /// [`HashError`] if the password thread fails.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let slot = self.slot().await?;
        let params = self.params.clone();
        let mut memory = self.memory(params.block_count());
        let (hashed, _slot) = run(slot, move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            hash_phc(
                password.expose_secret().as_bytes(),
                salt.as_salt(),
                params,
                &mut memory.blocks,
            )
            .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?;
        hashed
    }

    /// Whether `password` matches `hash`. With `hash = None` (unknown user, or no password set)
    /// a dummy hash is verified instead, so the answer takes as long either way, and is `false`.
    /// A password longer than the policy's maximum is `false` at once (no hash).
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> bool {
        match self.permit().await {
            Ok(slot) => self
                .verify_with(slot, password, hash)
                .await
                .is_ok_and(|(matched, _)| matched),
            Err(_) => false,
        }
    }

    /// [`PasswordHasher::verify`] in a slot the caller already holds
    /// ([`PasswordHasher::permit`]), which it gets back with the answer.
    ///
    /// # Errors
    /// [`HashError`] if the password thread fails (the slot is then released).
    pub async fn verify_with(
        &self,
        slot: HashPermit,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<(bool, HashPermit), HashError> {
        if !self.policy.within_max(password.expose_secret()) {
            return Ok((false, slot));
        }
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => match self.dummy.get() {
                Some(h) => (h.clone(), false),
                None => return Ok((false, slot)),
            },
        };
        let mut memory = self.memory(self.params.block_count());
        let (matched, slot) = run(slot, move || {
            verify_phc(
                password.expose_secret().as_bytes(),
                &hash,
                &mut memory.blocks,
            )
        })
        .await?;
        Ok((matched && real, slot))
    }

    /// Measures the argon2id-only rate with these parameters: `verifications` verifications of
    /// one correct password, all started at once through [`PasswordHasher::verify`], so they
    /// run on the same `max_concurrent` password threads, at the same priority and with the
    /// same pooled memory as logins. `latchkey argon2-rate` prints it; the benchmark puts the
    /// password grant's rate beside it.
    ///
    /// # Errors
    /// [`HashError`] when the password thread fails or a verification does not match.
    pub async fn measure(&self, verifications: usize) -> Result<Argon2Rate, HashError> {
        let threads = self.permits.available_permits();
        let password = SecretString::from(crate::secret::new_token());
        let hash = self.hash(password.clone()).await?;
        let started = std::time::Instant::now();
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..verifications {
            let (this, password, hash) = (self.clone(), password.clone(), hash.clone());
            running.spawn(async move { this.verify(password, Some(hash)).await });
        }
        while let Some(matched) = running.join_next().await {
            if !matched.map_err(|e| HashError::Failed(e.to_string()))? {
                return Err(HashError::Failed("a verification did not match".into()));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(Argon2Rate {
            verifications,
            threads,
            seconds,
            per_second: verifications as f64 / seconds,
            memory_kib: self.params.m_cost(),
            iterations: self.params.t_cost(),
            parallelism: self.params.p_cost(),
        })
    }

    /// Makes the dummy hash that unknown users are verified against, once.
    async fn dummy_hash(&self) {
        if let Err(e) = self
            .dummy
            .get_or_try_init(|| async {
                self.hash(SecretString::from(crate::secret::new_token()))
                    .await
            })
            .await
        {
            tracing::error!(error = %e, "the dummy password hash could not be made");
        }
    }
}

/// What [`PasswordHasher::measure`] measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Argon2Rate {
    /// Verifications run.
    pub verifications: usize,
    /// Password threads they ran on at once (`argon2.max_concurrent`).
    pub threads: usize,
    /// Wall-clock seconds for all of them.
    pub seconds: f64,
    /// Verifications per second.
    pub per_second: f64,
    /// `argon2.memory_kib`.
    pub memory_kib: u32,
    /// `argon2.iterations` (argon2's t).
    pub iterations: u32,
    /// `argon2.parallelism` (argon2's p).
    pub parallelism: u32,
}

/// The scheduling priority of the threads that check passwords, on thread-priority's 0–99 scale,
/// which it maps linearly onto niceness 19 … −20 for the normal scheduling policies: 22 is
/// nice 10 (0 is the default; a unit test reads it back on Linux). CPU-bound password work then
/// yields a core to the HTTP workers whenever both want one, so a flood of logins or
/// registrations slows down other password work rather than every request; on an idle machine
/// it runs at full speed.
pub const PASSWORD_THREAD_PRIORITY: u8 = 22;

/// Runs CPU-bound password `work` on a thread of its own at [`PASSWORD_THREAD_PRIORITY`],
/// holding `slot` until the work is done — also when the caller stops waiting (a client that
/// disconnects), so that abandoned requests cannot push the password work in flight past
/// `max_concurrent` — and hands the slot back with the result. A thread per task costs tens of
/// microseconds against milliseconds of work, and keeps the lowered priority off the shared
/// blocking pool.
///
/// # Errors
/// [`HashError`] when no thread could be started or the work panicked.
async fn run<T: Send + 'static>(
    slot: HashPermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<(T, HashPermit), HashError> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("password".to_owned())
        .spawn(move || {
            let _entered = span.enter();
            lower_priority();
            // A caller that stopped waiting drops the answer; the slot is released here.
            let _ = done.send((work(), slot));
        })
        .map_err(|e| HashError::Failed(e.to_string()))?;
    answer
        .await
        .map_err(|_| HashError::Failed("the password thread failed".to_owned()))
}

/// Lowers the calling thread's scheduling priority to [`PASSWORD_THREAD_PRIORITY`] (raising the
/// niceness needs no privilege). A failure is logged and harmless: the work runs at the normal
/// priority.
fn lower_priority() {
    let result = thread_priority::ThreadPriorityValue::try_from(PASSWORD_THREAD_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|value| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(value),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = result {
        tracing::debug!(error = %e, "the password thread keeps the normal priority");
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
        PasswordHasher::new(
            &Argon2Settings {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 2,
                policy_queue: 4,
            },
            PasswordPolicy::default(),
        )
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
        problems(
            &SecretString::from(password),
            user,
            &PasswordPolicy::default(),
        )
    }

    #[test]
    fn policy() {
        let none = UserInputs::default();
        let ok = |p: &str| check(p, &none);
        assert_eq!(
            ok("short horse"),
            ["the password must have at least 12 characters"]
        );
        // ASVS V2.1.1: a run of spaces counts once.
        assert_eq!(
            ok("blue      cat"),
            ["the password must have at least 12 characters"]
        );
        assert_eq!(ok("            "), ["the password must not be only spaces"]);
        assert_eq!(
            ok(&"x".repeat(DEFAULT_MAX_PASSWORD_CHARS + 1)),
            ["the password must have at most 128 characters"]
        );
        // Characters, not bytes: 128 four-byte characters are fine as far as length goes.
        assert!(PasswordPolicy::default()
            .length_problem(&"🔑".repeat(128))
            .is_none());
        assert!(ok("blue tiger morning lamp").is_empty());
        assert!(ok("correct horse battery staple").is_empty());
        let custom = PasswordPolicy {
            min_chars: 8,
            max_chars: 16,
        };
        assert_eq!(custom.length_problem("8 chars!"), None);
        assert!(custom.length_problem(&"y".repeat(17)).is_some());
        assert!(custom.within_max(&"y".repeat(16)));
        assert!(!custom.within_max(&"y".repeat(1_000_000)));
    }

    #[test]
    fn zxcvbn_reads_a_bounded_prefix() {
        // A weak start stays weak whatever follows beyond the first 100 characters.
        let weak = format!("{}{}", "a".repeat(ZXCVBN_MAX_CHARS), "Zq8#vL2!pW9@");
        let found = check(&weak, &UserInputs::default());
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("the password is too easy to guess")),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn over_long_passwords_are_never_hashed() {
        let h = hasher();
        let long = "correct horse ".repeat(20);
        let hash = h
            .hash(SecretString::from(long.clone()))
            .await
            .expect("hash");
        // Even its own hash does not verify: the length is refused first.
        assert!(!h.verify(SecretString::from(long), Some(hash)).await);
        let problems = h
            .check(
                &SecretString::from("z".repeat(100_000)),
                &UserInputs::default(),
            )
            .await
            .expect("checked");
        assert_eq!(problems, ["the password must have at most 128 characters"]);
    }

    #[test]
    fn numeric_common_and_similar_passwords_are_refused() {
        // The validators, apart from the length rule.
        let check = |password: &str, user: &UserInputs<'_>| {
            let policy = PasswordPolicy {
                min_chars: 8,
                ..PasswordPolicy::default()
            };
            problems(&SecretString::from(password), user, &policy)
        };
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn password_work_runs_at_nice_10_holding_its_slot() {
        let h = hasher();
        let slot = h.permit().await.expect("slot");
        assert_eq!(h.permits.available_permits(), 1);
        let (nice, slot) = run(slot, || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            // Field 19 (nice), counted after the parenthesised command name.
            let after = stat.rsplit_once(')').expect("comm").1;
            after.split_whitespace().nth(16).expect("nice").to_owned()
        })
        .await
        .expect("ran");
        assert_eq!(nice, "10");
        // The slot came back with the answer, still held.
        assert_eq!(h.permits.available_permits(), 1);
        drop(slot);
        assert_eq!(h.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_does_not_release_the_slot_early() {
        let h = hasher();
        let slot = h.permit().await.expect("slot");
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let abandoned = tokio::spawn(run(slot, move || {
            started.send(()).expect("started");
            hold.recv().expect("released");
        }));
        tokio::task::spawn_blocking(move || wait.recv())
            .await
            .expect("join")
            .expect("the work started");
        abandoned.abort();
        assert!(abandoned.await.is_err(), "the caller is gone");
        // The work still runs, and still holds its slot.
        assert_eq!(h.permits.available_permits(), 1);
        release.send(()).expect("release");
        for _ in 0..100 {
            if h.permits.available_permits() == 2 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the slot was never released");
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
