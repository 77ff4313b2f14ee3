//! Users: creation, password login (timing-safe, rate-limited), lookups.
//!
//! The full account lifecycle (registration, verification, reset) builds on this module.

pub mod password;

use std::net::IpAddr;

use diesel::Connection;
use secrecy::SecretString;

use crate::config::RateLimits;
use crate::db::users::{self, UserRow};
use crate::db::{self, Db, DbError};
use crate::domain::{Email, Username};
use crate::limits::{self, Limiter, RetryAfter};
pub use password::PasswordHasher;

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

/// Why a login failed. Unknown users, wrong passwords and deactivated accounts look the same.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failures for this account or address.
    #[error("too many failed attempts; try again in {} seconds", .0.0)]
    Locked(RetryAfter),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
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

/// The accounts service.
#[derive(Clone, Debug)]
pub struct Accounts {
    db: Db,
    hasher: PasswordHasher,
    limiter: Limiter,
    limits: RateLimits,
}

impl Accounts {
    /// The service over `db`.
    #[must_use]
    pub fn new(db: Db, hasher: PasswordHasher, limits: RateLimits) -> Self {
        Self {
            limiter: Limiter::new(db.clone()),
            db,
            hasher,
            limits,
        }
    }

    /// Creates a user with an argon2id password hash.
    ///
    /// # Errors
    /// [`AccountError::Invalid`] for a password that fails the policy, [`AccountError::Taken`]
    /// for a duplicate username or email.
    #[tracing::instrument(skip_all, fields(username = %new.username))]
    pub async fn create_user(&self, new: NewUser) -> Result<UserRow, AccountError> {
        let password_hash = match new.password {
            Some(p) => {
                PasswordHasher::validate(&p).map_err(AccountError::Invalid)?;
                Some(self.hasher.hash(p).await?)
            }
            None => None,
        };
        let row = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            username: new.username.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            first_name: new.first_name,
            last_name: new.last_name,
            password_hash,
            is_active: true,
            is_staff: new.superuser,
            is_superuser: new.superuser,
            email_verified: new.email_verified,
            date_joined: db::now(),
            last_login: None,
        };
        let inserted = row.clone();
        self.db
            .write(move |conn| {
                conn.transaction(|conn| users::insert(conn, &inserted))
                    .map_err(AccountError::from)
            })
            .await?;
        tracing::info!(target: "audit", event = "user.created", user_id = %row.id, username = %row.username);
        Ok(row)
    }

    /// Looks a user up by id.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find(&self, id: String) -> Result<Option<UserRow>, DbError> {
        self.db
            .read(move |conn| users::find(conn, &id).map_err(DbError::from))
            .await
    }

    /// Checks a username-or-email and password. Takes as long for unknown users as for known
    /// ones (a dummy hash is verified), counts failures per account and per IP, and refuses
    /// inactive users. On success `last_login` is updated.
    ///
    /// # Errors
    /// See [`LoginError`].
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(
        &self,
        login: &str,
        password: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<UserRow, LoginError> {
        let login = login.trim().to_owned();
        let account_bucket = limits::bucket("login:account", &login.to_lowercase());
        let mut buckets = vec![(
            account_bucket.clone(),
            self.limits.failed_logins_per_account,
        )];
        let ip_bucket = ip.map(|ip| limits::bucket("login:ip", &ip_prefix(ip)));
        if let Some(b) = &ip_bucket {
            buckets.push((b.clone(), self.limits.failed_logins_per_ip));
        }
        // Counted before the hash, so that parallel guesses cannot all pass the limit.
        if let Err(retry) = self.limiter.attempt(buckets, self.limits.window).await? {
            tracing::warn!(target: "audit", event = "login.locked", login = %login, ip = ?ip, retry_after = retry.0);
            return Err(LoginError::Locked(retry));
        }
        let lookup = login.clone();
        let user = self
            .db
            .read(move |conn| users::find_by_login(conn, &lookup).map_err(DbError::from))
            .await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let ok = self.hasher.verify(password, hash).await;
        match user {
            // A deactivated account answers like a wrong password (as Django's ModelBackend
            // does), so a correct guess is not confirmed.
            Some(user) if ok && user.is_active => {
                let id = user.id.clone();
                self.db
                    .write(move |conn| {
                        users::touch_last_login(conn, &id, db::now()).map_err(DbError::from)
                    })
                    .await?;
                self.limiter
                    .succeeded(ip_bucket.into_iter().collect(), vec![account_bucket])
                    .await?;
                tracing::info!(target: "audit", event = "login.success", user_id = %user.id, ip = ?ip);
                Ok(user)
            }
            Some(user) if ok => {
                tracing::info!(target: "audit", event = "login.inactive", user_id = %user.id, ip = ?ip);
                Err(LoginError::InvalidCredentials)
            }
            _ => {
                tracing::info!(target: "audit", event = "login.failure", login = %login, ip = ?ip);
                Err(LoginError::InvalidCredentials)
            }
        }
    }
}

/// The part of an address that identifies one client for limits: the whole IPv4 address, or the
/// /64 prefix of an IPv6 address (one host usually holds a whole /64).
fn ip_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}
