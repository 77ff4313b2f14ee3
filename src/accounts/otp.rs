//! Emailed one-time codes: 6 random digits, stored as SHA-256, valid for
//! `accounts.otp_expiration_seconds`, dead after `accounts.otp_max_attempts` wrong guesses, used
//! once. Only a user's newest code of a purpose works. Sending a new one waits for a cooldown
//! that doubles with each code sent within the last hour (60 s, 120 s, 240 s, … by default),
//! counted in the database so that it holds on every node.

use chrono::TimeDelta;
use diesel::Connection;
use rand::Rng;

use std::net::IpAddr;

use super::{ip_prefix, Accounts};
use crate::db::one_time_codes::{self, CodeRow};
use crate::db::{self, users, DbError};
use crate::limits::{self, LimitError, RetryAfter, Rule};
use crate::secret;

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// What checking a code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code, now used.
    Valid(Box<CodeRow>),
    /// Wrong code; this many guesses are left.
    Wrong {
        /// Guesses left before the code dies.
        remaining: u32,
    },
    /// The code expired.
    Expired,
    /// Too many wrong guesses: the code is dead.
    Exhausted,
    /// There is no unused code.
    Missing,
}

/// A new random code: `CODE_DIGITS` decimal digits, uniformly distributed.
#[must_use]
pub fn generate_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_DIGITS)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Where to find the code being checked.
#[derive(Clone, Copy, Debug)]
pub enum CodeFor<'a> {
    /// The user's newest unused code of this purpose.
    User {
        /// The user.
        user_id: &'a str,
        /// [`one_time_codes::VERIFY_EMAIL`] or [`one_time_codes::LOGIN`].
        purpose: &'static str,
    },
    /// The code tied to this login challenge handle (plain; its hash is looked up).
    Challenge(&'a str),
}

/// A code to create.
#[derive(Clone, Debug, Default)]
pub struct NewCode {
    /// Plain challenge handle to tie the code to (login codes); stored hashed.
    pub challenge: Option<String>,
    /// The client of an mfa-otp flow.
    pub client_id: Option<String>,
    /// The scope it asked for.
    pub scope: Option<String>,
    /// Issue it even when the resend cooldown has not passed (the caller holds a cooldown of
    /// its own).
    pub skip_cooldown: bool,
    /// When the login this code completes began ([`super::PasswordLogin::began`]), recorded as
    /// the code's `created_at` (never later than now): the mfa-otp grant counts its login as
    /// begun then, so a password change, reset or "sign out everywhere" that lands between the
    /// password check and the code's issue still ends it. `None`: now.
    pub began: Option<chrono::NaiveDateTime>,
}

/// A code guess counted against the client address: the bucket, to take the guess back when the
/// code was right. `None` when the address is unknown or the limit is off.
#[derive(Debug)]
pub struct CountedGuess(Option<String>);

impl Accounts {
    /// Counts one code guess from `ip` against `rate_limits.code_guesses_per_ip`, across
    /// accounts and whatever the guess names (so that probing unknown addresses or handles
    /// answers like probing real ones). Past the limit nothing is counted and the guess must
    /// not be checked: this bounds how many of the owners' attempts one address can burn.
    ///
    /// # Errors
    /// [`LimitError::Limited`] when the limit refuses; storage failures.
    pub async fn count_code_guess(&self, ip: Option<IpAddr>) -> Result<CountedGuess, LimitError> {
        let max = self.limits.code_guesses_per_ip;
        let Some(ip) = ip.filter(|_| max > 0) else {
            return Ok(CountedGuess(None));
        };
        let bucket = limits::bucket("code:ip", &ip_prefix(ip));
        self.limiter
            .take(vec![Rule::max(bucket.clone(), max, self.limits.window)])
            .await?;
        Ok(CountedGuess(Some(bucket)))
    }

    /// Takes back a guess that turned out right: only wrong guesses use up the limit.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn forgive_code_guess(&self, guess: CountedGuess) -> Result<(), DbError> {
        match guess.0 {
            Some(bucket) => self.limiter.succeeded(vec![bucket], Vec::new()).await,
            None => Ok(()),
        }
    }

    /// Creates a new code of `purpose` for the user (the older ones stop working) and returns
    /// it in plain text for the email.
    ///
    /// # Errors
    /// [`LimitError::Limited`] with how long to wait when the cooldown has not passed; storage
    /// failures.
    pub async fn new_code(
        &self,
        user_id: &str,
        purpose: &'static str,
        extra: NewCode,
    ) -> Result<String, LimitError> {
        let settings = self.settings().clone();
        let user_id = user_id.to_owned();
        let code = generate_code();
        let code_hash = secret::sha256_hex(&code);
        let issued = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    // Lock the user's row first so that parallel requests check the cooldown
                    // one after the other, and only one code is issued.
                    users::lock(conn, &user_id)?;
                    let now = db::now();
                    let (sent, newest) = one_time_codes::sent_since(
                        conn,
                        &user_id,
                        purpose,
                        now - TimeDelta::hours(1),
                    )?;
                    if let (Some(newest), true, false) = (newest, sent > 0, extra.skip_cooldown) {
                        let wait = cooldown(settings.resend_cooldown.as_secs(), sent);
                        let ready = newest + TimeDelta::seconds(wait);
                        if ready > now {
                            let secs = (ready - now).num_seconds().max(1).unsigned_abs();
                            return Ok(Err(RetryAfter(secs)));
                        }
                    }
                    let ttl = TimeDelta::from_std(settings.otp_expiration)
                        .unwrap_or(TimeDelta::minutes(10));
                    one_time_codes::replace(
                        conn,
                        &CodeRow {
                            id: uuid::Uuid::new_v4().to_string(),
                            user_id: user_id.clone(),
                            purpose: purpose.to_owned(),
                            code_hash,
                            challenge_hash: extra.challenge.as_deref().map(secret::sha256_hex),
                            client_id: extra.client_id,
                            scope: extra.scope,
                            created_at: extra.began.map_or(now, |began| began.min(now)),
                            expires_at: now + ttl,
                            attempts: 0,
                            used_at: None,
                        },
                    )?;
                    Ok(Ok(code))
                })
                .map_err(DbError::from)
            })
            .await?;
        issued.map_err(LimitError::Limited)
    }

    /// Checks `code` against the code `which` names: the right code is used up at once; a
    /// wrong one counts a guess (the code dies at the limit). Comparison is constant-time.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn check_code(&self, which: CodeFor<'_>, code: &str) -> Result<CodeCheck, DbError> {
        let max = i64::from(self.settings().otp_max_attempts);
        let presented = secret::sha256_hex(code.trim());
        let (user_id, purpose, challenge) = match which {
            CodeFor::User { user_id, purpose } => (Some(user_id.to_owned()), purpose, None),
            CodeFor::Challenge(c) => (None, "", Some(secret::sha256_hex(c))),
        };
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let row = match (&user_id, &challenge) {
                        (Some(user), _) => one_time_codes::latest_unused(conn, user, purpose)?,
                        (None, Some(hash)) => one_time_codes::find_by_challenge(conn, hash)?
                            .filter(|r| r.used_at.is_none()),
                        (None, None) => None,
                    };
                    let Some(row) = row else {
                        return Ok(CodeCheck::Missing);
                    };
                    let now = db::now();
                    if row.expires_at <= now {
                        return Ok(CodeCheck::Expired);
                    }
                    // Every guess is counted before it is compared, under the row lock, so
                    // parallel guesses cannot get past the limit (the right one counts too).
                    if !one_time_codes::count_guess_below(conn, &row.id, max)? {
                        return Ok(if row.attempts >= max {
                            CodeCheck::Exhausted
                        } else {
                            CodeCheck::Missing
                        });
                    }
                    let attempts = row.attempts + 1;
                    if secret::ct_eq(row.code_hash.as_bytes(), presented.as_bytes()) {
                        if one_time_codes::mark_used(conn, &row.id, now)? {
                            return Ok(CodeCheck::Valid(Box::new(row)));
                        }
                        return Ok(CodeCheck::Missing);
                    }
                    if attempts >= max {
                        return Ok(CodeCheck::Exhausted);
                    }
                    Ok(CodeCheck::Wrong {
                        remaining: u32::try_from(max - attempts).unwrap_or(0),
                    })
                })
                .map_err(DbError::from)
            })
            .await
    }
}

/// Seconds to wait after the newest of `sent` codes sent within the hour: `base`, doubling with
/// each, at most an hour.
fn cooldown(base: u64, sent: i64) -> i64 {
    let doublings = u32::try_from(sent.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(12);
    let wait = base.saturating_mul(1u64 << doublings).min(3600);
    i64::try_from(wait).unwrap_or(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = generate_code();
            assert_eq!(code.len(), CODE_DIGITS);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn the_cooldown_doubles_up_to_an_hour() {
        assert_eq!(cooldown(60, 1), 60);
        assert_eq!(cooldown(60, 2), 120);
        assert_eq!(cooldown(60, 3), 240);
        assert_eq!(cooldown(60, 20), 3600);
    }
}
