//! The `discord_accounts` table: the Discord profile of a linked Discord account (issue 11, seed
//! 000's `DiscordUser`), keyed by the Discord user's snowflake and one-to-one with its
//! `upstream_links` row. Written only by the Discord sign-in, inside its transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{discord_accounts, upstream_links};
use super::DbConnection;

/// A row of `discord_accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = discord_accounts, treat_none_as_null = true)]
pub struct DiscordAccountRow {
    /// The Discord user's id (a snowflake: a 64-bit integer Discord sends as a string); also
    /// the link's `subject`.
    pub id: i64,
    /// The link it came through (`upstream_links.id`).
    pub link_id: String,
    /// The unique username (or, for an account not yet migrated, the legacy name).
    pub username: String,
    /// The legacy discriminator (`"1234"`), `"0"` for a unique username.
    pub discriminator: String,
    /// The name as Discord shows it: `username`, or `username#discriminator` where the
    /// discriminator is not `"0"`.
    pub tag: String,
    /// The display name, when set.
    pub global_name: Option<String>,
    /// The avatar's image hash (`a_…` when animated); `None` for the default avatar.
    pub avatar: Option<String>,
    /// The public flags (badges) of the user, a bit field.
    pub public_flags: i64,
    /// The flags of the user, a bit field.
    pub flags: i64,
    /// The chosen language (`en-US`), when Discord gave it.
    pub locale: Option<String>,
    /// Whether two-factor authentication is on for the Discord account.
    pub mfa_enabled: bool,
    /// The address Discord gave (with the `email` scope), lower-cased.
    pub email: Option<String>,
    /// Whether Discord verified `email`.
    pub verified: bool,
    /// The latest sign-in with this account (UTC).
    pub last_login: NaiveDateTime,
}

/// Stores `row` as the profile of its Discord user: updates the user's row (pointing it at
/// `row.link_id`, should it have come through another link), else inserts it. Call inside the
/// sign-in's transaction.
///
/// # Errors
/// Query failures, including a unique violation when a concurrent sign-in inserted the same
/// user's row first.
pub fn upsert(conn: &mut DbConnection, row: &DiscordAccountRow) -> QueryResult<()> {
    let updated = diesel::update(discord_accounts::table.find(row.id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(discord_accounts::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The profile of Discord user `id`, if stored.
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<DiscordAccountRow>> {
    crate::per_backend!(conn, |c| discord_accounts::table
        .find(id)
        .select(DiscordAccountRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// The Discord profile of local user `user_id`: through their Discord link, or, with links at
/// several Discord providers, the one signed in with last.
///
/// # Errors
/// Query failures only.
pub fn for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<DiscordAccountRow>> {
    crate::per_backend!(conn, |c| discord_accounts::table
        .inner_join(upstream_links::table)
        .filter(upstream_links::user_id.eq(user_id))
        .order((
            discord_accounts::last_login.desc(),
            discord_accounts::id.asc(),
        ))
        .select(DiscordAccountRow::as_select())
        .load(c))
    .map(super::first_of)
}
