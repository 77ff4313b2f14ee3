//! The Discord connector (issue 12; seed 003's `django_discord_connector`): local groups mapped
//! to the roles of one Discord server (guild), kept in step by a bot.
//!
//! * [`api`] — the bot's calls to Discord's REST API over twilight's client (per-route buckets
//!   and the global limit from Discord's headers), with 429s waited out and 5xx tried again.
//! * [`roles`] — what the bot may do: its permissions and highest role, which roles can be
//!   mapped, what is missing in words (pure).
//! * [`service`] — [`DiscordConnector`]: the console's operations (superusers only), the worker
//!   that applies queued role changes, and `verify_all_discord_users_groups`.
//! * [`jobs`] — the scheduler jobs and their names.
//!
//! The nickname strategy of `enforce_discord_nicknames` is a domain value
//! (`crate::domain::NicknameTemplate`), checked when the settings are read.
//!
//! Role changes are queued by the groups service (`crate::groups`) in the transaction of each
//! membership change, as rows of `discord_role_changes` (`crate::db::discord_connector`), and
//! applied by the worker, so they survive restarts and each is applied by one node. The
//! connector works through the upstream-login service for the user's Discord id (their link
//! at `discord.provider`) and their kept `guilds.join` token.

pub mod api;
pub mod jobs;
pub mod roles;
pub mod service;

pub use api::{ApiError, DiscordApi};
pub use service::{
    AccountDiscord, ApplyReport, ConnectionReport, ConnectorSettings, ConnectorStatus,
    DiscordConnector, DiscordError, EditableSettings, JobSchedules, NameClash, NicknameReport,
    RoleGroupsReport, RoleLine, SettingsChange, TroubledChange, VerifyReport,
};
