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

/// Registers the connector's jobs on `scheduler` with the schedules of `settings`.
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
    if let Some(every) = settings.verify_interval {
        let verifier = connector.clone();
        scheduler.register(VERIFY_ALL, every, move || {
            let connector = verifier.clone();
            async move { Ok::<_, JobError>(connector.verify_all().await?.to_string()) }
        })?;
    }
    Ok(())
}
