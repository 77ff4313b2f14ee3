//! The `authorization_codes` table. Codes are stored only as SHA-256 hashes; a used code is kept
//! (with `used_at`) until it expires so that a replay can be detected (RFC 6749 §4.1.2).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::authorization_codes as codes;
use super::users::UserRow;
use super::DbConnection;

/// A row of `authorization_codes`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = codes)]
pub struct CodeRow {
    /// Row id; also the id of the token family the code is exchanged for.
    pub id: String,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// The client the code was issued to.
    pub client_id: String,
    /// The resource owner who approved it.
    pub user_id: String,
    /// The redirect URI the code was delivered to.
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri` (then the token request must too,
    /// RFC 6749 §4.1.3).
    pub redirect_uri_explicit: bool,
    /// Granted scope, space-separated.
    pub scope: String,
    /// oxide-auth grant extensions (the PKCE challenge) as JSON.
    pub extensions: String,
    /// Issue time (UTC).
    pub created_at: NaiveDateTime,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// When it was exchanged; `None` while unused.
    pub used_at: Option<NaiveDateTime>,
    /// OpenID Connect `nonce` from the authorization request, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the user authenticated (OIDC Core §2 `auth_time`).
    pub auth_time: Option<NaiveDateTime>,
    /// Authentication methods (RFC 8176 values), space-separated.
    pub amr: Option<String>,
    /// RFC 8707 resources of the authorization request, space-separated (empty: none named).
    pub resources: String,
    /// The upstream identity provider the login went through (`[upstream.<id>]`); `None` for a
    /// local login. Becomes the ID token's `idp` claim.
    pub idp: Option<String>,
}

/// Inserts a code.
///
/// # Errors
/// Query failures only.
pub fn insert(conn: &mut DbConnection, row: &CodeRow) -> QueryResult<()> {
    diesel::insert_into(codes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The code with this hash, used or not.
///
/// # Errors
/// Query failures only.
pub fn find_by_hash(conn: &mut DbConnection, code_hash: &str) -> QueryResult<Option<CodeRow>> {
    crate::per_backend!(conn, |c| codes::table
        .filter(codes::code_hash.eq(code_hash))
        .select(CodeRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// Locks the user who approved the code with this hash and returns them as read under the lock
/// (`None` for an unknown code); see the lock rule in [`super::tokens`]. Call it before reading
/// the code, so that the code row read next reflects a concurrent revocation (which deletes
/// unused codes).
///
/// # Errors
/// Query failures only.
pub fn lock_owner(conn: &mut DbConnection, code_hash: &str) -> QueryResult<Option<UserRow>> {
    use super::schema::users as u;
    let owner = codes::table
        .filter(codes::code_hash.eq(code_hash))
        .select(codes::user_id);
    crate::load_locked!(
        conn,
        u::table
            .filter(u::id.eq_any(owner))
            .select(UserRow::as_select())
    )
    .map(super::first_of)
}

/// Marks the code used if it was not already; returns `true` only for the one caller that
/// won the race (the conditional update is atomic on both backends).
///
/// # Errors
/// Query failures only.
pub fn mark_used(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(codes::table.find(id).filter(codes::used_at.is_null()))
        .set(codes::used_at.eq(Some(at)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes codes that expired before `now`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(codes::table.filter(codes::expires_at.lt(now))).execute(conn)
}

/// Deletes the user's codes that were not exchanged yet (only those of `client_id`, when
/// given), so that revoking an authorization also stops a code already on its way to the
/// client; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_unused_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: Option<&str>,
) -> QueryResult<usize> {
    let unused = codes::table
        .filter(codes::user_id.eq(user_id))
        .filter(codes::used_at.is_null());
    match client_id {
        Some(client_id) => {
            diesel::delete(unused.filter(codes::client_id.eq(client_id))).execute(conn)
        }
        None => diesel::delete(unused).execute(conn),
    }
}
