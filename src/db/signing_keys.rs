//! The `signing_keys` table: the JWS keys every node signs ID tokens and JWT access tokens with.
//! Private parts are stored encrypted (see [`crate::oidc::keys`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::signing_keys;
use super::DbConnection;

/// A row of `signing_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    /// Key id: the RFC 7638 SHA-256 thumbprint of the public key, base64url.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The public key as a JWK (RFC 7517) JSON object, with `kid`, `use` and `alg`.
    pub public_jwk: String,
    /// The encrypted PKCS#8 private key (base64url of nonce ‖ AES-256-GCM ciphertext).
    pub private_key: String,
    /// When it was generated (UTC).
    pub created_at: NaiveDateTime,
    /// From when it signs (it is published in the JWKS from `created_at`).
    pub activates_at: NaiveDateTime,
    /// When a newer key of the same algorithm took over signing; `None` while current.
    pub retired_at: Option<NaiveDateTime>,
    /// When it leaves the JWKS: the longest-lived token it signed has expired by then.
    pub expires_at: Option<NaiveDateTime>,
}

/// Inserts a key.
///
/// # Errors
/// Query failures.
pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Every key, oldest first.
///
/// # Errors
/// Query failures.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .select(SigningKeyRow::as_select())
        .order((signing_keys::created_at.asc(), signing_keys::kid.asc()))
        .load(conn)
}

/// Retires every current key of `alg` at `at`; it stays published until `expires_at`.
///
/// # Errors
/// Query failures.
pub fn retire(
    conn: &mut DbConnection,
    alg: &str,
    at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::alg.eq(alg))
            .filter(signing_keys::retired_at.is_null()),
    )
    .set((
        signing_keys::retired_at.eq(at),
        signing_keys::expires_at.eq(expires_at),
    ))
    .execute(conn)
}

/// Deletes keys that left the JWKS before `now`.
///
/// # Errors
/// Query failures.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::expires_at.lt(now))).execute(conn)
}

/// The key `kid`, if stored.
///
/// # Errors
/// Query failures.
pub fn find(conn: &mut DbConnection, kid: &str) -> QueryResult<Option<SigningKeyRow>> {
    signing_keys::table
        .find(kid)
        .select(SigningKeyRow::as_select())
        .first(conn)
        .optional()
}

/// Whether the key `kid` is stored (it was not revoked).
///
/// # Errors
/// Query failures.
pub fn exists(conn: &mut DbConnection, kid: &str) -> QueryResult<bool> {
    let query = signing_keys::table.find(kid).select(signing_keys::kid);
    crate::per_backend!(conn, |c| query.load::<String>(c)).map(|rows| !rows.is_empty())
}

/// Every stored key's `(kid, alg)`.
///
/// # Errors
/// Query failures.
pub fn kids(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    let query = signing_keys::table.select((signing_keys::kid, signing_keys::alg));
    crate::per_backend!(conn, |c| query.load(c))
}

/// Whether the key `kid` is stored, holding it (on PostgreSQL, a `FOR SHARE` row lock until
/// the transaction ends) so that a concurrent revocation, which deletes the row, waits for
/// this transaction and then sees the tokens it stored. SQLite has a single writer already.
/// Call it inside the transaction that stores a token the key signed.
///
/// # Errors
/// Query failures.
pub fn lock_if_present(conn: &mut DbConnection, kid: &str) -> QueryResult<bool> {
    let query = signing_keys::table.find(kid).select(signing_keys::kid);
    match conn {
        DbConnection::Sqlite(c) => query.load::<String>(c),
        DbConnection::Postgres(c) => query.for_share().load::<String>(c),
    }
    .map(|rows| !rows.is_empty())
}

/// Deletes the key `kid` (revocation: its private part goes with it); returns whether it was
/// there.
///
/// # Errors
/// Query failures.
pub fn delete(conn: &mut DbConnection, kid: &str) -> QueryResult<bool> {
    diesel::delete(signing_keys::table.find(kid))
        .execute(conn)
        .map(|n| n == 1)
}
