//! Users: creation, password login (timing-safe, rate-limited), lookups.
//!
//! The full account lifecycle (registration, verification, reset) builds on this module.

mod account;
pub mod admin;
pub mod links;
pub mod login_code;
pub mod otp;
pub mod password;
pub mod privileges;
pub mod registration;
pub mod reset;
pub mod sessions;

use std::net::IpAddr;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::Connection;
use secrecy::SecretString;

use crate::audit::{self, Actor, Audit, AuditEvent};
use crate::clients::ClientCache;
use crate::config::{AccountSettings, RateLimits};
pub use crate::db::users::UserFilter;
use crate::db::users::{self, UserRow};
use crate::db::{self, Db, DbError};
use crate::db::{codes, tokens};
use crate::domain::{Email, Page, PageRequest, PersonName, Username};
use crate::limits::{self, ip_prefix, LimitError, Limiter, RetryAfter, Rule};
use crate::mail::{greeting_name, EmailChangedEmail, Mailer};
pub use account::Account;
use links::LinkSigner;
pub use password::PasswordHasher;
use std::sync::Arc;

/// Why a user could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Input failed validation; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// The username or email is already registered.
    #[error("a user with this username or email already exists")]
    Taken,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] password::HashError),
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The current password given to confirm a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// A login limit refused the check of the current password (wrong ones count as failed
    /// logins of the account from the actor's address).
    #[error("too many failed attempts; try again in {} seconds", .0.0)]
    Locked(RetryAfter),
    /// The actor may not make this change to this account ([`privileges`]); nothing changed.
    #[error(transparent)]
    Forbidden(#[from] privileges::NotAllowed),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Self::Taken,
            other => Self::Db(DbError::Query(other)),
        }
    }
}

/// A password login that passed [`Accounts::check_login`] (or its emailed code, see
/// [`login_code`]): the user as read for the check and the moment the check began (taken
/// before the stored hash was read).
///
/// The argon2 check is slow and runs off the database, so a password change, reset, "sign out
/// everywhere" or deactivation can commit while it runs. Whoever turns the login into
/// credentials (tokens, a browser session) re-reads the user under its row lock and asks
/// [`PasswordLogin::still_holds`] (or hands [`PasswordLogin::verified_hash`] to
/// [`Accounts::start_browser_session`]), so a login that began before such a change never
/// yields live credentials after it. The row read for the check stays private: callers see the
/// user as an [`Account`].
#[derive(Clone)]
pub struct PasswordLogin {
    /// The user's row as read before the password was verified (`password_hash` is the
    /// verified hash).
    row: UserRow,
    /// The same user, as callers see it.
    user: Account,
    /// When the check began (UTC, microseconds).
    pub began: NaiveDateTime,
}

impl std::fmt::Debug for PasswordLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordLogin")
            .field("user", &self.user)
            .field("began", &self.began)
            .finish_non_exhaustive()
    }
}

impl PasswordLogin {
    /// The login of `row` (as read before its password was verified) that began at `began`.
    pub(crate) fn new(row: UserRow, began: NaiveDateTime) -> Self {
        Self {
            user: Account::from(&row),
            row,
            began,
        }
    }

    /// The user who logged in, as read for the check.
    #[must_use]
    pub fn user(&self) -> &Account {
        &self.user
    }

    /// The password hash the login verified, sealed, for
    /// [`NewSession::verified_hash`](sessions::NewSession::verified_hash); `None` for an
    /// account without one.
    #[must_use]
    pub fn verified_hash(&self) -> Option<VerifiedHash> {
        self.row.password_hash.clone().map(VerifiedHash)
    }

    /// Whether the login still counts for `current`, the user's row as read under its lock:
    /// the same account, active, its password hash still the one verified, and its session
    /// cut-off (`sessions_valid_after`, moved by a password change or reset, "sign out
    /// everywhere" and deactivation) before the moment the check began.
    #[must_use]
    pub fn still_holds(&self, current: &UserRow) -> bool {
        current.id == self.row.id
            && current.is_active
            && current.password_hash == self.row.password_hash
            && current
                .sessions_valid_after
                .is_none_or(|cut| cut < self.began)
    }
}

/// A password hash a [`PasswordLogin`] verified, sealed: the web layer hands it on (to
/// [`sessions::NewSession`]) but cannot read it; only the accounts service compares it with the
/// stored one.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedHash(String);

impl VerifiedHash {
    /// Whether `stored` (a row's `password_hash`) is still this hash.
    fn matches(&self, stored: Option<&String>) -> bool {
        stored == Some(&self.0)
    }
}

impl std::fmt::Debug for VerifiedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedHash(..)")
    }
}

/// Why a login failed. Unknown users, wrong passwords and deactivated accounts look the same.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// A login limit refused the attempt before the password was checked: too many failures
    /// from this client address (for every account, or for this one), or — past
    /// `rate_limits.failed_logins_before_delay` — the account's delay since its latest failure
    /// has not passed. Retry after the given seconds.
    #[error("too many failed attempts; try again in {} seconds", .0.0)]
    Locked(RetryAfter),
    /// The password is right, but `accounts.email_verification = "mandatory"` and the user's
    /// address is not verified yet. Only said after a correct password, so it tells nothing to
    /// someone without it.
    #[error("the email address is not verified")]
    Unverified(Box<Account>),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The password could not be checked (the hashing pool failed).
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

impl LoginError {
    /// How a password check that ended in this error counts in the metrics.
    #[must_use]
    pub fn outcome(&self) -> crate::metrics::LoginOutcome {
        use crate::metrics::LoginOutcome;
        match self {
            Self::InvalidCredentials => LoginOutcome::Failure,
            Self::Locked(_) => LoginOutcome::Locked,
            Self::Unverified(_) => LoginOutcome::Unverified,
            Self::Db(_) | Self::Hash(_) => LoginOutcome::Error,
        }
    }
}

impl From<LimitError> for LoginError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Limited(retry) | LimitError::Reached(retry) => Self::Locked(retry),
            LimitError::Db(e) => Self::Db(e),
        }
    }
}

/// The first delay past `rate_limits.failed_logins_before_delay`; it doubles with each further
/// failure, up to `rate_limits.login_delay_max_seconds`.
pub const LOGIN_DELAY_BASE: Duration = Duration::from_secs(1);

/// What a password check under the login limits found.
enum Checked {
    /// The password matched (counted as a failure all the same when the account cannot log
    /// in).
    Match,
    /// It did not; the failure has been counted.
    Mismatch,
    /// The limits refused the attempt before any hash: nothing was counted.
    Refused(RetryAfter),
}

/// Why a password check under the login limits could not finish.
enum CheckFailure {
    Db(DbError),
    Hash(password::HashError),
}

impl From<DbError> for CheckFailure {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl From<CheckFailure> for LoginError {
    fn from(e: CheckFailure) -> Self {
        match e {
            CheckFailure::Db(e) => Self::Db(e),
            CheckFailure::Hash(e) => Self::Hash(e),
        }
    }
}

impl From<CheckFailure> for AccountError {
    fn from(e: CheckFailure) -> Self {
        match e {
            CheckFailure::Db(e) => Self::Db(e),
            CheckFailure::Hash(e) => Self::Hash(e),
        }
    }
}

/// Who a password check is for, to record a lock when a failure reaches a limit.
struct LockContext<'a> {
    ip: Option<IpAddr>,
    actor: Option<&'a Actor>,
    user_id: Option<&'a str>,
    during: Option<&'static str>,
}

/// What `create_user` needs.
#[derive(Debug)]
pub struct NewUser {
    /// Login name.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// Initial password (validated against the policy).
    pub password: Option<SecretString>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Staff and superuser flags.
    pub superuser: bool,
    /// Whether the address is known to be verified (CLI-created users are).
    pub email_verified: bool,
}

/// What the self-service flows (registration, verification, login codes, reset) need besides
/// the database.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    /// `[accounts]` settings.
    pub settings: AccountSettings,
    /// Issuer URL without a trailing slash: links in emails start with it.
    pub issuer: String,
    /// Sends the emails.
    pub mailer: Mailer,
    /// Signs and checks the links in emails.
    pub links: LinkSigner,
}

/// The accounts service.
#[derive(Clone, Debug)]
pub struct Accounts {
    db: Db,
    hasher: PasswordHasher,
    limiter: Limiter,
    limits: RateLimits,
    audit: Audit,
    cfg: Arc<AccountsConfig>,
    /// The client rows kept for client authentication, forgotten when deleting a user deletes
    /// their clients ([`Accounts::with_client_cache`]).
    client_cache: Option<Arc<ClientCache>>,
}

impl Accounts {
    /// The service over `db`.
    #[must_use]
    pub fn new(db: Db, hasher: PasswordHasher, limits: RateLimits, cfg: AccountsConfig) -> Self {
        Self {
            limiter: Limiter::new(db.clone()),
            audit: Audit::new(db.clone()),
            db,
            hasher,
            limits,
            cfg: Arc::new(cfg),
            client_cache: None,
        }
    }

    /// This service, forgetting `cache`'s rows when a user's deletion deletes their clients,
    /// so those clients stop authenticating at once on this node.
    #[must_use]
    pub fn with_client_cache(mut self, cache: Arc<ClientCache>) -> Self {
        self.client_cache = Some(cache);
        self
    }

    /// The `[accounts]` settings.
    #[must_use]
    pub fn settings(&self) -> &AccountSettings {
        &self.cfg.settings
    }

    /// The password length rules (`accounts.min_password_length`, `max_password_length`).
    #[must_use]
    pub fn password_policy(&self) -> password::PasswordPolicy {
        *self.hasher.policy()
    }

    /// The password threads' slots, queue and policy checks now (for the metrics).
    #[must_use]
    pub fn password_load(&self) -> crate::metrics::PasswordLoad {
        self.hasher.load()
    }

    /// The mailer.
    #[must_use]
    pub fn mailer(&self) -> &Mailer {
        &self.cfg.mailer
    }

    /// The link signer for account emails.
    #[must_use]
    pub fn links(&self) -> &LinkSigner {
        &self.cfg.links
    }

    /// A URL under the issuer for `path` (which starts with `/`), for links in emails.
    #[must_use]
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.issuer)
    }

    /// Creates a user with an argon2id password hash.
    ///
    /// # Errors
    /// [`AccountError::Invalid`] for a password that fails the policy or a name that is too long
    /// or holds a control character ([`PersonName`]), [`AccountError::Taken`] for a duplicate
    /// username or email.
    #[tracing::instrument(skip_all, fields(username = %new.username))]
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<Account, AccountError> {
        let first_name = PersonName::parse("first name", &new.first_name)
            .map_err(AccountError::Invalid)?
            .into_string();
        let last_name = PersonName::parse("last name", &new.last_name)
            .map_err(AccountError::Invalid)?
            .into_string();
        let password_hash = match new.password {
            Some(p) => {
                let inputs = password::UserInputs {
                    username: new.username.as_str(),
                    email: new.email.as_str(),
                    first_name: &first_name,
                    last_name: &last_name,
                };
                self.hasher
                    .validate(&p, &inputs)
                    .await?
                    .map_err(AccountError::Invalid)?;
                Some(self.hasher.hash(p).await?)
            }
            None => None,
        };
        let row = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            username: new.username.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            first_name,
            last_name,
            password_hash,
            is_active: true,
            is_staff: new.superuser,
            is_superuser: new.superuser,
            email_verified: new.email_verified,
            date_joined: db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        };
        let inserted = row.clone();
        let event = AuditEvent::new("user.created")
            .by(actor)
            .user(row.id.clone())
            .detail("username", row.username.clone());
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    users::insert(conn, &inserted)?;
                    audit::record(conn, event)
                })
                .map_err(AccountError::from)
            })
            .await?;
        Ok(Account::from(row))
    }

    /// Looks a user up by id.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find(&self, id: String) -> Result<Option<Account>, DbError> {
        Ok(self.find_row(id).await?.map(Account::from))
    }

    /// The stored row of the user `id`, for the rules that need what [`Account`] leaves out
    /// (the password hash, the session cut-off).
    async fn find_row(&self, id: String) -> Result<Option<UserRow>, DbError> {
        self.db
            .read(move |conn| users::find(conn, &id).map_err(DbError::from))
            .await
    }

    /// Looks a user up by exact username or (case-insensitive) email, for admin pages and the
    /// demo set-up, which take a person's name rather than their id. No timing protection: not
    /// for login.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find_by_login(&self, login: &str) -> Result<Option<Account>, DbError> {
        let login = login.trim().to_owned();
        self.db
            .read(move |conn| users::find_by_login(conn, &login).map_err(DbError::from))
            .await
            .map(|found| found.map(Account::from))
    }

    /// Whether `password` is the password of `user`, a row its caller read from the database.
    /// This is not a login: no limit is counted and nothing is recorded, so it serves only
    /// checks the operator runs on their own database (the demo accounts' published passwords,
    /// `crate::demo`, which then deletes the row only if its hash is still the one checked),
    /// never input from the network.
    pub async fn password_is(&self, user: &UserRow, password: SecretString) -> bool {
        user.password_hash.is_some()
            && self
                .hasher
                .verify(password, user.password_hash.clone())
                .await
    }

    /// Checks a username-or-email and password from the client address `ip`, and remembers
    /// when the check began: what issues credentials for the login checks
    /// [`PasswordLogin::still_holds`] under the user's row lock first (or hands
    /// [`PasswordLogin::verified_hash`] to [`Accounts::start_browser_session`]).
    ///
    /// Takes as long for unknown users as for known ones (a dummy hash is verified), refuses
    /// inactive users, and applies the login limits (`## Limits` in `docs/architecture.md`):
    /// the address's counter is read first (a refused address costs no lookup, no hash and no
    /// row); the per-account counters — keyed by the user's id, or by the typed login for
    /// unknown names — are read when the argon2 slot is taken; only a failure is counted, after
    /// the hash. A login that needs no emailed code updates `last_login`.
    ///
    /// # Errors
    /// See [`LoginError`]; [`LoginError::Locked`] (429) when a limit refuses the attempt, before
    /// any hash: for this address, or (past `failed_logins_before_delay`) for the account until
    /// its delay has passed.
    pub async fn check_login(
        &self,
        login: &str,
        password: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<PasswordLogin, LoginError> {
        // Before the hash is read: a cut-off set while the check runs is at or after it.
        let began = db::now();
        let user = self.authenticate(login, password, ip).await?;
        Ok(PasswordLogin::new(user, began))
    }

    /// The password check of [`Accounts::check_login`]; answers the user's row as read for it.
    #[tracing::instrument(skip_all)]
    async fn authenticate(
        &self,
        login: &str,
        password: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<UserRow, LoginError> {
        let login = login.trim().to_owned();
        // The address first, on its own, so that a refused address creates no counter for the
        // names it invents.
        self.limiter
            .check(self.login_ip_rule(ip).into_iter().collect())
            .await?;
        let lookup = login.clone();
        let user = self
            .db
            .read(move |conn| users::find_by_login(conn, &lookup).map_err(DbError::from))
            .await?;
        let account = match &user {
            Some(u) => AccountKey::User(&u.id),
            None => AccountKey::Name(&login),
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        // A deactivated account's right password is still a failed login.
        let can_log_in = user.as_ref().is_some_and(|u| u.is_active);
        // The typed login is not recorded unless it names an account: a password typed into
        // the username field must not end up in the audit log.
        let context = LockContext {
            ip,
            actor: None,
            user_id: user.as_ref().map(|u| u.id.as_str()),
            during: None,
        };
        let ok = match self
            .checked_password(
                self.login_rules(ip, &account),
                password,
                hash,
                can_log_in,
                &context,
            )
            .await?
        {
            Checked::Refused(retry) => return Err(LoginError::Locked(retry)),
            Checked::Match => true,
            Checked::Mismatch => false,
        };
        match user {
            // Mandatory verification (registration.rs): no login, and no tokens, until the
            // address is verified. The password was right, so it is not a failure.
            Some(user) if ok && user.is_active && self.must_verify(&user) => {
                self.audit
                    .record(
                        AuditEvent::new("login.unverified")
                            .ip(ip)
                            .user(user.id.clone()),
                    )
                    .await?;
                Err(LoginError::Unverified(Box::new(Account::from(user))))
            }
            // A deactivated account answers like a wrong password (as Django's ModelBackend
            // does), so a correct guess is not confirmed.
            Some(user) if ok && user.is_active => {
                let id = user.id.clone();
                // A user who must also enter an emailed code (login_code.rs) has not logged in
                // yet: `login.success` (amr `pwd otp`) waits for the code.
                // `last_login` (which password-reset links are signed over) moves only when the
                // login completes: someone who merely knows the password must not be able to
                // kill the owner's reset links by logging in again and again.
                let complete = !self.code_needed(user.mfa_enabled, user.has_staff_access());
                let event = if complete {
                    AuditEvent::new("login.success").detail("amr", "pwd")
                } else {
                    AuditEvent::new("login.password_ok")
                }
                .by(&Actor::user(user.id.clone(), ip))
                .user(user.id.clone());
                self.db
                    .write(move |conn| {
                        conn.transaction(|conn| {
                            if complete {
                                users::touch_last_login(conn, &id, db::now())?;
                            }
                            audit::record(conn, event)
                        })
                        .map_err(DbError::from)
                    })
                    .await?;
                Ok(user)
            }
            Some(user) if ok => {
                self.audit
                    .record(
                        AuditEvent::new("login.inactive")
                            .ip(ip)
                            .user(user.id.clone()),
                    )
                    .await?;
                Err(LoginError::InvalidCredentials)
            }
            found => {
                self.audit
                    .record(
                        AuditEvent::new("login.failure")
                            .ip(ip)
                            .maybe_user(found.as_ref().map(|u| u.id.as_str())),
                    )
                    .await?;
                Err(LoginError::InvalidCredentials)
            }
        }
    }

    /// The counter of failed logins from the client address `ip`, whatever the account.
    fn login_ip_rule(&self, ip: Option<IpAddr>) -> Option<Rule> {
        ip.map(|ip| {
            Rule::max(
                limits::bucket("login:ip", &ip_prefix(ip)),
                self.limits.failed_logins_per_ip,
                self.limits.window,
            )
        })
    }

    /// Every login counter for `account` from `ip`, named for the `login.locked` event, in the
    /// order they are checked: the address (`ip`, hard limit), the account from this address
    /// (`account_ip`, hard limit, so that one address cannot lock the owner out elsewhere), the
    /// account from everywhere (`account`, a growing delay).
    fn login_rules(
        &self,
        ip: Option<IpAddr>,
        account: &AccountKey<'_>,
    ) -> Vec<(&'static str, Rule)> {
        let key = account.key();
        let window = self.limits.window;
        let mut rules: Vec<(&'static str, Rule)> = self
            .login_ip_rule(ip)
            .map(|rule| ("ip", rule))
            .into_iter()
            .collect();
        if let Some(ip) = ip {
            rules.push((
                "account_ip",
                Rule::max(
                    limits::bucket("login:account_ip", &format!("{key} {}", ip_prefix(ip))),
                    self.limits.failed_logins_per_account,
                    window,
                ),
            ));
        }
        rules.push((
            "account",
            Rule::delay(
                limits::bucket("login:account", &key),
                self.limits.failed_logins_before_delay,
                LOGIN_DELAY_BASE,
                self.limits.login_delay_max,
                window,
            ),
        ));
        rules
    }

    /// Checks `password` against `hash` under the login `rules`: takes an argon2 slot, reads the
    /// counters (refusing without a hash when one says so), hashes, and — unless the password
    /// matched and `succeeds_on_match` — counts the failure in every counter, all while holding
    /// the slot. So a right password is never counted, a refused attempt is never counted, and
    /// parallel guesses pass a limit by at most the slots in flight (`argon2.max_concurrent`
    /// per node). A failure that reaches a limit records `login.locked` once, naming the
    /// counters it reached.
    async fn checked_password(
        &self,
        rules: Vec<(&'static str, Rule)>,
        password: SecretString,
        hash: Option<String>,
        succeeds_on_match: bool,
        context: &LockContext<'_>,
    ) -> Result<Checked, CheckFailure> {
        let (names, rules): (Vec<&'static str>, Vec<Rule>) = rules.into_iter().unzip();
        let permit = self.hasher.permit().await.map_err(CheckFailure::Hash)?;
        match self.limiter.check(rules.clone()).await {
            Ok(()) => {}
            Err(LimitError::Limited(retry) | LimitError::Reached(retry)) => {
                return Ok(Checked::Refused(retry))
            }
            Err(LimitError::Db(e)) => return Err(e.into()),
        }
        let (matched, permit) = self
            .hasher
            .verify_with(permit, password, hash)
            .await
            .map_err(CheckFailure::Hash)?;
        if matched && succeeds_on_match {
            return Ok(Checked::Match);
        }
        let reached = self.limiter.count(rules).await?;
        drop(permit);
        let reached: Vec<&str> = names
            .into_iter()
            .zip(reached)
            .filter_map(|(name, reached)| reached.then_some(name))
            .collect();
        if !reached.is_empty() {
            let mut event = AuditEvent::new("login.locked")
                .ip(context.ip)
                .maybe_user(context.user_id)
                .detail("limit", reached.join(" "));
            if let Some(actor) = context.actor {
                event = event.by(actor);
            }
            if let Some(during) = context.during {
                event = event.detail("during", during);
            }
            self.audit.record(event).await?;
        }
        Ok(if matched {
            Checked::Match
        } else {
            Checked::Mismatch
        })
    }
}

/// What the per-account login counters are keyed by.
enum AccountKey<'a> {
    /// A known account: its id, so that its username and email address share one counter.
    User(&'a str),
    /// A name that matches no account: the typed login, lower-cased.
    Name(&'a str),
}

impl AccountKey<'_> {
    fn key(&self) -> String {
        match self {
            Self::User(id) => format!("user:{id}"),
            Self::Name(login) => format!("name:{}", login.to_lowercase()),
        }
    }
}

/// The profile fields a user (or an admin) may change.
#[derive(Clone, Debug)]
pub struct Profile {
    /// New email address (validated, lower-cased).
    pub email: String,
    /// Given name (at most 150 characters).
    pub first_name: String,
    /// Family name (at most 150 characters).
    pub last_name: String,
    /// The acting user's current password: needed only when users change their own email
    /// address (see [`Accounts::update_profile`]); admins changing someone else's need none.
    pub current_password: Option<SecretString>,
}

/// The account flags an admin may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountFlags {
    /// May log in and hold tokens.
    pub is_active: bool,
    /// May use the admin console.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
}

impl Accounts {
    /// A page of users matching `filter`, by username.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        filter: UserFilter,
        page: PageRequest,
    ) -> Result<Page<Account>, DbError> {
        self.db
            .read(move |conn| {
                users::list(conn, &filter, page.size, page.offset()).map_err(DbError::from)
            })
            .await
            .map(|(rows, total)| {
                Page::new(rows.into_iter().map(Account::from).collect(), page, total)
            })
    }

    /// Counts every user.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count(&self) -> Result<i64, DbError> {
        self.db
            .read(|conn| users::count(conn).map_err(DbError::from))
            .await
    }

    /// Changes a user's email and names. A changed email is no longer verified; under
    /// mandatory verification the change also ends the user's sessions and revokes their tokens
    /// until they verify it. After the commit, a changed email is announced to the *previous*
    /// address ([`EmailChangedEmail`]; a failed send is logged, the change stands).
    ///
    /// Only the user themself, the system, an active superuser, or active staff for an ordinary
    /// account may do it ([`privileges`]), checked in the change's transaction.
    ///
    /// A user changing their *own* email address must give their current password
    /// (`profile.current_password`), whichever page they use: the new address receives reset
    /// links and login codes, so a stolen session must not be able to take the account. It is
    /// checked like [`Accounts::confirm_password`] (wrong ones count as failed logins).
    ///
    /// # Errors
    /// [`AccountError::Invalid`] for a bad email or a name that is too long or holds a control
    /// character ([`PersonName`]; the message names the field), [`AccountError::Taken`]
    /// when another user has the email, [`AccountError::Forbidden`], [`AccountError::NotFound`];
    /// for one's own email change [`AccountError::WrongPassword`] (missing or wrong current
    /// password) and [`AccountError::Locked`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn update_profile(
        &self,
        actor: &Actor,
        user_id: &str,
        profile: Profile,
    ) -> Result<Account, AccountError> {
        let email = Email::parse(&profile.email).map_err(AccountError::Invalid)?;
        let first_name = PersonName::parse("first name", &profile.first_name)
            .map_err(AccountError::Invalid)?
            .into_string();
        let last_name = PersonName::parse("last name", &profile.last_name)
            .map_err(AccountError::Invalid)?
            .into_string();
        let own = actor.user_id.as_deref() == Some(user_id);
        // Whether the password was confirmed for an own email change; checked again against
        // the row under its lock below, so an address changed meanwhile is covered too.
        let mut confirmed = false;
        if own {
            let current = self
                .find_row(user_id.to_owned())
                .await?
                .ok_or(AccountError::NotFound)?;
            if current.email != email.as_str() {
                let password = profile
                    .current_password
                    .ok_or(AccountError::WrongPassword)?;
                self.confirm_password_of(actor, &current, password, "email_change")
                    .await?;
                confirmed = true;
            }
        }
        let id = user_id.to_owned();
        let event = AuditEvent::new("user.profile_changed")
            .by(actor)
            .user(user_id);
        let mandatory =
            self.settings().email_verification == crate::config::EmailVerification::Mandatory;
        let by_admin = !own;
        let actor = actor.clone();
        let (old, updated) = self
            .db
            .write(move |conn| {
                conn.transaction::<_, AccountError, _>(|conn| {
                    let Some(old) = privileges::lock_target(conn, &id)? else {
                        return Ok(None);
                    };
                    privileges::check_may_change::<AccountError>(conn, &actor, &old)?;
                    if own && !confirmed && old.email != email.as_str() {
                        return Err(AccountError::WrongPassword);
                    }
                    users::update_profile(conn, &id, email.as_str(), &first_name, &last_name)?;
                    let event = if old.email == email.as_str() {
                        event
                    } else {
                        // Nobody has confirmed the new address: the `email_verified` claim
                        // (OIDC Core §5.1) must not vouch for it.
                        users::mark_email_unverified(conn, &id)?;
                        event.detail("email_changed", true)
                    };
                    audit::record(conn, event)?;
                    if mandatory && old.email != email.as_str() {
                        // With mandatory verification an unverified user holds no session and
                        // no token: they sign in again and verify the new address first.
                        end_everything(conn, &actor, &id)?;
                    }
                    Ok(users::find(conn, &id)?.map(|new| (old, new)))
                })
            })
            .await?
            .ok_or(AccountError::NotFound)?;
        if old.email != updated.email {
            self.notify_email_changed(&old, &updated, by_admin).await;
        }
        Ok(Account::from(updated))
    }

    /// Tells the previous address of `old` that the account's address is now `new`'s. A
    /// failure is logged, never returned: the change stands.
    async fn notify_email_changed(&self, old: &UserRow, new: &UserRow, by_admin: bool) {
        let email = EmailChangedEmail {
            name: greeting_name(&new.first_name, &new.username),
            username: new.username.clone(),
            previous_email: old.email.clone(),
            new_email: new.email.clone(),
            by_admin,
        };
        if let Err(e) = self.mailer().send(&old.email, &email).await {
            tracing::error!(error = %e, user_id = %new.id, "the email changed notice could not be sent");
        }
    }

    /// Checks `current` against the user's password before a sensitive change (new password,
    /// new email address, login codes off). Wrong passwords count as failed logins of the
    /// account from the actor's address, under the same limits as the login page: a stolen
    /// session must not become a way around them. `during` names the change in the audit
    /// events.
    ///
    /// The password is the one stored now: the account is read again for the check.
    ///
    /// # Errors
    /// [`AccountError::WrongPassword`], [`AccountError::Locked`] when a login limit refuses the
    /// attempt, [`AccountError::NotFound`] when the account no longer exists.
    pub async fn confirm_password(
        &self,
        actor: &Actor,
        user: &Account,
        current: SecretString,
        during: &'static str,
    ) -> Result<(), AccountError> {
        let row = self
            .find_row(user.id.clone())
            .await?
            .ok_or(AccountError::NotFound)?;
        self.confirm_password_of(actor, &row, current, during).await
    }

    /// [`Accounts::confirm_password`] against `user`, the row its caller read.
    async fn confirm_password_of(
        &self,
        actor: &Actor,
        user: &UserRow,
        current: SecretString,
        during: &'static str,
    ) -> Result<(), AccountError> {
        let user_id = user.id.as_str();
        let context = LockContext {
            ip: actor.ip,
            actor: Some(actor),
            user_id: Some(user_id),
            during: Some(during),
        };
        let rules = self.login_rules(actor.ip, &AccountKey::User(user_id));
        match self
            .checked_password(rules, current, user.password_hash.clone(), true, &context)
            .await?
        {
            Checked::Match => Ok(()),
            Checked::Refused(retry) => Err(AccountError::Locked(retry)),
            Checked::Mismatch => {
                self.audit
                    .record(
                        AuditEvent::new("password.confirm_failed")
                            .by(actor)
                            .user(user_id)
                            .detail("during", during),
                    )
                    .await?;
                Err(AccountError::WrongPassword)
            }
        }
    }

    /// Changes a user's password after checking the current one, and ends the user's browser
    /// sessions that began before now. With `sign_out_applications` (the account page's "also
    /// sign out of applications", on by default) the same transaction revokes every OAuth token
    /// of the user and deletes their unexchanged authorization codes, so a token taken with the
    /// old password does not outlive the change. Returns the session cut-off, which the caller
    /// gives to `keep_session` so that the current browser stays signed in (and only it: a
    /// later "sign out everywhere" still ends it). Afterwards the user is emailed
    /// ([`PasswordChangedEmail`](crate::mail::PasswordChangedEmail)).
    ///
    /// # Errors
    /// [`AccountError::WrongPassword`], [`AccountError::Locked`], [`AccountError::Invalid`] for
    /// a new password that fails the policy, [`AccountError::NotFound`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn change_password(
        &self,
        actor: &Actor,
        user_id: &str,
        current: SecretString,
        new: SecretString,
        sign_out_applications: bool,
    ) -> Result<chrono::NaiveDateTime, AccountError> {
        let user = self
            .find_row(user_id.to_owned())
            .await?
            .ok_or(AccountError::NotFound)?;
        self.confirm_password_of(actor, &user, current, "password_change")
            .await?;
        self.hasher
            .validate(&new, &password::UserInputs::of(&user))
            .await?
            .map_err(AccountError::Invalid)?;
        let hash = self.hasher.hash(new).await?;
        let id = user_id.to_owned();
        let event = AuditEvent::new("password.changed")
            .by(actor)
            .user(user_id)
            .detail("applications_signed_out", sign_out_applications);
        let cut = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let cut = db::now();
                    // The first write takes the user's row lock (PostgreSQL).
                    users::set_password_hash(conn, &id, &hash)?;
                    users::end_sessions(conn, &id, cut)?;
                    let event = if sign_out_applications {
                        let revoked = tokens::revoke_for_user(conn, &id, None, cut)?;
                        codes::delete_unused_for_user(conn, &id, None)?;
                        event.detail("tokens_revoked", revoked)
                    } else {
                        event
                    };
                    audit::record(conn, event)?;
                    Ok(cut)
                })
                .map_err(AccountError::from)
            })
            .await?;
        // After the commit; a failure to send is logged and the change stands.
        self.notify_password_changed(&user, sign_out_applications)
            .await;
        Ok(cut)
    }

    /// Sets the active, staff and superuser flags. Deactivating also revokes the user's tokens
    /// and ends their sessions. Each changed flag is an audit event. Deactivating and
    /// reactivating queue, in the same transaction, a check of each Discord role the user's
    /// groups give (the Discord connector takes them from a deactivated account).
    ///
    /// Who may ([`privileges`], checked in the change's transaction): staff change the active
    /// flag of ordinary users; only a superuser (or the system) changes a staff or superuser
    /// account, or grants or removes staff or superuser status.
    ///
    /// # Errors
    /// [`AccountError::NotFound`]; [`AccountError::Invalid`] when an admin would remove their
    /// own staff status or deactivate themselves (they would lock themselves out);
    /// [`AccountError::Forbidden`] by the rules above.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn set_flags(
        &self,
        actor: &Actor,
        user_id: &str,
        flags: AccountFlags,
    ) -> Result<Account, AccountError> {
        if actor.user_id.as_deref() == Some(user_id) && !(flags.is_active && flags.is_staff) {
            return Err(AccountError::Invalid(
                "you cannot deactivate yourself or remove your own staff status".into(),
            ));
        }
        let id = user_id.to_owned();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, AccountError, _>(|conn| {
                    let Some(old) = privileges::lock_target(conn, &id)? else {
                        return Ok(None);
                    };
                    privileges::check_may_change::<AccountError>(conn, &actor, &old)?;
                    // Only superusers make or unmake administrators, so that one staff account
                    // can neither promote itself nor lock out the others.
                    let promotes =
                        old.is_staff != flags.is_staff || old.is_superuser != flags.is_superuser;
                    if promotes && !privileges::is_superuser(conn, &actor)? {
                        return Err(privileges::NotAllowed::Promotion.into());
                    }
                    users::set_flags(
                        conn,
                        &id,
                        flags.is_active,
                        flags.is_staff,
                        flags.is_superuser,
                    )?;
                    let changes = [
                        (
                            old.is_active,
                            flags.is_active,
                            "user.activated",
                            "user.deactivated",
                        ),
                        (
                            old.is_staff,
                            flags.is_staff,
                            "user.staff_granted",
                            "user.staff_revoked",
                        ),
                        (
                            old.is_superuser,
                            flags.is_superuser,
                            "user.superuser_granted",
                            "user.superuser_revoked",
                        ),
                    ];
                    for (before, after, on, off) in changes {
                        if before != after {
                            let name = if after { on } else { off };
                            audit::record(conn, AuditEvent::new(name).by(&actor).user(id.clone()))?;
                        }
                    }
                    if old.is_active && !flags.is_active {
                        end_everything(conn, &actor, &id)?;
                    }
                    if old.is_active != flags.is_active {
                        // A deactivated account's groups give no Discord role: its mapped roles
                        // go now, and come back when it is reactivated.
                        crate::db::discord_connector::queue_for_user(conn, &id, crate::db::now())?;
                    }
                    Ok(users::find(conn, &id)?)
                })
            })
            .await?
            .map(Account::from)
            .ok_or(AccountError::NotFound)
    }

    /// Revokes every token of the user and ends every browser session they have, on every
    /// node ("sign out everywhere"); returns how many tokens were revoked. Allowed to the user,
    /// the system, and admins by the [`privileges`] rules.
    ///
    /// # Errors
    /// [`AccountError::NotFound`], [`AccountError::Forbidden`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn end_sessions_and_tokens(
        &self,
        actor: &Actor,
        user_id: &str,
    ) -> Result<usize, AccountError> {
        let id = user_id.to_owned();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, AccountError, _>(|conn| {
                    let Some(target) = privileges::lock_target(conn, &id)? else {
                        return Ok(None);
                    };
                    privileges::check_may_change::<AccountError>(conn, &actor, &target)?;
                    Ok(Some(end_everything(conn, &actor, &id)?))
                })
            })
            .await?
            .ok_or(AccountError::NotFound)
    }
}

/// Revokes all of the user's tokens, deletes their unexchanged codes, ends their recorded
/// browser sessions and moves their session cut-off to now (inside the caller's transaction);
/// returns how many tokens were revoked.
fn end_everything(
    conn: &mut db::DbConnection,
    actor: &Actor,
    user_id: &str,
) -> diesel::QueryResult<usize> {
    let now = db::now();
    let revoked = tokens::revoke_for_user(conn, user_id, None, now)?;
    codes::delete_unused_for_user(conn, user_id, None)?;
    users::end_sessions(conn, user_id, now)?;
    let sessions = crate::db::user_sessions::end_all_for_user(conn, user_id, None, now)?;
    audit::record(
        conn,
        AuditEvent::new("user.signed_out_everywhere")
            .by(actor)
            .user(user_id)
            .detail("tokens_revoked", revoked)
            .detail("sessions_ended", sessions),
    )?;
    Ok(revoked)
}
