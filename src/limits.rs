//! Brute-force limits backed by the `rate_limits` table, so that every node sees the same
//! counters.
//!
//! An attempt is counted *before* the expensive check (the password hash) and refused when the
//! count passes the limit; a success takes its count back. Counting first means that a burst of
//! parallel attempts cannot all slip past the limit while the first ones are still hashing.
//! Bucket names carry a SHA-256 of the user-supplied part, so they have a fixed length whatever
//! the input.

use std::time::Duration;

use chrono::TimeDelta;
use diesel::Connection;

use crate::db::{self, rate_limits, Db, DbError};
use crate::secret;

/// A limit was reached; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// The bucket name for `kind` (e.g. `login:account`) and a user-supplied `value`.
#[must_use]
pub fn bucket(kind: &str, value: &str) -> String {
    format!("{kind}:{}", secret::sha256_hex(value))
}

/// Shared limiter.
#[derive(Clone, Debug)]
pub struct Limiter {
    db: Db,
}

impl Limiter {
    /// A limiter over `db`.
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Counts one attempt in each of `buckets` (name, allowed attempts per window; 0 disables
    /// the bucket) and answers `Err(RetryAfter)` when any count is now past its limit.
    ///
    /// # Errors
    /// `Ok(Err(RetryAfter))` when limited; `Err(DbError)` when the database fails.
    pub async fn attempt(
        &self,
        buckets: Vec<(String, u32)>,
        window: Duration,
    ) -> Result<Result<(), RetryAfter>, DbError> {
        Ok(self
            .attempt_noting_lock(buckets, window)
            .await?
            .map_err(|(retry, _)| retry))
    }

    /// [`Limiter::attempt`], also telling whether this attempt is the one that crossed a limit
    /// (`true` once per bucket and window), so that a lock is recorded once, not on every
    /// refused attempt.
    ///
    /// # Errors
    /// `Ok(Err((RetryAfter, first)))` when limited; `Err(DbError)` when the database fails.
    pub async fn attempt_noting_lock(
        &self,
        buckets: Vec<(String, u32)>,
        window: Duration,
    ) -> Result<Result<(), (RetryAfter, bool)>, DbError> {
        let window = to_delta(window);
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let now = db::now();
                    let mut limited = None;
                    let mut first = false;
                    for (bucket, max) in buckets.iter().filter(|(_, max)| *max > 0) {
                        let (hits, until) = rate_limits::hit(conn, bucket, window, now)?;
                        if hits > i64::from(*max) {
                            first |= hits == i64::from(*max) + 1;
                            let secs = (until - now).num_seconds().max(1).unsigned_abs();
                            limited = Some(limited.map_or(secs, |s: u64| s.max(secs)));
                        }
                    }
                    Ok(limited.map_or(Ok(()), |s| Err((RetryAfter(s), first))))
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Takes back the attempt counted in `forgive` and forgets `clear` entirely.
    ///
    /// # Errors
    /// `DbError` when the database fails.
    pub async fn succeeded(&self, forgive: Vec<String>, clear: Vec<String>) -> Result<(), DbError> {
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    for bucket in &forgive {
                        rate_limits::forgive(conn, bucket)?;
                    }
                    for bucket in &clear {
                        rate_limits::clear(conn, bucket)?;
                    }
                    Ok(())
                })
                .map_err(DbError::from)
            })
            .await
    }
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
