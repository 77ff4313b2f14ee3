//! The `user_sessions` table: browser sessions recorded server-side, so that a user can list
//! them and end them one by one, on every node.
//!
//! The row id is the hex SHA-256 of a random handle that only the (encrypted) session cookie
//! holds: the database alone cannot be turned into a working cookie.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::user_sessions;
use super::DbConnection;

/// A row of `user_sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_sessions)]
pub struct SessionRow {
    /// Hex SHA-256 of the cookie's session handle.
    pub id: String,
    /// Who signed in.
    pub user_id: String,
    /// When the login happened (UTC). A password change moves the session that made it just
    /// past the change, see [`restamp`].
    pub created_at: NaiveDateTime,
    /// The last request seen from this session (UTC), refreshed at most once a minute.
    pub last_seen_at: NaiveDateTime,
    /// The client's IP address at login.
    pub ip: Option<String>,
    /// The browser's `User-Agent` at login, at most 255 characters.
    pub user_agent: String,
    /// RFC 8176 authentication methods of the login, space-separated.
    pub amr: String,
    /// When the session was ended (logout, ended from the account page, sign out everywhere);
    /// `None` while it lasts.
    pub ended_at: Option<NaiveDateTime>,
    /// The upstream identity provider the login went through (`[upstream.<id>]`); `None` for
    /// a local login.
    pub idp: Option<String>,
}

/// Inserts a session.
///
/// # Errors
/// Query failures only.
pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(user_sessions::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The session with this id. A static query on the concrete connection: it runs on every
/// signed-in request (see [`crate::per_backend!`]).
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    crate::per_backend!(conn, |c| user_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// Sets `last_seen_at` to `at` unless it is already at or after `not_before` (another request
/// of the same session may have refreshed it meanwhile); returns whether it changed.
///
/// # Errors
/// Query failures only.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
    not_before: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        user_sessions::table
            .find(id)
            .filter(user_sessions::ended_at.is_null())
            .filter(user_sessions::last_seen_at.lt(not_before)),
    )
    .set(user_sessions::last_seen_at.eq(at))
    .execute(conn)
    .map(|n| n == 1)
}

/// The user's sessions that have not ended and began after `since` (the later of the user's
/// `sessions_valid_after` cut-off and the oldest login that has not expired), most recently
/// seen first, at most `limit`.
///
/// # Errors
/// Query failures only.
pub fn list_live(
    conn: &mut DbConnection,
    user_id: &str,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<SessionRow>> {
    user_sessions::table
        .filter(user_sessions::user_id.eq(user_id))
        .filter(user_sessions::ended_at.is_null())
        .filter(user_sessions::created_at.gt(since))
        .order((user_sessions::last_seen_at.desc(), user_sessions::id.asc()))
        .limit(limit)
        .select(SessionRow::as_select())
        .load(conn)
}

/// Ends the session `id` if it belongs to `user_id` and has not ended; returns whether it
/// changed.
///
/// # Errors
/// Query failures only.
pub fn end(
    conn: &mut DbConnection,
    id: &str,
    user_id: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        user_sessions::table
            .find(id)
            .filter(user_sessions::user_id.eq(user_id))
            .filter(user_sessions::ended_at.is_null()),
    )
    .set(user_sessions::ended_at.eq(Some(at)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends every session of `user_id` that has not ended, except `keep` when given; returns how
/// many changed.
///
/// # Errors
/// Query failures only.
pub fn end_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    // No id is empty (ids are SHA-256 hex), so "" keeps nothing.
    diesel::update(
        user_sessions::table
            .filter(user_sessions::user_id.eq(user_id))
            .filter(user_sessions::ended_at.is_null())
            .filter(user_sessions::id.ne(keep.unwrap_or_default())),
    )
    .set(user_sessions::ended_at.eq(Some(at)))
    .execute(conn)
}

/// Ends every live session of `user_id` whose login went through the upstream provider `idp`
/// (its link was removed); returns how many changed.
///
/// # Errors
/// Query failures only.
pub fn end_for_idp(
    conn: &mut DbConnection,
    user_id: &str,
    idp: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        user_sessions::table
            .filter(user_sessions::user_id.eq(user_id))
            .filter(user_sessions::idp.eq(idp))
            .filter(user_sessions::ended_at.is_null()),
    )
    .set(user_sessions::ended_at.eq(Some(at)))
    .execute(conn)
}

/// The users with a live session whose login went through provider `idp`, sorted.
///
/// # Errors
/// Query failures only.
pub fn users_with_idp(conn: &mut DbConnection, idp: &str) -> QueryResult<Vec<String>> {
    user_sessions::table
        .filter(user_sessions::idp.eq(idp))
        .filter(user_sessions::ended_at.is_null())
        .select(user_sessions::user_id)
        .distinct()
        .order(user_sessions::user_id)
        .load(conn)
}

/// Sets the login time of a live session to `created_at` (used to keep the session that
/// changed the password past the cut-off it made); returns whether it changed.
///
/// # Errors
/// Query failures only.
pub fn restamp(
    conn: &mut DbConnection,
    id: &str,
    user_id: &str,
    created_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        user_sessions::table
            .find(id)
            .filter(user_sessions::user_id.eq(user_id))
            .filter(user_sessions::ended_at.is_null()),
    )
    .set(user_sessions::created_at.eq(created_at))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes sessions that ended, or began, before `before`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_stale(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        user_sessions::table.filter(
            user_sessions::ended_at
                .lt(before)
                .or(user_sessions::created_at.lt(before)),
        ),
    )
    .execute(conn)
}
