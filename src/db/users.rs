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
    /// Browser sessions that began before this time (UTC) are over ("sign out everywhere").
    pub sessions_valid_after: Option<NaiveDateTime>,
    /// The user asked for an emailed one-time code after the password.
    pub mfa_enabled: bool,
}

impl UserRow {
    /// Whether the user may use the admin console and the admin API (staff or superuser).
    #[must_use]
    pub fn has_staff_access(&self) -> bool {
        self.is_staff || self.is_superuser
    }
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
    find_by_email(conn, login)
}

/// The user with this email address (stored lower-cased; `email` is lower-cased here).
///
/// # Errors
/// Query failures only.
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email.to_lowercase()))
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

/// Which users to list; every set field narrows the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Case-insensitive substring of the username, email, or first or last name.
    pub search: Option<String>,
    /// Only active (`true`) or only deactivated (`false`) users.
    pub active: Option<bool>,
    /// Only staff (`true`) or only non-staff (`false`) users.
    pub staff: Option<bool>,
}

/// One page of matching users, by username, and the number of matches.
///
/// # Errors
/// Query failures only.
pub fn list(
    conn: &mut DbConnection,
    filter: &UserFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<UserRow>, i64)> {
    let filtered = || {
        let mut query = users::table.into_boxed();
        if let Some(s) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
            let pattern = crate::domain::page::contains_pattern(s);
            query = query.filter(
                super::lower(users::username)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(users::email.like(pattern.clone()).escape('\\'))
                    .or(super::lower(users::first_name)
                        .like(pattern.clone())
                        .escape('\\'))
                    .or(super::lower(users::last_name).like(pattern).escape('\\')),
            );
        }
        if let Some(active) = filter.active {
            query = query.filter(users::is_active.eq(active));
        }
        if let Some(staff) = filter.staff {
            query = query.filter(users::is_staff.eq(staff));
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order(super::lower(users::username).asc())
        .limit(limit)
        .offset(offset)
        .select(UserRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Counts all users.
///
/// # Errors
/// Query failures only.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Sets the profile fields; returns whether the user exists.
///
/// # Errors
/// `DatabaseError(UniqueViolation, …)` when the email is taken.
pub fn update_profile(
    conn: &mut DbConnection,
    id: &str,
    email: &str,
    first_name: &str,
    last_name: &str,
) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((
            users::email.eq(email),
            users::first_name.eq(first_name),
            users::last_name.eq(last_name),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Marks the user's email address as not (or no longer) verified.
///
/// # Errors
/// Query failures only.
pub fn mark_email_unverified(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::email_verified.eq(false))
        .execute(conn)
        .map(|n| n == 1)
}

/// Stores a new password hash.
///
/// # Errors
/// Query failures only.
pub fn set_password_hash(conn: &mut DbConnection, id: &str, hash: &str) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::password_hash.eq(Some(hash)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Sets the active, staff and superuser flags; returns whether the user exists.
///
/// # Errors
/// Query failures only.
pub fn set_flags(
    conn: &mut DbConnection,
    id: &str,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set((
            users::is_active.eq(is_active),
            users::is_staff.eq(is_staff),
            users::is_superuser.eq(is_superuser),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends every browser session of the user that began before `at`.
///
/// # Errors
/// Query failures only.
pub fn end_sessions(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::sessions_valid_after.eq(Some(at)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a user; their tokens, codes, consents, sessions, one-time codes and group
/// memberships cascade, and clients they own lose their owner. Returns whether they existed.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(users::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes the user together with the clients they own, and returns those clients as
/// `(client_id, name)`. Everything else that is theirs goes by the foreign keys' `ON DELETE
/// CASCADE` (SQLite connections switch foreign keys on, see `db`): their tokens, codes,
/// consents, browser sessions, one-time codes and group memberships, and every row of the
/// deleted clients. Owned clients are deleted rather than left without an owner, because a
/// client without one would pass for an operator's (portal clients have narrower powers). Run
/// it inside a transaction; it takes the user's row lock for deletion itself
/// ([`lock_for_delete`]).
///
/// # Errors
/// Query failures only.
pub fn delete_with_clients(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Vec<(String, String)>> {
    use super::schema::clients;
    // `FOR UPDATE` (see `lock_for_delete`): a client being registered for the user meanwhile
    // commits first and is read below, or waits and then finds no owner — never left behind
    // without one by `ON DELETE SET NULL`.
    lock_for_delete(conn, id)?;
    let owned: Vec<(String, String)> = clients::table
        .filter(clients::owner_id.eq(id))
        .order(clients::client_id.asc())
        .select((clients::client_id, clients::name))
        .load(conn)?;
    for (client_id, _) in &owned {
        super::clients::delete(conn, client_id)?;
    }
    delete(conn, id)?;
    Ok(owned)
}

/// Locks the user's row until the transaction ends and returns it, as it is once the lock is
/// held (PostgreSQL `SELECT … FOR NO KEY UPDATE`; a plain read on SQLite, whose single writer
/// serialises write transactions already). `None` when there is no such user.
///
/// The per-user lock that serialises work on one account across nodes: issuing codes
/// (`accounts::otp`), and minting and revoking tokens (RFC 9700 §4.14.2 needs a revocation to
/// reach every token of a grant, including one minted by a refresh that commits meanwhile).
/// Take it first in the transaction, before any token or code row: the lock order is user row
/// → token and code rows, everywhere.
///
/// # Errors
/// Query failures only.
pub fn lock(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
    crate::load_locked!(conn, users::table.find(id).select(UserRow::as_select()))
        .map(super::first_of)
}

/// Locks the user's row before deleting it: like [`lock`], but on PostgreSQL `FOR UPDATE`,
/// which also waits for (and then holds off) transactions inserting rows that reference the
/// user — their foreign-key checks take `FOR KEY SHARE`, which [`lock`]'s `FOR NO KEY UPDATE`
/// lets through. Without it a client registered for the user while the deletion runs would
/// commit just before the delete, and `clients.owner_id`'s `ON DELETE SET NULL` would leave it
/// without an owner: an operator's client, trusted by the endpoints. After this lock, the
/// caller's reads see every row that references the user, and no new one can appear.
///
/// # Errors
/// Query failures only.
pub fn lock_for_delete(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
    let query = users::table.find(id).select(UserRow::as_select());
    match conn {
        DbConnection::Sqlite(c) => query.load(c),
        DbConnection::Postgres(c) => users::table
            .find(id)
            .select(UserRow::as_select())
            .for_update()
            .load(c),
    }
    .map(super::first_of)
}
