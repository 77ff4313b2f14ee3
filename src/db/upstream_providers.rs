//! The `upstream_providers` table: upstream identity providers added in the admin console
//! (issue 11). The configuration file's providers are not stored. `settings` is JSON in the
//! shape of the configuration's `[upstream.<id>]` table without the client secret, which is
//! sealed in `client_secret_sealed`; both are read and checked by `crate::upstream`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::upstream_providers;
use super::DbConnection;

/// A row of `upstream_providers`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = upstream_providers)]
pub struct ProviderRow {
    /// The provider's id (URLs, the `idp` claim, `upstream_links.provider_id`).
    pub id: String,
    /// The provider's settings as JSON (`config::RawUpstream` without `client_secret`).
    pub settings: String,
    /// The client secret, sealed (`crate::secret::Sealer`, the id as associated data).
    pub client_secret_sealed: String,
    /// When the provider was added (UTC).
    pub created_at: NaiveDateTime,
    /// When it was last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// Inserts a provider.
///
/// # Errors
/// `DatabaseError(UniqueViolation, …)` when the id is taken; other query failures.
pub fn insert(conn: &mut DbConnection, row: &ProviderRow) -> QueryResult<()> {
    diesel::insert_into(upstream_providers::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The provider `id`.
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ProviderRow>> {
    upstream_providers::table
        .find(id)
        .select(ProviderRow::as_select())
        .first(conn)
        .optional()
}

/// The provider `id`, its row locked until the transaction ends (PostgreSQL; SQLite has one
/// writer), so that two changes of one provider happen one after the other.
///
/// # Errors
/// Query failures only.
pub fn lock(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ProviderRow>> {
    crate::load_locked!(
        conn,
        upstream_providers::table
            .filter(upstream_providers::id.eq(id))
            .select(ProviderRow::as_select())
    )
    .map(super::first_of)
}

/// Every stored provider, by id.
///
/// # Errors
/// Query failures only.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<ProviderRow>> {
    upstream_providers::table
        .order(upstream_providers::id)
        .select(ProviderRow::as_select())
        .load(conn)
}

/// Sets provider `id`'s settings and, when `client_secret_sealed` is given, its secret;
/// returns whether the provider exists.
///
/// # Errors
/// Query failures only.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    settings: &str,
    client_secret_sealed: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let target = upstream_providers::table.find(id);
    let n = match client_secret_sealed {
        Some(sealed) => diesel::update(target)
            .set((
                upstream_providers::settings.eq(settings),
                upstream_providers::client_secret_sealed.eq(sealed),
                upstream_providers::updated_at.eq(at),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                upstream_providers::settings.eq(settings),
                upstream_providers::updated_at.eq(at),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Deletes provider `id` (its links stay); returns whether it existed.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(upstream_providers::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}
