//! The `rate_limits` table: fixed-window counters shared by every node. Increments are single
//! `UPDATE … SET hits = hits + 1` statements, so concurrent requests never lose a count; each
//! hit also stamps `last_hit_at`, from which a bucket past its threshold computes a growing
//! delay (`limits::Allowance::Delay`).

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::rate_limits;
use super::DbConnection;

/// One bucket's counter as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Queryable)]
pub struct Counter {
    /// When the current window began.
    pub window_start: NaiveDateTime,
    /// Hits counted since `window_start` (whether the window is still current is the caller's
    /// question: it knows the window length).
    pub hits: i64,
    /// The latest hit; `None` for rows written before it was recorded, and for a row created
    /// only to be locked ([`lock`]).
    pub last_hit_at: Option<NaiveDateTime>,
}

/// The earliest `window_start` still inside a window of length `window` at `now` (saturating, so
/// that a window longer than the calendar cannot overflow).
fn window_floor(now: NaiveDateTime, window: TimeDelta) -> NaiveDateTime {
    now.checked_sub_signed(window).unwrap_or(NaiveDateTime::MIN)
}

/// Counts one hit in `bucket`'s current window of `window` length and returns the hits counted
/// in that window (including this one) and when the window ends.
///
/// # Errors
/// Query failures only.
pub fn hit(
    conn: &mut DbConnection,
    bucket: &str,
    window: TimeDelta,
    now: NaiveDateTime,
) -> QueryResult<(i64, NaiveDateTime)> {
    let floor = window_floor(now, window);
    let in_window = rate_limits::table
        .find(bucket)
        .filter(rate_limits::window_start.gt(floor));
    let counted = diesel::update(in_window)
        .set((
            rate_limits::hits.eq(rate_limits::hits + 1),
            rate_limits::last_hit_at.eq(Some(now)),
        ))
        .execute(conn)?;
    if counted == 0 {
        // No row, or an expired window: start a new one. Only an *expired* row is reset, so a
        // row that a concurrent request has just created is never zeroed.
        let expired = rate_limits::table
            .find(bucket)
            .filter(rate_limits::window_start.le(floor));
        let reset = diesel::update(expired)
            .set((
                rate_limits::window_start.eq(now),
                rate_limits::hits.eq(1),
                rate_limits::last_hit_at.eq(Some(now)),
            ))
            .execute(conn)?;
        if reset == 0 {
            // A savepoint, so that losing the insert race leaves the outer transaction usable.
            let inserted = conn.transaction(|conn| {
                diesel::insert_into(rate_limits::table)
                    .values((
                        rate_limits::bucket.eq(bucket),
                        rate_limits::window_start.eq(now),
                        rate_limits::hits.eq(1),
                        rate_limits::last_hit_at.eq(Some(now)),
                    ))
                    .execute(conn)
            });
            match inserted {
                Ok(_) => {}
                Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    diesel::update(rate_limits::table.find(bucket))
                        .set((
                            rate_limits::hits.eq(rate_limits::hits + 1),
                            rate_limits::last_hit_at.eq(Some(now)),
                        ))
                        .execute(conn)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let (start, hits): (NaiveDateTime, i64) = rate_limits::table
        .find(bucket)
        .select((rate_limits::window_start, rate_limits::hits))
        .first(conn)?;
    Ok((
        hits,
        start
            .checked_add_signed(window)
            .unwrap_or(NaiveDateTime::MAX),
    ))
}

/// `bucket`'s counter, if it has a row.
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, bucket: &str) -> QueryResult<Option<Counter>> {
    rate_limits::table
        .find(bucket)
        .select((
            rate_limits::window_start,
            rate_limits::hits,
            rate_limits::last_hit_at,
        ))
        .first(conn)
        .optional()
}

/// Takes `bucket`'s row lock for the rest of the caller's transaction (creating an empty row
/// when there is none), so that a check followed by a [`hit`] is not raced by a concurrent
/// transaction on PostgreSQL. SQLite has one writer, so its write transactions are serial anyway.
///
/// # Errors
/// Query failures only.
pub fn lock(conn: &mut DbConnection, bucket: &str, now: NaiveDateTime) -> QueryResult<()> {
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(rate_limits::table)
            .values((
                rate_limits::bucket.eq(bucket),
                rate_limits::window_start.eq(now),
                rate_limits::hits.eq(0),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(e) => return Err(e),
    }
    // A no-op update: on PostgreSQL it holds the row until the transaction ends.
    diesel::update(rate_limits::table.find(bucket))
        .set(rate_limits::hits.eq(rate_limits::hits))
        .execute(conn)
        .map(|_| ())
}

/// Takes back one hit (a request counted up front turned out fine).
///
/// # Errors
/// Query failures only.
pub fn forgive(conn: &mut DbConnection, bucket: &str) -> QueryResult<()> {
    diesel::update(
        rate_limits::table
            .find(bucket)
            .filter(rate_limits::hits.gt(0)),
    )
    .set(rate_limits::hits.eq(rate_limits::hits - 1))
    .execute(conn)
    .map(|_| ())
}

/// Forgets a bucket (e.g. an account after a successful login).
///
/// # Errors
/// Query failures only.
pub fn clear(conn: &mut DbConnection, bucket: &str) -> QueryResult<()> {
    diesel::delete(rate_limits::table.find(bucket))
        .execute(conn)
        .map(|_| ())
}

/// Deletes windows that started before `before`.
///
/// # Errors
/// Query failures only.
pub fn delete_older_than(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(before))).execute(conn)
}

/// How many counters exist (tests and the bound on rows under a flood of unknown names).
///
/// # Errors
/// Query failures only.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    rate_limits::table.count().get_result(conn)
}
