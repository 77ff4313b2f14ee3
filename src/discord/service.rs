//! The connector's service: settings and status, the connection test, role syncs and mappings
//! (superusers only, checked here in the transaction of each change), the worker that applies
//! queued role changes, and the verify job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};

use super::api::{ApiError, DiscordApi, GuildMember, Joined, UNKNOWN_MEMBER};
use super::roles::BotStanding;
use crate::accounts::privileges::{self, NotAllowed};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::DiscordSettings;
use crate::db::discord_connector::{
    self as store, ConnectorSettingsRow, DiscordRoleRow, ProfileRefresh, RoleChangeRow,
};
use crate::db::jobs::{self as job_rows, JobRow};
use crate::db::{self, groups as group_rows, Db, DbError};
use crate::domain::{NicknameFields, NicknameTemplate, ProviderId, ProviderKind};
use crate::groups::{GroupError, Groups};
use crate::secret::{SealError, Sealer};
use crate::upstream::discord::RawDiscordUser;
use crate::upstream::{DiscordProfile, FreshTokensError, KeptTokensError, Upstream};

/// Members read per request by the verify job (Discord's largest page).
pub const MEMBERS_PAGE: u16 = 1000;

/// The most pages of members one job reads (1,000,000 members): a hostile or broken API cannot
/// keep a job paging forever.
pub const MAX_MEMBER_PAGES: usize = 1000;

/// The guild's member list read a page at a time (`GET /guilds/{guild}/members?after=…`), by
/// user id: each full page's last id must be greater than the `after` it was asked for, and at
/// most [`MAX_MEMBER_PAGES`] are read; otherwise the job stops with an error rather than loop.
struct MemberPages {
    after: u64,
    pages: usize,
    done: bool,
}

impl MemberPages {
    fn new() -> Self {
        Self {
            after: 0,
            pages: 0,
            done: false,
        }
    }

    /// The next page, `None` after the last.
    async fn next(&mut self, api: &DiscordApi) -> Result<Option<Vec<GuildMember>>, DiscordError> {
        if self.done {
            return Ok(None);
        }
        let page = api.members_page(self.after, MEMBERS_PAGE).await?;
        self.advance(&page, usize::from(MEMBERS_PAGE), MAX_MEMBER_PAGES)
            .map_err(|why| DiscordError::Api(ApiError::Refused(why)))?;
        Ok(Some(page))
    }

    /// Takes in `page` (asked for with at most `full` members): a shorter page is the last; a
    /// full one must end past `after`, and be within `max_pages`.
    fn advance(
        &mut self,
        page: &[GuildMember],
        full: usize,
        max_pages: usize,
    ) -> Result<(), String> {
        self.pages += 1;
        let Some(last) = page.last().filter(|_| page.len() >= full) else {
            self.done = true;
            return Ok(());
        };
        if last.user_id <= self.after {
            self.done = true;
            return Err(format!(
                "the member list did not move forward (a full page after {} ended at {}): stopped",
                self.after, last.user_id
            ));
        }
        if self.pages >= max_pages {
            self.done = true;
            return Err(format!(
                "the member list goes on past {max_pages} pages of {full}: stopped"
            ));
        }
        self.after = last.user_id;
        Ok(())
    }
}

/// How long a node holds a queued change it is applying.
const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(120);

/// The longest one change may take to apply (reading the member, refreshing a token, joining,
/// giving the role: each up to ~43 s with its tries): well inside [`CLAIM_LEASE`], so that no
/// other node claims a change still being applied.
const APPLY_TIMEOUT: Duration = Duration::from_secs(100);

/// Changes one worker run looks at.
const BATCH: i64 = 200;

/// Tries of a queued change before it is given up (failed); transient failures only.
pub const MAX_ATTEMPTS: i64 = 20;

/// First delay after a transient failure; it doubles with each attempt, up to an hour.
const RETRY_BASE: TimeDelta = TimeDelta::seconds(30);

/// The doubling delay between a failed call's tries inside one call ([`DiscordApi`]).
const CALL_BACKOFF: Duration = Duration::from_millis(500);

/// The longest error kept on a queued change, in characters.
const MAX_ERROR_CHARS: usize = 500;

pub use crate::db::discord_connector::SIGN_IN_AGAIN;

/// Discord's JSON error codes that mean the bot lacks a permission or access in the guild
/// (50013 Missing Permissions, 50001 Missing Access): every later call of the run would be
/// refused the same way, so the worker stops.
const MISSING_PERMISSION_CODES: [u64; 2] = [50_013, 50_001];

/// Discord's JSON error code for a user's `OAuth2` access token it does not accept (50025
/// Invalid `OAuth2` access token), answered to `PUT /guilds/{guild}/members/{user}`.
const INVALID_USER_TOKEN: u64 = 50_025;

/// Why `remote_sync_all_discord_users_groups` refuses to run while Latchkey's groups win.
pub const REMOTE_SYNC_NEEDS_DISCORD_WINNING: &str = "remote_sync_all_discord_users_groups changes local groups from Discord's roles: it runs only when Discord's roles win (tick \"Discord's roles win over local groups\" on the Discord page, or set discord.remote_priority = true), and is off otherwise";

/// What a user's account page shows of the connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDiscord {
    /// The server's invite link.
    pub invite_link: Option<String>,
    /// The provider to sign in with again (its id in `/accounts/upstream/<id>/link/`).
    pub provider: String,
    /// Whether the user linked a Discord account at the connector's provider.
    pub linked: bool,
    /// Whether a role change failed since their latest Discord sign-in because Latchkey could
    /// not add them to the server: they should sign in with Discord again.
    pub needs_sign_in: bool,
}

/// Why a connector operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// `[discord] enabled = false`.
    #[error("the Discord connector is off (set [discord] enabled = true)")]
    Off,
    /// The settings do not work (the provider is missing or not Discord, the API root is
    /// unusable); the message says what to fix.
    #[error("{0}")]
    Misconfigured(String),
    /// The actor may not do this (superusers only).
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// The request cannot be carried out; the message is for the admin.
    #[error("{0}")]
    Invalid(String),
    /// No such group.
    #[error("no such group")]
    NotFound,
    /// Discord refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The worker stopped its run: Discord refused the bot a permission every change needs
    /// (the message says which, and what to do). The changes not yet tried wait untouched.
    #[error("role changes stopped: {0}")]
    Stopped(String),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DiscordError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

impl From<GroupError> for DiscordError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Forbidden(n) => Self::Forbidden(n),
            GroupError::Db(e) => Self::Db(e),
            GroupError::NotFound => Self::NotFound,
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// A guild role as the console lists it (as the last sync read it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleLine {
    /// The role's snowflake.
    pub id: i64,
    /// Its name in Discord.
    pub name: String,
    /// Its colour, `0xRRGGBB` (0: none).
    pub color: i64,
    /// Its position (higher ranks higher).
    pub position: i64,
    /// Whether an integration manages it.
    pub managed: bool,
    /// Why it cannot be mapped, in words; `None` when it can.
    pub unmappable: Option<String>,
    /// When it was read (UTC).
    pub synced_at: NaiveDateTime,
    /// The groups mapped to it, as (id, name).
    pub groups: Vec<(String, String)>,
}

impl RoleLine {
    fn new(role: DiscordRoleRow, groups: Vec<(String, String)>) -> Self {
        Self {
            id: role.id,
            name: role.name,
            color: role.color,
            position: role.position,
            managed: role.managed,
            unmappable: role.unmappable,
            synced_at: role.synced_at,
            groups,
        }
    }

    /// The role's colour as `#rrggbb`, `None` for Discord's "no colour" (0).
    #[must_use]
    pub fn color_hex(&self) -> Option<String> {
        (self.color != 0).then(|| format!("#{:06x}", self.color & 0x00ff_ffff))
    }
}

/// A queued change that failed at least once, as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TroubledChange {
    /// The user's username.
    pub username: String,
    /// The role.
    pub role_id: i64,
    /// Failed attempts.
    pub attempts: i64,
    /// Given up on (waits for the next membership change or verify run).
    pub failed: bool,
    /// The latest failure, in words.
    pub last_error: String,
    /// When it is next tried (UTC), unless given up on.
    pub next_attempt_at: NaiveDateTime,
}

/// The connector's state for the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// The settings in effect, as the form shows them.
    pub settings: EditableSettings,
    /// What is wrong with the settings, when something is.
    pub problem: Option<String>,
    /// Queued changes waiting.
    pub waiting: i64,
    /// Queued changes given up on.
    pub failed: i64,
    /// The guild's roles as last synced, highest first, with their groups.
    pub roles: Vec<RoleLine>,
    /// The latest changes that failed.
    pub troubled: Vec<TroubledChange>,
    /// Mappable roles without a group whose name an existing group has: "create a local group
    /// per role" leaves them for the admin to map (or not) explicitly.
    pub clashes: Vec<NameClash>,
}

/// A mappable, unmapped role whose name an existing local group has. That group is not
/// adopted by "create a local group per role": its members (anyone staff added) would get the
/// role; the admin maps it explicitly if it is meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameClash {
    /// The role's snowflake.
    pub role_id: i64,
    /// The role's name.
    pub role: String,
    /// The existing group's id.
    pub group_id: String,
    /// The existing group's name.
    pub group: String,
    /// How many members the group has.
    pub members: i64,
}

/// What "create a local group per role" did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleGroupsReport {
    /// Groups created and mapped to the role of their name.
    pub created: usize,
    /// Roles left unmapped because a group of their name exists already.
    pub clashes: Vec<NameClash>,
}

/// What "test connection" found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionReport {
    /// The bot's username, when the token works.
    pub bot: Option<String>,
    /// Whether the bot is a member of the guild.
    pub in_guild: bool,
    /// Each needed permission: its name, whether the bot has it, and what it is for.
    pub permissions: Vec<(&'static str, bool, &'static str)>,
    /// What is wrong, in words; empty when all is well.
    pub problems: Vec<String>,
}

/// What one run of the worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Roles given in Discord.
    pub added: usize,
    /// Roles taken in Discord.
    pub removed: usize,
    /// Users added to the guild with their `guilds.join` token.
    pub joined: usize,
    /// Changes with nothing to do (Discord already agreed, or the user has no link).
    pub unchanged: usize,
    /// Changes that will be tried again.
    pub retrying: usize,
    /// Changes given up on.
    pub failed: usize,
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} roles added, {} removed, {} users joined, {} unchanged, {} retrying, {} failed",
            self.added, self.removed, self.joined, self.unchanged, self.retrying, self.failed
        )
    }
}

/// What the verify job found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Guild members read.
    pub members: usize,
    /// Linked users compared.
    pub linked: usize,
    /// Role differences queued for Discord (Latchkey wins).
    pub queued: usize,
    /// Users added to local groups (Discord wins).
    pub groups_added: usize,
    /// Users taken out of local groups (Discord wins).
    pub groups_removed: usize,
    /// Linked members whose groups Discord would have changed but may not (Discord wins):
    /// staff, superusers and deactivated accounts.
    pub skipped: usize,
    /// Memberships left as they are because a change of one of the group's roles is still
    /// queued (or failed) for the user (Discord wins): Latchkey's pending change is not undone.
    pub deferred: usize,
    /// What applying the queued changes did.
    pub applied: ApplyReport,
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} members read, {} linked users compared; {} role changes queued ({}); {} group memberships added, {} removed, {} users skipped (staff, superusers, deactivated), {} memberships waiting for a queued role change",
            self.members,
            self.linked,
            self.queued,
            self.applied,
            self.groups_added,
            self.groups_removed,
            self.skipped,
            self.deferred
        )
    }
}

/// What `enforce_discord_nicknames` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicknameReport {
    /// Nicknames set.
    pub changed: usize,
    /// Nicknames already right.
    pub unchanged: usize,
    /// Members left alone: the owner, the bot, members at or above the bot, an empty result.
    pub skipped: usize,
    /// Nicknames Discord refused.
    pub refused: usize,
}

impl std::fmt::Display for NicknameReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} nicknames set, {} already right, {} members skipped, {} refused",
            self.changed, self.unchanged, self.skipped, self.refused
        )
    }
}

/// The connector's settings in effect: those saved in the console (the bot token sealed in
/// the database) over `[discord]`'s.
#[derive(Clone)]
pub struct ConnectorSettings {
    /// The `[upstream.<id>]` provider users link their Discord account with.
    pub provider: ProviderId,
    /// The bot's token. Never printed.
    pub bot_token: SecretString,
    /// The guild's snowflake.
    pub guild_id: u64,
    /// The invite link shown to users.
    pub invite_link: Option<String>,
    /// Whether Discord's roles win over local groups.
    pub remote_priority: bool,
    /// `discord.nickname_template`.
    pub nickname_template: Option<NicknameTemplate>,
}

impl std::fmt::Debug for ConnectorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSettings")
            .field("provider", &self.provider)
            .field("guild_id", &self.guild_id)
            .field("remote_priority", &self.remote_priority)
            .finish_non_exhaustive()
    }
}

/// The settings as the console's form shows them (never the token).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EditableSettings {
    /// The provider's id ("" when none is set).
    pub provider: String,
    /// The guild's snowflake, when set.
    pub guild_id: Option<u64>,
    /// The invite link ("" when none).
    pub invite_link: String,
    /// Whether Discord's roles win.
    pub remote_priority: bool,
    /// Whether a bot token is set (saved in the console, or in `[discord]`).
    pub has_token: bool,
    /// Whether the settings were saved in the console (else they are `[discord]`'s).
    pub saved_in_console: bool,
    /// The nickname strategy of `enforce_discord_nicknames` ("" for none).
    pub nickname_template: String,
    /// The jobs' intervals in minutes (0: off).
    pub schedules: JobSchedules,
}

/// The intervals of the connector's scheduled jobs as the console's form shows and takes
/// them: whole minutes, `0` for off (the job then runs only when asked: "Run now" or the
/// CLI); an empty field keeps the interval in effect. The queue worker's interval
/// (`discord.apply_interval_seconds`) stays in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSchedules {
    /// `verify_all_discord_users_groups`: 0, or 1 minute to 7 days (10,080).
    pub verify: String,
    /// `remote_sync_all_discord_users_groups`: 0, or 1 minute to 30 days (43,200).
    pub remote_sync: String,
    /// `sync_discord_users_accounts`: 0, or 1 minute to 30 days.
    pub sync_accounts: String,
    /// `enforce_discord_nicknames`: 0, or 1 minute to 30 days; needs a nickname template.
    pub enforce_nicknames: String,
}

/// Longest interval of the verify job, in minutes (7 days).
const MAX_VERIFY_MINUTES: i64 = 7 * 24 * 60;

/// Longest interval of the other scheduled jobs, in minutes (30 days).
const MAX_JOB_MINUTES: i64 = 30 * 24 * 60;

impl JobSchedules {
    /// The form's values as `(job, seconds)` (0: off; `None`: keep), or what is wrong, in
    /// words.
    fn parse(&self, has_template: bool) -> Result<[(&'static str, Option<i64>); 4], String> {
        let minutes = |label: &str, text: &str, max: i64| -> Result<Option<i64>, String> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<i64>()
                .ok()
                .filter(|m| (0..=max).contains(m))
                .map(|m| Some(m * 60))
                .ok_or_else(|| {
                    format!("{label} runs every 1 to {max} minutes, or 0 for off (got {text:?})")
                })
        };
        let enforce = minutes(
            "enforce_discord_nicknames",
            &self.enforce_nicknames,
            MAX_JOB_MINUTES,
        )?;
        if enforce.is_some_and(|e| e > 0) && !has_template {
            return Err(
                "enforce_discord_nicknames needs a nickname template, like {first_name} {last_name}"
                    .to_owned(),
            );
        }
        Ok([
            (
                super::jobs::VERIFY_ALL,
                minutes(
                    "verify_all_discord_users_groups",
                    &self.verify,
                    MAX_VERIFY_MINUTES,
                )?,
            ),
            (
                super::jobs::REMOTE_SYNC_ALL,
                minutes(
                    "remote_sync_all_discord_users_groups",
                    &self.remote_sync,
                    MAX_JOB_MINUTES,
                )?,
            ),
            (
                super::jobs::SYNC_ACCOUNTS,
                minutes(
                    "sync_discord_users_accounts",
                    &self.sync_accounts,
                    MAX_JOB_MINUTES,
                )?,
            ),
            (super::jobs::ENFORCE_NICKNAMES, enforce),
        ])
    }

    /// The intervals in effect: each job's row (set here before) over `config`'s.
    fn in_effect(config: &DiscordSettings, rows: &[JobRow]) -> Self {
        let show = |name: &str, configured: Option<Duration>| {
            let seconds = rows
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| r.every_seconds)
                .unwrap_or_else(|| {
                    configured.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                });
            // Whole minutes, rounded up (the configuration takes seconds).
            (seconds.max(0).saturating_add(59) / 60).to_string()
        };
        Self {
            verify: show(super::jobs::VERIFY_ALL, config.verify_interval),
            remote_sync: show(super::jobs::REMOTE_SYNC_ALL, config.remote_sync_interval),
            sync_accounts: show(super::jobs::SYNC_ACCOUNTS, config.sync_accounts_interval),
            enforce_nicknames: show(
                super::jobs::ENFORCE_NICKNAMES,
                config.enforce_nicknames_interval,
            ),
        }
    }
}

/// A settings change from the console's form.
pub struct SettingsChange {
    /// The provider's id.
    pub provider: String,
    /// The guild's id, as typed.
    pub guild_id: String,
    /// The invite link, as typed ("" for none).
    pub invite_link: String,
    /// Whether Discord's roles win.
    pub remote_priority: bool,
    /// A new bot token; `None` keeps the one in use.
    pub bot_token: Option<SecretString>,
    /// The nickname template, as typed ("" for none; `None` keeps the one in effect).
    pub nickname_template: Option<String>,
    /// The jobs' intervals, as typed.
    pub schedules: JobSchedules,
}

/// The Discord connector (cheap to clone). Its settings in effect are re-read from the
/// database when the console saved new ones (on any node), and its client rebuilt.
#[derive(Clone)]
pub struct DiscordConnector {
    db: Db,
    /// `None` when `[discord]` is off.
    base: Option<Arc<Base>>,
    /// The client for the settings saved at that time (`None`: none saved), once built.
    current: Arc<RwLock<Option<Built>>>,
    /// The longest one queued change may take to apply ([`APPLY_TIMEOUT`]).
    apply_timeout: Duration,
}

/// A client and what it was built for: the save (`updated_at` of the settings row; `None`:
/// none) and the provider's API address (`api_base`, which a superuser may change on the
/// providers page).
type Built = (Option<NaiveDateTime>, String, Arc<Inner>);

/// What does not change with the console's settings.
struct Base {
    config: DiscordSettings,
    upstream: Upstream,
    groups: Groups,
    /// Seals the bot token saved in the console.
    sealer: Sealer,
    /// This instance's claim owner id (random).
    owner: String,
}

struct Inner {
    settings: ConnectorSettings,
    /// The bot's client, or why there is none.
    api: Result<DiscordApi, String>,
    upstream: Upstream,
    groups: Groups,
    /// Whether the provider keeps `guilds.join` tokens (users can be added to the guild).
    can_join: bool,
    /// This instance's claim owner id (random).
    owner: String,
}

impl Inner {
    fn api(&self) -> Result<&DiscordApi, DiscordError> {
        self.api
            .as_ref()
            .map_err(|m| DiscordError::Misconfigured(m.clone()))
    }
}

/// The HKDF purpose of the bot token's sealing key.
const BOT_TOKEN_PURPOSE: &str = "discord-bot-token/v1";

/// The associated data of a bot token sealed before it was bound to its API host (no prefix):
/// such a token opens only while the provider talks to Discord's own API.
const LEGACY_BOT_TOKEN_AAD: &[u8] = b"discord_connector_settings/bot_token";

/// The prefix of a bot token sealed for one API host ([`bot_token_aad`]).
const BOT_TOKEN_V2: &str = "v2:";

/// The associated data of a bot token sealed for the API at `api_base`: its origin (scheme,
/// host and port). A token saved while the provider talked to one host does not open for
/// another, so a superuser who points the provider's `api_base` at their own server cannot
/// have the bot's `Authorization: Bot …` sent there without entering the token again.
fn bot_token_aad(api_base: &url::Url) -> Vec<u8> {
    format!(
        "discord_connector_settings/bot_token@{}",
        api_base.origin().ascii_serialization()
    )
    .into_bytes()
}

/// Seals `token` for the API at `api_base`.
fn seal_bot_token(sealer: &Sealer, token: &str, api_base: &url::Url) -> Result<String, SealError> {
    Ok(format!(
        "{BOT_TOKEN_V2}{}",
        sealer.seal(&bot_token_aad(api_base), token.as_bytes())?
    ))
}

/// Opens a sealed bot token for the API at `api_base`: one sealed for that origin, or a legacy
/// one (sealed before the binding) only while `api_base` is Discord's own. `None` otherwise.
fn open_bot_token(sealer: &Sealer, sealed: &str, api_base: &url::Url) -> Option<String> {
    let opened = match sealed.strip_prefix(BOT_TOKEN_V2) {
        Some(bound) => sealer.open(&bot_token_aad(api_base), bound).ok()?,
        None => {
            let discord = url::Url::parse(super::api::DISCORD_API).ok()?;
            if api_base.origin() != discord.origin() {
                return None;
            }
            sealer.open(LEGACY_BOT_TOKEN_AAD, sealed).ok()?
        }
    };
    String::from_utf8(opened).ok()
}

/// The API root of provider `provider` (Discord's when it sets none, or is not found: the
/// client then refuses to be built anyway).
fn api_base_of(base: &Base, provider: &str) -> url::Url {
    base.upstream
        .provider(provider)
        .ok()
        .and_then(|p| p.api_base.clone())
        .unwrap_or_else(|| {
            url::Url::parse(super::api::DISCORD_API).expect("Discord's API is a URL")
        })
}

/// What the page says when the saved bot token does not open for the provider's API address.
const TOKEN_FOR_ANOTHER_API: &str = "the provider's API address changed since the bot token was saved (or secrets.secret_key did): enter the bot token again on the Discord page";

impl std::fmt::Debug for DiscordConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets: the bot token stays inside twilight's client, which redacts it.
        f.debug_struct("DiscordConnector")
            .field("config", &self.base.as_ref().map(|b| &b.config))
            .finish_non_exhaustive()
    }
}

/// One queued change's outcome.
enum Outcome {
    Added { joined: bool },
    Removed,
    Unchanged,
}

/// Why a queued change was not applied.
struct Failure {
    message: String,
    /// `Some(delay)` to try again after it; `None` to give up.
    retry_after: Option<TimeDelta>,
    /// Whether the run stops here: Discord refused the bot a permission, so every later call
    /// would be refused too (and count towards Discord's ban of clients that send too many
    /// invalid requests).
    stop: bool,
    /// Whether nothing is recorded on the change (its claim is only released): the failure
    /// says nothing about it (Discord refused the bot's token).
    untouched: bool,
}

impl Failure {
    fn give_up(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
            stop: false,
            untouched: false,
        }
    }

    fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: Some(TimeDelta::zero()),
            stop: false,
            untouched: false,
        }
    }

    fn from_api(e: &ApiError) -> Self {
        match e {
            ApiError::RateLimited { retry_after } => Self {
                message: e.to_string(),
                retry_after: Some(TimeDelta::from_std(*retry_after).unwrap_or(TimeDelta::MAX)),
                stop: false,
                untouched: false,
            },
            ApiError::Unavailable(_) => Self::retry(e.to_string()),
            // twilight refuses every later call with this token: none of the changes can be
            // applied, and none is to blame.
            ApiError::Unauthorized => Self {
                message: "Discord refused the bot token (401): enter it again on the Discord page (or discord.bot_token); no change was applied or marked".to_owned(),
                retry_after: None,
                stop: true,
                untouched: true,
            },
            ApiError::Forbidden { code, .. } if MISSING_PERMISSION_CODES.contains(code) => Self {
                message: format!(
                    "{e}: the bot lacks a permission in the server (Test connection on the Discord page says which), or the role is above the bot's highest role"
                ),
                retry_after: None,
                stop: true,
                untouched: false,
            },
            other => Self::give_up(other.to_string()),
        }
    }
}

impl DiscordConnector {
    /// The connector for `settings` (`None`: off). Settings saved in the console win over
    /// these; the bot token saved there is sealed under a key derived from `secret_key`
    /// (`secrets.secret_key`). The Discord provider is looked up through `upstream`; when it is
    /// missing or not of kind `discord`, or a setting is missing, every call says so
    /// ([`DiscordError::Misconfigured`]) until the console sets it.
    ///
    /// # Errors
    /// [`SealError`] if the sealing key cannot be set up.
    pub fn new(
        db: Db,
        settings: Option<DiscordSettings>,
        upstream: Upstream,
        groups: Groups,
        secret_key: &[u8],
    ) -> Result<Self, SealError> {
        let base = match settings {
            Some(config) => Some(Arc::new(Base {
                config,
                upstream,
                groups,
                sealer: Sealer::new(secret_key, BOT_TOKEN_PURPOSE)?,
                owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            })),
            None => None,
        };
        Ok(Self {
            db,
            base,
            current: Arc::new(RwLock::new(None)),
            apply_timeout: APPLY_TIMEOUT,
        })
    }

    /// This connector with `timeout` as the longest one queued change may take to apply
    /// (tests; [`APPLY_TIMEOUT`] otherwise).
    #[doc(hidden)]
    #[must_use]
    pub fn with_apply_timeout(mut self, timeout: Duration) -> Self {
        self.apply_timeout = timeout;
        self
    }

    /// Whether the connector is on (`[discord] enabled`).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.base.is_some()
    }

    /// The `[discord]` settings, when on (the console's may override some).
    #[must_use]
    pub fn settings(&self) -> Option<&DiscordSettings> {
        self.base.as_ref().map(|b| &b.config)
    }

    fn base(&self) -> Result<&Arc<Base>, DiscordError> {
        self.base.as_ref().ok_or(DiscordError::Off)
    }

    /// The client for the settings in effect: the one built before, unless the console saved
    /// settings since (on any node) or the provider's API address changed, then a new one.
    async fn inner(&self) -> Result<Arc<Inner>, DiscordError> {
        let base = self.base()?.clone();
        let version = self
            .db
            .read(|conn| store::settings_version(conn).map_err(DiscordError::from))
            .await?;
        if let Some((built, api, inner)) = self.current.read().ok().and_then(|c| c.clone()) {
            let api_now = api_base_of(&base, inner.settings.provider.as_str());
            if built == version && api == api_now.as_str() {
                return Ok(inner);
            }
        }
        let row = self
            .db
            .read(|conn| store::settings(conn).map_err(DiscordError::from))
            .await?;
        let settings = effective(&base, row.as_ref()).map_err(DiscordError::Misconfigured)?;
        let api = api_base_of(&base, settings.provider.as_str()).to_string();
        let inner = Arc::new(build(&base, settings));
        if let Ok(mut current) = self.current.write() {
            *current = Some((row.map(|r| r.updated_at), api, inner.clone()));
        }
        Ok(inner)
    }

    /// Refuses `actor` unless they are an active superuser (or the system).
    async fn check_superuser(&self, actor: &Actor) -> Result<(), DiscordError> {
        let actor = actor.clone();
        self.db
            .read(move |conn| privileges::check_superuser::<DiscordError>(conn, &actor))
            .await
    }

    /// What `user_id`'s account page shows: the invite link, whether they linked Discord at
    /// the connector's provider, and whether they must sign in with Discord again (a change
    /// failed with [`SIGN_IN_AGAIN`] after their latest sign-in there). `None` when the
    /// connector is off.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn account_view(&self, user_id: &str) -> Result<Option<AccountDiscord>, DbError> {
        let inner = match self.inner().await {
            Ok(inner) => inner,
            Err(DiscordError::Db(e)) => return Err(e),
            // Off, or not set up yet: nothing to show.
            Err(_) => return Ok(None),
        };
        let provider = inner.settings.provider.to_string();
        let link = inner
            .upstream
            .links_of(user_id)
            .await?
            .into_iter()
            .find(|l| l.provider_id == provider);
        let user = user_id.to_owned();
        let failed_at = self
            .db
            .read(move |conn| {
                store::latest_failure(conn, &user, SIGN_IN_AGAIN).map_err(DbError::from)
            })
            .await?;
        let needs_sign_in = match (&link, failed_at) {
            (Some(link), Some(failed)) => link.last_login_at.is_none_or(|at| at < failed),
            _ => false,
        };
        Ok(Some(AccountDiscord {
            invite_link: inner.settings.invite_link.as_ref().map(ToString::to_string),
            provider,
            linked: link.is_some(),
            needs_sign_in,
        }))
    }

    /// Saves the connector's settings from the console (superusers only): the provider (an
    /// enabled provider of kind `discord`), the server id, the invite link (https, or none),
    /// who wins, and a new bot token (sealed; `None` keeps the one in use, which there must
    /// be). Every node uses them from its next operation. The token is never shown again, nor
    /// logged; the audit event says only whether it changed.
    ///
    /// # Errors
    /// [`DiscordError::Invalid`] with the reason, [`DiscordError::Forbidden`], storage.
    pub async fn save_settings(
        &self,
        actor: &Actor,
        change: SettingsChange,
    ) -> Result<(), DiscordError> {
        let base = self.base()?.clone();
        let provider = ProviderId::parse(change.provider.trim())
            .ok()
            .filter(|p| {
                base.upstream
                    .provider(p.as_str())
                    .is_ok_and(|p| p.kind == ProviderKind::Discord)
            })
            .ok_or_else(|| {
                DiscordError::Invalid(format!(
                    "{:?} is not an enabled sign-in provider of kind \"discord\"",
                    change.provider.trim()
                ))
            })?;
        let guild_text = change.guild_id.trim();
        let guild_id = guild_text
            .parse::<i64>()
            .ok()
            .filter(|g| *g > 0 && guild_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                DiscordError::Invalid(
                    "the server id is a number like 81384788765712384 (Copy Server ID in Discord)"
                        .to_owned(),
                )
            })?;
        let invite_link = match change.invite_link.trim() {
            "" => None,
            link => Some(
                url::Url::parse(link)
                    .ok()
                    .filter(|u| u.scheme() == "https" && u.host().is_some())
                    .ok_or_else(|| {
                        DiscordError::Invalid(
                            "the invite link is an https URL like https://discord.gg/abc123"
                                .to_owned(),
                        )
                    })?
                    .to_string(),
            ),
        };
        // The token is sealed for the provider's API host: it opens for no other.
        let api_base = api_base_of(&base, provider.as_str());
        let sealed =
            match change
                .bot_token
                .as_ref()
                .map(|t| t.expose_secret().trim().to_owned())
                .filter(|t| !t.is_empty())
            {
                Some(token) if token.bytes().all(|b| b.is_ascii_graphic()) => Some(
                    seal_bot_token(&base.sealer, &token, &api_base).map_err(|_| {
                        DiscordError::Invalid("the token could not be sealed".to_owned())
                    })?,
                ),
                Some(_) => return Err(DiscordError::Invalid(
                    "the bot token is the one Discord's developer portal shows (Bot → Reset Token)"
                        .to_owned(),
                )),
                None => None,
            };
        // `None`: keep the template in effect (read in the transaction below).
        let typed_template = match change.nickname_template.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(t) => Some(Some(
                NicknameTemplate::parse(t)
                    .map_err(|e| DiscordError::Invalid(format!("the nickname template: {e}")))?
                    .as_str()
                    .to_owned(),
            )),
        };
        let configured_template = base
            .config
            .nickname_template
            .as_ref()
            .map(|t| t.as_str().to_owned());
        let typed_schedules = change.schedules.clone();
        let token_changed = sealed.is_some();
        let has_config_token = base.config.bot_token.is_some();
        let sealer_base = base.clone();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    privileges::check_superuser::<DiscordError>(conn, &actor)?;
                    let saved = store::settings(conn)?;
                    let template = typed_template.unwrap_or_else(|| {
                        match saved.as_ref().and_then(|r| r.nickname_template.clone()) {
                            Some(t) => Some(t).filter(|t| !t.is_empty()),
                            None => configured_template,
                        }
                    });
                    let schedules = typed_schedules
                        .parse(template.is_some())
                        .map_err(DiscordError::Invalid)?;
                    // A kept token must open for the provider's API host (sealed again, bound to
                    // it: a legacy token is upgraded), else it is entered again.
                    let kept = match (&sealed, saved.and_then(|r| r.bot_token_sealed)) {
                        (None, Some(kept)) => {
                            let token = open_bot_token(&sealer_base.sealer, &kept, &api_base)
                                .ok_or_else(|| {
                                    DiscordError::Invalid(TOKEN_FOR_ANOTHER_API.to_owned())
                                })?;
                            Some(
                                seal_bot_token(&sealer_base.sealer, &token, &api_base).map_err(
                                    |_| {
                                        DiscordError::Invalid(
                                            "the token could not be sealed".to_owned(),
                                        )
                                    },
                                )?,
                            )
                        }
                        _ => None,
                    };
                    let bot_token_sealed = sealed.or(kept);
                    if bot_token_sealed.is_none() && !has_config_token {
                        return Err(DiscordError::Invalid(
                            "enter the bot token (Discord's developer portal: Bot → Reset Token)"
                                .to_owned(),
                        ));
                    }
                    store::save_settings(
                        conn,
                        &ConnectorSettingsRow {
                            id: 1,
                            provider: provider.to_string(),
                            guild_id,
                            invite_link: invite_link.clone(),
                            remote_priority: change.remote_priority,
                            bot_token_sealed,
                            updated_at: db::now(),
                            updated_by: actor.user_id.clone(),
                            nickname_template: Some(template.clone().unwrap_or_default()),
                        },
                    )?;
                    let now = db::now();
                    let off_until = crate::scheduler::off_until(now);
                    let mut event = AuditEvent::new("discord.settings_changed")
                        .by(&actor)
                        .detail("provider", provider.to_string())
                        .detail("guild_id", guild_id.to_string())
                        .detail("invite_link", invite_link.unwrap_or_default())
                        .detail("remote_priority", change.remote_priority)
                        .detail("bot_token_changed", token_changed)
                        .detail("nickname_template", template.clone().unwrap_or_default());
                    let no_template = template.is_none();
                    for (job, seconds) in schedules {
                        // Without a template the nickname job is off; without Discord winning,
                        // the remote sync (which it alone may run).
                        let seconds = if (job == super::jobs::ENFORCE_NICKNAMES && no_template)
                            || (job == super::jobs::REMOTE_SYNC_ALL && !change.remote_priority)
                        {
                            Some(0)
                        } else {
                            seconds
                        };
                        if let Some(seconds) = seconds {
                            job_rows::set_interval(conn, job, seconds, now, off_until)?;
                            event = event.detail(&format!("{job}_every_seconds"), seconds);
                        }
                    }
                    audit::record(conn, event)?;
                    Ok(())
                })
            })
            .await
    }

    /// The connector's jobs as scheduled (`jobs` rows; a job no node has registered has
    /// none), in [`super::jobs::ALL`]'s order (superusers only).
    ///
    /// # Errors
    /// [`DiscordError::Off`], [`DiscordError::Forbidden`], storage failures.
    pub async fn jobs(&self, actor: &Actor) -> Result<Vec<JobRow>, DiscordError> {
        self.base()?;
        self.check_superuser(actor).await?;
        let rows = self
            .db
            .read(|conn| job_rows::all(conn).map_err(DiscordError::from))
            .await?;
        Ok(super::jobs::ALL
            .iter()
            .filter_map(|name| rows.iter().find(|r| r.name == *name).cloned())
            .collect())
    }

    /// "Run now" (superusers only): makes job `name` (one of [`super::jobs::ALL`]) due at
    /// once, so that the next scheduler pass — within a minute, on whichever node claims it —
    /// runs it; the slot stays one node's. Returns `false` when no node has scheduled it (its
    /// `jobs` row does not exist).
    ///
    /// # Errors
    /// [`DiscordError::Invalid`] for another name, [`DiscordError::Forbidden`], storage.
    pub async fn run_job_soon(&self, actor: &Actor, name: &str) -> Result<bool, DiscordError> {
        self.base()?;
        let Some(name) = super::jobs::ALL.iter().find(|n| **n == name) else {
            return Err(DiscordError::Invalid(format!(
                "{name:?} is not one of the connector's jobs"
            )));
        };
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    privileges::check_superuser::<DiscordError>(conn, &actor)?;
                    if !job_rows::all(conn)?.iter().any(|r| r.name == *name) {
                        return Ok(false);
                    }
                    job_rows::pull_forward(conn, name, db::now())?;
                    audit::record(
                        conn,
                        AuditEvent::new("job.run_requested")
                            .by(&actor)
                            .detail("job", *name),
                    )?;
                    Ok(true)
                })
            })
            .await
    }

    /// The connector's state for the console (superusers only).
    ///
    /// # Errors
    /// [`DiscordError::Off`], [`DiscordError::Forbidden`], storage failures.
    pub async fn status(&self, actor: &Actor) -> Result<ConnectorStatus, DiscordError> {
        let base = self.base()?.clone();
        self.check_superuser(actor).await?;
        let problem = match self.inner().await {
            Ok(inner) => inner.api.as_ref().err().cloned(),
            Err(DiscordError::Misconfigured(problem)) => Some(problem),
            Err(e) => return Err(e),
        };
        let (row, jobs) = self
            .db
            .read(|conn| Ok::<_, DiscordError>((store::settings(conn)?, job_rows::all(conn)?)))
            .await?;
        let settings = editable(&base, row.as_ref(), &jobs);
        // A worker that stopped (Discord refused the bot a permission, or its token) says so.
        let problem = problem.or_else(|| {
            jobs.iter()
                .find(|j| j.name == super::jobs::APPLY_ROLE_CHANGES)
                .and_then(|j| j.last_error.clone())
                .map(|e| {
                    format!(
                        "The role worker ({}) is failing: {e}",
                        super::jobs::APPLY_ROLE_CHANGES
                    )
                })
        });
        let (roles, mappings, (waiting, failed), troubled, clashes) = self
            .db
            .read(|conn| {
                Ok::<_, DiscordError>((
                    store::roles(conn)?,
                    store::mappings(conn)?,
                    store::change_counts(conn)?,
                    store::troubled_changes(conn, 20)?,
                    name_clashes(conn)?,
                ))
            })
            .await?;
        let mut by_role: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for (group_id, group_name, role_id) in mappings {
            by_role
                .entry(role_id)
                .or_default()
                .push((group_id, group_name));
        }
        Ok(ConnectorStatus {
            settings,
            problem,
            waiting,
            failed,
            roles: roles
                .into_iter()
                .map(|role| {
                    let groups = by_role.remove(&role.id).unwrap_or_default();
                    RoleLine::new(role, groups)
                })
                .collect(),
            troubled: troubled
                .into_iter()
                .map(|(change, username)| TroubledChange {
                    username: username.unwrap_or_else(|| {
                        format!(
                            "Discord user {} (its user was deleted)",
                            change.discord_user_id.unwrap_or_default()
                        )
                    }),
                    role_id: change.role_id,
                    attempts: change.attempts,
                    failed: change.failed,
                    last_error: change.last_error.unwrap_or_default(),
                    next_attempt_at: change.next_attempt_at,
                })
                .collect(),
            clashes,
        })
    }

    /// "Test connection" (superusers only): whether the bot token works, whether the bot is in
    /// the guild, and which needed permissions it has, with what is missing in words.
    ///
    /// # Errors
    /// [`DiscordError::Off`], [`DiscordError::Misconfigured`], [`DiscordError::Forbidden`];
    /// Discord being unreachable ([`DiscordError::Api`]). Refusals by Discord are part of the
    /// report.
    pub async fn test_connection(&self, actor: &Actor) -> Result<ConnectionReport, DiscordError> {
        self.base()?;
        // Checked first: staff learn nothing of the configuration.
        self.check_superuser(actor).await?;
        let inner = self.inner().await?;
        let api = inner.api()?;
        let mut report = ConnectionReport {
            bot: None,
            in_guild: false,
            permissions: BotStanding {
                permissions: twilight_model::guild::Permissions::empty(),
                top_position: 0,
            }
            .needed(),
            problems: Vec::new(),
        };
        let (bot_id, bot_name) = match api.bot_user().await {
            Ok(me) => me,
            Err(ApiError::Unauthorized) => {
                report.problems.push("Discord refused the bot token: copy it again from the developer portal (Bot → Reset Token) into the settings above (or discord.bot_token).".to_owned());
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        report.bot = Some(bot_name);
        if !inner.can_join {
            report.problems.push(format!(
                "The sign-in provider {} does not ask for the guilds.join scope (or keep_tokens is off): users who are not yet in the server cannot be added to it. Add \"guilds.join\" to its scopes; users then sign in with Discord once more.",
                inner.settings.provider
            ));
        }
        match self.bot_standing(api, bot_id).await {
            Ok(Some(standing)) => {
                report.in_guild = true;
                report.permissions = standing.needed();
                let missing = standing.missing_in_words();
                if !missing.is_empty() {
                    report.problems.push(missing);
                }
            }
            Ok(None) | Err(ApiError::Forbidden { .. } | ApiError::NotFound { .. }) => {
                report.problems.push(format!(
                    "The bot is not a member of server {}: invite it with the OAuth2 URL generator of your Discord application (scope \"bot\", permissions Manage Roles, Manage Nicknames and Create Instant Invite).",
                    api.guild()
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(report)
    }

    /// The bot's standing in the guild, `None` when it is not a member; with the roles read.
    async fn bot_standing(
        &self,
        api: &DiscordApi,
        bot_id: u64,
    ) -> Result<Option<BotStanding>, ApiError> {
        let Some(member) = api.member(bot_id).await? else {
            return Ok(None);
        };
        let roles = api.roles().await?;
        Ok(Some(BotStanding::of(api.guild(), &roles, &member.roles)))
    }

    /// "Sync roles from Discord" (superusers only): reads the guild's roles and the bot's
    /// standing, stores every role with what it allows and why it cannot be mapped (managed,
    /// `@everyone`, giving a moderation or administration power — [`super::roles::DANGEROUS`]
    /// —, at or above the bot's highest role); returns how many roles there are.
    ///
    /// # Errors
    /// [`DiscordError::Api`] when Discord refuses (the bot is not in the guild) or fails.
    pub async fn sync_roles(&self, actor: &Actor) -> Result<usize, DiscordError> {
        self.base()?;
        self.check_superuser(actor).await?;
        let inner = self.inner().await?;
        let api = inner.api()?;
        let (bot_id, _) = api.bot_user().await?;
        let Some(member) = api.member(bot_id).await? else {
            return Err(DiscordError::Invalid(format!(
                "the bot is not a member of server {}: invite it first",
                api.guild()
            )));
        };
        let roles = api.roles().await?;
        let standing = BotStanding::of(api.guild(), &roles, &member.roles);
        let now = db::now();
        let rows: Vec<DiscordRoleRow> = roles
            .iter()
            .filter_map(|role| {
                Some(DiscordRoleRow {
                    id: i64::try_from(role.id.get()).ok()?,
                    name: clean(&role.name, 100),
                    color: i64::from(role.color),
                    position: role.position,
                    managed: role.managed,
                    unmappable: standing.unmappable(api.guild(), role),
                    synced_at: now,
                    permissions: i64::try_from(role.permissions.bits()).ok(),
                })
            })
            .collect();
        let count = rows.len();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    privileges::check_superuser::<DiscordError>(conn, &actor)?;
                    store::replace_roles(conn, &rows)?;
                    audit::record(
                        conn,
                        AuditEvent::new("discord.roles_synced")
                            .by(&actor)
                            .detail("roles", count),
                    )?;
                    Ok(())
                })
            })
            .await?;
        Ok(count)
    }

    /// Maps `group_id` to guild role `role_id` (superusers only): refused for a role the last
    /// sync did not see or found unmappable, with the reason. The group's members with a linked
    /// Discord account get the role (queued). Returns whether the mapping is new.
    ///
    /// # Errors
    /// [`DiscordError::Invalid`] (with the reason), [`DiscordError::NotFound`],
    /// [`DiscordError::Forbidden`].
    pub async fn map_role(
        &self,
        actor: &Actor,
        group_id: &str,
        role_id: i64,
    ) -> Result<bool, DiscordError> {
        self.base()?;
        let (actor, group_id) = (actor.clone(), group_id.to_owned());
        self.db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    privileges::check_superuser::<DiscordError>(conn, &actor)?;
                    let group = group_rows::find(conn, &group_id)?.ok_or(DiscordError::NotFound)?;
                    let Some(role) = store::role(conn, role_id)? else {
                        return Err(DiscordError::Invalid(
                            "this role is not among the server's roles as last synced: sync roles from Discord first".to_owned(),
                        ));
                    };
                    if let Some(why) = role.unmappable {
                        return Err(DiscordError::Invalid(format!(
                            "the role {} cannot be mapped: {why}",
                            role.name
                        )));
                    }
                    if role.permissions.is_none() {
                        return Err(DiscordError::Invalid(format!(
                            "what the role {} allows is not known: sync roles from Discord first",
                            role.name
                        )));
                    }
                    let now = db::now();
                    if !store::map(conn, &group.id, role_id, now)? {
                        return Ok(false);
                    }
                    for user in store::member_ids(conn, &group.id)? {
                        if store::has_discord_account(conn, &user)? {
                            store::queue(conn, &user, role_id, now, store::Cause::Admin)?;
                        }
                    }
                    audit::record(
                        conn,
                        AuditEvent::new("discord.role_mapped")
                            .by(&actor)
                            .detail("group_id", group.id)
                            .detail("group", group.name)
                            .detail("role_id", role_id.to_string())
                            .detail("role", role.name),
                    )?;
                    Ok(true)
                })
            })
            .await
    }

    /// Removes the mapping of `group_id` to `role_id` (superusers only); the group's members
    /// lose the role unless another of their groups gives it (queued). Returns whether there
    /// was one.
    ///
    /// # Errors
    /// [`DiscordError::Forbidden`], storage failures.
    pub async fn unmap_role(
        &self,
        actor: &Actor,
        group_id: &str,
        role_id: i64,
    ) -> Result<bool, DiscordError> {
        self.base()?;
        let (actor, group_id) = (actor.clone(), group_id.to_owned());
        self.db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    privileges::check_superuser::<DiscordError>(conn, &actor)?;
                    if !store::unmap(conn, &group_id, role_id)? {
                        return Ok(false);
                    }
                    let now = db::now();
                    for user in store::member_ids(conn, &group_id)? {
                        if store::has_discord_account(conn, &user)? {
                            store::queue(conn, &user, role_id, now, store::Cause::Admin)?;
                        }
                    }
                    audit::record(
                        conn,
                        AuditEvent::new("discord.role_unmapped")
                            .by(&actor)
                            .detail("group_id", group_id.clone())
                            .detail("role_id", role_id.to_string()),
                    )?;
                    Ok(true)
                })
            })
            .await
    }

    /// "Create a local group per role" (superusers only; the seed's "sync your groups"): every
    /// mappable role that no group is mapped to gets a new group of its name, mapped to it. An
    /// existing group of that name is never adopted — its members, whoever added them, would
    /// get the role —: the role is reported as a name clash (with the group's member count) for
    /// the admin to map explicitly, or not.
    ///
    /// # Errors
    /// [`DiscordError::Forbidden`] (checked first), storage failures.
    pub async fn create_groups_for_roles(
        &self,
        actor: &Actor,
    ) -> Result<RoleGroupsReport, DiscordError> {
        self.base()?;
        self.check_superuser(actor).await?;
        let inner = self.inner().await?;
        let (roles, mappings, groups) = self
            .db
            .read(|conn| {
                Ok::<_, DiscordError>((
                    store::roles(conn)?,
                    store::mappings(conn)?,
                    group_rows::all(conn)?,
                ))
            })
            .await?;
        let mapped: BTreeSet<i64> = mappings.iter().map(|(_, _, r)| *r).collect();
        let mut report = RoleGroupsReport::default();
        for role in roles
            .iter()
            .filter(|r| r.not_given().is_none() && !mapped.contains(&r.id))
        {
            let key = role.name.trim().to_lowercase();
            if groups.iter().any(|g| g.name_key == key) {
                continue;
            }
            let group_id = match inner
                .groups
                .create(actor, &role.name, &format!("Discord role {}", role.name))
                .await
            {
                Ok(g) => g.id,
                Err(GroupError::Invalid(why)) => {
                    // Another group of that name (made meanwhile), or a name groups refuse.
                    tracing::warn!(role = %role.name, %why, "no group for this Discord role");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if self.map_role(actor, &group_id, role.id).await? {
                report.created += 1;
            }
        }
        report.clashes = self.db.read(name_clashes).await?;
        Ok(report)
    }

    /// The worker: applies the queued role changes that are due, each claimed first so that one
    /// node applies it. For each: the user's Discord id through their link at the connector's
    /// provider (none: nothing to do); whether their groups give the role now; the member as
    /// Discord has them; then the role is given or taken when Discord differs — a user not in
    /// the guild who should have it is added with their kept `guilds.join` token (refreshed
    /// when expired) and the role. Every change carries an `X-Audit-Log-Reason` and is an
    /// audit event. Rate limits and outages are tried again later (doubling delays, at most
    /// [`MAX_ATTEMPTS`]); Discord's refusals are given up at once and shown in the console. A
    /// refusal for a permission the bot lacks (403 with code 50013 or 50001) gives up that
    /// change and stops the run: the changes not yet tried are left untouched for the next run
    /// rather than each refused in turn (Discord bans clients that send too many invalid
    /// requests). A bot token Discord refuses (401; twilight then refuses every later call
    /// with it) stops the run without recording anything on the change: its claim is released
    /// and every change waits, as it was, for a working token. Storage failures while a change
    /// is applied are tried again later. Only a change queued by a membership change adds a
    /// user to the guild, and never a deactivated one.
    ///
    /// # Errors
    /// [`DiscordError::Off`], [`DiscordError::Misconfigured`], storage failures;
    /// [`DiscordError::Stopped`] when the run stopped (the job then shows as failing, and the
    /// Discord page's problem line says why).
    pub async fn apply_queued(&self) -> Result<ApplyReport, DiscordError> {
        let inner = self.inner().await?;
        let api = inner.api()?;
        let now = db::now();
        let due = self
            .db
            .read(move |conn| store::due(conn, now, BATCH).map_err(DiscordError::from))
            .await?;
        let mut report = ApplyReport::default();
        for change in due {
            let (id, owner) = (change.id.clone(), inner.owner.clone());
            let now = db::now();
            let claimed = self
                .db
                .write(move |conn| {
                    store::claim(conn, &id, &owner, now, now + CLAIM_LEASE)
                        .map_err(DiscordError::from)
                })
                .await?;
            if !claimed {
                continue;
            }
            // Bounded well inside the claim's lease: past it another node could apply it too.
            let outcome =
                tokio::time::timeout(self.apply_timeout, self.apply_one(&inner, api, &change))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure::retry(format!(
                            "applying it took longer than {} s; tried again later",
                            self.apply_timeout.as_secs_f64()
                        )))
                    });
            let stopped = match &outcome {
                Err(failure) if failure.stop => Some(failure.message.clone()),
                _ => None,
            };
            if matches!(&outcome, Err(failure) if failure.untouched) {
                let (id, owner) = (change.id.clone(), inner.owner.clone());
                self.db
                    .write(move |conn| {
                        store::release(conn, &id, &owner).map_err(DiscordError::from)
                    })
                    .await?;
            } else {
                self.record(&inner, &change, outcome, &mut report).await?;
            }
            if let Some(why) = stopped {
                // The changes not yet claimed wait, untouched, for the next run.
                tracing::error!(error = %why, "the Discord role worker stopped its run");
                return Err(DiscordError::Stopped(format!(
                    "{why}; {report} before it stopped"
                )));
            }
        }
        Ok(report)
    }

    /// Applies one claimed change; the events to record with its end.
    async fn apply_one(
        &self,
        inner: &Inner,
        api: &DiscordApi,
        change: &RoleChangeRow,
    ) -> Result<(Outcome, Option<u64>), Failure> {
        let provider = inner.settings.provider.to_string();
        // Whose role it is: a check's user, through their link at the provider; a removal's
        // Discord account, and the user linked to it now (when it was linked again), if any.
        let (user, discord_id) = if change.is_removal() {
            let Some(discord_id) = change.discord_user_id.and_then(|d| u64::try_from(d).ok())
            else {
                return Ok((Outcome::Unchanged, None));
            };
            let (provider, subject) = (provider.clone(), discord_id.to_string());
            let user = self
                .db
                .read(move |conn| {
                    store::user_linked_to(conn, &provider, &subject).map_err(DbError::from)
                })
                .await
                .map_err(|e| Failure::from_db(&e))?;
            (user, discord_id)
        } else {
            let Some(user_id) = change.user_id.clone() else {
                return Ok((Outcome::Unchanged, None));
            };
            let links = inner
                .upstream
                .links_of(&user_id)
                .await
                .map_err(|e| Failure::from_db(&e))?;
            let Some(discord_id) = links
                .iter()
                .find(|l| l.provider_id == provider)
                .and_then(|l| l.subject.parse::<u64>().ok())
            else {
                return Ok((Outcome::Unchanged, None));
            };
            (Some(user_id), discord_id)
        };
        let role = change.role_id;
        let for_user = user.clone();
        let (wanted, giving, not_given) = self
            .db
            .read(move |conn| {
                let not_given = match store::role(conn, role)? {
                    Some(row) => row.not_given(),
                    None => Some(
                        "the role is not among the server's roles as last synced (deleted in Discord?): sync roles from Discord, and unmap it"
                            .to_owned(),
                    ),
                };
                let (wanted, giving) = match for_user {
                    Some(user) => (
                        store::wants_role(conn, &user, role)?,
                        store::groups_giving(conn, &user, role)?,
                    ),
                    None => (false, Vec::new()),
                };
                Ok::<_, DbError>((wanted, giving, not_given))
            })
            .await
            .map_err(|e| Failure::from_db(&e))?;
        let role =
            u64::try_from(change.role_id).map_err(|_| Failure::give_up("a negative role id"))?;
        let member = api
            .member(discord_id)
            .await
            .map_err(|e| Failure::from_api(&e))?;
        let removal_reason = if user.is_none() {
            "Latchkey: the Discord account was unlinked (or its user deleted)"
        } else {
            "Latchkey: no longer in a group mapped to this role"
        };
        match (member, wanted) {
            (None, false) => Ok((Outcome::Unchanged, Some(discord_id))),
            (Some(m), wanted) if m.roles.contains(&role) == wanted => {
                Ok((Outcome::Unchanged, Some(discord_id)))
            }
            // A role that cannot be mapped (it gives a moderation power, say) is never given,
            // though it stays mapped; taking it is always allowed.
            (Some(_), true) if not_given.is_some() => {
                Err(Failure::give_up(not_given.unwrap_or_default()))
            }
            (Some(_), true) => {
                let reason = reason_added(&giving);
                self.give_role(api, discord_id, role, &reason).await?;
                Ok((Outcome::Added { joined: false }, Some(discord_id)))
            }
            (Some(_), false) => match api.remove_role(discord_id, role, removal_reason).await {
                Ok(()) => Ok((Outcome::Removed, Some(discord_id))),
                Err(ApiError::NotFound { code, .. }) if code == UNKNOWN_MEMBER => {
                    Ok((Outcome::Unchanged, Some(discord_id)))
                }
                Err(e) => Err(Failure::from_api(&e)),
            },
            // Only a change caused by a membership change adds the user to the guild (never a
            // removal, verify, or an admin's other change): nobody is pulled back after they
            // left or were kicked. `wanted` is false for a deactivated user.
            (None, true) if change.is_removal() || !change.may_join => {
                Ok((Outcome::Unchanged, Some(discord_id)))
            }
            (None, true) => {
                if let Some(why) = not_given {
                    return Err(Failure::give_up(why));
                }
                let user_id = user.unwrap_or_default();
                let joined = self
                    .join(inner, api, &user_id, discord_id, &provider)
                    .await?;
                // Added (201): with every role their groups give, this one included. Already a
                // member (204, joined meanwhile): Discord ignored the roles.
                if joined == Joined::AlreadyMember {
                    let reason = reason_added(&giving);
                    self.give_role(api, discord_id, role, &reason).await?;
                }
                Ok((
                    Outcome::Added {
                        joined: joined == Joined::Added,
                    },
                    Some(discord_id),
                ))
            }
        }
    }

    async fn give_role(
        &self,
        api: &DiscordApi,
        discord_id: u64,
        role: u64,
        reason: &str,
    ) -> Result<(), Failure> {
        api.add_role(discord_id, role, reason)
            .await
            .map_err(|e| match e {
                ApiError::NotFound { code, .. } if code == UNKNOWN_MEMBER => {
                    Failure::retry("the user left the server meanwhile")
                }
                e => Failure::from_api(&e),
            })
    }

    /// Adds `discord_id` to the guild with the user's kept `guilds.join` token (refreshed
    /// first when expired) and every role their groups give.
    async fn join(
        &self,
        inner: &Inner,
        api: &DiscordApi,
        user_id: &str,
        discord_id: u64,
        provider: &str,
    ) -> Result<Joined, Failure> {
        // "Sign in again" only when the user's token is what is wrong: none kept, kept under
        // another key, or refused by Discord (invalid_grant on refresh, 50025 on the join).
        let tokens = match inner.upstream.fresh_kept_tokens(user_id, provider).await {
            Ok(Some(tokens)) => tokens,
            Ok(None)
            | Err(
                FreshTokensError::Refused(_) | FreshTokensError::Kept(KeptTokensError::Unreadable),
            ) => {
                return Err(Failure::give_up(SIGN_IN_AGAIN));
            }
            Err(e) => return Err(Failure::retry(e.to_string())),
        };
        let user = user_id.to_owned();
        let roles: Vec<u64> = self
            .db
            .read(move |conn| {
                let givable: BTreeSet<i64> = store::roles(conn)?
                    .into_iter()
                    .filter(|r| r.not_given().is_none())
                    .map(|r| r.id)
                    .collect();
                let mine = store::mapped_roles_of_user(conn, &user)?;
                Ok::<_, DbError>(
                    mine.into_iter()
                        .filter(|r| givable.contains(r))
                        .collect::<Vec<i64>>(),
                )
            })
            .await
            .map_err(|e| Failure::from_db(&e))?
            .into_iter()
            .filter_map(|r: i64| u64::try_from(r).ok())
            .collect();
        match api.join(discord_id, &tokens.access_token, &roles).await {
            Ok(joined) => Ok(joined),
            Err(ApiError::Forbidden { code, .. }) if code == INVALID_USER_TOKEN => {
                Err(Failure::give_up(SIGN_IN_AGAIN))
            }
            Err(e) => Err(Failure::from_api(&e)),
        }
    }

    /// Ends a claimed change: gone on success (with its audit events), or its failure recorded.
    async fn record(
        &self,
        inner: &Inner,
        change: &RoleChangeRow,
        outcome: Result<(Outcome, Option<u64>), Failure>,
        report: &mut ApplyReport,
    ) -> Result<(), DiscordError> {
        let (id, owner, generation) = (change.id.clone(), inner.owner.clone(), change.generation);
        let (user, role) = (change.user_id.clone(), change.role_id);
        match outcome {
            Ok((outcome, discord_id)) => {
                let mut events = Vec::new();
                let event = |name| {
                    AuditEvent::new(name)
                        .by(&Actor::system())
                        .maybe_user(user.as_deref())
                        .detail("role_id", role.to_string())
                        .detail("discord_user_id", discord_id.unwrap_or(0).to_string())
                };
                match outcome {
                    Outcome::Added { joined } => {
                        report.added += 1;
                        if joined {
                            report.joined += 1;
                            events.push(event("discord.member_joined"));
                        }
                        events.push(event("discord.role_added"));
                    }
                    Outcome::Removed => {
                        report.removed += 1;
                        events.push(event("discord.role_removed"));
                    }
                    Outcome::Unchanged => report.unchanged += 1,
                }
                self.db
                    .write(move |conn| {
                        conn.transaction::<_, DiscordError, _>(|conn| {
                            store::finish(conn, &id, &owner, generation)?;
                            for e in events {
                                audit::record(conn, e)?;
                            }
                            Ok(())
                        })
                    })
                    .await
            }
            Err(failure) => {
                let attempts = change.attempts + 1;
                let retry_at = failure
                    .retry_after
                    .filter(|_| attempts < MAX_ATTEMPTS)
                    .map(|after| db::now() + after.max(retry_delay(attempts)));
                if retry_at.is_some() {
                    report.retrying += 1;
                } else {
                    report.failed += 1;
                }
                tracing::warn!(user_id = ?user, role_id = role, error = %failure.message, retrying = retry_at.is_some(), "a Discord role change failed");
                let message: String = failure.message.chars().take(MAX_ERROR_CHARS).collect();
                let given_up = retry_at.is_none();
                self.db
                    .write(move |conn| {
                        conn.transaction::<_, DiscordError, _>(|conn| {
                            store::record_failure(
                                conn,
                                &id,
                                &owner,
                                generation,
                                &message,
                                retry_at,
                                db::now(),
                            )?;
                            if given_up {
                                audit::record(
                                    conn,
                                    AuditEvent::new("discord.role_change_failed")
                                        .by(&Actor::system())
                                        .maybe_user(user.as_deref())
                                        .detail("role_id", role.to_string())
                                        .detail("error", message.clone()),
                                )?;
                            }
                            Ok(())
                        })
                    })
                    .await
            }
        }
    }

    /// `verify_all_discord_users_groups`: reads the guild's members a page of
    /// [`MEMBERS_PAGE`] at a time and compares each linked user's mapped roles with their
    /// groups. With `remote_priority` off, Latchkey wins: each difference is queued and the
    /// queue applied (a linked user missing from the guild is joined when their groups give
    /// roles). With it on, Discord wins ((`pull_from_discord`): a linked member is put
    /// in each mapped group all of whose roles they hold, and taken out of each mapped group
    /// one of whose roles they lack (members who are not in the guild are left alone); staff,
    /// superusers and deactivated accounts are skipped, and so is a membership while a change
    /// of one of its group's roles is queued or failed for the user. Those membership changes
    /// come from Discord, so they queue nothing back to it. Roles nobody mapped are never
    /// looked at.
    ///
    /// # Errors
    /// [`DiscordError`]; Discord failing while members are read.
    pub async fn verify_all(&self) -> Result<VerifyReport, DiscordError> {
        let discord_wins = self.inner().await?.settings.remote_priority;
        self.reconcile(discord_wins).await
    }

    /// `remote_sync_all_discord_users_groups` (the seed's hard sync from Discord's side, an
    /// expensive job): [`Self::verify_all`] with Discord winning — linked members' mapped
    /// roles become their local groups, by the rules of verify's Discord-wins side. It runs
    /// only when Discord's roles win (`remote_priority`): otherwise Discord would change local
    /// groups that Latchkey is meant to decide.
    ///
    /// # Errors
    /// [`DiscordError::Invalid`] when `remote_priority` is off; as [`Self::verify_all`].
    pub async fn remote_sync_all(&self) -> Result<VerifyReport, DiscordError> {
        if !self.inner().await?.settings.remote_priority {
            return Err(DiscordError::Invalid(
                REMOTE_SYNC_NEEDS_DISCORD_WINNING.to_owned(),
            ));
        }
        self.reconcile(true).await
    }

    /// Compares linked members' mapped roles with their groups; `discord_wins` says which
    /// side is changed.
    async fn reconcile(&self, discord_wins: bool) -> Result<VerifyReport, DiscordError> {
        let inner = self.inner().await?;
        let api = inner.api()?;
        let provider = inner.settings.provider.to_string();
        let (linked, mappings, memberships, roles) = self
            .db
            .read(move |conn| {
                Ok::<_, DiscordError>((
                    store::linked_users(conn, &provider)?,
                    store::mappings(conn)?,
                    store::mapped_memberships(conn)?,
                    store::roles(conn)?,
                ))
            })
            .await?;
        // Mappings to a role the worker does not give (it cannot be mapped, say because it gives
        // a moderation power) are left out: Latchkey-wins compares only the roles it gives, and
        // Discord-wins ignores every group with such a mapping.
        let givable: BTreeSet<i64> = roles
            .iter()
            .filter(|r| r.not_given().is_none())
            .map(|r| r.id)
            .collect();
        let refused_groups: BTreeSet<String> = mappings
            .iter()
            .filter(|(_, _, r)| !givable.contains(r))
            .map(|(g, _, _)| g.clone())
            .collect();
        let mappings: Vec<(String, String, i64)> = mappings
            .into_iter()
            .filter(|(g, _, r)| {
                if discord_wins {
                    !refused_groups.contains(g)
                } else {
                    givable.contains(r)
                }
            })
            .collect();
        let mut report = VerifyReport::default();
        // Discord id → local user, for linked users.
        let linked: BTreeMap<u64, store::LinkedUser> = linked
            .into_iter()
            .filter_map(|user| Some((user.subject.parse::<u64>().ok()?, user)))
            .collect();
        report.linked = linked.len();
        let mapped_roles: BTreeSet<u64> = mappings
            .iter()
            .filter_map(|(_, _, r)| u64::try_from(*r).ok())
            .collect();
        // The mapped roles each linked member holds in Discord.
        let mut held: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        let mut pages = MemberPages::new();
        while let Some(page) = pages.next(api).await? {
            report.members += page.len();
            for member in &page {
                if linked.contains_key(&member.user_id) {
                    held.insert(
                        member.user_id,
                        member
                            .roles
                            .iter()
                            .copied()
                            .filter(|r| mapped_roles.contains(r))
                            .collect(),
                    );
                }
            }
        }
        // Roles by group, and each user's groups among the mapped ones.
        let mut roles_of_group: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (group, _, role) in &mappings {
            if let Ok(role) = u64::try_from(*role) {
                roles_of_group
                    .entry(group.clone())
                    .or_default()
                    .insert(role);
            }
        }
        let mut groups_of_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, user) in memberships {
            groups_of_user.entry(user).or_default().insert(group);
        }
        if discord_wins {
            self.pull_from_discord(
                &linked,
                &held,
                &roles_of_group,
                &groups_of_user,
                &mut report,
            )
            .await?;
        } else {
            let mut queue = Vec::new();
            for (discord_id, user) in &linked {
                // Users who are not in the guild are left alone: verify never adds anyone.
                let Some(has) = held.get(discord_id) else {
                    continue;
                };
                // A deactivated user's groups give no role.
                let wanted: BTreeSet<u64> = groups_of_user
                    .get(&user.user_id)
                    .into_iter()
                    .flatten()
                    .filter(|_| user.is_active)
                    .filter_map(|g| roles_of_group.get(g))
                    .flatten()
                    .copied()
                    .collect();
                for role in wanted.symmetric_difference(has) {
                    queue.push((
                        user.user_id.clone(),
                        i64::try_from(*role).unwrap_or_default(),
                    ));
                }
            }
            if !queue.is_empty() {
                report.queued = self
                    .db
                    .write(move |conn| {
                        conn.transaction::<_, DiscordError, _>(|conn| {
                            let now = db::now();
                            let mut queued = 0;
                            for (user, role) in &queue {
                                if store::queue(conn, user, *role, now, store::Cause::Verify)? {
                                    queued += 1;
                                }
                            }
                            Ok(queued)
                        })
                    })
                    .await?;
            }
            report.applied = self.apply_queued().await?;
        }
        Ok(report)
    }

    /// `sync_discord_users_accounts`: reads the guild's members a page of [`MEMBERS_PAGE`] at a
    /// time and refreshes the stored Discord profile of each linked member — username, legacy
    /// discriminator and tag, display name, avatar — and their nickname in the guild, cleaned
    /// as a sign-in cleans them. Linked users who are not members are refreshed at their next
    /// Discord sign-in. Returns (members read, profiles changed).
    ///
    /// # Errors
    /// [`DiscordError`]; Discord failing while members are read.
    pub async fn sync_accounts(&self) -> Result<(usize, usize), DiscordError> {
        let inner = self.inner().await?;
        let api = inner.api()?;
        let provider = inner.settings.provider.to_string();
        let linked: BTreeSet<u64> = self
            .db
            .read(move |conn| store::linked_users(conn, &provider).map_err(DiscordError::from))
            .await?
            .into_iter()
            .filter_map(|user| user.subject.parse().ok())
            .collect();
        let mut fresh = Vec::new();
        let mut read = 0;
        let mut pages = MemberPages::new();
        while let Some(page) = pages.next(api).await? {
            read += page.len();
            for member in page.iter().filter(|m| linked.contains(&m.user_id)) {
                if let Some(refresh) = profile_refresh(member) {
                    fresh.push((member.user_id, refresh));
                }
            }
        }
        let changed = self
            .db
            .write(move |conn| {
                conn.transaction::<_, DiscordError, _>(|conn| {
                    let mut changed = 0;
                    for (id, refresh) in &fresh {
                        let Ok(id) = i64::try_from(*id) else { continue };
                        if store::refresh_profile(conn, id, refresh)? {
                            changed += 1;
                        }
                    }
                    Ok(changed)
                })
            })
            .await?;
        Ok((read, changed))
    }

    /// `enforce_discord_nicknames`: sets each linked member's nickname from
    /// `discord.nickname_template` ([`NicknameTemplate::render`]), skipping the guild owner,
    /// the bot, members whose highest role is at or above the bot's (Discord refuses those) and
    /// members whose nickname is already right. A refusal for one member is logged and counted,
    /// and the run goes on.
    ///
    /// # Errors
    /// [`DiscordError::Invalid`] without a template; [`DiscordError`] when Discord fails while
    /// the guild or its members are read.
    pub async fn enforce_nicknames(&self) -> Result<NicknameReport, DiscordError> {
        let inner = self.inner().await?;
        let api = inner.api()?;
        let template = inner.settings.nickname_template.clone().ok_or_else(|| {
            DiscordError::Invalid("discord.nickname_template is not set".to_owned())
        })?;
        let provider = inner.settings.provider.to_string();
        let names: HashMap<u64, NicknameFields> = self
            .db
            .read(move |conn| store::linked_user_names(conn, &provider).map_err(DiscordError::from))
            .await?
            .into_iter()
            .filter_map(|(subject, username, first_name, last_name)| {
                Some((
                    subject.parse().ok()?,
                    NicknameFields {
                        username,
                        first_name,
                        last_name,
                        ..NicknameFields::default()
                    },
                ))
            })
            .collect();
        let owner = api.owner().await?;
        let (bot_id, _) = api.bot_user().await?;
        let roles = api.roles().await?;
        let bot_roles = api
            .member(bot_id)
            .await?
            .map(|m| m.roles)
            .unwrap_or_default();
        let bot = BotStanding::of(api.guild(), &roles, &bot_roles);
        let position: HashMap<u64, i64> = roles.iter().map(|r| (r.id.get(), r.position)).collect();
        let mut report = NicknameReport::default();
        let mut pages = MemberPages::new();
        while let Some(page) = pages.next(api).await? {
            for member in &page {
                let Some(fields) = names.get(&member.user_id) else {
                    continue;
                };
                let top = member
                    .roles
                    .iter()
                    .filter_map(|r| position.get(r))
                    .max()
                    .copied()
                    .unwrap_or(0);
                if member.user_id == owner || member.user_id == bot_id || top >= bot.top_position {
                    report.skipped += 1;
                    continue;
                }
                let fields = NicknameFields {
                    discord_username: member.username.clone(),
                    discord_global_name: member.global_name.clone().unwrap_or_default(),
                    ..fields.clone()
                };
                let Some(nick) = template.render(&fields) else {
                    report.skipped += 1;
                    continue;
                };
                if member.nick.as_deref() == Some(nick.as_str()) {
                    report.unchanged += 1;
                    continue;
                }
                match api
                    .set_nick(member.user_id, &nick, "Latchkey: nickname strategy")
                    .await
                {
                    Ok(()) => report.changed += 1,
                    Err(e) if !e.is_transient() => {
                        tracing::warn!(discord_user_id = member.user_id, error = %e, "Discord refused a nickname");
                        report.refused += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
    }

    /// Discord wins: group memberships follow the linked members' mapped roles. A member is
    /// put in a mapped group when they hold *every* role the group is mapped to, and taken out
    /// when they lack one of them: one role given by hand in Discord never opens a group that
    /// also gives other roles (which Latchkey would then give them). Never changed: the groups
    /// of staff, superusers and deactivated accounts (counted as skipped), and a membership
    /// whose group has a role with a change queued or failed for the user (Latchkey has yet to
    /// make it in Discord: deferred). Each user's changes are one transaction through the
    /// groups' store that re-reads the account and its memberships first.
    async fn pull_from_discord(
        &self,
        linked: &BTreeMap<u64, store::LinkedUser>,
        held: &BTreeMap<u64, BTreeSet<u64>>,
        roles_of_group: &BTreeMap<String, BTreeSet<u64>>,
        groups_of_user: &BTreeMap<String, BTreeSet<String>>,
        report: &mut VerifyReport,
    ) -> Result<(), DiscordError> {
        for (discord_id, user) in linked {
            // Members who are not in the guild are left alone.
            let Some(roles) = held.get(discord_id) else {
                continue;
            };
            let member_of = groups_of_user.get(&user.user_id);
            let changes: Vec<(String, BTreeSet<u64>, bool)> = roles_of_group
                .iter()
                .filter_map(|(group, group_roles)| {
                    let should = !group_roles.is_empty() && group_roles.is_subset(roles);
                    let is = member_of.is_some_and(|g| g.contains(group));
                    (should != is).then(|| (group.clone(), group_roles.clone(), should))
                })
                .collect();
            if changes.is_empty() {
                continue;
            }
            if !user.groups_follow_discord() {
                report.skipped += 1;
                continue;
            }
            let user_id = user.user_id.clone();
            let done = self
                .db
                .write(move |conn| {
                    conn.transaction::<_, DiscordError, _>(|conn| {
                        pull_user(conn, &user_id, changes)
                    })
                })
                .await?;
            report.groups_added += done.added;
            report.groups_removed += done.removed;
            report.deferred += done.deferred;
            report.skipped += usize::from(done.skipped);
        }
        Ok(())
    }
}

/// Mappable roles no group is mapped to whose name an existing group has, with that group's
/// member count, by role position (highest first).
fn name_clashes(conn: &mut db::DbConnection) -> Result<Vec<NameClash>, DiscordError> {
    let mapped: BTreeSet<i64> = store::mappings(conn)?
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    let groups = group_rows::all(conn)?;
    let mut clashes = Vec::new();
    for role in store::roles(conn)? {
        if role.not_given().is_some() || mapped.contains(&role.id) {
            continue;
        }
        let key = role.name.trim().to_lowercase();
        if let Some(group) = groups.iter().find(|g| g.name_key == key) {
            clashes.push(NameClash {
                role_id: role.id,
                role: role.name.clone(),
                group_id: group.id.clone(),
                group: group.name.clone(),
                members: store::member_count(conn, &group.id)?,
            });
        }
    }
    Ok(clashes)
}

/// What one user's pull did.
#[derive(Default)]
struct Pulled {
    added: usize,
    removed: usize,
    deferred: usize,
    skipped: bool,
}

/// Makes `user_id`'s memberships what Discord says (`changes`: group, its roles, whether the
/// user should be in it), inside the caller's transaction: the account is locked and read again
/// (skipped unless an active ordinary account), and so are its memberships and its queued
/// role changes.
fn pull_user(
    conn: &mut db::DbConnection,
    user_id: &str,
    changes: Vec<(String, BTreeSet<u64>, bool)>,
) -> Result<Pulled, DiscordError> {
    let mut done = Pulled::default();
    let Some(account) = privileges::lock_target(conn, user_id)? else {
        return Ok(done);
    };
    if !account.is_active || account.is_staff || account.is_superuser {
        done.skipped = true;
        return Ok(done);
    }
    let pending: BTreeSet<u64> = store::pending_check_roles(conn, user_id)?
        .into_iter()
        .filter_map(|r| u64::try_from(r).ok())
        .collect();
    let current: BTreeSet<String> = group_rows::of_user(conn, user_id)?
        .into_iter()
        .map(|g| g.id)
        .collect();
    let now = db::now();
    for (group, group_roles, add) in changes {
        if !group_roles.is_disjoint(&pending) {
            done.deferred += 1;
            continue;
        }
        if current.contains(&group) == add {
            continue;
        }
        let changed = if add {
            group_rows::add_member(conn, &group, user_id, now)?
        } else {
            group_rows::remove_member(conn, &group, user_id)?
        };
        if !changed {
            continue;
        }
        if add {
            done.added += 1;
        } else {
            done.removed += 1;
        }
        let name = if add {
            "group.member_added"
        } else {
            "group.member_removed"
        };
        audit::record(
            conn,
            AuditEvent::new(name)
                .by(&Actor::system())
                .user(user_id.to_owned())
                .detail("group_id", group)
                .detail("source", "discord"),
        )?;
    }
    Ok(done)
}

/// The settings in effect: the console's row over `[discord]`; why they do not work, when
/// something is missing.
fn effective(base: &Base, row: Option<&ConnectorSettingsRow>) -> Result<ConnectorSettings, String> {
    let config = &base.config;
    let provider = match row {
        Some(r) => Some(r.provider.clone()),
        None => config.provider.as_ref().map(ToString::to_string),
    }
    .and_then(|p| ProviderId::parse(&p).ok())
    .ok_or("choose the Discord sign-in provider on the Discord page (or set discord.provider)")?;
    let bot_token = match row.and_then(|r| r.bot_token_sealed.as_deref()) {
        Some(sealed) => {
            let api_base = api_base_of(base, provider.as_str());
            let token =
                open_bot_token(&base.sealer, sealed, &api_base).ok_or(TOKEN_FOR_ANOTHER_API)?;
            Some(SecretString::from(token))
        }
        // The configuration's token: the operator sets both it and the API address.
        None => config.bot_token.clone(),
    }
    .ok_or("enter the bot token on the Discord page (or set discord.bot_token)")?;
    let guild_id = match row {
        Some(r) => u64::try_from(r.guild_id).ok().filter(|g| *g > 0),
        None => config.guild_id,
    }
    .ok_or("enter the server id on the Discord page (or set discord.guild_id)")?;
    Ok(ConnectorSettings {
        provider,
        bot_token,
        guild_id,
        invite_link: match row {
            Some(r) => r.invite_link.clone(),
            None => config.invite_link.as_ref().map(ToString::to_string),
        },
        remote_priority: row.map_or(config.remote_priority, |r| r.remote_priority),
        // Checked when saved; a row saved before the column existed follows the configuration.
        nickname_template: match row.and_then(|r| r.nickname_template.as_deref()) {
            None => config.nickname_template.clone(),
            Some(t) => NicknameTemplate::parse(t).ok(),
        },
    })
}

/// The settings as the console's form shows them: the row saved there, else `[discord]`'s.
fn editable(base: &Base, row: Option<&ConnectorSettingsRow>, jobs: &[JobRow]) -> EditableSettings {
    let config = &base.config;
    let configured_template = || {
        config
            .nickname_template
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default()
    };
    let schedules = JobSchedules::in_effect(config, jobs);
    match row {
        Some(r) => EditableSettings {
            provider: r.provider.clone(),
            guild_id: u64::try_from(r.guild_id).ok(),
            invite_link: r.invite_link.clone().unwrap_or_default(),
            remote_priority: r.remote_priority,
            has_token: r.bot_token_sealed.is_some() || config.bot_token.is_some(),
            saved_in_console: true,
            nickname_template: r
                .nickname_template
                .clone()
                .unwrap_or_else(configured_template),
            schedules,
        },
        None => EditableSettings {
            provider: config
                .provider
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            guild_id: config.guild_id,
            invite_link: config
                .invite_link
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            remote_priority: config.remote_priority,
            has_token: config.bot_token.is_some(),
            saved_in_console: false,
            nickname_template: configured_template(),
            schedules,
        },
    }
}

/// The bot's client for `settings`, or why there is none (the provider is missing, not
/// Discord, or its API root unusable).
fn build(base: &Base, settings: ConnectorSettings) -> Inner {
    let upstream = &base.upstream;
    let api = match upstream.provider(settings.provider.as_str()) {
        Ok(p) if p.kind == ProviderKind::Discord => {
            if !p.keep_tokens || !p.scopes.iter().any(|s| s == "guilds.join") {
                tracing::warn!(provider = %p.id, "the Discord connector's provider does not keep guilds.join tokens: users not yet in the server cannot be added to it");
            }
            let api_base = p.api_base.clone().unwrap_or_else(|| {
                url::Url::parse(super::api::DISCORD_API).expect("Discord's API is a URL")
            });
            DiscordApi::new(
                &api_base,
                &settings.bot_token,
                settings.guild_id,
                CALL_BACKOFF,
            )
            .map_err(|e| format!("[upstream.{}] api_base: {e}", settings.provider))
        }
        Ok(_) => Err(format!(
            "the provider {:?} is not of kind \"discord\"",
            settings.provider.as_str()
        )),
        Err(_) => Err(format!(
            "the provider {:?} is no enabled [upstream.<id>] provider",
            settings.provider.as_str()
        )),
    };
    if let Err(problem) = &api {
        tracing::error!(%problem, "the Discord connector cannot work");
    }
    let can_join = upstream
        .provider(settings.provider.as_str())
        .is_ok_and(|p| p.keep_tokens && p.scopes.iter().any(|s| s == "guilds.join"));
    Inner {
        can_join,
        settings,
        api,
        upstream: base.upstream.clone(),
        groups: base.groups.clone(),
        owner: base.owner.clone(),
    }
}

impl Failure {
    fn from_db(e: &DbError) -> Self {
        Self::retry(format!("storage: {e}"))
    }
}

/// A member's profile as `sync_discord_users_accounts` stores it, checked and cleaned like a
/// sign-in's ([`DiscordProfile::new`]); `None` for an id that is not a snowflake.
fn profile_refresh(member: &GuildMember) -> Option<ProfileRefresh> {
    let profile = DiscordProfile::new(RawDiscordUser {
        id: member.user_id.to_string(),
        username: member.username.clone(),
        discriminator: Some(format!("{:04}", member.discriminator)),
        global_name: member.global_name.clone(),
        avatar: member.avatar.clone(),
        ..RawDiscordUser::default()
    })?;
    let nick = member
        .nick
        .as_deref()
        .map(|n| clean(n, 64))
        .filter(|n| !n.trim().is_empty());
    Some(ProfileRefresh {
        tag: profile.tag(),
        username: profile.username,
        discriminator: profile.discriminator,
        global_name: profile.global_name,
        avatar: profile.avatar,
        nick,
    })
}

/// `text` as stored and shown: control characters, bidirectional controls and zero-width
/// characters (which can make a name read as another) dropped, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !crate::domain::nickname::is_hidden(*c))
        .take(max)
        .collect()
}

/// Discord's audit-log reason for a role given because of `groups`.
fn reason_added(groups: &[String]) -> String {
    let mut reason = format!("Latchkey: member of {}", groups.join(", "));
    if reason.chars().count() > 400 {
        reason = reason.chars().take(399).collect::<String>() + "…";
    }
    reason
}

/// The delay after the `attempts`-th transient failure: 30 s doubling, at most an hour.
fn retry_delay(attempts: i64) -> TimeDelta {
    let doublings = u32::try_from(attempts.clamp(1, 12) - 1).unwrap_or(0);
    (RETRY_BASE * (1_i32 << doublings)).min(TimeDelta::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_thirty_seconds_to_an_hour() {
        let secs: Vec<i64> = (1..=9).map(|a| retry_delay(a).num_seconds()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn a_sealed_bot_token_opens_only_for_the_api_host_it_was_saved_for() {
        let sealer = Sealer::new(&[7; 32], BOT_TOKEN_PURPOSE).expect("sealer");
        let url = |u: &str| url::Url::parse(u).expect("url");
        let fake = url("http://127.0.0.1:9000/api/v10");
        let sealed = seal_bot_token(&sealer, "bot.token", &fake).expect("sealed");
        assert!(sealed.starts_with("v2:"));
        assert_eq!(
            open_bot_token(&sealer, &sealed, &url("http://127.0.0.1:9000/api/v10/")).as_deref(),
            Some("bot.token")
        );
        for other in [
            "http://127.0.0.1:9001/api/v10",
            "https://127.0.0.1:9000/api/v10",
            "https://attacker.example/api/v10",
            super::super::api::DISCORD_API,
        ] {
            assert_eq!(
                open_bot_token(&sealer, &sealed, &url(other)),
                None,
                "{other}"
            );
        }
        // A token sealed before the binding opens only for Discord's own API.
        let legacy = sealer
            .seal(LEGACY_BOT_TOKEN_AAD, b"old.token")
            .expect("sealed");
        assert_eq!(
            open_bot_token(&sealer, &legacy, &url(super::super::api::DISCORD_API)).as_deref(),
            Some("old.token")
        );
        assert_eq!(
            open_bot_token(&sealer, &legacy, &url("https://attacker.example/api/v10")),
            None
        );
    }

    fn members(ids: &[u64]) -> Vec<GuildMember> {
        ids.iter()
            .map(|id| GuildMember {
                user_id: *id,
                username: format!("u{id}"),
                discriminator: 0,
                global_name: None,
                avatar: None,
                nick: None,
                roles: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn member_pages_must_move_forward_and_end() {
        let mut pages = MemberPages::new();
        pages.advance(&members(&[1, 2]), 2, 10).expect("full");
        assert_eq!(pages.after, 2);
        pages.advance(&members(&[3]), 2, 10).expect("last");
        assert!(pages.done);
        // A full page that does not end past `after` (a loop) stops the job.
        let mut pages = MemberPages::new();
        pages.advance(&members(&[5, 9]), 2, 10).expect("full");
        let looped = pages.advance(&members(&[3, 9]), 2, 10).expect_err("loop");
        assert!(looped.contains("did not move forward"), "{looped}");
        assert!(pages.done);
        // Pages that always move forward stop at the cap.
        let mut pages = MemberPages::new();
        let mut id = 0;
        let mut outcome = Ok(());
        for _ in 0..10 {
            id += 2;
            outcome = pages.advance(&members(&[id - 1, id]), 2, 10);
            if outcome.is_err() {
                break;
            }
        }
        assert!(outcome.expect_err("capped").contains("past 10 pages"));
        assert_eq!(pages.pages, 10);
    }

    #[test]
    fn reasons_name_the_groups_and_stay_short() {
        assert_eq!(
            reason_added(&["Raiders".to_owned(), "Scouts".to_owned()]),
            "Latchkey: member of Raiders, Scouts"
        );
        let long = reason_added(&["x".repeat(600)]);
        assert_eq!(long.chars().count(), 400);
    }
}
