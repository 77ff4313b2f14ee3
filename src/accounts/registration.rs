//! Self-registration and email verification.
//!
//! * [`Accounts::register`] creates an account from what a person typed on
//!   `/accounts/register/` or posted to `/api/register/`: email (normalised, unique), username
//!   (optional: derived from the email's local part and made unique with digits; unique without
//!   regard to case), names and a password checked by the validators of
//!   [`password::problems`](super::password::problems) (off the HTTP workers, behind the
//!   hashing semaphore). Every problem is reported at its field. `accounts.registration =
//!   "closed"` refuses everything; `allowed_email_domains` limits the addresses.
//! * Unless `accounts.email_verification = "off"`, the new address gets a
//!   [`VerificationEmail`]: a 6-digit code ([`Accounts::verify_email_code`], the newest code
//!   only, `otp_max_attempts` guesses, single use) and an activation link
//!   ([`Accounts::activate`]: signed, expiring, dead once the address is verified or changed).
//!   [`Accounts::resend_verification`] sends a new one after a doubling cooldown.
//! * With `"mandatory"`, [`Accounts::check_login`] refuses unverified users after a correct
//!   password ([`super::LoginError::Unverified`]).
//!
//! No answer here tells whether an address has an account: verifying a code and asking for a
//! new one answer the same for unknown, verified and pending addresses (the limits are counted
//! per address and per client address whatever the account, and the email goes out from a
//! background task). The one exception is registration itself, which must say "this email
//! address is taken"; every registration attempt counts against `accounts.registrations_per_ip`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::Utc;
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::links::{decode_uid, encode_uid, LinkPurpose};
use super::otp::{CodeCheck, CodeFor, NewCode};
use super::password::{HashError, PasswordPolicy, UserInputs};
use super::{ip_prefix, Account, Accounts};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::EmailVerification;
use crate::db::one_time_codes::VERIFY_EMAIL;
use crate::db::schema::{one_time_codes, users};
use crate::db::users::UserRow;
use crate::db::{self, DbConnection, DbError};
use crate::domain::{Email, PersonName, Username};
use crate::limits::{self, LimitError, RetryAfter, Rule};
use crate::mail::{greeting_name, MailError, VerificationEmail};

/// Requests for a verification email accepted per client IP (IPv6: per /64) per
/// `rate_limits.window_seconds`, whatever the addresses (as [`super::reset::RESETS_PER_IP`]).
pub const RESENDS_PER_IP: u32 = 20;

/// The window of the per-address resend cooldown: the cooldown doubles with each request
/// within it, and never exceeds it.
const RESEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// RFC 8176 methods of a login completed by verifying the address: the password, given
/// earlier in the same browser, and the emailed one-time code (or link).
pub const AMR_PASSWORD_AND_CODE: &str = "pwd otp";
/// Longest derived username before its digits (Django's 150 leaves room for them).
const MAX_DERIVED_USERNAME_CHARS: usize = 140;

/// What a person fills in to register.
#[derive(Debug)]
pub struct Registration {
    /// Email address as typed.
    pub email: String,
    /// Username as typed; `None` or blank to derive one from the email address.
    pub username: Option<String>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Password.
    pub password: SecretString,
    /// The password again.
    pub confirm_password: SecretString,
}

/// Messages for the fields of a form: field name → sentence fragments.
pub type FieldErrors = BTreeMap<&'static str, Vec<String>>;

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `accounts.registration = "closed"`.
    #[error("registration is closed")]
    Closed,
    /// Some fields are wrong; the messages are for the user.
    #[error("the registration has errors")]
    Invalid(FieldErrors),
    /// Too many registrations from this client address.
    #[error("too many registrations from this address; try again in {} seconds", .0.0)]
    Limited(RetryAfter),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A new account.
#[derive(Debug)]
pub struct Registered {
    /// The user, not yet verified.
    pub user: Account,
    /// The verification policy the account was created under.
    pub verification: EmailVerification,
    /// Whether the verification email went out: `None` when none was due (policy `off`),
    /// `Some(false)` when sending failed (logged; the user can ask for a new one).
    pub email_sent: Option<bool>,
}

/// Why a verification code was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The code was not accepted: wrong, expired, used up by wrong guesses, or there is no code
    /// for this address (unknown, already verified, or none sent). Deliberately one answer, so
    /// that it tells nothing about the address.
    #[error("the code is wrong or has expired, or no code is waiting for this address")]
    Rejected,
    /// Too many code guesses from this client address (`rate_limits.code_guesses_per_ip`).
    #[error("too many codes were tried from this address; try again in {} seconds", .0.0)]
    Limited(RetryAfter),
    /// `accounts.email_verification = "off"`.
    #[error("email verification is switched off")]
    Disabled,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why an activation link was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// Malformed, expired, for another account state (already verified, address changed), or
    /// for no user.
    #[error("the activation link is invalid or has expired")]
    InvalidLink,
    /// `accounts.email_verification = "off"`.
    #[error("email verification is switched off")]
    Disabled,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a verification email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// The cooldown for this address has not passed, or this client address asked too often.
    #[error("a new code can be sent in {} seconds", .0.0)]
    Limited(RetryAfter),
    /// `accounts.email_verification = "off"`.
    #[error("email verification is switched off")]
    Disabled,
    /// The mail server did not take the message (logged).
    #[error(transparent)]
    Mail(#[from] MailError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A limit's refusal as each service error's `Limited` variant, storage failures as `Db`.
macro_rules! from_limit_error {
    ($($error:ident),*) => {$(
        impl From<LimitError> for $error {
            fn from(e: LimitError) -> Self {
                match e {
                    LimitError::Limited(retry) | LimitError::Reached(retry) => Self::Limited(retry),
                    LimitError::Db(e) => Self::Db(e),
                }
            }
        }
    )*};
}

from_limit_error!(RegisterError, VerifyError, ResendError);

impl Accounts {
    /// Registers a new account from `ip` and, unless verification is off, emails the
    /// verification code and link. The account stays when the email cannot be sent.
    ///
    /// Every attempt — valid or not, refused ones included — counts against
    /// `accounts.registrations_per_ip` per `rate_limits.window_seconds`, before anything is
    /// checked: the checks cost CPU, so a client must not get them for free (the first lock in a
    /// window is the audit event `registration.locked`). The password's length is checked at
    /// once; its validators and its hash run on the blocking pool behind the hashing semaphore.
    ///
    /// # Errors
    /// See [`RegisterError`].
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        form: Registration,
        ip: Option<IpAddr>,
    ) -> Result<Registered, RegisterError> {
        let settings = self.settings().clone();
        if !settings.registration_open {
            return Err(RegisterError::Closed);
        }
        if let Some(ip) = ip {
            self.count_registration(&registration_bucket(ip), Some(ip))
                .await?;
        }
        let checked = check_form(&form, &settings.allowed_email_domains, self.hasher.policy());
        let mut errors = checked.errors;
        if let Some(email) = &checked.email {
            let email = email.as_str().to_owned();
            let username = checked.username.clone();
            let taken = self
                .db
                .read(move |conn| taken(conn, &email, username.as_ref()).map_err(DbError::from))
                .await?;
            merge(&mut errors, taken);
        }
        if checked.password_length_ok {
            let inputs = checked.policy_inputs.borrow();
            for problem in self.hasher.check(&form.password, &inputs).await? {
                errors.entry("password").or_default().push(problem);
            }
        }
        let (Some(email), true) = (checked.email, errors.is_empty()) else {
            return Err(RegisterError::Invalid(errors));
        };

        let hash = self.hasher.hash(form.password).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let event = AuditEvent::new("user.registered")
            .by(&Actor::user(id.clone(), ip))
            .user(id.clone());
        let row = UserRow {
            id,
            // Chosen inside the transaction.
            username: String::new(),
            email: email.as_str().to_owned(),
            first_name: form.first_name.trim().to_owned(),
            last_name: form.last_name.trim().to_owned(),
            password_hash: Some(hash),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified: false,
            date_joined: db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        };
        let given = checked.username;
        let inserted = self
            .db
            .write(move |conn| {
                conn.transaction(|conn| insert_new_user(conn, row, given, &email, event))
                    .or_else(|e| match e {
                        // A concurrent registration won the race to the unique index.
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        ) => Ok(Err(FieldErrors::from([(
                            "email",
                            vec![
                                "an account with this email address or username already exists"
                                    .to_owned(),
                            ],
                        )]))),
                        other => Err(DbError::from(other)),
                    })
            })
            .await?;
        let user = inserted.map_err(RegisterError::Invalid)?;

        let email_sent = match settings.email_verification {
            EmailVerification::Off => None,
            _ => Some(match self.send_verification_code(&user, true).await {
                Ok(()) => true,
                // The account stands; the person can ask for a new code. (The first code of a
                // new account has no cooldown; a mail failure was logged by the sender.)
                Err(e) => {
                    if let ResendError::Db(e) = &e {
                        tracing::error!(error = %e, "no verification code could be stored");
                    }
                    false
                }
            }),
        };
        Ok(Registered {
            user: Account::from(user),
            verification: settings.email_verification,
            email_sent,
        })
    }

    /// Counts a registration attempt from `ip` in `bucket` ([`registration_bucket`]); the first refusal in a window is
    /// the audit event `registration.locked`.
    async fn count_registration(
        &self,
        bucket: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), RegisterError> {
        let limit = self.settings().registrations_per_ip;
        match self
            .limiter
            .attempt(vec![(bucket.to_owned(), limit)], self.limits.window)
            .await
        {
            Ok(()) => Ok(()),
            Err(LimitError::Reached(retry)) => {
                self.audit
                    .record(
                        AuditEvent::new("registration.locked")
                            .ip(ip)
                            .detail("retry_after_seconds", retry.0),
                    )
                    .await?;
                Err(RegisterError::Limited(retry))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `user` must verify their address before logging in: the policy is
    /// `"mandatory"` and the address is not verified.
    #[must_use]
    pub(super) fn must_verify(&self, user: &UserRow) -> bool {
        self.settings().email_verification == EmailVerification::Mandatory && !user.email_verified
    }

    /// Emails `user` a new verification code and activation link (the older code stops
    /// working), once the doubling cooldown since the last code has passed. The account is read
    /// again first: the code and link are for the address it has now (nothing is sent when it
    /// no longer exists). A send failure is logged here, without the code or link.
    ///
    /// # Errors
    /// [`ResendError::Limited`] while the cooldown runs, [`ResendError::Mail`],
    /// [`ResendError::Disabled`], [`ResendError::Db`].
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn send_verification(&self, user: &Account) -> Result<(), ResendError> {
        match self.find_row(user.id.clone()).await? {
            Some(row) => self.send_verification_code(&row, true).await,
            None => Ok(()),
        }
    }

    /// Emails `user` a new verification code and activation link; with `cooldown`, only once
    /// the doubling cooldown since their last code has passed ([`Accounts::send_verification`]).
    /// Without it for [`Accounts::resend_verification`], whose per-address limits already hold
    /// the same cooldown (and hold it for every address, so that they reveal nothing).
    pub(super) async fn send_verification_code(
        &self,
        user: &UserRow,
        cooldown: bool,
    ) -> Result<(), ResendError> {
        if self.settings().email_verification == EmailVerification::Off {
            return Err(ResendError::Disabled);
        }
        let code = self
            .new_code(
                &user.id,
                VERIFY_EMAIL,
                NewCode {
                    // A verification code vouches for the address it was sent to, and only
                    // that one: the address is kept in the row's otherwise unused `scope`, and
                    // the code does not verify a different address the account has moved to.
                    scope: Some(user.email.clone()),
                    skip_cooldown: !cooldown,
                    ..NewCode::default()
                },
            )
            .await?;
        let token = self.links().make(LinkPurpose::Activation, user, Utc::now());
        let email = VerificationEmail {
            name: greeting_name(&user.first_name, &user.username),
            code,
            minutes: self.settings().otp_expiration.as_secs().div_ceil(60),
            link: self.public_url(&format!(
                "/accounts/activate/{}/{token}/",
                encode_uid(&user.id)
            )),
        };
        self.mailer()
            .send(&user.email, &email)
            .await
            .inspect_err(|e| {
                tracing::error!(error = %e, "the verification email could not be sent");
            })?;
        Ok(())
    }

    /// Asks for a new verification email to `email` from the client address `ip`. Answers the
    /// same for every address — pending, verified, unknown or malformed: the limits are counted
    /// per address whatever account has it (a cooldown from `accounts.resend_cooldown_seconds`
    /// doubling with each request within the hour, as for codes) and per client address
    /// ([`RESENDS_PER_IP`] per `rate_limits.window_seconds`); then a background task sends the
    /// email if the address belongs to an active account waiting for verification, so the
    /// answer takes as long either way. A send failure is logged.
    ///
    /// # Errors
    /// [`ResendError::Limited`] when a limit refuses (for any address alike),
    /// [`ResendError::Disabled`], [`ResendError::Db`].
    #[tracing::instrument(skip_all)]
    pub async fn resend_verification(
        &self,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), ResendError> {
        if self.settings().email_verification == EmailVerification::Off {
            return Err(ResendError::Disabled);
        }
        let typed = email.trim().to_lowercase();
        let mut rules: Vec<Rule> = ip
            .map(|ip| {
                Rule::max(
                    limits::bucket("verify_resend:ip", &ip_prefix(ip)),
                    RESENDS_PER_IP,
                    self.limits.window,
                )
            })
            .into_iter()
            .collect();
        rules.push(Rule::delay(
            limits::bucket("verify_resend:address", &typed),
            1,
            self.settings().resend_cooldown,
            RESEND_WINDOW,
            RESEND_WINDOW,
        ));
        self.limiter.take(rules).await?;
        let accounts = self.clone();
        // In the request's span, so that its log lines carry the request id.
        let task = async move {
            let result = match accounts.pending_user(&typed).await {
                Ok(Some(user)) => accounts.send_verification_code(&user, false).await,
                Ok(None) => Ok(()),
                Err(e) => Err(ResendError::Db(e)),
            };
            if let Err(e) = result {
                // A mail failure was logged by the sender.
                if !matches!(e, ResendError::Mail(_)) {
                    tracing::error!(error = %e, "the verification email could not be sent");
                }
            }
        };
        tokio::spawn(tracing::Instrument::in_current_span(task));
        Ok(())
    }

    /// Verifies the address `email` with the emailed `code`, entered from `ip`: the account's
    /// address becomes verified (audit `email.verified`), and its other codes and activation
    /// links die. Every guess counts against `rate_limits.code_guesses_per_ip` first, whatever
    /// the address (a right code is taken back), so one client address can burn only so many
    /// of the owners' attempts.
    ///
    /// # Errors
    /// [`VerifyError::Rejected`] for every refused code, whatever the reason and whatever the
    /// address; [`VerifyError::Limited`]; [`VerifyError::Disabled`]; [`VerifyError::Db`].
    #[tracing::instrument(skip_all)]
    pub async fn verify_email_code(
        &self,
        email: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Account, VerifyError> {
        if self.settings().email_verification == EmailVerification::Off {
            return Err(VerifyError::Disabled);
        }
        let guess = self.count_code_guess(ip).await?;
        let Some(user) = self.pending_user(email).await? else {
            return Err(VerifyError::Rejected);
        };
        let purpose = CodeFor::User {
            user_id: &user.id,
            purpose: VERIFY_EMAIL,
        };
        match self.check_code(purpose, code).await? {
            // Sent to the address the account still has.
            CodeCheck::Valid(row) if row.scope.as_deref() == Some(user.email.as_str()) => {
                let verified = self
                    .mark_verified(&user, ip, "code")
                    .await?
                    .ok_or(VerifyError::Rejected)?;
                self.forgive_code_guess(guess).await?;
                Ok(Account::from(verified))
            }
            _ => Err(VerifyError::Rejected),
        }
    }

    /// Verifies an address with the activation link `/…/activate/<uidb64>/<token>/`. Used
    /// once: the verified state kills the link.
    ///
    /// # Errors
    /// See [`ActivationError`].
    #[tracing::instrument(skip_all)]
    pub async fn activate(
        &self,
        uidb64: &str,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<Account, ActivationError> {
        if self.settings().email_verification == EmailVerification::Off {
            return Err(ActivationError::Disabled);
        }
        let Some(id) = decode_uid(uidb64) else {
            return Err(ActivationError::InvalidLink);
        };
        let Some(user) = self.find_row(id).await?.filter(|u| u.is_active) else {
            return Err(ActivationError::InvalidLink);
        };
        let max_age = i64::try_from(self.settings().activation_link.as_secs()).unwrap_or(i64::MAX);
        if !self
            .links()
            .check(LinkPurpose::Activation, &user, token, max_age, Utc::now())
        {
            return Err(ActivationError::InvalidLink);
        }
        self.mark_verified(&user, ip, "link")
            .await?
            .map(Account::from)
            .ok_or(ActivationError::InvalidLink)
    }

    /// Records the login of a browser that proved `user`'s password earlier in the
    /// verification flow (it registered, or logged in while unverified) and has now verified
    /// the address: `login.success` with `amr` = [`AMR_PASSWORD_AND_CODE`], and `last_login`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn login_after_verification(
        &self,
        user: &Account,
        ip: Option<IpAddr>,
    ) -> Result<(), DbError> {
        let id = user.id.clone();
        let event = AuditEvent::new("login.success")
            .by(&Actor::user(id.clone(), ip))
            .user(id.clone())
            .detail("amr", AMR_PASSWORD_AND_CODE)
            .detail("after", "email_verification");
        self.db
            .write(move |conn| {
                conn.transaction(|conn| {
                    db::users::touch_last_login(conn, &id, db::now())?;
                    audit::record(conn, event)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// The active, unverified account whose address is `email`.
    async fn pending_user(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        self.db
            .read(move |conn| {
                users::table
                    .filter(users::email.eq(email.as_str()))
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()
                    .map_err(DbError::from)
            })
            .await
            .map(|user| user.filter(|u| u.is_active && !u.email_verified))
    }

    /// Marks `user`'s address verified — if it is still the address `user` holds and not yet
    /// verified, so that a link or code is used once — retires their verification codes and
    /// records `email.verified`, in one transaction. `None` when nothing changed.
    async fn mark_verified(
        &self,
        user: &UserRow,
        ip: Option<IpAddr>,
        method: &'static str,
    ) -> Result<Option<UserRow>, DbError> {
        let id = user.id.clone();
        let email = user.email.clone();
        let event = AuditEvent::new("email.verified")
            .by(&Actor::user(id.clone(), ip))
            .user(id.clone())
            .detail("method", method);
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let changed = diesel::update(
                        users::table
                            .find(&id)
                            .filter(users::email.eq(&email))
                            .filter(users::email_verified.eq(false)),
                    )
                    .set(users::email_verified.eq(true))
                    .execute(conn)?;
                    if changed != 1 {
                        return Ok(None);
                    }
                    diesel::update(
                        one_time_codes::table
                            .filter(one_time_codes::user_id.eq(&id))
                            .filter(one_time_codes::purpose.eq(VERIFY_EMAIL))
                            .filter(one_time_codes::used_at.is_null()),
                    )
                    .set(one_time_codes::used_at.eq(Some(db::now())))
                    .execute(conn)?;
                    audit::record(conn, event)?;
                    db::users::find(conn, &id)
                })
                .map_err(DbError::from)
            })
            .await
    }
}

/// Inserts `row` (inside the caller's transaction) with the username `given`, or one derived
/// from `email`, after checking again that nothing is taken: another registration may have
/// taken the address or name while the password was hashed. Records `event`.
fn insert_new_user(
    conn: &mut DbConnection,
    mut row: UserRow,
    given: Option<Username>,
    email: &Email,
    event: AuditEvent,
) -> QueryResult<Result<UserRow, FieldErrors>> {
    let taken = taken(conn, email.as_str(), given.as_ref())?;
    if !taken.is_empty() {
        return Ok(Err(taken));
    }
    row.username = match given {
        Some(name) => name.as_str().to_owned(),
        None => free_username(conn, &derive_username(email))?,
    };
    db::users::insert(conn, &row)?;
    audit::record(conn, event.detail("username", row.username.clone()))?;
    Ok(Ok(row))
}

/// The form's values after the checks that need no database.
struct CheckedForm {
    email: Option<Email>,
    /// The username given, parsed; `None` when it is to be derived.
    username: Option<Username>,
    errors: FieldErrors,
    /// Whether the password's length passed (so that its validators are worth running).
    password_length_ok: bool,
    /// The details the password must not resemble.
    policy_inputs: PolicyInputs,
}

/// The user's details for the password validators, as typed (owned, so that the validators can
/// run after the form is checked).
struct PolicyInputs {
    username: String,
    email: String,
    first_name: String,
    last_name: String,
}

impl PolicyInputs {
    fn borrow(&self) -> UserInputs<'_> {
        UserInputs {
            username: &self.username,
            email: &self.email,
            first_name: &self.first_name,
            last_name: &self.last_name,
        }
    }
}

/// Checks what needs no database and little CPU: email syntax and domain, username syntax, name
/// lengths, the password's length and the confirmation. The password validators are left to
/// [`PasswordHasher::check`](super::PasswordHasher::check).
fn check_form(
    form: &Registration,
    allowed_domains: &[String],
    policy: &PasswordPolicy,
) -> CheckedForm {
    let mut errors = FieldErrors::new();
    let mut add = |field: &'static str, message: String| {
        errors.entry(field).or_default().push(message);
    };
    let email = if form.email.trim().is_empty() {
        add("email", "an email address is required".to_owned());
        None
    } else {
        match Email::parse(&form.email) {
            Ok(email) => {
                if domain_allowed(&email, allowed_domains) {
                    Some(email)
                } else {
                    add(
                        "email",
                        format!(
                            "registration is open only to addresses at {}",
                            allowed_domains.join(", ")
                        ),
                    );
                    None
                }
            }
            Err(message) => {
                add("email", message);
                None
            }
        }
    };
    let username = match form.username.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match Username::parse(raw) {
            Ok(name) => Some(name),
            Err(message) => {
                add("username", message);
                None
            }
        },
    };
    for (field, what, value) in [
        ("first_name", "first name", &form.first_name),
        ("last_name", "last name", &form.last_name),
    ] {
        if let Err(message) = PersonName::parse(what, value) {
            add(field, message);
        }
    }
    let typed_email = form.email.trim().to_lowercase();
    let username_for_policy = match (&username, &email) {
        (Some(name), _) => name.as_str().to_owned(),
        (None, Some(email)) => derive_username(email),
        (None, None) => form
            .username
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let policy_inputs = PolicyInputs {
        username: username_for_policy,
        email: email
            .as_ref()
            .map_or(typed_email, |e| e.as_str().to_owned()),
        first_name: form.first_name.trim().to_owned(),
        last_name: form.last_name.trim().to_owned(),
    };
    let length = policy.length_problem(form.password.expose_secret());
    let password_length_ok = length.is_none();
    if let Some(problem) = length {
        add("password", problem);
    }
    if form.password.expose_secret() != form.confirm_password.expose_secret() {
        add(
            "confirm_password",
            "the two passwords must match".to_owned(),
        );
    }
    CheckedForm {
        email,
        username,
        errors,
        password_length_ok,
        policy_inputs,
    }
}

/// Adds `more` to `errors`.
fn merge(errors: &mut FieldErrors, more: FieldErrors) {
    for (field, messages) in more {
        errors.entry(field).or_default().extend(messages);
    }
}

/// Errors for an email address or username that is taken. Logins accept a username or an
/// email address, so the two share one namespace: a username may not equal another account's
/// address, nor an address another account's username; usernames compare without regard to
/// case.
fn taken(
    conn: &mut DbConnection,
    email: &str,
    username: Option<&Username>,
) -> QueryResult<FieldErrors> {
    let mut errors = FieldErrors::new();
    let email_taken = users::table
        .filter(
            users::email
                .eq(email)
                .or(db::lower(users::username).eq(email)),
        )
        .select(users::id)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if email_taken {
        errors.insert(
            "email",
            vec!["an account with this email address already exists".to_owned()],
        );
    }
    if let Some(name) = username {
        let lowered = name.as_str().to_lowercase();
        let name_taken = users::table
            .filter(
                db::lower(users::username)
                    .eq(&lowered)
                    .or(users::email.eq(&lowered)),
            )
            .select(users::id)
            .first::<String>(conn)
            .optional()?
            .is_some();
        if name_taken {
            errors.insert(
                "username",
                vec!["a user with this username already exists".to_owned()],
            );
        }
    }
    Ok(errors)
}

/// A username made from the email's local part: the characters a username may hold, at most
/// [`MAX_DERIVED_USERNAME_CHARS`]; `user` when none is left.
fn derive_username(email: &Email) -> String {
    username_base(email.as_str().rsplit_once('@').map_or("", |(l, _)| l))
}

/// A username made from `wanted` (an email's local part, a name at an upstream provider): the
/// characters a username may hold except `@` (so that it never reads as someone's address), at
/// most [`MAX_DERIVED_USERNAME_CHARS`]; `user` when none is left.
#[must_use]
pub fn username_base(wanted: &str) -> String {
    let name: String = wanted
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
        .take(MAX_DERIVED_USERNAME_CHARS)
        .collect();
    if name.is_empty() {
        "user".to_owned()
    } else {
        name
    }
}

/// The rate-limit bucket of accounts made from `ip`'s network (`accounts.registrations_per_ip`):
/// password registration attempts and accounts made by upstream sign-in count in it together.
#[must_use]
pub fn registration_bucket(ip: IpAddr) -> String {
    limits::bucket("register:ip", &ip_prefix(ip))
}

/// Whether `email` may register under `accounts.allowed_email_domains` (`allowed`; empty
/// allows every domain). Also applied to accounts made by upstream sign-in.
#[must_use]
pub fn domain_allowed(email: &Email, allowed: &[String]) -> bool {
    let domain = email.as_str().rsplit_once('@').map_or("", |(_, d)| d);
    allowed.is_empty() || allowed.iter().any(|d| d == domain)
}

/// `base`, or `base` followed by the smallest number from 2 up that no username has (compared
/// without regard to case). Also used for accounts made by upstream sign-in
/// ([`crate::upstream`]).
///
/// # Errors
/// Query failures only.
pub fn free_username(conn: &mut DbConnection, base: &str) -> QueryResult<String> {
    let lowered = base.to_lowercase();
    let pattern = format!(
        "{}%",
        lowered
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let existing: BTreeSet<String> = users::table
        .filter(db::lower(users::username).like(pattern).escape('\\'))
        .select(db::lower(users::username))
        .load::<String>(conn)?
        .into_iter()
        .collect();
    if !existing.contains(&lowered) {
        return Ok(base.to_owned());
    }
    // Among `existing.len() + 1` numbers one is free.
    let n = (2..=existing.len() + 2)
        .find(|n| !existing.contains(&format!("{lowered}{n}")))
        .unwrap_or(2);
    Ok(format!("{base}{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(email: &str, username: Option<&str>, password: &str, confirm: &str) -> Registration {
        Registration {
            email: email.to_owned(),
            username: username.map(str::to_owned),
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            password: SecretString::from(password.to_owned()),
            confirm_password: SecretString::from(confirm.to_owned()),
        }
    }

    #[test]
    fn usernames_come_from_the_local_part() {
        let email = |s: &str| Email::parse(s).expect("email");
        assert_eq!(
            derive_username(&email("Ada.L+news@Example.com")),
            "ada.l+news"
        );
        assert_eq!(derive_username(&email("!#$%@example.com")), "user");
        assert_eq!(
            derive_username(&email(&format!("{}@example.com", "a".repeat(200))))
                .chars()
                .count(),
            MAX_DERIVED_USERNAME_CHARS
        );
    }

    #[test]
    fn each_problem_is_reported_at_its_field() {
        let good = "blue tiger morning lamp";
        let policy = PasswordPolicy::default();
        let ok = check_form(&form("ada@example.com", None, good, good), &[], &policy);
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        assert!(ok.password_length_ok);
        assert_eq!(ok.policy_inputs.username, "ada");
        let bad = check_form(
            &form("not-an-address", Some("a b"), "12345678", "87654321"),
            &[],
            &policy,
        );
        assert_eq!(
            bad.errors.keys().copied().collect::<Vec<_>>(),
            ["confirm_password", "email", "password", "username"]
        );
        assert!(!bad.password_length_ok);
        let elsewhere = check_form(
            &form("ada@elsewhere.org", None, good, good),
            &["example.com".to_owned()],
            &policy,
        );
        assert_eq!(
            elsewhere.errors["email"],
            ["registration is open only to addresses at example.com"]
        );
        // A control character in one name is that name's error, whatever the other fields.
        let named = check_form(
            &Registration {
                last_name: "Love\u{0}lace".to_owned(),
                ..form("ada@example.com", None, good, good)
            },
            &[],
            &policy,
        );
        assert_eq!(
            named.errors.keys().copied().collect::<Vec<_>>(),
            ["last_name"]
        );
        assert_eq!(
            named.errors["last_name"],
            ["the last name may not contain control characters such as line breaks, tabs or NUL"]
        );
    }
}
