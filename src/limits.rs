//! Brute-force limits backed by the `rate_limits` table, so that every node sees the same
//! counters. The design (which counter counts what, and why) is `## Limits` in
//! `docs/architecture.md`; this module has the mechanisms:
//!
//! * [`Limiter::check`] reads counters without touching them, and [`Limiter::count`] counts
//!   one hit. Password checks use the pair: check when the argon2 permit is taken, count only
//!   a failure, after the hash — so a correct password is never counted (a burst of correct
//!   logins cannot lock anyone), a refused attempt is never counted (it cannot extend a lock),
//!   and parallel guesses overshoot a limit by at most the hashes in flight.
//! * [`Limiter::take`] checks and counts in one transaction under the buckets' row locks, and
//!   counts nothing when it refuses (resends, code guesses).
//! * [`Limiter::attempt`] counts first and refuses past the limit (registrations, reset
//!   requests: cheap requests where counting every attempt is the point).
//!
//! A bucket either allows a number of hits per window ([`Allowance::Max`]) or, past a threshold,
//! asks for a delay after the last hit that doubles with each further hit
//! ([`Allowance::Delay`]): a slowdown rather than a lock.
//!
//! Bucket names carry a SHA-256 of the user-supplied part, so they have a fixed length whatever
//! the input. Every refusal counts in the `latchkey_limits_tripped_total` metric under its
//! bucket's kind ([`crate::metrics::limit_tripped`]).

use std::net::IpAddr;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;

use crate::db::rate_limits::Counter;
use crate::db::{self, rate_limits, Db, DbError};
use crate::secret;

/// A limit was reached; retry after this many seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Why a limited step did not go ahead: a limit refused it, or storage failed. Services whose
/// own error enums have a `Limited(RetryAfter)` variant convert this with `From`, so a limit is
/// an ordinary error (`?`) rather than an `Ok(Err(…))` inside a `Result`.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// A limit refused the step; retry after this long.
    #[error("a limit was reached; retry in {} seconds", .0.0)]
    Limited(RetryAfter),
    /// As [`LimitError::Limited`], and this attempt is the one that crossed the limit — once per
    /// bucket and window — so that the caller records a lock once, not on every refusal. Only
    /// [`Limiter::attempt`] tells the two apart.
    #[error("a limit was reached by this attempt; retry in {} seconds", .0.0)]
    Reached(RetryAfter),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The bucket name for `kind` (e.g. `login:account`) and a user-supplied `value`:
/// `kind:` followed by 64 hex digits.
#[must_use]
pub fn bucket(kind: &str, value: &str) -> String {
    format!("{kind}:{}", secret::sha256_hex(value))
}

/// The part of a client address that identifies one client for limits: the whole IPv4 address,
/// or the /64 prefix of an IPv6 address (one host usually holds a whole /64).
#[must_use]
pub fn ip_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// What a bucket allows within its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// At most this many hits per window, then refused until the window ends; 0 = no limit.
    Max(u32),
    /// Once `after` hits are counted in the window, each further attempt must come at least
    /// `base × 2^(hits − after)` (at most `cap`) after the latest hit; 0 = no limit. Never
    /// refuses for longer than `cap` after the latest hit.
    Delay {
        /// Hits allowed without delay.
        after: u32,
        /// The first delay.
        base: Duration,
        /// The longest delay.
        cap: Duration,
    },
}

/// One bucket, what it allows, and its window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The bucket name (see [`bucket`]).
    pub bucket: String,
    /// What it allows.
    pub allowance: Allowance,
    /// Window length: hits older than the window's start are forgotten.
    pub window: Duration,
}

impl Rule {
    /// At most `max` hits per `window` in `bucket` (0 = no limit).
    #[must_use]
    pub fn max(bucket: String, max: u32, window: Duration) -> Self {
        Self {
            bucket,
            allowance: Allowance::Max(max),
            window,
        }
    }

    /// Past `after` hits per `window` in `bucket`, a delay from `base` doubling to `cap`
    /// (0 = no limit).
    #[must_use]
    pub fn delay(
        bucket: String,
        after: u32,
        base: Duration,
        cap: Duration,
        window: Duration,
    ) -> Self {
        Self {
            bucket,
            allowance: Allowance::Delay { after, base, cap },
            window,
        }
    }

    /// Whether the rule limits anything.
    fn active(&self) -> bool {
        match self.allowance {
            Allowance::Max(max) => max > 0,
            Allowance::Delay { after, .. } => after > 0,
        }
    }

    /// The hit count at which the rule starts refusing or delaying.
    fn threshold(&self) -> i64 {
        i64::from(match self.allowance {
            Allowance::Max(max) => max,
            Allowance::Delay { after, .. } => after,
        })
    }

    /// How long the next attempt must wait, given the stored counter, or `None` when it may go
    /// ahead now.
    fn refusal(&self, counter: Option<&Counter>, now: NaiveDateTime) -> Option<RetryAfter> {
        if !self.active() {
            return None;
        }
        let counter = counter?;
        let window_end = counter
            .window_start
            .checked_add_signed(to_delta(self.window))
            .unwrap_or(NaiveDateTime::MAX);
        if window_end <= now || counter.hits < self.threshold() {
            return None;
        }
        let until = match self.allowance {
            Allowance::Max(_) => window_end,
            Allowance::Delay { base, cap, .. } => {
                let doublings = u32::try_from(counter.hits - self.threshold())
                    .unwrap_or(u32::MAX)
                    .min(30);
                let wait = base.saturating_mul(1 << doublings).min(cap);
                counter
                    .last_hit_at
                    .unwrap_or(counter.window_start)
                    .checked_add_signed(to_delta(wait))
                    .unwrap_or(NaiveDateTime::MAX)
                    // The window ends the slowdown too.
                    .min(window_end)
            }
        };
        (until > now).then(|| seconds_until(until, now))
    }
}

/// Seconds from `now` to `until`, rounded up, at least 1.
fn seconds_until(until: NaiveDateTime, now: NaiveDateTime) -> RetryAfter {
    let millis = (until - now).num_milliseconds().max(1).unsigned_abs();
    RetryAfter(millis.div_ceil(1000))
}

/// Why [`Limiter::take`] stopped: refused, or the database failed.
enum Stop {
    Refused(RetryAfter),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
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

    /// Whether an attempt may go ahead under `rules`, read without counting anything. The
    /// rules are looked at in order and the first refusal answers.
    ///
    /// # Errors
    /// [`LimitError::Limited`] when refused; [`LimitError::Db`] when the database fails.
    pub async fn check(&self, rules: Vec<Rule>) -> Result<(), LimitError> {
        let rules: Vec<Rule> = rules.into_iter().filter(Rule::active).collect();
        if rules.is_empty() {
            return Ok(());
        }
        self.db
            .read(move |conn| -> Result<_, LimitError> {
                let now = db::now();
                for rule in &rules {
                    let counter = rate_limits::find(conn, &rule.bucket).map_err(DbError::from)?;
                    if let Some(retry) = rule.refusal(counter.as_ref(), now) {
                        crate::metrics::limit_tripped(&rule.bucket);
                        return Err(LimitError::Limited(retry));
                    }
                }
                Ok(())
            })
            .await
    }

    /// Counts one hit in each of `rules`' buckets (one transaction). Returns, per rule, whether
    /// this hit is the one that reached its threshold (`true` once per bucket and window), so
    /// that a lock is recorded once and not on every refusal.
    ///
    /// # Errors
    /// `DbError` when the database fails.
    pub async fn count(&self, rules: Vec<Rule>) -> Result<Vec<bool>, DbError> {
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let now = db::now();
                    let mut reached = Vec::with_capacity(rules.len());
                    for rule in &rules {
                        if !rule.active() {
                            reached.push(false);
                            continue;
                        }
                        let (hits, _) =
                            rate_limits::hit(conn, &rule.bucket, to_delta(rule.window), now)?;
                        reached.push(hits == rule.threshold());
                    }
                    Ok(reached)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Checks `rules` in order and, when none refuses, counts one hit in each — in one
    /// transaction, under the buckets' row locks, so parallel requests cannot both pass a limit.
    /// A refused attempt counts nothing and creates no row. Answers, per rule, whether this hit
    /// reached its threshold (as [`Limiter::count`]).
    ///
    /// # Errors
    /// [`LimitError::Limited`] when refused; [`LimitError::Db`] when the database fails.
    pub async fn take(&self, rules: Vec<Rule>) -> Result<Vec<bool>, LimitError> {
        let result = self
            .db
            .write(move |conn| -> Result<_, DbError> {
                Ok(conn.transaction::<_, Stop, _>(|conn| {
                    let now = db::now();
                    // Locks in name order, so two transactions never wait for each other.
                    let mut names: Vec<&str> = rules
                        .iter()
                        .filter(|r| r.active())
                        .map(|r| r.bucket.as_str())
                        .collect();
                    names.sort_unstable();
                    names.dedup();
                    for name in names {
                        rate_limits::lock(conn, name, now)?;
                    }
                    for rule in &rules {
                        let counter = rate_limits::find(conn, &rule.bucket)?;
                        if let Some(retry) = rule.refusal(counter.as_ref(), now) {
                            crate::metrics::limit_tripped(&rule.bucket);
                            return Err(Stop::Refused(retry));
                        }
                    }
                    let mut reached = Vec::with_capacity(rules.len());
                    for rule in &rules {
                        if !rule.active() {
                            reached.push(false);
                            continue;
                        }
                        let (hits, _) =
                            rate_limits::hit(conn, &rule.bucket, to_delta(rule.window), now)?;
                        reached.push(hits == rule.threshold());
                    }
                    Ok(reached)
                }))
            })
            .await?;
        match result {
            Ok(reached) => Ok(reached),
            Err(Stop::Refused(retry)) => Err(LimitError::Limited(retry)),
            Err(Stop::Db(e)) => Err(DbError::from(e).into()),
        }
    }

    /// Counts one attempt in each of `buckets` (name, allowed attempts per window; 0 disables
    /// the bucket) and refuses when any count is now past its limit. Refused attempts are
    /// counted too (the window does not move, so they do not make it longer).
    ///
    /// # Errors
    /// [`LimitError::Reached`] when this attempt is the one that crossed a limit (once per
    /// bucket and window, so that a lock is recorded once), [`LimitError::Limited`] for the
    /// refusals after it; [`LimitError::Db`] when the database fails.
    pub async fn attempt(
        &self,
        buckets: Vec<(String, u32)>,
        window: Duration,
    ) -> Result<(), LimitError> {
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
                            crate::metrics::limit_tripped(bucket);
                            first |= hits == i64::from(*max) + 1;
                            let secs = seconds_until(until, now).0;
                            limited = Some(limited.map_or(secs, |s: u64| s.max(secs)));
                        }
                    }
                    Ok(limited.map(|s| (RetryAfter(s), first)))
                })
                .map_err(DbError::from)
            })
            .await?
            .map_or(Ok(()), |(retry, first)| {
                Err(if first {
                    LimitError::Reached(retry)
                } else {
                    LimitError::Limited(retry)
                })
            })
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

/// `d` as a chrono duration, saturating (a window longer than chrono can hold never ends).
fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
            .expect("valid")
            .naive_utc()
    }

    fn counter(start: i64, hits: i64, last: i64) -> Counter {
        Counter {
            window_start: at(start),
            hits,
            last_hit_at: Some(at(last)),
        }
    }

    const WINDOW: Duration = Duration::from_secs(900);

    #[test]
    fn a_max_rule_refuses_until_the_window_ends() {
        let rule = Rule::max("b".into(), 3, WINDOW);
        assert_eq!(rule.refusal(None, at(0)), None);
        assert_eq!(rule.refusal(Some(&counter(0, 2, 10)), at(10)), None);
        assert_eq!(
            rule.refusal(Some(&counter(0, 3, 10)), at(10)),
            Some(RetryAfter(890))
        );
        // More hits do not make the refusal longer, and a new window starts afresh.
        assert_eq!(
            rule.refusal(Some(&counter(0, 50, 10)), at(10)),
            Some(RetryAfter(890))
        );
        assert_eq!(rule.refusal(Some(&counter(0, 50, 10)), at(900)), None);
        assert_eq!(
            Rule::max("b".into(), 0, WINDOW).refusal(Some(&counter(0, 9, 0)), at(1)),
            None
        );
    }

    #[test]
    fn a_delay_rule_doubles_from_the_latest_hit_up_to_its_cap() {
        let rule = Rule::delay(
            "b".into(),
            5,
            Duration::from_secs(1),
            Duration::from_secs(60),
            WINDOW,
        );
        assert_eq!(rule.refusal(Some(&counter(0, 4, 100)), at(100)), None);
        assert_eq!(
            rule.refusal(Some(&counter(0, 5, 100)), at(100)),
            Some(RetryAfter(1))
        );
        assert_eq!(rule.refusal(Some(&counter(0, 5, 100)), at(101)), None);
        assert_eq!(
            rule.refusal(Some(&counter(0, 8, 100)), at(100)),
            Some(RetryAfter(8))
        );
        assert_eq!(
            rule.refusal(Some(&counter(0, 5000, 100)), at(100)),
            Some(RetryAfter(60))
        );
        assert_eq!(rule.refusal(Some(&counter(0, 5000, 100)), at(160)), None);
        // Never past the end of the window.
        assert_eq!(
            rule.refusal(Some(&counter(0, 5000, 880)), at(890)),
            Some(RetryAfter(10))
        );
    }

    #[test]
    fn thresholds_are_reached_once() {
        let rule = Rule::max("b".into(), 3, WINDOW);
        assert_eq!(rule.threshold(), 3);
        assert_eq!(seconds_until(at(10), at(10)), RetryAfter(1));
        assert_eq!(to_delta(Duration::MAX), TimeDelta::MAX);
    }
}
