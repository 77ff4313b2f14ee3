//! The `jobs` table: one row per scheduled job (see [`crate::scheduler`]). A node runs a job
//! only after [`claim`] succeeded for it: one conditional `UPDATE` that affects the row for
//! exactly one caller on both backends (SQLite has a single writer; PostgreSQL re-checks the
//! `WHERE` of a waiting `UPDATE` against the row the winner committed).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::jobs;
use super::DbConnection;

/// A row of `jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    /// The job's registered name (`cleanup`, `signing_key_rotation`, …).
    pub name: String,
    /// When the next run is due (UTC).
    pub next_run_at: NaiveDateTime,
    /// While a run holds the slot: when its lease ends (UTC). After that another node may
    /// claim the job again (the holder crashed).
    pub running_until: Option<NaiveDateTime>,
    /// Who holds the lease: a random id per scheduler instance.
    pub lease_owner: Option<String>,
    /// When the latest run started (UTC).
    pub last_started_at: Option<NaiveDateTime>,
    /// When the latest run ended, successfully or not (UTC).
    pub last_finished_at: Option<NaiveDateTime>,
    /// The latest run's error while the job is failing; `None` after a success.
    pub last_error: Option<String>,
    /// Consecutive failed runs (0 after a success); the retry delay doubles with each.
    pub failures: i64,
    /// The interval set at run time (the console), over the registered one: `None` follows
    /// the node's configuration, `Some(0)` is off (the job runs only when asked to), more is
    /// the interval in seconds. See [`set_interval`].
    pub every_seconds: Option<i64>,
}

/// Every job, by name.
///
/// # Errors
/// Query failures.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<JobRow>> {
    jobs::table
        .select(JobRow::as_select())
        .order(jobs::name.asc())
        .load(conn)
}

/// Creates the row of a job first due at `next_run_at` unless it exists; `true` if created.
/// Nodes registering the same job at once both succeed (the loser's insert is a no-op).
///
/// # Errors
/// Query failures.
pub fn insert_missing(
    conn: &mut DbConnection,
    name: &str,
    next_run_at: NaiveDateTime,
) -> QueryResult<bool> {
    // A savepoint, so that losing the race leaves an outer transaction usable.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(jobs::table)
            .values((
                jobs::name.eq(name),
                jobs::next_run_at.eq(next_run_at),
                jobs::failures.eq(0_i64),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(n) => Ok(n == 1),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Moves the next run of `name` forward to `latest` when it is later (the interval was
/// shortened since it was planned); returns whether it moved.
///
/// # Errors
/// Query failures.
pub fn pull_forward(
    conn: &mut DbConnection,
    name: &str,
    latest: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(jobs::table.find(name).filter(jobs::next_run_at.gt(latest)))
        .set(jobs::next_run_at.eq(latest))
        .execute(conn)
        .map(|n| n == 1)
}

/// Moves the next run of `name` back to `at` when it is earlier (the job was turned off);
/// returns whether it moved.
///
/// # Errors
/// Query failures.
pub fn push_back(conn: &mut DbConnection, name: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(jobs::table.find(name).filter(jobs::next_run_at.lt(at)))
        .set(jobs::next_run_at.eq(at))
        .execute(conn)
        .map(|n| n == 1)
}

/// Sets the interval of `name` at run time (see [`JobRow::every_seconds`]): `0` turns it off
/// (not due on its own until `off_until`, i.e. never in practice), more is the interval in
/// seconds and the next run moves to at most one interval from `now`. Every node's scheduler
/// follows at its next pass. Creates the row (due as said) when no node has registered the job
/// yet. Returns whether the setting changed.
///
/// # Errors
/// Query failures.
pub fn set_interval(
    conn: &mut DbConnection,
    name: &str,
    every_seconds: i64,
    now: NaiveDateTime,
    off_until: NaiveDateTime,
) -> QueryResult<bool> {
    let every_seconds = every_seconds.max(0);
    let next = match every_seconds {
        0 => off_until,
        s => now + chrono::TimeDelta::seconds(s),
    };
    insert_missing(conn, name, next)?;
    let before: Option<i64> = jobs::table
        .find(name)
        .select(jobs::every_seconds)
        .first(conn)?;
    let changed = before != Some(every_seconds);
    if changed {
        diesel::update(jobs::table.find(name))
            .set(jobs::every_seconds.eq(Some(every_seconds)))
            .execute(conn)?;
    }
    if every_seconds == 0 {
        push_back(conn, name, off_until)?;
    } else {
        pull_forward(conn, name, next)?;
    }
    Ok(changed)
}

/// Claims the slot of `name` that is due at `now` for `owner`: the next run moves to
/// `next_run_at` and the lease lasts until `lease_until`. `true` for exactly one caller per
/// slot: the row must be due and have no live lease.
///
/// # Errors
/// Query failures.
pub fn claim(
    conn: &mut DbConnection,
    name: &str,
    owner: &str,
    now: NaiveDateTime,
    next_run_at: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(name)
            .filter(jobs::next_run_at.le(now))
            .filter(
                jobs::running_until
                    .is_null()
                    .or(jobs::running_until.lt(now)),
            ),
    )
    .set((
        jobs::next_run_at.eq(next_run_at),
        jobs::running_until.eq(Some(lease_until)),
        jobs::lease_owner.eq(Some(owner)),
        jobs::last_started_at.eq(Some(now)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Extends `owner`'s lease on `name` to `until`; `false` when the lease is no longer theirs.
///
/// # Errors
/// Query failures.
pub fn renew(
    conn: &mut DbConnection,
    name: &str,
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(jobs::table.find(name).filter(jobs::lease_owner.eq(owner)))
        .set(jobs::running_until.eq(Some(until)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends `owner`'s run of `name` at `now`: a success clears the error and the failure count; a
/// failure records `error`, counts it, and sets the retry time `retry_at`. Does nothing (and
/// returns `false`) when the lease was taken over meanwhile.
///
/// # Errors
/// Query failures.
pub fn finish(
    conn: &mut DbConnection,
    name: &str,
    owner: &str,
    now: NaiveDateTime,
    failure: Option<(&str, NaiveDateTime)>,
) -> QueryResult<bool> {
    let mine = jobs::table.find(name).filter(jobs::lease_owner.eq(owner));
    let released = (
        jobs::running_until.eq(None::<NaiveDateTime>),
        jobs::lease_owner.eq(None::<String>),
        jobs::last_finished_at.eq(Some(now)),
    );
    match failure {
        None => diesel::update(mine)
            .set((
                released,
                jobs::last_error.eq(None::<String>),
                jobs::failures.eq(0_i64),
            ))
            .execute(conn),
        Some((error, retry_at)) => diesel::update(mine)
            .set((
                released,
                jobs::last_error.eq(Some(error)),
                jobs::failures.eq(jobs::failures + 1),
                jobs::next_run_at.eq(retry_at),
            ))
            .execute(conn),
    }
    .map(|n| n == 1)
}
