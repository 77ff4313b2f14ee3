//! The `upstream_links` table: a user's accounts at upstream identity providers (issue 11),
//! keyed by (provider, subject) — never by email.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::schema::upstream_links;
use super::DbConnection;

/// A row of `upstream_links`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = upstream_links)]
pub struct LinkRow {
    /// Random UUID v4 text.
    pub id: String,
    /// The local user (`users.id`).
    pub user_id: String,
    /// The provider's configured id (`[upstream.<id>]`).
    pub provider_id: String,
    /// The issuer `subject` belongs to: the OpenID Connect issuer as configured, `discord` for
    /// Discord.
    pub issuer: String,
    /// The provider's subject for the user: OIDC `sub`, or the Discord user id (a snowflake).
    pub subject: String,
    /// The user's name at the provider (`preferred_username`, Discord's unique username or
    /// `name#1234` tag); may be empty.
    pub username: String,
    /// The display name at the provider (`name`, Discord's `global_name`); may be empty.
    pub display_name: String,
    /// The address the provider gave, lower-cased; `None` when it gave none.
    pub email: Option<String>,
    /// Whether the provider said it verified `email`.
    pub email_verified: bool,
    /// The upstream access token, sealed (`crate::secret::Sealer`), when a later call needs it.
    pub access_token_sealed: Option<String>,
    /// The upstream refresh token, sealed, when one was issued and is needed.
    pub refresh_token_sealed: Option<String>,
    /// When the upstream access token expires (UTC).
    pub token_expires_at: Option<NaiveDateTime>,
    /// When the link was made (UTC).
    pub created_at: NaiveDateTime,
    /// The last sign-in through it (UTC).
    pub last_login_at: Option<NaiveDateTime>,
    /// The account's picture at the provider: an https URL (OpenID Connect `picture`, the
    /// Discord avatar); `None` when it gave none.
    pub picture: Option<String>,
}

/// Inserts a link.
///
/// # Errors
/// Query failures, including the unique violations of (provider, subject) and (user, provider).
pub fn insert(conn: &mut DbConnection, row: &LinkRow) -> QueryResult<()> {
    diesel::insert_into(upstream_links::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The link of `subject` (of `issuer`) at `provider_id`, if any.
///
/// # Errors
/// Query failures only.
pub fn find(
    conn: &mut DbConnection,
    provider_id: &str,
    issuer: &str,
    subject: &str,
) -> QueryResult<Option<LinkRow>> {
    crate::per_backend!(conn, |c| upstream_links::table
        .filter(upstream_links::provider_id.eq(provider_id))
        .filter(upstream_links::issuer.eq(issuer))
        .filter(upstream_links::subject.eq(subject))
        .select(LinkRow::as_select())
        .first(c)
        .optional())
}

/// Every link of `user_id`, by provider id.
///
/// # Errors
/// Query failures only.
pub fn for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<LinkRow>> {
    crate::per_backend!(conn, |c| upstream_links::table
        .filter(upstream_links::user_id.eq(user_id))
        .order(upstream_links::provider_id)
        .select(LinkRow::as_select())
        .load(c))
}

/// Records a sign-in through a link: the time, and the provider's current name, display name
/// and address (they change upstream).
///
/// # Errors
/// Query failures only.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    profile: (&str, &str, Option<&str>, bool, Option<&str>),
) -> QueryResult<()> {
    let (username, display_name, email, email_verified, picture) = profile;
    diesel::update(upstream_links::table.find(id))
        .set((
            upstream_links::last_login_at.eq(Some(now)),
            upstream_links::username.eq(username),
            upstream_links::display_name.eq(display_name),
            upstream_links::email.eq(email),
            upstream_links::email_verified.eq(email_verified),
            upstream_links::picture.eq(picture),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Sets the link's kept upstream tokens: `sealed` is (access token, refresh token), sealed
/// (`crate::secret::Sealer`), with the access token's expiry; `None` clears all three.
///
/// # Errors
/// Query failures only.
pub fn set_tokens(
    conn: &mut DbConnection,
    id: &str,
    sealed: Option<(&str, Option<&str>, Option<NaiveDateTime>)>,
) -> QueryResult<()> {
    let (access, refresh, expires_at) = match sealed {
        Some((access, refresh, expires_at)) => (Some(access), refresh, expires_at),
        None => (None, None, None),
    };
    diesel::update(upstream_links::table.find(id))
        .set((
            upstream_links::access_token_sealed.eq(access),
            upstream_links::refresh_token_sealed.eq(refresh),
            upstream_links::token_expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Clears the kept upstream tokens of every link at `provider_id` (the provider's token
/// endpoint or API host changed: they must not be sent to the new one); returns how many links
/// had some.
///
/// # Errors
/// Query failures only.
pub fn clear_tokens_for_provider(conn: &mut DbConnection, provider_id: &str) -> QueryResult<usize> {
    diesel::update(
        upstream_links::table
            .filter(upstream_links::provider_id.eq(provider_id))
            .filter(
                upstream_links::access_token_sealed
                    .is_not_null()
                    .or(upstream_links::refresh_token_sealed.is_not_null()),
            ),
    )
    .set((
        upstream_links::access_token_sealed.eq(None::<String>),
        upstream_links::refresh_token_sealed.eq(None::<String>),
        upstream_links::token_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// Claims the refresh of link `id`'s kept tokens until `until`: `true` for one caller while no
/// other holds it (one conditional `UPDATE`: `tokens_refreshing_until` NULL or past `now`), so
/// that two nodes never spend the same refresh token. End it with [`end_token_refresh`] (or
/// let it lapse: a node that died holding it).
///
/// # Errors
/// Query failures only.
pub fn claim_token_refresh(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        upstream_links::table.find(id).filter(
            upstream_links::tokens_refreshing_until
                .is_null()
                .or(upstream_links::tokens_refreshing_until.lt(now)),
        ),
    )
    .set(upstream_links::tokens_refreshing_until.eq(Some(until)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends the refresh claimed with [`claim_token_refresh`].
///
/// # Errors
/// Query failures only.
pub fn end_token_refresh(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(upstream_links::table.find(id))
        .set(upstream_links::tokens_refreshing_until.eq(None::<NaiveDateTime>))
        .execute(conn)
        .map(|_| ())
}

/// Deletes `user_id`'s link at `provider_id`; returns whether there was one.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, user_id: &str, provider_id: &str) -> QueryResult<bool> {
    diesel::delete(
        upstream_links::table
            .filter(upstream_links::user_id.eq(user_id))
            .filter(upstream_links::provider_id.eq(provider_id)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// How many links each provider id has (`upstream_links`, whether or not the provider still
/// exists), by provider id.
///
/// # Errors
/// Query failures only.
pub fn count_by_provider(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    upstream_links::table
        .group_by(upstream_links::provider_id)
        .select((upstream_links::provider_id, count_star()))
        .order(upstream_links::provider_id)
        .load(conn)
}

/// How many links provider `id` has.
///
/// # Errors
/// Query failures only.
pub fn count_for_provider(conn: &mut DbConnection, id: &str) -> QueryResult<i64> {
    upstream_links::table
        .filter(upstream_links::provider_id.eq(id))
        .count()
        .get_result(conn)
}
