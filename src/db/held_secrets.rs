//! The `held_secrets` table: a newly generated client secret kept, sealed, for its one view on
//! the page the browser is redirected to (post/redirect/get), for a few minutes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::held_secrets;
use super::DbConnection;

/// A row of `held_secrets`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = held_secrets)]
pub struct HeldSecretRow {
    /// Hex SHA-256 of the random ticket kept in the browser's (encrypted) session.
    pub ticket_hash: String,
    /// The client whose secret it is.
    pub client_id: String,
    /// The user who generated it, the only one who may see it.
    pub user_id: String,
    /// The secret, sealed (`crate::secret::Sealer`) with the other columns as associated data.
    pub sealed: String,
    /// When it is no longer shown (UTC).
    pub expires_at: NaiveDateTime,
}

/// Stores `row` after removing every other held secret of its client (a newer secret makes
/// them stale) and every expired one.
///
/// # Errors
/// Query failures only.
pub fn replace(
    conn: &mut DbConnection,
    row: &HeldSecretRow,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(
        held_secrets::table.filter(
            held_secrets::client_id
                .eq(&row.client_id)
                .or(held_secrets::expires_at.le(now)),
        ),
    )
    .execute(conn)?;
    diesel::insert_into(held_secrets::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Deletes every held secret that expired at or before `now` (never viewed in time); returns
/// how many.
///
/// # Errors
/// Query failures only.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(held_secrets::table.filter(held_secrets::expires_at.le(now))).execute(conn)
}

/// Removes and returns the row of `ticket_hash`, if there is one and this call removed it (of
/// two concurrent takers, one gets it).
///
/// # Errors
/// Query failures only.
pub fn take(conn: &mut DbConnection, ticket_hash: &str) -> QueryResult<Option<HeldSecretRow>> {
    let Some(row) = held_secrets::table
        .find(ticket_hash)
        .select(HeldSecretRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let removed = diesel::delete(held_secrets::table.find(ticket_hash)).execute(conn)?;
    Ok((removed == 1).then_some(row))
}
