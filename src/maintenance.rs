//! The jobs `latchkey serve` runs on the [`crate::scheduler`]: the cleanup that `latchkey
//! cleartokens` also does, every `scheduler.cleanup_interval_seconds`, and the rotation of
//! signing keys older than `oidc.rotate_keys_days`, checked hourly. Connectors add their own
//! jobs to the same scheduler with one [`Scheduler::register`] call each.

use std::time::Duration;

use crate::config::Settings;
use crate::oauth::OAuth;
use crate::scheduler::{JobError, Scheduler, SchedulerError};

/// The cleanup job's name (its `jobs` row and dashboard line).
pub const CLEANUP: &str = "cleanup";

/// The key-rotation job's name.
pub const KEY_ROTATION: &str = "signing_key_rotation";

/// How often the key-rotation job looks for a key that is due: a key is rotated within this
/// long of reaching `oidc.rotate_keys_days`.
pub const KEY_ROTATION_CHECK: Duration = Duration::from_secs(3600);

/// Which maintenance jobs to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// Cleanup interval; `None` = no cleanup job.
    pub cleanup_every: Option<Duration>,
    /// Rotate a signing key once it has signed this long; `None` = no rotation job.
    pub rotate_keys_after: Option<Duration>,
}

impl MaintenancePlan {
    /// The plan the settings ask for.
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            cleanup_every: settings.scheduler.cleanup_interval,
            rotate_keys_after: settings.oidc.rotate_keys_after,
        }
    }

    /// Whether there is any job to run.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cleanup_every.is_none() && self.rotate_keys_after.is_none()
    }
}

/// Registers the jobs of `plan` on `scheduler`, working through `oauth`.
///
/// # Errors
/// [`SchedulerError`] if a job of the same name is already registered.
pub fn register(
    scheduler: &mut Scheduler,
    oauth: &OAuth,
    plan: &MaintenancePlan,
) -> Result<(), SchedulerError> {
    if let Some(every) = plan.cleanup_every {
        let oauth = oauth.clone();
        scheduler.register(CLEANUP, every, move || {
            let oauth = oauth.clone();
            async move {
                let (tokens, codes, counters) = oauth.clear_expired().await?;
                Ok::<_, JobError>(format!(
                    "deleted {tokens} tokens, {codes} authorization codes, {counters} rate-limit counters"
                ))
            }
        })?;
    }
    if let Some(max_age) = plan.rotate_keys_after {
        let oauth = oauth.clone();
        scheduler.register(KEY_ROTATION, KEY_ROTATION_CHECK, move || {
            let oauth = oauth.clone();
            async move {
                let kids = oauth.rotate_due_signing_keys(max_age).await?;
                Ok::<_, JobError>(if kids.is_empty() {
                    "no signing key is due".to_owned()
                } else {
                    format!("rotated in signing keys {}", kids.join(", "))
                })
            }
        })?;
    }
    Ok(())
}
