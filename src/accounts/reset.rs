//! Password reset by email ("forgot your password?") and the "your password was changed" notice.
//!
//! * **Asking** ([`Accounts::request_password_reset`]): the answer never says whether an account
//!   has the address (no enumeration). The request only counts the limits — the same work for
//!   every address — and the lookup, the audit event and the email happen afterwards in a
//!   background task, so that the answer takes as long for a known address as for an unknown one
//!   (an SMTP round trip would otherwise tell them apart). A send failure is logged; nothing is
//!   lost, the user can ask again.
//! * **Limits**, counted per address whether or not an account has it (so they reveal nothing):
//!   one request per `accounts.resend_cooldown_seconds`, at most [`RESETS_PER_ADDRESS_PER_HOUR`]
//!   per hour, and [`RESETS_PER_IP`] per client IP per `rate_limits.window_seconds`.
//! * **The link** is `/accounts/password-reset-confirm/<uidb64>/<token>/`, a stateless signed link
//!   ([`super::links`], like Django's `PasswordResetTokenGenerator`) valid for
//!   `accounts.password_reset_seconds` that dies when the password hash or the last login
//!   changes: using it changes the hash, so it works once. A deactivated user's link is invalid.
//! * **Setting the password** ([`Accounts::reset_password`]) applies the password validators,
//!   then in one transaction stores the hash, revokes every token, ends every session and
//!   records `password_reset.completed`; then the "password changed" email goes out (a failure
//!   is logged, the password stays changed).

use std::net::IpAddr;
use std::time::Duration;

use diesel::Connection;
use secrecy::SecretString;

use super::links::{decode_uid, encode_uid, LinkPurpose};
use super::password::UserInputs;
use super::{end_everything, ip_prefix, Account, Accounts};
use crate::audit::{self, Actor, AuditEvent};
use crate::db::users::{self, UserFilter, UserRow};
use crate::db::{self, DbError};
use crate::domain::Email;
use crate::limits::{self, LimitError};
use crate::mail::greeting_name;
use crate::mail::{MailError, PasswordChangedEmail, PasswordResetEmail};

/// Reset requests accepted per address per hour (on top of the per-request cooldown
/// `accounts.resend_cooldown_seconds`).
pub const RESETS_PER_ADDRESS_PER_HOUR: u32 = 5;

/// Reset requests accepted per client IP (IPv6: per /64) per `rate_limits.window_seconds`.
pub const RESETS_PER_IP: u32 = 20;

/// The path of the page that asks for a reset (linked from the "password changed" email).
pub const RESET_REQUEST_PATH: &str = "/accounts/password-reset/";

/// Why a new password was not set.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The link is malformed, expired, already used, or its user is gone or deactivated.
    #[error("the link is invalid or has expired")]
    InvalidLink,
    /// The new password fails the password policy; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] super::password::HashError),
}

impl From<diesel::result::Error> for ResetError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// What a reset link names, once checked: the user it resets.
#[derive(Clone, Debug)]
pub struct ResetLink {
    /// The user whose password the link sets.
    pub user: Account,
}

impl Accounts {
    /// Asks for a reset link for `email`. Answers `Ok(())` for every address once the limits
    /// pass — whether or not an account has it; the email (for an active account with a
    /// password) is sent by a background task. Limits are counted per address whatever account
    /// exists.
    ///
    /// # Errors
    /// [`LimitError::Limited`] when a limit refused the request (with the seconds to wait);
    /// storage failures while counting the limits.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        &self,
        email: &Email,
        ip: Option<IpAddr>,
    ) -> Result<(), LimitError> {
        self.reset_limits(email, ip).await?;
        let accounts = self.clone();
        let email = email.clone();
        // In the request's span, so that its log lines carry the request id.
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            if let Err(e) = accounts.send_reset_link(&email, ip).await {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "password reset request failed");
            }
        }));
        Ok(())
    }

    /// Counts a reset request against the per-IP and per-address limits. A lock of the hourly or
    /// per-IP limit is recorded once per window as `password_reset.locked`.
    pub(super) async fn reset_limits(
        &self,
        email: &Email,
        ip: Option<IpAddr>,
    ) -> Result<(), LimitError> {
        let address = email.as_str();
        let mut checks: Vec<(String, u32, Duration, &str)> = Vec::new();
        if let Some(ip) = ip {
            checks.push((
                limits::bucket("password_reset:ip", &ip_prefix(ip)),
                RESETS_PER_IP,
                self.limits.window,
                "ip",
            ));
        }
        checks.push((
            limits::bucket("password_reset:cooldown", address),
            1,
            self.settings().resend_cooldown,
            "cooldown",
        ));
        checks.push((
            limits::bucket("password_reset:address", address),
            RESETS_PER_ADDRESS_PER_HOUR,
            Duration::from_secs(3600),
            "address",
        ));
        for (bucket, max, window, limit) in checks {
            let refusal = match self.limiter.attempt(vec![(bucket, max)], window).await {
                Ok(()) => continue,
                Err(e) => e,
            };
            // Waiting out the cooldown (a double click) is not a lock worth recording.
            if let (LimitError::Reached(retry), true) = (&refusal, limit != "cooldown") {
                let known = self.find_by_email(email).await?;
                self.audit
                    .record(
                        AuditEvent::new("password_reset.locked")
                            .ip(ip)
                            .maybe_user(known.as_ref().map(|u| u.id.as_str()))
                            .detail("limit", limit)
                            .detail("retry_after_seconds", retry.0),
                    )
                    .await?;
            }
            return Err(match refusal {
                LimitError::Reached(retry) => LimitError::Limited(retry),
                other => other,
            });
        }
        Ok(())
    }

    /// The background half of a reset request: finds the account, records the request and
    /// emails the link. Unknown addresses, deactivated accounts and accounts without a password
    /// (as Django's `PasswordResetForm`, which skips users without a usable password) get
    /// nothing.
    async fn send_reset_link(&self, email: &Email, ip: Option<IpAddr>) -> Result<(), DbError> {
        let Some(user) = self.find_by_email(email).await? else {
            return Ok(());
        };
        let ignored = if !user.is_active {
            Some("inactive")
        } else if user.password_hash.is_none() {
            Some("no_password")
        } else {
            None
        };
        let mut event = AuditEvent::new("password_reset.requested")
            .by(&Actor::user(user.id.clone(), ip))
            .user(user.id.clone());
        if let Some(reason) = ignored {
            event = event.detail("ignored", reason);
        }
        self.audit.record(event).await?;
        if ignored.is_some() {
            return Ok(());
        }
        if let Err(e) = self.email_reset_link(&user).await {
            // The link is not logged; the user can ask again.
            tracing::error!(error = %e, user_id = %user.id, "the password reset email could not be sent");
        }
        Ok(())
    }

    /// Emails `user` a fresh password-reset link (valid for `accounts.password_reset_seconds`).
    ///
    /// # Errors
    /// The mail server did not take the message (the caller logs or reports it; the link is
    /// never logged).
    pub(super) async fn email_reset_link(&self, user: &UserRow) -> Result<(), MailError> {
        let token = self
            .links()
            .make(LinkPurpose::PasswordReset, user, chrono::Utc::now());
        let email = PasswordResetEmail {
            name: greeting_name(&user.first_name, &user.username),
            link: self.public_url(&format!(
                "/accounts/password-reset-confirm/{}/{token}/",
                encode_uid(&user.id)
            )),
            minutes: self.settings().password_reset.as_secs().div_ceil(60),
        };
        self.mailer().send(&user.email, &email).await
    }

    /// The account with exactly this (normalised) address.
    async fn find_by_email(&self, email: &Email) -> Result<Option<UserRow>, DbError> {
        let address = email.as_str().to_owned();
        self.db
            .read(move |conn| {
                // `find_by_login` prefers an exact username, and usernames may contain `@`:
                // when another account's username is this address, search by email instead.
                match users::find_by_login(conn, &address)? {
                    Some(user) if user.email == address => Ok(Some(user)),
                    None => Ok(None),
                    Some(_) => {
                        let filter = UserFilter {
                            search: Some(address.clone()),
                            ..UserFilter::default()
                        };
                        let (rows, _) = users::list(conn, &filter, 1000, 0)?;
                        Ok(rows.into_iter().find(|u| u.email == address))
                    }
                }
                .map_err(|e: diesel::result::Error| DbError::from(e))
            })
            .await
    }

    /// Checks a reset link (`uidb64` and `token` from its path): the user it resets when it is
    /// well-formed, signed by this server, at most `accounts.password_reset_seconds` old, unused
    /// (the password and last login are as they were) and the user is active.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn check_reset_link(
        &self,
        uidb64: &str,
        token: &str,
    ) -> Result<Option<ResetLink>, DbError> {
        Ok(self
            .reset_link_user(uidb64, token)
            .await?
            .map(|row| ResetLink {
                user: Account::from(row),
            }))
    }

    /// [`Accounts::check_reset_link`], answering the user's stored row.
    async fn reset_link_user(&self, uidb64: &str, token: &str) -> Result<Option<UserRow>, DbError> {
        let Some(user_id) = decode_uid(uidb64) else {
            return Ok(None);
        };
        let user = self.find_row(user_id).await?;
        Ok(user.filter(|u| self.link_is_valid(u, token)))
    }

    fn link_is_valid(&self, user: &UserRow, token: &str) -> bool {
        let max_age = i64::try_from(self.settings().password_reset.as_secs()).unwrap_or(i64::MAX);
        user.is_active
            && self.links().check(
                LinkPurpose::PasswordReset,
                user,
                token,
                max_age,
                chrono::Utc::now(),
            )
    }

    /// Sets a new password through a reset link. The link is checked, the password validated
    /// and hashed; then, in one transaction, the link is checked again on the locked row (two
    /// concurrent uses cannot both succeed), the hash stored, every token revoked, every session
    /// ended and `password_reset.completed` recorded. Afterwards the user is sent the "password
    /// changed" email (a failure is logged only).
    ///
    /// # Errors
    /// [`ResetError::InvalidLink`], [`ResetError::Invalid`] for a password that fails the policy,
    /// storage and hashing failures.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(
        &self,
        uidb64: &str,
        token: &str,
        new: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<Account, ResetError> {
        let Some(user) = self.reset_link_user(uidb64, token).await? else {
            return Err(ResetError::InvalidLink);
        };
        self.hasher
            .validate(&new, &UserInputs::of(&user))
            .await?
            .map_err(ResetError::Invalid)?;
        let hash = self.hasher.hash(new).await?;
        let actor = Actor::user(user.id.clone(), ip);
        let this = self.clone();
        let token = token.to_owned();
        let updated = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ResetError, _>(|conn| {
                    let now = db::now();
                    // The first write locks the row (PostgreSQL), so the re-read below sees any
                    // reset that committed meanwhile; SQLite has a single writer anyway.
                    users::end_sessions(conn, &user.id, now)?;
                    let fresh = users::find(conn, &user.id)?.ok_or(ResetError::InvalidLink)?;
                    if !this.link_is_valid(&fresh, &token) {
                        return Err(ResetError::InvalidLink);
                    }
                    users::set_password_hash(conn, &fresh.id, &hash)?;
                    let revoked = end_everything(conn, &actor, &fresh.id)?;
                    audit::record(
                        conn,
                        AuditEvent::new("password_reset.completed")
                            .by(&actor)
                            .user(fresh.id.clone())
                            .detail("tokens_revoked", revoked),
                    )?;
                    users::find(conn, &fresh.id)?.ok_or(ResetError::InvalidLink)
                })
            })
            .await?;
        self.notify_password_changed(&updated, true).await;
        Ok(Account::from(updated))
    }

    /// Emails `user` that their password was changed, with a link to reset it should it not
    /// have been them; `applications_signed_out` says whether their tokens were revoked too. A
    /// failure is logged, never returned: the change stands.
    pub(super) async fn notify_password_changed(
        &self,
        user: &UserRow,
        applications_signed_out: bool,
    ) {
        let email = PasswordChangedEmail {
            name: greeting_name(&user.first_name, &user.username),
            reset_link: self.public_url(RESET_REQUEST_PATH),
            applications_signed_out,
        };
        if let Err(e) = self.mailer().send(&user.email, &email).await {
            tracing::error!(error = %e, user_id = %user.id, "the password changed email could not be sent");
        }
    }
}
