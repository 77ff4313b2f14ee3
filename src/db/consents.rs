//! The `consents` table: the scopes and RFC 8707 resources a user has approved for a client.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::consents;
use super::DbConnection;

/// A row of `consents`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    /// The user who consented.
    pub user_id: String,
    /// The client consented to.
    pub client_id: String,
    /// Every scope approved so far, space-separated.
    pub scope: String,
    /// First consent (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
    /// Every RFC 8707 resource (API) approved so far, space-separated; empty when none was
    /// ever named.
    pub resources: String,
}

/// The user's consent for a client, if any.
///
/// # Errors
/// Query failures only.
pub fn find(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<ConsentRow>> {
    crate::per_backend!(conn, |c| consents::table
        .find((user_id, client_id))
        .select(ConsentRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// Stores `scope` and `resources` (both space-separated) as what the user has approved
/// (update, else insert; call inside a transaction).
///
/// # Errors
/// Query failures only.
pub fn upsert(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    resources: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let changes = (
        consents::scope.eq(scope),
        consents::resources.eq(resources),
        consents::updated_at.eq(at),
    );
    let updated = diesel::update(consents::table.find((user_id, client_id)))
        .set(changes)
        .execute(conn)?;
    if updated == 0 {
        // A savepoint: if a concurrent request inserted first, update its row instead.
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(consents::table)
                .values(&ConsentRow {
                    user_id: user_id.to_owned(),
                    client_id: client_id.to_owned(),
                    scope: scope.to_owned(),
                    created_at: at,
                    updated_at: at,
                    resources: resources.to_owned(),
                })
                .execute(conn)
        });
        match inserted {
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                diesel::update(consents::table.find((user_id, client_id)))
                    .set(changes)
                    .execute(conn)?;
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Every consent the user has given, most recent first.
///
/// # Errors
/// Query failures only.
pub fn for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<ConsentRow>> {
    consents::table
        .filter(consents::user_id.eq(user_id))
        .order(consents::updated_at.desc())
        .select(ConsentRow::as_select())
        .load(conn)
}

/// Removes the user's consent for a client; returns whether there was one.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, user_id: &str, client_id: &str) -> QueryResult<bool> {
    diesel::delete(consents::table.find((user_id, client_id)))
        .execute(conn)
        .map(|n| n == 1)
}
