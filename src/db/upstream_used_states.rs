//! The `upstream_used_states` table: the `state` of every upstream sign-in that reached its
//! callback (issue 11), as a SHA-256 hex digest, so that each state is accepted once on every
//! node even when the cookie that carried it is replayed (RFC 6749 §10.12).
//!
//! The same table records the ID tokens first-party apps exchanged (token exchange,
//! `/api/google/`), so that each is exchanged once: their key is `id_token:` and a SHA-256
//! digest ([`crate::upstream::oidc::SingleUse`]), kept until the token would be refused anyway.
//! A state's key is its bare 64-digit digest, so the two kinds never collide, and one cleanup
//! (`delete_expired`) serves both.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::upstream_used_states;
use super::DbConnection;

/// Records `state_hash` (a state's digest, or an exchanged ID token's key) as used until
/// `expires_at`. Returns `false` when it was already recorded (a replay): of two concurrent
/// callbacks with one state, or exchanges of one ID token, one gets `true`.
///
/// # Errors
/// Query failures other than the unique violation of a replay.
pub fn record(
    conn: &mut DbConnection,
    state_hash: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    // A savepoint, so that a replay's unique violation leaves an outer transaction usable.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(upstream_used_states::table)
            .values((
                upstream_used_states::state_hash.eq(state_hash),
                upstream_used_states::expires_at.eq(expires_at),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the records that expired at or before `now`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(upstream_used_states::table.filter(upstream_used_states::expires_at.le(now)))
        .execute(conn)
}
