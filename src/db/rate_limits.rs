//! The `rate_limits` table: fixed-window counters shared by every node. Increments are single
//! `UPDATE … SET hits = hits + 1` statements, so concurrent requests never lose a count.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::rate_limits;
use super::DbConnection;

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
    let in_window = rate_limits::table
        .find(bucket)
        .filter(rate_limits::window_start.gt(now - window));
    let counted = diesel::update(in_window)
        .set(rate_limits::hits.eq(rate_limits::hits + 1))
        .execute(conn)?;
    if counted == 0 {
        // No row, or an expired window: start a new one. Only an *expired* row is reset, so a
        // row that a concurrent request has just created is never zeroed.
        let expired = rate_limits::table
            .find(bucket)
            .filter(rate_limits::window_start.le(now - window));
        let reset = diesel::update(expired)
            .set((rate_limits::window_start.eq(now), rate_limits::hits.eq(1)))
            .execute(conn)?;
        if reset == 0 {
            // A savepoint, so that losing the insert race leaves the outer transaction usable.
            let inserted = conn.transaction(|conn| {
                diesel::insert_into(rate_limits::table)
                    .values((
                        rate_limits::bucket.eq(bucket),
                        rate_limits::window_start.eq(now),
                        rate_limits::hits.eq(1),
                    ))
                    .execute(conn)
            });
            match inserted {
                Ok(_) => {}
                Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    diesel::update(rate_limits::table.find(bucket))
                        .set(rate_limits::hits.eq(rate_limits::hits + 1))
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
    Ok((hits, start + window))
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
