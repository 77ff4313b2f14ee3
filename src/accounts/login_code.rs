//! Emailed one-time codes at login (email 2FA): after a correct password, a user who needs a
//! code is sent one and must enter it before the login counts.
//!
//! Whether a user needs a code is the `accounts.login_otp` policy plus the user's own switch
//! (`users.mfa_enabled`, set on the account page): `"optional"` — users who switched it on;
//! `"staff"` — staff and superusers always, others if they switched it on; `"all"` — everyone.
//!
//! A login that needs a code becomes a *challenge*: a random handle (256 bits) tied to a new
//! [`LOGIN`] code, both stored as SHA-256. The hosted login keeps the handle in the session; the
//! password grant hands it to the client as `mfa_token`, bound to that client and the scope it
//! asked for. The code follows the rules of [`crate::accounts::otp`]: it expires after
//! `accounts.otp_expiration_seconds`, dies after `accounts.otp_max_attempts` wrong guesses, is
//! used once, only the user's newest login code works, and sending another waits for the
//! (doubling) resend cooldown. A login completed with a code has the RFC 8176 methods
//! `pwd otp`.
//!
//! Audit events: `login.otp_sent`, `login.otp_failed` (with `reason` and, for a wrong code,
//! `attempts_left`), `login.success` (with `amr` = `pwd otp`), `mfa.enabled`, `mfa.disabled`.
//! Codes and handles are never recorded or logged.

use std::net::IpAddr;

use diesel::prelude::*;

use super::otp::{CodeCheck, CodeFor, NewCode};
use super::{Account, AccountError, Accounts, PasswordLogin};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::{EmailVerification, LoginOtp};
use crate::db::one_time_codes::{self, LOGIN};
use crate::db::schema;
use crate::db::users;
use crate::db::DbError;
use crate::limits::{LimitError, RetryAfter};
use crate::mail::greeting_name;
use crate::mail::{LoginCodeEmail, LoginCodeOffEmail};
use crate::secret;

/// The RFC 8176 authentication methods of a login completed with an emailed code: a password
/// (`pwd`) and a one-time password (`otp`), space-separated as sessions and tokens store them.
pub const AMR_PASSWORD_AND_CODE: &str = "pwd otp";

/// RFC 8176 `amr` of an upstream sign-in followed by the emailed code: `otp` (no RFC 8176 value
/// describes the upstream step; the ID token's `idp` names it).
pub const AMR_CODE: &str = "otp";

/// The longest code input that is checked at all; anything longer is a wrong code.
const MAX_CODE_INPUT: usize = 64;

/// Who asked for the code: the hosted login page, or an OAuth client through the password
/// grant (which must then finish the login itself, with the scope it asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeFor {
    /// The hosted login page (the handle stays in the browser's session).
    Browser,
    /// An OAuth client: its `client_id` and the scope negotiated for it (space-separated).
    Client {
        /// The client that sent the password grant.
        client_id: String,
        /// The scope to grant when the login completes.
        scope: String,
    },
}

impl ChallengeFor {
    fn client_id(&self) -> Option<&str> {
        match self {
            Self::Browser => None,
            Self::Client { client_id, .. } => Some(client_id),
        }
    }
}

/// A started login challenge.
#[derive(Clone, Debug)]
pub struct LoginChallenge {
    /// The plain handle (the API's `mfa_token`). Only its hash is stored.
    pub handle: String,
    /// Whether the email went out; `false` after a send failure (already logged). The code
    /// exists either way: the user may ask for a new one after the cooldown.
    pub emailed: bool,
}

/// What entering a login code found.
#[derive(Clone, Debug)]
pub enum LoginCodeOutcome {
    /// The right code: the login is complete (`login.success` is recorded).
    Passed {
        /// The login: the user as stored now, and when the challenge was made (just after the
        /// password was checked) as its beginning — a password change, reset or "sign out
        /// everywhere" since then must end it ([`PasswordLogin::still_holds`]).
        login: Box<PasswordLogin>,
        /// For a client's challenge, the scope it asked for.
        scope: Option<String>,
    },
    /// A wrong code; this many guesses are left.
    Wrong {
        /// Guesses left before the code dies.
        remaining: u32,
    },
    /// The code expired: the login must start again.
    Expired,
    /// Too many wrong guesses: the login must start again.
    Exhausted,
    /// No such challenge: unknown, already used, replaced by a newer code, started by another
    /// client, or the user can no longer log in.
    Invalid,
    /// Too many code guesses from this client address (`rate_limits.code_guesses_per_ip`);
    /// nothing was checked or counted against the code.
    Limited(RetryAfter),
}

impl Accounts {
    /// Whether `user` must enter an emailed code after their password, under the
    /// `accounts.login_otp` policy and their own switch.
    #[must_use]
    pub fn needs_login_code(&self, user: &Account) -> bool {
        self.code_needed(user.mfa_enabled, user.has_staff_access())
    }

    /// Whether the policy requires a login code from `user` whatever their switch says
    /// (`"all"`, or `"staff"` for staff and superusers).
    #[must_use]
    pub fn login_code_forced(&self, user: &Account) -> bool {
        self.code_forced(user.has_staff_access())
    }

    /// [`Accounts::needs_login_code`] for a user whose switch is `mfa_enabled` and who is
    /// (`staff`) or is not staff or superuser.
    pub(super) fn code_needed(&self, mfa_enabled: bool, staff: bool) -> bool {
        mfa_enabled || self.code_forced(staff)
    }

    /// [`Accounts::login_code_forced`] for a user who is (`staff`) or is not staff or
    /// superuser.
    fn code_forced(&self, staff: bool) -> bool {
        match self.settings().login_otp {
            LoginOtp::All => true,
            LoginOtp::Staff => staff,
            LoginOtp::Optional => false,
        }
    }

    /// Starts a login challenge for `user`, who just gave the right password from `ip` in a
    /// login that began at `began` ([`PasswordLogin::began`]; the browser's pending login keeps
    /// it across a resend): a new login code tied to a new handle, emailed with the address the
    /// login came from. Earlier login codes of the user stop working. Records
    /// `login.otp_sent`.
    ///
    /// Returns the challenge.
    ///
    /// # Errors
    /// [`LimitError::Limited`] with how long to wait when the resend cooldown has not passed
    /// (the previous code still works then); storage failures. A failed email is not an error:
    /// see [`LoginChallenge::emailed`].
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn start_login_challenge(
        &self,
        user: &Account,
        began: chrono::NaiveDateTime,
        ip: Option<IpAddr>,
        requester: ChallengeFor,
    ) -> Result<LoginChallenge, LimitError> {
        let handle = secret::new_token();
        let client_id = requester.client_id().map(str::to_owned);
        let extra = match requester {
            ChallengeFor::Browser => NewCode {
                challenge: Some(handle.clone()),
                client_id: None,
                scope: None,
                skip_cooldown: false,
                // The browser keeps the login's moment in its pending login (the session
                // starts from it); the code row's time drives the resend cooldown.
                began: None,
            },
            ChallengeFor::Client { client_id, scope } => NewCode {
                challenge: Some(handle.clone()),
                client_id: Some(client_id),
                scope: Some(scope),
                skip_cooldown: false,
                // The mfa-otp grant has no other memory of when its login began.
                began: Some(began),
            },
        };
        let code = self.new_code(&user.id, LOGIN, extra).await?;
        // `new_code` commits the code in its own transaction; the event follows it at once.
        let mut event = AuditEvent::new("login.otp_sent")
            .by(&Actor::user(user.id.clone(), ip))
            .user(user.id.clone());
        if let Some(client_id) = client_id {
            event = event.client(client_id);
        }
        self.audit.record(event).await?;
        let settings = self.settings();
        let email = LoginCodeEmail {
            name: user.greeting_name(),
            code,
            minutes: settings.otp_expiration.as_secs().div_ceil(60).max(1),
            ip: ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string()),
        };
        let emailed = match self.mailer().send(&user.email, &email).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "the login code email could not be sent");
                false
            }
        };
        Ok(LoginChallenge { handle, emailed })
    }

    /// Checks `code` for the challenge `handle`, entered from `ip`. Every guess counts against
    /// `rate_limits.code_guesses_per_ip` first, whatever the handle names (the right code is
    /// taken back). `client_id` must name whoever started the challenge: the same client, or
    /// `None` for the hosted login; otherwise the challenge counts as unknown and no guess is
    /// counted against its code. `upstream` names the upstream provider the login's first
    /// step went through (`None`: the password). The right code completes the login:
    /// `login.success` is recorded with `amr` = `pwd otp` ([`AMR_PASSWORD_AND_CODE`]), or `otp`
    /// ([`AMR_CODE`]) and the provider. A wrong, expired or exhausted code records
    /// `login.otp_failed`.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all)]
    pub async fn finish_login_challenge(
        &self,
        handle: &str,
        code: &str,
        client_id: Option<&str>,
        upstream: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<LoginCodeOutcome, DbError> {
        let guess = match self.count_code_guess(ip).await {
            Ok(guess) => guess,
            Err(LimitError::Db(e)) => return Err(e),
            Err(LimitError::Limited(retry) | LimitError::Reached(retry)) => {
                return Ok(LoginCodeOutcome::Limited(retry))
            }
        };
        let challenge_hash = secret::sha256_hex(handle);
        let Some(row) = self
            .db
            .read(move |conn| {
                one_time_codes::find_by_challenge(conn, &challenge_hash).map_err(DbError::from)
            })
            .await?
        else {
            return Ok(LoginCodeOutcome::Invalid);
        };
        // A challenge is finished only by whoever started it: a client cannot spend (or use
        // up the guesses of) another client's mfa_token, nor a browser a client's.
        if row.purpose != LOGIN || row.used_at.is_some() || row.client_id.as_deref() != client_id {
            return Ok(LoginCodeOutcome::Invalid);
        }
        let typed: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .take(MAX_CODE_INPUT)
            .collect();
        let failed = |reason: &'static str| {
            let mut event = AuditEvent::new("login.otp_failed")
                .by(&Actor::user(row.user_id.clone(), ip))
                .user(row.user_id.clone())
                .detail("reason", reason);
            if let Some(client_id) = &row.client_id {
                event = event.client(client_id.clone());
            }
            event
        };
        let outcome = match self.check_code(CodeFor::Challenge(handle), &typed).await? {
            CodeCheck::Valid(spent) => {
                let Some(user) = self
                    .find_row(spent.user_id.clone())
                    .await?
                    .filter(|u| u.is_active)
                else {
                    return Ok(LoginCodeOutcome::Invalid);
                };
                let mut event = AuditEvent::new("login.success")
                    .by(&Actor::user(user.id.clone(), ip))
                    .user(user.id.clone());
                event = match upstream {
                    Some(provider) => event
                        .detail("amr", AMR_CODE)
                        .detail("provider", provider.to_owned()),
                    None => event.detail("amr", AMR_PASSWORD_AND_CODE),
                };
                if let Some(client_id) = &spent.client_id {
                    event = event.client(client_id.clone());
                }
                let id = user.id.clone();
                self.db
                    .write(move |conn| {
                        conn.transaction(|conn| {
                            crate::db::users::touch_last_login(conn, &id, crate::db::now())?;
                            crate::audit::record(conn, event)
                        })
                        .map_err(DbError::from)
                    })
                    .await?;
                self.forgive_code_guess(guess).await?;
                return Ok(LoginCodeOutcome::Passed {
                    login: Box::new(PasswordLogin::new(user, spent.created_at)),
                    scope: spent.scope,
                });
            }
            CodeCheck::Wrong { remaining } => {
                self.audit
                    .record(failed("wrong").detail("attempts_left", remaining))
                    .await?;
                LoginCodeOutcome::Wrong { remaining }
            }
            CodeCheck::Expired => {
                self.audit.record(failed("expired")).await?;
                LoginCodeOutcome::Expired
            }
            CodeCheck::Exhausted => {
                self.audit.record(failed("exhausted")).await?;
                LoginCodeOutcome::Exhausted
            }
            CodeCheck::Missing => LoginCodeOutcome::Invalid,
        };
        Ok(outcome)
    }

    /// Switches login codes on or off for the user (`users.mfa_enabled`) and records
    /// `mfa.enabled` / `mfa.disabled` in the same transaction (nothing when unchanged). Switching
    /// them off is then announced to the user by email ([`LoginCodeOffEmail`]; a failed send is
    /// logged, the change stands). The user themself, the system and admins by the
    /// [`privileges`](super::privileges) rules may do it.
    ///
    /// # Errors
    /// [`AccountError::Invalid`] when switching off a code the policy requires, or switching on
    /// while the email address is unverified (the codes go there; unless verification is off);
    /// [`AccountError::Forbidden`]; [`AccountError::NotFound`].
    #[tracing::instrument(skip_all, fields(user_id = %user_id, on = on))]
    pub async fn set_login_code(
        &self,
        actor: &Actor,
        user_id: &str,
        on: bool,
    ) -> Result<Account, AccountError> {
        let Some(user) = self.find(user_id.to_owned()).await? else {
            return Err(AccountError::NotFound);
        };
        if !on && self.login_code_forced(&user) {
            return Err(AccountError::Invalid(
                "sign-in codes are required for this account by the server's policy".into(),
            ));
        }
        if on
            && !user.email_verified
            && self.settings().email_verification != EmailVerification::Off
        {
            return Err(AccountError::Invalid(
                "verify your email address first: the codes are sent there".into(),
            ));
        }
        let id = user_id.to_owned();
        let actor = actor.clone();
        let event = AuditEvent::new(if on { "mfa.enabled" } else { "mfa.disabled" })
            .by(&actor)
            .user(user_id)
            .detail("method", "email_otp");
        let (switched_off, updated) = self
            .db
            .write(move |conn| {
                conn.transaction::<_, AccountError, _>(|conn| {
                    let Some(old) = super::privileges::lock_target(conn, &id)? else {
                        return Ok(None);
                    };
                    super::privileges::check_may_change::<AccountError>(conn, &actor, &old)?;
                    if old.mfa_enabled != on {
                        // A single-purpose update, kept beside its only caller.
                        diesel::update(schema::users::table.find(&id))
                            .set(schema::users::mfa_enabled.eq(on))
                            .execute(conn)?;
                        audit::record(conn, event)?;
                    }
                    let switched_off = old.mfa_enabled && !on;
                    Ok(users::find(conn, &id)?.map(|u| (switched_off, u)))
                })
            })
            .await?
            .ok_or(AccountError::NotFound)?;
        if switched_off {
            let email = LoginCodeOffEmail {
                name: greeting_name(&updated.first_name, &updated.username),
                username: updated.username.clone(),
                reset_link: self.public_url(super::reset::RESET_REQUEST_PATH),
            };
            if let Err(e) = self.mailer().send(&updated.email, &email).await {
                tracing::error!(error = %e, user_id = %updated.id, "the sign-in codes off notice could not be sent");
            }
        }
        Ok(Account::from(updated))
    }
}
