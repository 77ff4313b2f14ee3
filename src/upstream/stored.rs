//! The providers the console stores (issue 11; the set itself is [`super::providers`]):
//! [`Upstream::reload`] and the reloading task, the console's list and forms, and the changes —
//! a superuser's ([`privileges::check_superuser`], in the change's transaction), each an audit
//! event, each put in place on this node at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;
use secrecy::SecretString;

use super::providers::{
    load, revision_of, secret_origins, settings_json, settings_of, settings_without_secret,
    ProviderChangeError, ProviderListing, ProviderSource, Snapshot, StoredProvider,
    PLACEHOLDER_SECRET, PROVIDER_RELOAD_SECONDS,
};
use super::service::Upstream;
use crate::accounts::privileges;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::{upstream_settings, RawUpstream, UpstreamErrors, UpstreamProvider};
use crate::db::upstream_links;
use crate::db::upstream_providers::{self, ProviderRow};
use crate::db::{self, DbError};
use crate::domain::ProviderId;

/// Adds `result`'s problems to `errors`; the provider when there were none at all.
fn checked(
    mut errors: UpstreamErrors,
    result: Result<UpstreamProvider, UpstreamErrors>,
) -> Result<UpstreamProvider, ProviderChangeError> {
    match result {
        Ok(provider) if errors.is_empty() => Ok(provider),
        Ok(_) => Err(ProviderChangeError::Invalid(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ProviderChangeError::Invalid(errors))
        }
    }
}

impl Upstream {
    /// Re-reads the stored providers and puts the new set in place: the configuration file's,
    /// and every stored one that loads (others are left out with a warning, logged once per
    /// version of the row). What the relying party cached for a provider that changed or went
    /// away is dropped. Reloads never overlap, so an older read never replaces a newer one.
    ///
    /// # Errors
    /// [`DbError`] when the table cannot be read; the set in place stays.
    pub async fn reload(&self) -> Result<(), DbError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let rows = self
            .db
            .read(|conn| upstream_providers::all(conn).map_err(DbError::from))
            .await?;
        let before = self.providers.snapshot();
        let mut next = Snapshot {
            providers: self.files.as_ref().clone(),
            skipped: HashMap::new(),
        };
        for row in &rows {
            let revision = revision_of(row);
            let outcome = if self.is_file_provider(&row.id) {
                Err(
                    "the configuration file defines a provider with this id, which is used instead"
                        .to_owned(),
                )
            } else {
                load(&self.secrets, row)
            };
            match outcome {
                Ok(provider) => next.providers.push(Arc::new(provider)),
                Err(reason) => {
                    if before.skipped.get(&row.id) != Some(&revision) {
                        tracing::warn!(provider = %row.id, %reason, "a stored upstream provider is left out");
                    }
                    next.skipped.insert(row.id.clone(), revision);
                }
            }
        }
        next.providers.sort_by(|a, b| a.id.cmp(&b.id));
        let gone: Vec<String> = before
            .providers
            .iter()
            .filter(|old| {
                !next
                    .providers
                    .iter()
                    .any(|new| new.id == old.id && new.revision == old.revision)
            })
            .map(|old| old.id.to_string())
            .collect();
        self.providers.replace(next);
        for id in gone {
            self.rp.forget(&id).await;
        }
        Ok(())
    }

    /// Reloads the providers every [`PROVIDER_RELOAD_SECONDS`] until the task is aborted
    /// (the HTTP server starts it and aborts it when it stops). A failed reload is logged and
    /// the set in place stays until the next — but after [`MAX_RELOAD_FAILURES`] in a row
    /// (about 50 s) this node stops serving the stored providers ([`Upstream::drop_stored`]):
    /// one disabled or deleted elsewhere meanwhile must not stay usable here for as long as the
    /// database is out of reach. The next successful reload puts them back.
    #[must_use]
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let upstream = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(PROVIDER_RELOAD_SECONDS));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the set was read at start-up.
            every.tick().await;
            let mut failures = 0u32;
            loop {
                every.tick().await;
                match upstream.reload().await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, failures, "could not reload the upstream providers");
                        if failures == MAX_RELOAD_FAILURES {
                            upstream.drop_stored().await;
                        }
                    }
                }
            }
        })
    }

    /// Puts in place the configuration file's providers alone (the stored ones could not be
    /// re-read for too long); what the relying party cached for the others is dropped.
    pub async fn drop_stored(&self) {
        let before = self.providers.replace(Snapshot {
            providers: self.files.as_ref().clone(),
            skipped: HashMap::new(),
        });
        tracing::error!(
            failures = MAX_RELOAD_FAILURES,
            "the stored upstream providers could not be re-read: they are not served until they can"
        );
        for old in before
            .providers
            .iter()
            .filter(|p| !self.is_file_provider(p.id.as_str()))
        {
            self.rp.forget(old.id.as_str()).await;
        }
    }

    /// Reloads after a change made here, logging a failure (the change is saved; the next
    /// timed reload puts it in place).
    async fn reload_after_change(&self) {
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "could not reload the upstream providers after a change");
        }
    }

    /// Whether the configuration file defines provider `id`.
    fn is_file_provider(&self, id: &str) -> bool {
        self.files.iter().any(|p| p.id.as_str() == id)
    }

    /// The configuration file's provider `id`, if it defines one.
    #[must_use]
    pub fn file_provider(&self, id: &str) -> Option<Arc<UpstreamProvider>> {
        self.files.iter().find(|p| p.id.as_str() == id).cloned()
    }

    /// Every provider for the console — the configuration file's and every stored one, in use
    /// or not — by id, with its number of links.
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn list_providers(&self) -> Result<Vec<ProviderListing>, DbError> {
        let (rows, counts) = self
            .db
            .read(|conn| {
                let rows = upstream_providers::all(conn)?;
                let counts = upstream_links::count_by_provider(conn)?;
                Ok::<_, DbError>((rows, counts))
            })
            .await?;
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let links = |id: &str| counts.get(id).copied().unwrap_or(0);
        let mut listed: Vec<ProviderListing> = self
            .files
            .iter()
            .map(|p| ProviderListing {
                id: p.id.to_string(),
                kind: p.kind.as_str().to_owned(),
                label: p.label.clone(),
                enabled: p.enabled,
                source: ProviderSource::File,
                links: links(p.id.as_str()),
                problem: None,
            })
            .collect();
        for row in &rows {
            let (stored, provider) = self.describe(row, links(&row.id));
            listed.push(ProviderListing {
                id: stored.id,
                kind: stored.settings.kind,
                // The label in use (the kind's default when none was given).
                label: provider.map_or_else(
                    || match stored.settings.label.trim() {
                        "" => row.id.clone(),
                        label => label.to_owned(),
                    },
                    |p| p.label,
                ),
                enabled: stored.settings.enabled,
                source: ProviderSource::Console,
                links: stored.links,
                problem: stored.problem,
            });
        }
        listed.sort_by(|a, b| {
            a.id.cmp(&b.id)
                .then(a.source.describe().cmp(b.source.describe()))
        });
        Ok(listed)
    }

    /// The stored row as the console shows it, with why it does not load; and the provider
    /// it is when it does.
    fn describe(
        &self,
        row: &ProviderRow,
        links: i64,
    ) -> (StoredProvider, Option<UpstreamProvider>) {
        let (settings, loaded) = match settings_of(row) {
            Ok(settings) => {
                let loaded = if self.is_file_provider(&row.id) {
                    Err("the configuration file defines a provider with this id, which is used instead".to_owned())
                } else {
                    load(&self.secrets, row)
                };
                (settings, loaded)
            }
            Err(reason) => (RawUpstream::default(), Err(reason)),
        };
        let (problem, provider) = match loaded {
            Ok(provider) => (None, Some(provider)),
            Err(reason) => (Some(reason), None),
        };
        let stored = StoredProvider {
            id: row.id.clone(),
            settings,
            created_at: row.created_at,
            updated_at: row.updated_at,
            links,
            problem,
        };
        (stored, provider)
    }

    /// The stored provider `id` for its form (never its secret).
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn stored_provider(&self, id: &str) -> Result<Option<StoredProvider>, DbError> {
        let id = id.to_owned();
        let found = self
            .db
            .read(move |conn| {
                let Some(row) = upstream_providers::find(conn, &id)? else {
                    return Ok(None);
                };
                let links = upstream_links::count_for_provider(conn, &id)?;
                Ok::<_, DbError>(Some((row, links)))
            })
            .await?;
        Ok(found.map(|(row, links)| self.describe(&row, links).0))
    }

    /// How many accounts are linked through provider `id` (the deletion's confirmation says).
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn link_count(&self, id: &str) -> Result<i64, DbError> {
        let id = id.to_owned();
        self.db
            .read(move |conn| upstream_links::count_for_provider(conn, &id).map_err(DbError::from))
            .await
    }

    /// Adds provider `id` with `settings` and `client_secret` (a superuser's power, checked in
    /// the transaction): checked by [`upstream_settings`] like a table of the configuration
    /// file, the secret sealed, recorded as `upstream.provider_created` by `actor`, and put in
    /// place on this node at once (on the others within [`PROVIDER_RELOAD_SECONDS`]). An id the
    /// configuration file or another stored provider uses is refused.
    ///
    /// # Errors
    /// [`ProviderChangeError::Forbidden`] for an actor who is not an active superuser (checked
    /// first: they learn nothing of the settings); [`ProviderChangeError::Invalid`] with every
    /// problem; [`ProviderChangeError::Seal`], [`ProviderChangeError::Db`].
    #[tracing::instrument(skip_all, fields(provider = id))]
    pub async fn create_provider(
        &self,
        actor: &Actor,
        id: &str,
        mut settings: RawUpstream,
        client_secret: SecretString,
    ) -> Result<(), ProviderChangeError> {
        let (actor, id) = (actor.clone(), id.to_owned());
        let file_defined = self.is_file_provider(&id);
        let secrets = Arc::clone(&self.secrets);
        let created = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ProviderChangeError, _>(|conn| {
                    privileges::check_superuser::<ProviderChangeError>(conn, &actor)?;
                    let mut errors = UpstreamErrors::new(&id);
                    if file_defined {
                        errors.add(
                            "id",
                            "is the id of a provider of the configuration file: choose another",
                        );
                    } else if ProviderId::parse(&id).is_ok()
                        && upstream_providers::find(conn, &id)?.is_some()
                    {
                        errors.add("id", "is the id of another provider: choose another");
                    }
                    settings.client_secret = Some(client_secret.clone());
                    let provider = checked(errors, upstream_settings(&id, settings.clone()))?;
                    settings.client_secret = None;
                    let sealed = secrets
                        .seal(&id, &secret_origins(&provider), &client_secret)
                        .map_err(|_| ProviderChangeError::Seal)?;
                    let now = db::now();
                    upstream_providers::insert(
                        conn,
                        &ProviderRow {
                            id: id.clone(),
                            settings: settings_json(&settings),
                            client_secret_sealed: sealed,
                            created_at: now,
                            updated_at: now,
                        },
                    )
                    .map_err(|e| taken_or(&id, e))?;
                    audit::record(
                        conn,
                        AuditEvent::new("upstream.provider_created")
                            .by(&actor)
                            .detail("provider", id.clone())
                            .detail("kind", provider.kind.as_str())
                            .detail("enabled", provider.enabled),
                    )?;
                    Ok(())
                })
            })
            .await;
        if created.is_ok() {
            self.reload_after_change().await;
        }
        created
    }

    /// Changes stored provider `id` to `settings` (a superuser's power, checked in the
    /// transaction); `client_secret` replaces the secret, `None` keeps it. The kind stays the
    /// one it was created with (`settings.kind` is ignored). With `end_logins`, a change that
    /// leaves the provider disabled also ends every live session and revokes every token whose
    /// login went through it (whoever's). Checked by [`upstream_settings`],
    /// recorded as `upstream.provider_updated` by `actor` (whether the secret changed, never
    /// the secret), put in place on this node at once.
    ///
    /// # Errors
    /// [`ProviderChangeError::Forbidden`] (checked first); [`ProviderChangeError::FileDefined`]
    /// for a provider of the configuration file; [`ProviderChangeError::NotFound`];
    /// [`ProviderChangeError::Invalid`] with every problem (a kept secret that no longer opens
    /// is one: it must be entered again); [`ProviderChangeError::Seal`],
    /// [`ProviderChangeError::Db`].
    #[tracing::instrument(skip_all, fields(provider = id))]
    pub async fn update_provider(
        &self,
        actor: &Actor,
        id: &str,
        mut settings: RawUpstream,
        client_secret: Option<SecretString>,
        end_logins: bool,
    ) -> Result<(), ProviderChangeError> {
        let (actor, id) = (actor.clone(), id.to_owned());
        let file_defined = self.is_file_provider(&id);
        let secrets = Arc::clone(&self.secrets);
        let updated = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ProviderChangeError, _>(|conn| {
                    privileges::check_superuser::<ProviderChangeError>(conn, &actor)?;
                    if file_defined {
                        return Err(ProviderChangeError::FileDefined(id.clone()));
                    }
                    let row = upstream_providers::lock(conn, &id)?
                        .ok_or(ProviderChangeError::NotFound)?;
                    let before_settings = settings_of(&row).ok();
                    if let Some(stored) = &before_settings {
                        settings.kind.clone_from(&stored.kind);
                    }
                    let mut errors = UpstreamErrors::new(&id);
                    let secret_changed = client_secret.is_some();
                    // Where the secret and the users' tokens went, and where they would go now.
                    let before = settings_without_secret(&row).ok();
                    let old_origins = before.as_ref().map(secret_origins);
                    settings.client_secret = Some(client_secret.clone().unwrap_or_else(|| {
                        SecretString::from(PLACEHOLDER_SECRET)
                    }));
                    let checked_settings = upstream_settings(&id, settings.clone());
                    let new_origins = checked_settings.as_ref().ok().map(secret_origins);
                    let origins_changed = new_origins.is_some() && old_origins != new_origins;
                    let secret = match client_secret {
                        Some(secret) => Some(secret),
                        // The stored secret goes only where it was entered for.
                        None if origins_changed => {
                            errors.add("client_secret", SECRET_MUST_BE_ENTERED_AGAIN);
                            None
                        }
                        None => match secrets.open(
                            &id,
                            old_origins.as_deref().unwrap_or_default(),
                            &row.client_secret_sealed,
                        ) {
                            Ok(secret) => Some(secret),
                            Err(_) => {
                                errors.add(
                                    "client_secret",
                                    "must be entered again: the stored one cannot be opened (was secrets.secret_key changed?)",
                                );
                                None
                            }
                        },
                    };
                    let mut provider = checked(errors, checked_settings)?;
                    settings.client_secret = None;
                    // (`checked` refused a missing secret: its problem was added above.)
                    let Some(secret) = secret else {
                        return Err(ProviderChangeError::Invalid(UpstreamErrors::one(
                            &id,
                            "client_secret",
                            SECRET_MUST_BE_ENTERED_AGAIN,
                        )));
                    };
                    provider.client_secret = secret;
                    let new_origins = secret_origins(&provider);
                    // Sealed anew at every change, bound to where it goes now (a secret sealed
                    // before origins were bound is bound from here on).
                    let sealed = secrets
                        .seal(&id, &new_origins, &provider.client_secret)
                        .map_err(|_| ProviderChangeError::Seal)?;
                    let json = settings_json(&settings);
                    upstream_providers::update(conn, &id, &json, Some(&sealed), db::now())?;
                    let mut event = AuditEvent::new("upstream.provider_updated")
                        .by(&actor)
                        .detail("provider", id.clone())
                        .detail("kind", provider.kind.as_str())
                        .detail("enabled", provider.enabled)
                        .detail("secret_changed", secret_changed)
                        .detail(
                            "changed",
                            changed_fields(before_settings.as_ref(), &settings).join(" "),
                        );
                    if origins_changed {
                        // The users' kept tokens were issued by, and would be sent to, the old
                        // hosts: dropped.
                        let dropped = upstream_links::clear_tokens_for_provider(conn, &id)?;
                        event = event
                            .detail(
                                "old_origins",
                                old_origins.unwrap_or_default().join(" "),
                            )
                            .detail("new_origins", new_origins.join(" "))
                            .detail("tokens_dropped", dropped);
                    }
                    if end_logins && !provider.enabled {
                        // Disabled, and asked to: its logins end too (see `delete_provider`).
                        let users = super::service::cut_off_provider(conn, &id)?;
                        event = event.detail("logins_ended_for_users", users);
                    }
                    audit::record(conn, event)?;
                    Ok(())
                })
            })
            .await;
        if updated.is_ok() {
            self.reload_after_change().await;
        }
        updated
    }

    /// Deletes stored provider `id` (a superuser's power, checked in the transaction); returns
    /// how many links it leaves. Links stay in `upstream_links` — a provider with the same id
    /// and issuer added later signs their users in again —, but nobody signs in with it any
    /// more: on this node at once, on the others within [`PROVIDER_RELOAD_SECONDS`]. With
    /// `end_logins` (the console's default) every live session and unrevoked token whose login
    /// went through it ends too, in the same transaction. Recorded as
    /// `upstream.provider_deleted` by `actor`.
    ///
    /// # Errors
    /// [`ProviderChangeError::Forbidden`] (checked first); [`ProviderChangeError::FileDefined`];
    /// [`ProviderChangeError::NotFound`]; [`ProviderChangeError::Db`].
    #[tracing::instrument(skip_all, fields(provider = id))]
    pub async fn delete_provider(
        &self,
        actor: &Actor,
        id: &str,
        end_logins: bool,
    ) -> Result<i64, ProviderChangeError> {
        let (actor, id) = (actor.clone(), id.to_owned());
        let file_defined = self.is_file_provider(&id);
        let deleted = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ProviderChangeError, _>(|conn| {
                    privileges::check_superuser::<ProviderChangeError>(conn, &actor)?;
                    if file_defined {
                        return Err(ProviderChangeError::FileDefined(id.clone()));
                    }
                    let row = upstream_providers::lock(conn, &id)?
                        .ok_or(ProviderChangeError::NotFound)?;
                    upstream_providers::delete(conn, &id)?;
                    let links = upstream_links::count_for_provider(conn, &id)?;
                    let kind = settings_of(&row).map(|s| s.kind).unwrap_or_default();
                    let mut event = AuditEvent::new("upstream.provider_deleted")
                        .by(&actor)
                        .detail("provider", id.clone())
                        .detail("kind", kind)
                        .detail("links", links);
                    if end_logins {
                        let users = super::service::cut_off_provider(conn, &id)?;
                        event = event.detail("logins_ended_for_users", users);
                    }
                    audit::record(conn, event)?;
                    Ok(links)
                })
            })
            .await;
        if deleted.is_ok() {
            self.reload_after_change().await;
        }
        deleted
    }
}

/// How many reloads in a row may fail before a node stops serving the stored providers
/// (× [`PROVIDER_RELOAD_SECONDS`]: about 50 s).
pub const MAX_RELOAD_FAILURES: u32 = 5;

/// Why a change that moves where the secret goes is refused without a new secret.
pub const SECRET_MUST_BE_ENTERED_AGAIN: &str = "must be entered again: the token endpoint, issuer or API host changed, and the stored secret is sent only where it was entered for";

/// The settings that differ between `before` (`None`: unreadable) and `after`, by name (never
/// a secret: the stored settings hold none).
fn changed_fields(before: Option<&RawUpstream>, after: &RawUpstream) -> Vec<String> {
    let as_map = |raw: &RawUpstream| match serde_json::to_value(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let after = as_map(after);
    let before = before.map(as_map).unwrap_or_default();
    let mut names: Vec<String> = after
        .keys()
        .chain(before.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// An insert's failure: a unique violation is another provider that took the id meanwhile.
fn taken_or(id: &str, e: diesel::result::Error) -> ProviderChangeError {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => ProviderChangeError::Invalid(UpstreamErrors::one(
            id,
            "id",
            "is the id of another provider: choose another",
        )),
        other => other.into(),
    }
}
