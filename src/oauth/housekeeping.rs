//! Maintenance: `latchkey cleartokens` (and the scheduler's cleanup job) deletes what can no
//! longer be used; signing-key rotation by hand (`latchkey keys rotate`) or when due
//! (`oidc.rotate_keys_days`, the scheduler's rotation job) keeps replaced keys published for
//! as long as a token they signed can live.

use std::time::Duration;

use chrono::TimeDelta;
use diesel::Connection;

use super::OAuth;
use crate::db::{
    self, audit_events, codes, held_secrets, one_time_codes, rate_limits, signing_keys, tokens,
    upstream_used_states, user_sessions, DbError,
};
use crate::oidc::keys::KeyError;
use crate::oidc::SigningAlg;

impl OAuth {
    /// Deletes expired or revoked tokens, expired authorization codes, rate-limit windows
    /// older than the configured window, retired signing keys past their overlap, audit events
    /// older than `audit.retention_days`, browser-session rows that ended (or began) longer
    /// than `server.session_max_age_seconds` ago, one-time codes expired over a day ago, and new
    /// client secrets held for a view that never came (`held_secrets`), and the used states of
    /// upstream sign-ins past their lifetime and the exchanged ID tokens past theirs
    /// (`upstream_used_states`). Returns
    /// the first three counts.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn clear_expired(&self) -> Result<(usize, usize, usize), DbError> {
        // Some counters have a window of an hour whatever `rate_limits.window_seconds` is (the
        // per-address cooldowns of reset and verification emails): keep those too.
        let window = TimeDelta::from_std(self.cfg.rate_limits.window)
            .unwrap_or(TimeDelta::days(1))
            .max(TimeDelta::hours(1));
        let retention =
            TimeDelta::from_std(self.cfg.audit_retention).unwrap_or(TimeDelta::days(365));
        let session_age =
            TimeDelta::from_std(self.cfg.session_max_age).unwrap_or(TimeDelta::days(14));
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let now = db::now();
                    let t = tokens::delete_expired_or_revoked(conn, now)?;
                    let c = codes::delete_expired(conn, now)?;
                    let r = rate_limits::delete_older_than(conn, now - window)?;
                    // Signing keys whose last token has expired have left the JWKS already.
                    signing_keys::delete_expired(conn, now)?;
                    audit_events::delete_before(conn, now - retention)?;
                    user_sessions::delete_stale(conn, now - session_age)?;
                    // Codes expire within a day at most; a day more keeps the resend
                    // cooldown's history.
                    one_time_codes::delete_expired(conn, now - TimeDelta::days(1))?;
                    held_secrets::delete_expired(conn, now)?;
                    upstream_used_states::delete_expired(conn, now)?;
                    Ok((t, c, r))
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// How long a replaced signing key must stay published: the longest lifetime of a token
    /// it could have signed (ID tokens, JWT access tokens, and any client's access-token
    /// lifetime override), in seconds.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn signing_key_overlap(&self) -> Result<Duration, DbError> {
        let longest_client = self
            .clients
            .list()
            .await?
            .iter()
            .filter_map(|c| c.access_token_lifetime())
            .filter_map(|s| u64::try_from(s).ok())
            .max()
            .unwrap_or(0);
        Ok(self
            .cfg
            .lifetimes
            .access_token
            .max(self.cfg.lifetimes.id_token)
            .max(Duration::from_secs(longest_client)))
    }

    /// Rotates the signing keys of `algs` now (`latchkey keys rotate`), keeping the replaced
    /// keys published for [`OAuth::signing_key_overlap`]. Returns the new kids.
    ///
    /// # Errors
    /// [`KeyError`] when storage or key generation fails.
    pub async fn rotate_signing_keys(
        &self,
        algs: Vec<SigningAlg>,
    ) -> Result<Vec<String>, KeyError> {
        let overlap = self.signing_key_overlap().await?;
        self.keys.rotate(algs, overlap).await
    }

    /// Rotates every algorithm's signing key that has signed for `max_age` or longer
    /// (`oidc.rotate_keys_days`, checked by the scheduler), as [`OAuth::rotate_signing_keys`]
    /// does. Returns the new kids; none when nothing was due.
    ///
    /// # Errors
    /// [`KeyError`] when storage or key generation fails.
    pub async fn rotate_due_signing_keys(
        &self,
        max_age: Duration,
    ) -> Result<Vec<String>, KeyError> {
        let overlap = self.signing_key_overlap().await?;
        self.keys.rotate_due(max_age, overlap).await
    }
}
