//! The Discord connector's tables (issue 12): `discord_roles` (the guild's roles as last read),
//! `discord_role_mappings` (local group → guild roles) and `discord_role_changes` (role changes
//! waiting to be applied in Discord, one row per user and role), and the reads over links and
//! memberships the connector needs.
//!
//! A queued change is one of two actions. A *check* ([`ACTION_CHECK`]) says only "check this
//! user's role": whether to add or remove it is decided when it is applied, from the user's
//! groups at that moment ([`wants_role`]), so that changes in quick succession end in the last
//! state and a role two groups give stays while one of them still holds the user. A *removal*
//! ([`ACTION_REMOVE`]) carries the Discord user id and takes the role from that Discord account
//! without needing the link: it is queued when a Discord link goes (unlinked, removed by an
//! administrator, or its user deleted, [`queue_removals_for_link`], [`queue_removals_for_user`]),
//! in the transaction that removes it. A change is applied by one node: [`claim`] is one
//! conditional `UPDATE`
//! (the same way [`super::jobs::claim`] gives a job slot to one node), and a row queued again
//! while it is applied keeps its place ([`finish`] deletes it only at the generation it
//! claimed).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::{
    discord_accounts, discord_connector_settings, discord_role_changes, discord_role_mappings,
    discord_roles, group_members, groups, upstream_links, users,
};
use super::DbConnection;

/// A row of `discord_roles`: a guild role as the last sync read it.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = discord_roles)]
pub struct DiscordRoleRow {
    /// The role's snowflake.
    pub id: i64,
    /// Its name in Discord.
    pub name: String,
    /// Its colour, `0xRRGGBB` (0: none).
    pub color: i64,
    /// Its position in the guild's role list (higher ranks higher; `@everyone` is 0).
    pub position: i64,
    /// Whether an integration manages it (a bot's own role, the booster role): nobody may give
    /// or take it.
    pub managed: bool,
    /// Why it cannot be mapped, in words; `None` when it can.
    pub unmappable: Option<String>,
    /// When it was read (UTC).
    pub synced_at: NaiveDateTime,
    /// What it allows: Discord's permission bits (`None`: read before they were kept).
    pub permissions: Option<i64>,
}

impl DiscordRoleRow {
    /// Why the worker does not give this role (`None`: it does): it cannot be mapped (as the
    /// last sync found), or what it allows is not known.
    #[must_use]
    pub fn not_given(&self) -> Option<String> {
        if let Some(why) = &self.unmappable {
            return Some(format!(
                "the role {} is not given: {why}; unmap it on the Discord page",
                self.name
            ));
        }
        if self.permissions.is_none() {
            return Some(format!(
                "the role {} is not given until roles are synced from Discord again (what it allows is not known)",
                self.name
            ));
        }
        None
    }
}

/// A change that checks a user's role against their groups when applied.
pub const ACTION_CHECK: &str = "check";

/// A change that takes a role from a Discord account whose link is gone.
pub const ACTION_REMOVE: &str = "remove";

/// A row of `discord_role_changes`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = discord_role_changes)]
pub struct RoleChangeRow {
    /// Random id (UUID v4 text).
    pub id: String,
    /// The local user: a check's subject; for a removal the user whose link went (`None` once
    /// that user is deleted).
    pub user_id: Option<String>,
    /// The guild role to check.
    pub role_id: i64,
    /// Grows each time the change is queued again.
    pub generation: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When it may next be tried (UTC).
    pub next_attempt_at: NaiveDateTime,
    /// The node applying it now.
    pub claimed_by: Option<String>,
    /// Until when that node holds it (UTC).
    pub claimed_until: Option<NaiveDateTime>,
    /// The latest failure, in words (never a token).
    pub last_error: Option<String>,
    /// Given up on: Discord refused it, or the user must sign in with Discord again.
    pub failed: bool,
    /// When it was first queued (UTC).
    pub created_at: NaiveDateTime,
    /// [`ACTION_CHECK`] or [`ACTION_REMOVE`].
    pub action: String,
    /// A removal's Discord account (`None` for a check, whose account is the user's link).
    pub discord_user_id: Option<i64>,
    /// Whether applying the check may add the user to the guild with their `guilds.join` token.
    pub may_join: bool,
}

impl RoleChangeRow {
    /// Whether this change is a removal from a Discord account whose link is gone.
    #[must_use]
    pub fn is_removal(&self) -> bool {
        self.action == ACTION_REMOVE
    }
}

/// The row of `discord_connector_settings`: the settings saved in the console.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = discord_connector_settings)]
pub struct ConnectorSettingsRow {
    /// Always 1: one row.
    pub id: i64,
    /// The `[upstream.<id>]` provider.
    pub provider: String,
    /// The guild's snowflake.
    pub guild_id: i64,
    /// The invite link shown to users.
    pub invite_link: Option<String>,
    /// Whether Discord's roles win.
    pub remote_priority: bool,
    /// The bot token, sealed (`None`: `[discord]`'s is used).
    pub bot_token_sealed: Option<String>,
    /// When it was saved (UTC): a node whose client is older rebuilds it.
    pub updated_at: NaiveDateTime,
    /// Who saved it.
    pub updated_by: Option<String>,
    /// The nickname template (`None`: `discord.nickname_template`'s; `""`: none).
    pub nickname_template: Option<String>,
}

impl std::fmt::Debug for ConnectorSettingsRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even sealed, the token is not printed.
        f.debug_struct("ConnectorSettingsRow")
            .field("provider", &self.provider)
            .field("guild_id", &self.guild_id)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// The settings saved in the console, if any.
///
/// # Errors
/// Query failures.
pub fn settings(conn: &mut DbConnection) -> QueryResult<Option<ConnectorSettingsRow>> {
    discord_connector_settings::table
        .find(1_i64)
        .select(ConnectorSettingsRow::as_select())
        .first(conn)
        .optional()
}

/// When the console's settings were last saved (`None`: never).
///
/// # Errors
/// Query failures.
pub fn settings_version(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    discord_connector_settings::table
        .find(1_i64)
        .select(discord_connector_settings::updated_at)
        .first(conn)
        .optional()
}

/// Stores `row` as the console's settings (replacing the previous ones).
///
/// # Errors
/// Query failures.
pub fn save_settings(conn: &mut DbConnection, row: &ConnectorSettingsRow) -> QueryResult<()> {
    diesel::delete(discord_connector_settings::table).execute(conn)?;
    diesel::insert_into(discord_connector_settings::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Replaces the stored roles with `rows` (a sync).
///
/// # Errors
/// Query failures.
pub fn replace_roles(conn: &mut DbConnection, rows: &[DiscordRoleRow]) -> QueryResult<()> {
    diesel::delete(discord_roles::table).execute(conn)?;
    for row in rows {
        diesel::insert_into(discord_roles::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The stored roles, highest first.
///
/// # Errors
/// Query failures.
pub fn roles(conn: &mut DbConnection) -> QueryResult<Vec<DiscordRoleRow>> {
    discord_roles::table
        .order((discord_roles::position.desc(), discord_roles::id.asc()))
        .select(DiscordRoleRow::as_select())
        .load(conn)
}

/// The stored role `id`.
///
/// # Errors
/// Query failures.
pub fn role(conn: &mut DbConnection, id: i64) -> QueryResult<Option<DiscordRoleRow>> {
    discord_roles::table
        .find(id)
        .select(DiscordRoleRow::as_select())
        .first(conn)
        .optional()
}

/// Maps `group_id` to `role_id`; `false` when it was already.
///
/// # Errors
/// Query failures (a foreign-key error for an unknown group).
pub fn map(
    conn: &mut DbConnection,
    group_id: &str,
    role_id: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let exists: i64 = discord_role_mappings::table
        .filter(discord_role_mappings::group_id.eq(group_id))
        .filter(discord_role_mappings::role_id.eq(role_id))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Ok(false);
    }
    diesel::insert_into(discord_role_mappings::table)
        .values((
            discord_role_mappings::group_id.eq(group_id),
            discord_role_mappings::role_id.eq(role_id),
            discord_role_mappings::created_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Removes the mapping of `group_id` to `role_id`; whether there was one.
///
/// # Errors
/// Query failures.
pub fn unmap(conn: &mut DbConnection, group_id: &str, role_id: i64) -> QueryResult<bool> {
    diesel::delete(
        discord_role_mappings::table
            .filter(discord_role_mappings::group_id.eq(group_id))
            .filter(discord_role_mappings::role_id.eq(role_id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Every mapping as (group id, group name, role id), by group name.
///
/// # Errors
/// Query failures.
pub fn mappings(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, i64)>> {
    discord_role_mappings::table
        .inner_join(groups::table)
        .order((groups::name_key.asc(), discord_role_mappings::role_id.asc()))
        .select((groups::id, groups::name, discord_role_mappings::role_id))
        .load(conn)
}

/// The roles mapped to `group_id`.
///
/// # Errors
/// Query failures.
pub fn roles_of_group(conn: &mut DbConnection, group_id: &str) -> QueryResult<Vec<i64>> {
    discord_role_mappings::table
        .filter(discord_role_mappings::group_id.eq(group_id))
        .order(discord_role_mappings::role_id.asc())
        .select(discord_role_mappings::role_id)
        .load(conn)
}

/// Whether `user_id` is active and belongs to a group mapped to `role_id`: whether Latchkey's
/// groups give them the role. A deactivated account's groups give none (its memberships stay,
/// so reactivating it gives the roles back).
///
/// # Errors
/// Query failures.
pub fn wants_role(conn: &mut DbConnection, user_id: &str, role_id: i64) -> QueryResult<bool> {
    let n: i64 = discord_role_mappings::table
        .inner_join(
            group_members::table.on(group_members::group_id.eq(discord_role_mappings::group_id)),
        )
        .inner_join(users::table.on(users::id.eq(group_members::user_id)))
        .filter(users::is_active.eq(true))
        .filter(group_members::user_id.eq(user_id))
        .filter(discord_role_mappings::role_id.eq(role_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Every role `user_id`'s groups give them.
///
/// # Errors
/// Query failures.
pub fn mapped_roles_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<i64>> {
    discord_role_mappings::table
        .inner_join(
            group_members::table.on(group_members::group_id.eq(discord_role_mappings::group_id)),
        )
        .filter(group_members::user_id.eq(user_id))
        .select(discord_role_mappings::role_id)
        .distinct()
        .order(discord_role_mappings::role_id.asc())
        .load(conn)
}

/// The names of `user_id`'s groups that are mapped to `role_id` (for Discord's audit-log
/// reason), by name.
///
/// # Errors
/// Query failures.
pub fn groups_giving(
    conn: &mut DbConnection,
    user_id: &str,
    role_id: i64,
) -> QueryResult<Vec<String>> {
    discord_role_mappings::table
        .inner_join(groups::table)
        .inner_join(
            group_members::table.on(group_members::group_id.eq(discord_role_mappings::group_id)),
        )
        .filter(group_members::user_id.eq(user_id))
        .filter(discord_role_mappings::role_id.eq(role_id))
        .order(groups::name_key.asc())
        .select(groups::name)
        .load(conn)
}

/// Every (group, user) membership of a group that has a mapping, as (group id, user id).
///
/// # Errors
/// Query failures.
pub fn mapped_memberships(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    group_members::table
        .filter(
            group_members::group_id.eq_any(
                discord_role_mappings::table
                    .select(discord_role_mappings::group_id)
                    .distinct(),
            ),
        )
        .select((group_members::group_id, group_members::user_id))
        .load(conn)
}

/// How many members `group_id` has.
///
/// # Errors
/// Query failures.
pub fn member_count(conn: &mut DbConnection, group_id: &str) -> QueryResult<i64> {
    group_members::table
        .filter(group_members::group_id.eq(group_id))
        .count()
        .get_result(conn)
}

/// The members of `group_id` (user ids).
///
/// # Errors
/// Query failures.
pub fn member_ids(conn: &mut DbConnection, group_id: &str) -> QueryResult<Vec<String>> {
    group_members::table
        .filter(group_members::group_id.eq(group_id))
        .select(group_members::user_id)
        .load(conn)
}

/// A user linked at the connector's provider, as the jobs read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedUser {
    /// The local user.
    pub user_id: String,
    /// The provider's subject: the Discord user id as text.
    pub subject: String,
    /// Whether the account is active.
    pub is_active: bool,
    /// Whether it is a staff account.
    pub is_staff: bool,
    /// Whether it is a superuser's.
    pub is_superuser: bool,
}

impl LinkedUser {
    /// Whether Discord may change this user's groups when it wins: not for staff, superusers
    /// or deactivated accounts (whose groups only people with the right to may change).
    #[must_use]
    pub fn groups_follow_discord(&self) -> bool {
        self.is_active && !self.is_staff && !self.is_superuser
    }
}

/// Every user linked at `provider_id`, deactivated accounts included, by user id.
///
/// # Errors
/// Query failures.
pub fn linked_users(conn: &mut DbConnection, provider_id: &str) -> QueryResult<Vec<LinkedUser>> {
    let rows: Vec<(String, String, bool, bool, bool)> = upstream_links::table
        .inner_join(users::table)
        .filter(upstream_links::provider_id.eq(provider_id))
        .order(upstream_links::user_id.asc())
        .select((
            upstream_links::user_id,
            upstream_links::subject,
            users::is_active,
            users::is_staff,
            users::is_superuser,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(user_id, subject, is_active, is_staff, is_superuser)| LinkedUser {
                user_id,
                subject,
                is_active,
                is_staff,
                is_superuser,
            },
        )
        .collect())
}

/// The roles with a check of `user_id` queued, retrying or given up: changes Latchkey has yet
/// to make in Discord (or could not), which Discord's side must not undo.
///
/// # Errors
/// Query failures.
pub fn pending_check_roles(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<i64>> {
    discord_role_changes::table
        .filter(discord_role_changes::action.eq(ACTION_CHECK))
        .filter(discord_role_changes::user_id.eq(user_id))
        .select(discord_role_changes::role_id)
        .load(conn)
}

/// What `sync_discord_users_accounts` refreshes of a stored Discord profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRefresh {
    /// The unique username (or legacy name).
    pub username: String,
    /// The legacy discriminator, `"0"` for a unique username.
    pub discriminator: String,
    /// The name as Discord shows it.
    pub tag: String,
    /// The display name.
    pub global_name: Option<String>,
    /// The avatar's image hash.
    pub avatar: Option<String>,
    /// The nickname in the connector's guild.
    pub nick: Option<String>,
}

/// Refreshes the stored profile of Discord user `id` (when stored) with `fresh`; returns
/// whether anything changed.
///
/// # Errors
/// Query failures.
pub fn refresh_profile(
    conn: &mut DbConnection,
    id: i64,
    fresh: &ProfileRefresh,
) -> QueryResult<bool> {
    type Stored = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let stored: Option<Stored> = discord_accounts::table
        .find(id)
        .select((
            discord_accounts::username,
            discord_accounts::discriminator,
            discord_accounts::global_name,
            discord_accounts::avatar,
            discord_accounts::nick,
        ))
        .first(conn)
        .optional()?;
    let Some(stored) = stored else {
        return Ok(false);
    };
    let now = (
        fresh.username.clone(),
        fresh.discriminator.clone(),
        fresh.global_name.clone(),
        fresh.avatar.clone(),
        fresh.nick.clone(),
    );
    if stored == now {
        return Ok(false);
    }
    diesel::update(discord_accounts::table.find(id))
        .set((
            discord_accounts::username.eq(&fresh.username),
            discord_accounts::discriminator.eq(&fresh.discriminator),
            discord_accounts::tag.eq(&fresh.tag),
            discord_accounts::global_name.eq(&fresh.global_name),
            discord_accounts::avatar.eq(&fresh.avatar),
            discord_accounts::nick.eq(&fresh.nick),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Every active user linked at `provider_id` with the fields a nickname template may name, as
/// (the provider's subject, username, first name, last name). Deactivated accounts' nicknames
/// are left alone.
///
/// # Errors
/// Query failures.
pub fn linked_user_names(
    conn: &mut DbConnection,
    provider_id: &str,
) -> QueryResult<Vec<(String, String, String, String)>> {
    upstream_links::table
        .inner_join(users::table)
        .filter(upstream_links::provider_id.eq(provider_id))
        .filter(users::is_active.eq(true))
        .order(upstream_links::user_id.asc())
        .select((
            upstream_links::subject,
            users::username,
            users::first_name,
            users::last_name,
        ))
        .load(conn)
}

/// Whether `user_id` has a linked Discord account (through any Discord provider).
///
/// # Errors
/// Query failures.
pub fn has_discord_account(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    let n: i64 = discord_accounts::table
        .inner_join(upstream_links::table)
        .filter(upstream_links::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The error of a change given up because the user must sign in with Discord again (their
/// kept `guilds.join` token is missing, refused or cannot be refreshed): the account page asks
/// for that sign-in while such a change is newer than their latest one, and the sign-in queues
/// it again ([`requeue_sign_in_failures`]).
pub const SIGN_IN_AGAIN: &str = "the user is not in the Discord server and no usable guilds.join token is kept: they must sign in with Discord again (the provider's scopes must include guilds.join)";

/// How long the verify job leaves a given-up change alone before it may queue it again.
pub const FAILED_QUIET_HOURS: i64 = 24;

/// Why a check is queued: what it does to a row already there, and whether applying it may add
/// the user to the guild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A membership change (the groups service): the row is queued afresh (attempts and a
    /// failure cleared), and applying it may add the user to the guild with their
    /// `guilds.join` token.
    Membership,
    /// Another administrator's change (a mapping, deactivation, reactivation): queued afresh,
    /// never adds anyone to the guild.
    Admin,
    /// The verify job: a new row, never adding anyone to the guild; a row already queued or
    /// retrying is left as it is, and a given-up one too unless it was given up more than
    /// [`FAILED_QUIET_HOURS`] ago (or only because the user was not in the guild, which verify
    /// has just seen they are): Discord's refusals are not repeated every run.
    Verify,
}

/// Queues a check of `user_id`'s `role_id` due at `now`, for `cause`: a new row, or the
/// existing one queued again as [`Cause`] says (its generation grows). Returns whether
/// anything was queued.
///
/// # Errors
/// Query failures.
pub fn queue(
    conn: &mut DbConnection,
    user_id: &str,
    role_id: i64,
    now: NaiveDateTime,
    cause: Cause,
) -> QueryResult<bool> {
    // A savepoint, so that losing an insert race leaves the outer transaction usable.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(discord_role_changes::table)
            .values(&RoleChangeRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: Some(user_id.to_owned()),
                role_id,
                generation: 0,
                attempts: 0,
                next_attempt_at: now,
                claimed_by: None,
                claimed_until: None,
                last_error: None,
                failed: false,
                created_at: now,
                action: ACTION_CHECK.to_owned(),
                discord_user_id: None,
                may_join: cause == Cause::Membership,
            })
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let mine = discord_role_changes::table
                .filter(discord_role_changes::action.eq(ACTION_CHECK))
                .filter(discord_role_changes::user_id.eq(user_id))
                .filter(discord_role_changes::role_id.eq(role_id));
            let afresh = (
                discord_role_changes::generation.eq(discord_role_changes::generation + 1),
                discord_role_changes::attempts.eq(0_i64),
                discord_role_changes::next_attempt_at.eq(now),
                discord_role_changes::last_error.eq(None::<String>),
                discord_role_changes::failed.eq(false),
            );
            let n = match cause {
                Cause::Membership => diesel::update(mine)
                    .set((afresh, discord_role_changes::may_join.eq(true)))
                    .execute(conn)?,
                Cause::Admin => diesel::update(mine).set(afresh).execute(conn)?,
                Cause::Verify => {
                    let quiet_since = now - chrono::TimeDelta::hours(FAILED_QUIET_HOURS);
                    diesel::update(
                        mine.filter(discord_role_changes::failed.eq(true)).filter(
                            discord_role_changes::next_attempt_at
                                .le(quiet_since)
                                .or(discord_role_changes::last_error.eq(SIGN_IN_AGAIN)),
                        ),
                    )
                    .set(afresh)
                    .execute(conn)?
                }
            };
            Ok(n > 0)
        }
        Err(e) => Err(e),
    }
}

/// Queues a check of every role mapped to `group_id` for `user_id`, when the user has a linked
/// Discord account (the groups service calls it in the transaction of a membership change,
/// [`Cause::Membership`]); returns how many were queued.
///
/// # Errors
/// Query failures.
pub fn queue_for_membership(
    conn: &mut DbConnection,
    group_id: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let roles = roles_of_group(conn, group_id)?;
    if roles.is_empty() || !has_discord_account(conn, user_id)? {
        return Ok(0);
    }
    for role in &roles {
        queue(conn, user_id, *role, now, Cause::Membership)?;
    }
    Ok(roles.len())
}

/// Queues a check of every role `user_id`'s groups give, when the user has a linked Discord
/// account (deactivation and reactivation call it in their transaction, [`Cause::Admin`]: a
/// deactivated user's groups give no role, so the roles go and come back with the account);
/// returns how many were queued.
///
/// # Errors
/// Query failures.
pub fn queue_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if !has_discord_account(conn, user_id)? {
        return Ok(0);
    }
    let roles = mapped_roles_of_user(conn, user_id)?;
    for role in &roles {
        queue(conn, user_id, *role, now, Cause::Admin)?;
    }
    Ok(roles.len())
}

/// Queues again, due at `now`, `user_id`'s changes given up with [`SIGN_IN_AGAIN`] (the
/// sign-in with Discord that brings new kept tokens calls it in its transaction): what failed
/// for want of a token is tried with the new one. Returns how many.
///
/// # Errors
/// Query failures.
pub fn requeue_sign_in_failures(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        discord_role_changes::table
            .filter(discord_role_changes::action.eq(ACTION_CHECK))
            .filter(discord_role_changes::user_id.eq(user_id))
            .filter(discord_role_changes::failed.eq(true))
            .filter(discord_role_changes::last_error.eq(SIGN_IN_AGAIN)),
    )
    .set((
        discord_role_changes::generation.eq(discord_role_changes::generation + 1),
        discord_role_changes::attempts.eq(0_i64),
        discord_role_changes::next_attempt_at.eq(now),
        discord_role_changes::last_error.eq(None::<String>),
        discord_role_changes::failed.eq(false),
    ))
    .execute(conn)
}

/// Up to `limit` changes that are due at `now` and held by no node, oldest due first.
///
/// # Errors
/// Query failures.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<RoleChangeRow>> {
    discord_role_changes::table
        .filter(discord_role_changes::failed.eq(false))
        .filter(discord_role_changes::next_attempt_at.le(now))
        .filter(
            discord_role_changes::claimed_until
                .is_null()
                .or(discord_role_changes::claimed_until.lt(now)),
        )
        .order((
            discord_role_changes::next_attempt_at.asc(),
            discord_role_changes::id.asc(),
        ))
        .limit(limit)
        .select(RoleChangeRow::as_select())
        .load(conn)
}

/// Claims change `id` for `owner` until `until`: `true` for exactly one caller while it is due
/// and held by nobody (one conditional `UPDATE`).
///
/// # Errors
/// Query failures.
pub fn claim(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        discord_role_changes::table
            .find(id)
            .filter(discord_role_changes::failed.eq(false))
            .filter(discord_role_changes::next_attempt_at.le(now))
            .filter(
                discord_role_changes::claimed_until
                    .is_null()
                    .or(discord_role_changes::claimed_until.lt(now)),
            ),
    )
    .set((
        discord_role_changes::claimed_by.eq(Some(owner)),
        discord_role_changes::claimed_until.eq(Some(until)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The change `id`.
///
/// # Errors
/// Query failures.
pub fn change(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RoleChangeRow>> {
    discord_role_changes::table
        .find(id)
        .select(RoleChangeRow::as_select())
        .first(conn)
        .optional()
}

/// Ends `owner`'s successful application of change `id` claimed at `generation`: the row goes,
/// unless it was queued again meanwhile (then it is released, still due, to be applied again).
/// Returns whether it went.
///
/// # Errors
/// Query failures.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    generation: i64,
) -> QueryResult<bool> {
    let deleted = diesel::delete(
        discord_role_changes::table
            .find(id)
            .filter(discord_role_changes::claimed_by.eq(owner))
            .filter(discord_role_changes::generation.eq(generation)),
    )
    .execute(conn)?;
    if deleted == 0 {
        release(conn, id, owner)?;
    }
    Ok(deleted == 1)
}

/// Releases `owner`'s claim on change `id` without recording anything on it (a run that
/// stopped before it could know the change's fate): it stays due as it was.
///
/// # Errors
/// Query failures.
pub fn release(conn: &mut DbConnection, id: &str, owner: &str) -> QueryResult<usize> {
    diesel::update(
        discord_role_changes::table
            .find(id)
            .filter(discord_role_changes::claimed_by.eq(owner)),
    )
    .set((
        discord_role_changes::claimed_by.eq(None::<String>),
        discord_role_changes::claimed_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// Records a failed attempt of `owner`'s claim on change `id` at `now`: `error`, one more
/// attempt, and the next try at `retry_at`; or, with `retry_at` `None`, gives up on it
/// (`failed`, `next_attempt_at` = `now`) — unless it was queued again since `generation`, which
/// then stays due.
///
/// # Errors
/// Query failures.
pub fn record_failure(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    generation: i64,
    error: &str,
    retry_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let mine = discord_role_changes::table
        .find(id)
        .filter(discord_role_changes::claimed_by.eq(owner))
        .filter(discord_role_changes::generation.eq(generation));
    let updated = match retry_at {
        Some(at) => diesel::update(mine)
            .set((
                discord_role_changes::attempts.eq(discord_role_changes::attempts + 1),
                discord_role_changes::next_attempt_at.eq(at),
                discord_role_changes::last_error.eq(Some(error)),
            ))
            .execute(conn)?,
        // Given up: `next_attempt_at` keeps when (nothing is due while `failed`).
        None => diesel::update(mine)
            .set((
                discord_role_changes::attempts.eq(discord_role_changes::attempts + 1),
                discord_role_changes::last_error.eq(Some(error)),
                discord_role_changes::failed.eq(true),
                discord_role_changes::next_attempt_at.eq(now),
            ))
            .execute(conn)?,
    };
    let _ = updated;
    release(conn, id, owner).map(|_| ())
}

/// When `user_id`'s latest change given up with `error` failed, if one did.
///
/// # Errors
/// Query failures.
pub fn latest_failure(
    conn: &mut DbConnection,
    user_id: &str,
    error: &str,
) -> QueryResult<Option<NaiveDateTime>> {
    discord_role_changes::table
        .filter(discord_role_changes::user_id.eq(user_id))
        .filter(discord_role_changes::failed.eq(true))
        .filter(discord_role_changes::last_error.eq(error))
        .select(diesel::dsl::max(discord_role_changes::next_attempt_at))
        .first(conn)
}

/// Queued changes waiting (failed ones not counted) and failed ones.
///
/// # Errors
/// Query failures.
pub fn change_counts(conn: &mut DbConnection) -> QueryResult<(i64, i64)> {
    let waiting = discord_role_changes::table
        .filter(discord_role_changes::failed.eq(false))
        .count()
        .get_result(conn)?;
    let failed = discord_role_changes::table
        .filter(discord_role_changes::failed.eq(true))
        .count()
        .get_result(conn)?;
    Ok((waiting, failed))
}

/// Up to `limit` changes that failed or are retrying, most recent first, with the username
/// (`None` for a removal whose user was deleted).
///
/// # Errors
/// Query failures.
pub fn troubled_changes(
    conn: &mut DbConnection,
    limit: i64,
) -> QueryResult<Vec<(RoleChangeRow, Option<String>)>> {
    discord_role_changes::table
        .left_join(users::table)
        .filter(discord_role_changes::last_error.is_not_null())
        .order(discord_role_changes::next_attempt_at.desc())
        .limit(limit)
        .select((RoleChangeRow::as_select(), users::username.nullable()))
        .load(conn)
}

/// Every role some group is mapped to.
///
/// # Errors
/// Query failures.
pub fn mapped_role_ids(conn: &mut DbConnection) -> QueryResult<Vec<i64>> {
    discord_role_mappings::table
        .select(discord_role_mappings::role_id)
        .distinct()
        .order(discord_role_mappings::role_id.asc())
        .load(conn)
}

/// The user linked to Discord account `subject` (the snowflake as text) at `provider_id`.
///
/// # Errors
/// Query failures.
pub fn user_linked_to(
    conn: &mut DbConnection,
    provider_id: &str,
    subject: &str,
) -> QueryResult<Option<String>> {
    upstream_links::table
        .filter(upstream_links::provider_id.eq(provider_id))
        .filter(upstream_links::subject.eq(subject))
        .select(upstream_links::user_id)
        .first(conn)
        .optional()
}

/// Queues the removal of `role_id` from Discord account `discord_user_id`, whose link to
/// `user_id` is going, due at `now`: a new row, or the removal already queued queued again.
///
/// # Errors
/// Query failures.
pub fn queue_removal(
    conn: &mut DbConnection,
    user_id: &str,
    discord_user_id: i64,
    role_id: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    // A savepoint, so that losing an insert race leaves the outer transaction usable.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(discord_role_changes::table)
            .values(&RoleChangeRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: Some(user_id.to_owned()),
                role_id,
                generation: 0,
                attempts: 0,
                next_attempt_at: now,
                claimed_by: None,
                claimed_until: None,
                last_error: None,
                failed: false,
                created_at: now,
                action: ACTION_REMOVE.to_owned(),
                discord_user_id: Some(discord_user_id),
                may_join: false,
            })
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => diesel::update(
            discord_role_changes::table
                .filter(discord_role_changes::action.eq(ACTION_REMOVE))
                .filter(discord_role_changes::discord_user_id.eq(discord_user_id))
                .filter(discord_role_changes::role_id.eq(role_id)),
        )
        .set((
            discord_role_changes::user_id.eq(Some(user_id)),
            discord_role_changes::generation.eq(discord_role_changes::generation + 1),
            discord_role_changes::attempts.eq(0_i64),
            discord_role_changes::next_attempt_at.eq(now),
            discord_role_changes::last_error.eq(None::<String>),
            discord_role_changes::failed.eq(false),
        ))
        .execute(conn)
        .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// The Discord accounts (snowflakes) of `user_id`'s links — at `provider_id` only, when given.
fn discord_accounts_of(
    conn: &mut DbConnection,
    user_id: &str,
    provider_id: Option<&str>,
) -> QueryResult<Vec<i64>> {
    let mut query = discord_accounts::table
        .inner_join(upstream_links::table)
        .filter(upstream_links::user_id.eq(user_id))
        .select(discord_accounts::id)
        .into_boxed();
    if let Some(provider) = provider_id {
        query = query.filter(upstream_links::provider_id.eq(provider.to_owned()));
    }
    query.load(conn)
}

/// Queues, before `user_id`'s link at `provider_id` is removed (in the removal's transaction),
/// the removal of every mapped role from the link's Discord account, when it is one: unlinking
/// must not leave the account holding what the user's groups gave it. Returns how many were
/// queued.
///
/// # Errors
/// Query failures.
pub fn queue_removals_for_link(
    conn: &mut DbConnection,
    user_id: &str,
    provider_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let accounts = discord_accounts_of(conn, user_id, Some(provider_id))?;
    queue_removals(conn, user_id, &accounts, now)
}

/// Queues, before `user_id` is deleted (in the deletion's transaction), the removal of every
/// mapped role from each Discord account they linked, and drops their checks (which could no
/// longer be applied). Returns how many removals were queued.
///
/// # Errors
/// Query failures.
pub fn queue_removals_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let accounts = discord_accounts_of(conn, user_id, None)?;
    diesel::delete(
        discord_role_changes::table
            .filter(discord_role_changes::action.eq(ACTION_CHECK))
            .filter(discord_role_changes::user_id.eq(user_id)),
    )
    .execute(conn)?;
    queue_removals(conn, user_id, &accounts, now)
}

fn queue_removals(
    conn: &mut DbConnection,
    user_id: &str,
    accounts: &[i64],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if accounts.is_empty() {
        return Ok(0);
    }
    let roles = mapped_role_ids(conn)?;
    for account in accounts {
        for role in &roles {
            queue_removal(conn, user_id, *account, *role, now)?;
        }
    }
    Ok(accounts.len() * roles.len())
}
