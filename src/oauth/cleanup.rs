//! `latchkey cleartokens`: deletes what can no longer be used.

use chrono::TimeDelta;
use diesel::Connection;

use super::OAuth;
use crate::db::{self, audit_events, codes, rate_limits, signing_keys, tokens, DbError};

impl OAuth {
    /// Deletes expired or revoked tokens, expired authorization codes, rate-limit windows
    /// older than the configured window, retired signing keys past their overlap, and audit
    /// events older than `audit.retention_days`. Returns
    /// the first three counts.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn clear_expired(&self) -> Result<(usize, usize, usize), DbError> {
        let window = TimeDelta::from_std(self.cfg.rate_limits.window).unwrap_or(TimeDelta::days(1));
        let retention =
            TimeDelta::from_std(self.cfg.audit_retention).unwrap_or(TimeDelta::days(365));
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
                    Ok((t, c, r))
                })
                .map_err(DbError::from)
            })
            .await
    }
}
