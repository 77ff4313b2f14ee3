//! The `upstream_email_vouches` table: for an account an upstream sign-in created, the provider
//! whose word alone made its address verified, and that address (issue 11). Linking by email
//! reads it: an address only another provider vouched for is not proof enough
//! (`crate::upstream::may_link_by_email`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::upstream_email_vouches;
use super::DbConnection;

/// Records that provider `provider_id` alone verified `email`, the address of the new account
/// `user_id`.
///
/// # Errors
/// Query failures only.
pub fn record(
    conn: &mut DbConnection,
    user_id: &str,
    provider_id: &str,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(upstream_email_vouches::table)
        .values((
            upstream_email_vouches::user_id.eq(user_id),
            upstream_email_vouches::provider_id.eq(provider_id),
            upstream_email_vouches::email.eq(email),
            upstream_email_vouches::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The provider that alone verified `user_id`'s address, and that address — `None` when
/// Latchkey verified it (or nobody did).
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<(String, String)>> {
    crate::per_backend!(conn, |c| upstream_email_vouches::table
        .find(user_id)
        .select((
            upstream_email_vouches::provider_id,
            upstream_email_vouches::email
        ))
        .first::<(String, String)>(c)
        .optional())
}
