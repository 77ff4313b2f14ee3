//! The `one_time_codes` table: emailed 6-digit codes (address verification, login), stored as
//! SHA-256 hashes with their attempt counts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::one_time_codes;
use super::DbConnection;

/// `purpose` of a code that verifies the user's email address.
pub const VERIFY_EMAIL: &str = "verify_email";
/// `purpose` of a code that completes a login (hosted page or the mfa-otp grant).
pub const LOGIN: &str = "login";

/// A row of `one_time_codes`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = one_time_codes)]
pub struct CodeRow {
    /// Row id (UUID v4).
    pub id: String,
    /// Whose code it is.
    pub user_id: String,
    /// [`VERIFY_EMAIL`] or [`LOGIN`].
    pub purpose: String,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// Hex SHA-256 of the login challenge handle (the API's `mfa_token`, or the hosted login's
    /// session-held handle); `None` for verification codes.
    pub challenge_hash: Option<String>,
    /// For the mfa-otp grant: the client that asked with the password grant.
    pub client_id: Option<String>,
    /// For the mfa-otp grant: the scope it asked for.
    pub scope: Option<String>,
    /// When it was sent (UTC).
    pub created_at: NaiveDateTime,
    /// When it stops working (UTC).
    pub expires_at: NaiveDateTime,
    /// Wrong guesses so far.
    pub attempts: i64,
    /// When it was used; `None` while unused.
    pub used_at: Option<NaiveDateTime>,
}

/// Inserts a code after retiring (marking used) the user's earlier unused codes of the same
/// purpose: only the newest code works.
///
/// # Errors
/// Query failures only.
pub fn replace(conn: &mut DbConnection, row: &CodeRow) -> QueryResult<()> {
    diesel::update(
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(&row.user_id))
            .filter(one_time_codes::purpose.eq(&row.purpose))
            .filter(one_time_codes::used_at.is_null()),
    )
    .set(one_time_codes::used_at.eq(Some(row.created_at)))
    .execute(conn)?;
    diesel::insert_into(one_time_codes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The newest unused code of the user for `purpose`.
///
/// # Errors
/// Query failures only.
pub fn latest_unused(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: &str,
) -> QueryResult<Option<CodeRow>> {
    one_time_codes::table
        .filter(one_time_codes::user_id.eq(user_id))
        .filter(one_time_codes::purpose.eq(purpose))
        .filter(one_time_codes::used_at.is_null())
        .order(one_time_codes::created_at.desc())
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
}

/// The code tied to a login challenge.
///
/// # Errors
/// Query failures only.
pub fn find_by_challenge(
    conn: &mut DbConnection,
    challenge_hash: &str,
) -> QueryResult<Option<CodeRow>> {
    one_time_codes::table
        .filter(one_time_codes::challenge_hash.eq(challenge_hash))
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
}

/// Counts one guess if the code is unused and below `max` guesses; returns whether it was
/// counted. The conditional update takes the row lock, so parallel guesses are counted one
/// after the other and never exceed `max`.
///
/// # Errors
/// Query failures only.
pub fn count_guess_below(conn: &mut DbConnection, id: &str, max: i64) -> QueryResult<bool> {
    diesel::update(
        one_time_codes::table
            .find(id)
            .filter(one_time_codes::attempts.lt(max))
            .filter(one_time_codes::used_at.is_null()),
    )
    .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
    .execute(conn)
    .map(|n| n == 1)
}

/// Counts one wrong guess; returns the new count.
///
/// # Errors
/// Query failures only.
pub fn count_attempt(conn: &mut DbConnection, id: &str) -> QueryResult<i64> {
    diesel::update(one_time_codes::table.find(id))
        .set(one_time_codes::attempts.eq(one_time_codes::attempts + 1))
        .execute(conn)?;
    one_time_codes::table
        .find(id)
        .select(one_time_codes::attempts)
        .first(conn)
}

/// Marks a code used if it was not; `true` only for the caller that won.
///
/// # Errors
/// Query failures only.
pub fn mark_used(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        one_time_codes::table
            .find(id)
            .filter(one_time_codes::used_at.is_null()),
    )
    .set(one_time_codes::used_at.eq(Some(at)))
    .execute(conn)
    .map(|n| n == 1)
}

/// How many codes of `purpose` the user was sent at or after `since` (for the growing resend
/// cooldown), and when the newest was sent.
///
/// # Errors
/// Query failures only.
pub fn sent_since(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let recent = one_time_codes::table
        .filter(one_time_codes::user_id.eq(user_id))
        .filter(one_time_codes::purpose.eq(purpose))
        .filter(one_time_codes::created_at.ge(since));
    let count = recent.count().get_result(conn)?;
    let newest = recent
        .select(diesel::dsl::max(one_time_codes::created_at))
        .first(conn)?;
    Ok((count, newest))
}

/// Deletes codes that expired before `before`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(one_time_codes::table.filter(one_time_codes::expires_at.lt(before)))
        .execute(conn)
}
