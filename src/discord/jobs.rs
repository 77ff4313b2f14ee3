//! The connector's scheduled jobs (the seed's tasks), registered on the shared
//! [`Scheduler`] so that each slot runs on one node; each is also a `latchkey discord …`
//! command.

use crate::config::DiscordSettings;
use crate::scheduler::{JobError, Scheduler, SchedulerError};

use super::DiscordConnector;

/// The worker that applies queued role changes (`latchkey discord apply`).
pub const APPLY_ROLE_CHANGES: &str = "discord_apply_role_changes";

/// `verify_all_discord_users_groups` (`latchkey discord verify`).
pub const VERIFY_ALL: &str = "verify_all_discord_users_groups";

/// `remote_sync_all_discord_users_groups` (`latchkey discord remote-sync`): expensive.
pub const REMOTE_SYNC_ALL: &str = "remote_sync_all_discord_users_groups";

/// `sync_discord_users_accounts` (`latchkey discord sync-accounts`).
pub const SYNC_ACCOUNTS: &str = "sync_discord_users_accounts";

/// `enforce_discord_nicknames` (`latchkey discord enforce-nicknames`), when a template is set.
pub const ENFORCE_NICKNAMES: &str = "enforce_discord_nicknames";

/// Every job of the connector, in the order the console lists them.
pub const ALL: [&str; 5] = [
    APPLY_ROLE_CHANGES,
    VERIFY_ALL,
    REMOTE_SYNC_ALL,
    SYNC_ACCOUNTS,
    ENFORCE_NICKNAMES,
];

/// Registers the connector's jobs on `scheduler` with the schedules of `settings`. Every job is
/// registered, the ones `settings` leave at 0 as off: the console's Discord page can turn them
/// on (or change any interval) at run time, and "Run now" runs an off job once.
///
/// # Errors
/// [`SchedulerError`] if a job of the same name is already registered.
pub fn register(
    scheduler: &mut Scheduler,
    connector: &DiscordConnector,
    settings: &DiscordSettings,
) -> Result<(), SchedulerError> {
    let worker = connector.clone();
    scheduler.register(APPLY_ROLE_CHANGES, settings.apply_interval, move || {
        let connector = worker.clone();
        async move { Ok::<_, JobError>(connector.apply_queued().await?.to_string()) }
    })?;
    let verifier = connector.clone();
    scheduler.register_optional(VERIFY_ALL, settings.verify_interval, move || {
        let connector = verifier.clone();
        async move { Ok::<_, JobError>(connector.verify_all().await?.to_string()) }
    })?;
    let syncer = connector.clone();
    scheduler.register_optional(REMOTE_SYNC_ALL, settings.remote_sync_interval, move || {
        let connector = syncer.clone();
        async move { Ok::<_, JobError>(connector.remote_sync_all().await?.to_string()) }
    })?;
    let syncer = connector.clone();
    scheduler.register_optional(SYNC_ACCOUNTS, settings.sync_accounts_interval, move || {
        let connector = syncer.clone();
        async move {
            let (read, changed) = connector.sync_accounts().await?;
            Ok::<_, JobError>(format!("{read} members read, {changed} profiles refreshed"))
        }
    })?;
    let enforcer = connector.clone();
    scheduler.register_optional(
        ENFORCE_NICKNAMES,
        settings.enforce_nicknames_interval,
        move || {
            let connector = enforcer.clone();
            async move { Ok::<_, JobError>(connector.enforce_nicknames().await?.to_string()) }
        },
    )?;
    Ok(())
}
