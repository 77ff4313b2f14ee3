//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::DbConnection;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// Stable subject identifier (UUID v4 text); never reused.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Unique email address, stored lower-cased.
    pub email: String,
    /// Given name, may be empty.
    pub first_name: String,
    /// Family name, may be empty.
    pub last_name: String,
    /// PHC-format argon2id hash; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    /// Inactive users can neither log in nor get tokens.
    pub is_active: bool,
    /// May use the admin console.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
    /// Whether the email address was confirmed.
    pub email_verified: bool,
    /// When the account was created (UTC).
    pub date_joined: NaiveDateTime,
    /// Last successful login (UTC).
    pub last_login: Option<NaiveDateTime>,
}

/// Inserts a new user.
///
/// # Errors
/// `DatabaseError(UniqueViolation, …)` when the username or email is taken.
pub fn insert(conn: &mut DbConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The user with this id.
///
/// # Errors
/// Query failures only; absence is `Ok(None)`.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
    crate::per_backend!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// The user whose username equals `login`, or whose email equals it case-insensitively.
///
/// # Errors
/// Query failures only.
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> QueryResult<Option<UserRow>> {
    // An exact username wins over an email match, so the answer never depends on row order
    // (usernames may contain `@`).
    if let Some(user) = find_by_username(conn, login)? {
        return Ok(Some(user));
    }
    users::table
        .filter(users::email.eq(login.to_lowercase()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// The user with this username.
///
/// # Errors
/// Query failures only.
pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// Records a successful login.
///
/// # Errors
/// Query failures only.
pub fn touch_last_login(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::last_login.eq(Some(at)))
        .execute(conn)
        .map(|_| ())
}
