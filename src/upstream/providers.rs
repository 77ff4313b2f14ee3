//! The sign-in providers (issue 11): those of the configuration file (`[upstream.<id>]`, fixed
//! while the server runs) and those added in the admin console, stored in `upstream_providers`
//! ([`crate::db::upstream_providers`]): their settings as JSON in the configuration's shape
//! ([`RawUpstream`]) and checked by the same [`upstream_settings`], their client secret sealed
//! apart ([`ProviderSecrets`]).
//!
//! * **The live set** ([`ProviderSet`]) is an immutable snapshot behind a lock held only to
//!   clone or swap an `Arc`: every request reads it without waiting on the database.
//!   [`Upstream::reload`] reads the table and swaps in a new snapshot. A change made in the
//!   console reloads at once on the node that made it; every node also reloads every
//!   [`PROVIDER_RELOAD_SECONDS`] ([`Upstream::spawn_reloader`], started with the HTTP server),
//!   so a provider changed, disabled or deleted on one node stops working as it was on every
//!   node within that bound.
//! * A stored provider whose row does not load (its secret sealed under another
//!   `secrets.secret_key`, settings a newer version wrote, an id the configuration file now
//!   uses) is left out with a warning in the log — once per version of the row —, and the
//!   console says why; it never fails a request.
//! * Each stored provider carries a revision (a digest of its row): the relying party drops
//!   what it cached under another revision (discovery, keys, a remembered failure).
//! * Changes are a superuser's ([`privileges::check_superuser`], in the change's transaction):
//!   who may add a provider decides who can sign in. Each is an audit event
//!   (`upstream.provider_created`, `…_updated`, `…_deleted`) by the actor. A provider of the
//!   configuration file cannot be changed or deleted here, and its id cannot be taken.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};

use super::service::Upstream;
use crate::accounts::privileges::{self, NotAllowed};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::{upstream_settings, RawUpstream, UpstreamErrors, UpstreamProvider};
use crate::db::upstream_links;
use crate::db::upstream_providers::{self, ProviderRow};
use crate::db::{self, DbError};
use crate::secret::{SealError, Sealer};

/// How often every node re-reads the stored providers, in seconds: the longest a change made
/// in the console on one node (a provider disabled, deleted, its secret replaced) takes to
/// reach the others. The node that made the change uses it at once.
pub const PROVIDER_RELOAD_SECONDS: u64 = 10;

/// The HKDF `info` of the stored client secrets' sealing key (changing it makes every stored
/// secret unreadable).
const PROVIDER_SECRETS_PURPOSE: &str = "upstream-providers/v1";

/// A provider as the sign-in page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderButton {
    /// The id in its URLs.
    pub id: String,
    /// The button's words.
    pub label: String,
}

/// Where a provider is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderSource {
    /// The configuration file or environment (`[upstream.<id>]`): read-only in the console.
    File,
    /// The admin console (`upstream_providers`).
    Console,
}

impl ProviderSource {
    /// What the console calls it: "configuration file" or "console".
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::File => "configuration file",
            Self::Console => "console",
        }
    }
}

/// One version of the provider set.
#[derive(Default)]
struct Snapshot {
    /// Every provider in use, enabled or not, by id.
    providers: Vec<Arc<UpstreamProvider>>,
    /// The stored rows left out, by id, with their revision (so each is logged once).
    skipped: HashMap<String, String>,
}

/// The live set of providers, shared by the upstream service and the web layer's sign-in page:
/// cheap to clone, read without waiting on the database (see the module documentation).
#[derive(Clone)]
pub struct ProviderSet {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl std::fmt::Debug for ProviderSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: no secret.
        f.debug_list()
            .entries(self.snapshot().providers.iter().map(|p| p.id.as_str()))
            .finish()
    }
}

impl ProviderSet {
    /// A set holding `providers` (the configuration file's) until the first reload.
    pub(super) fn new_with(providers: Vec<Arc<UpstreamProvider>>) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(Snapshot {
                providers,
                skipped: HashMap::new(),
            }))),
        }
    }

    /// The current snapshot (a poisoned lock still holds a whole snapshot: swaps cannot panic
    /// half-way).
    fn snapshot(&self) -> Arc<Snapshot> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Puts `next` in place; returns the snapshot it replaces.
    fn replace(&self, next: Snapshot) -> Arc<Snapshot> {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *guard, Arc::new(next))
    }

    /// Every provider in use, enabled or not, by id.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<UpstreamProvider>> {
        self.snapshot().providers.clone()
    }

    /// The enabled providers' buttons, by id.
    #[must_use]
    pub fn buttons(&self) -> Vec<ProviderButton> {
        self.snapshot()
            .providers
            .iter()
            .filter(|p| p.enabled)
            .map(|p| ProviderButton {
                id: p.id.to_string(),
                label: p.label.clone(),
            })
            .collect()
    }

    /// Every provider's label by id, enabled or not.
    #[must_use]
    pub fn labels(&self) -> HashMap<String, String> {
        self.snapshot()
            .providers
            .iter()
            .map(|p| (p.id.to_string(), p.label.clone()))
            .collect()
    }

    /// The enabled provider `id`.
    #[must_use]
    pub fn enabled(&self, id: &str) -> Option<Arc<UpstreamProvider>> {
        self.snapshot()
            .providers
            .iter()
            .find(|p| p.enabled && p.id.as_str() == id)
            .cloned()
    }
}

/// Seals and opens the client secrets of stored providers: AES-256-GCM under a key derived
/// from `secrets.secret_key` for this purpose alone, the provider's id as associated data (a
/// sealed secret moved to another row does not open).
pub struct ProviderSecrets(Sealer);

impl std::fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSecrets(***)")
    }
}

/// The associated data of provider `id`'s client secret.
fn aad(id: &str) -> Vec<u8> {
    format!("upstream_providers/{id}/client_secret").into_bytes()
}

impl ProviderSecrets {
    /// The sealer under `secret` (`secrets.secret_key`).
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library cannot set up the key.
    pub fn new(secret: &[u8]) -> Result<Self, SealError> {
        Sealer::new(secret, PROVIDER_SECRETS_PURPOSE).map(Self)
    }

    /// `client_secret` sealed for provider `id`.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library fails.
    pub fn seal(&self, id: &str, client_secret: &SecretString) -> Result<String, SealError> {
        self.0
            .seal(&aad(id), client_secret.expose_secret().as_bytes())
    }

    /// The client secret sealed for provider `id`.
    ///
    /// # Errors
    /// [`SealError::Open`] when it was sealed under another secret key or for another
    /// provider, or altered.
    pub fn open(&self, id: &str, sealed: &str) -> Result<SecretString, SealError> {
        let plain = self.0.open(&aad(id), sealed)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SealError::Open)
    }
}

/// The revision of a stored row: a digest of its settings and sealed secret (a new secret is
/// a new revision even when the settings are the same).
fn revision_of(row: &ProviderRow) -> String {
    crate::secret::sha256_hex(&format!("{}\n{}", row.settings, row.client_secret_sealed))
}

/// Why a stored row's secret does not open, as the console and the log say it.
const UNREADABLE_SECRET: &str = "its client secret cannot be opened (sealed under another secrets.secret_key, or altered): enter it again";

/// The settings of a stored row (without the secret).
///
/// # Errors
/// A sentence saying why they cannot be read (written by a newer version, or altered).
fn settings_of(row: &ProviderRow) -> Result<RawUpstream, String> {
    serde_json::from_str(&row.settings)
        .map_err(|e| format!("its stored settings cannot be read ({e})"))
}

/// `settings` as stored: JSON in the configuration's shape, without the secret.
fn settings_json(settings: &RawUpstream) -> String {
    serde_json::to_string(settings).expect("strings, lists, maps and flags always serialize")
}

/// A stored row as a provider in use: its settings read, its secret opened, both checked by
/// [`upstream_settings`].
///
/// # Errors
/// A sentence saying why the row does not load.
fn load(secrets: &ProviderSecrets, row: &ProviderRow) -> Result<UpstreamProvider, String> {
    let mut raw = settings_of(row)?;
    raw.client_secret = Some(
        secrets
            .open(&row.id, &row.client_secret_sealed)
            .map_err(|_| UNREADABLE_SECRET.to_owned())?,
    );
    let mut provider = upstream_settings(&row.id, raw).map_err(|e| e.to_string())?;
    provider.revision = revision_of(row);
    Ok(provider)
}

/// A provider as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderListing {
    /// The id.
    pub id: String,
    /// `discord`, `google` or `oidc` (as stored, for a row that does not load).
    pub kind: String,
    /// The button's words.
    pub label: String,
    /// Whether it is offered and accepted.
    pub enabled: bool,
    /// Where it is defined.
    pub source: ProviderSource,
    /// How many accounts are linked through it.
    pub links: i64,
    /// Why a stored provider is not in use (its row does not load, or the configuration file
    /// defines the same id); `None` when it is.
    pub problem: Option<String>,
}

/// A provider stored by the console, as its form shows it.
#[derive(Clone, Debug)]
pub struct StoredProvider {
    /// The id.
    pub id: String,
    /// Its settings as stored (`client_secret` is always `None`: the secret is never shown).
    pub settings: RawUpstream,
    /// When it was added (UTC).
    pub created_at: NaiveDateTime,
    /// When it was last changed (UTC).
    pub updated_at: NaiveDateTime,
    /// How many accounts are linked through it.
    pub links: i64,
    /// Why it is not in use, as in [`ProviderListing::problem`].
    pub problem: Option<String>,
}

/// Why a change to the console's providers was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProviderChangeError {
    /// The settings do not pass [`upstream_settings`] (or the id is taken): every problem, by
    /// setting. Nothing was saved.
    #[error("{0}")]
    Invalid(UpstreamErrors),
    /// The provider is defined in the configuration file: it is changed there, not here.
    #[error("the provider {0:?} is defined in the configuration file: change it there")]
    FileDefined(String),
    /// No stored provider has this id.
    #[error("no provider has this id")]
    NotFound,
    /// The actor is not an active superuser.
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// The client secret could not be sealed.
    #[error("the client secret could not be sealed")]
    Seal,
    /// Storage failed; nothing was saved.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ProviderChangeError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

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
    /// The live provider set (the sign-in page's buttons come from it).
    #[must_use]
    pub fn providers(&self) -> ProviderSet {
        self.providers.clone()
    }

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
    /// the set in place stays until the next.
    #[must_use]
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let upstream = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(PROVIDER_RELOAD_SECONDS));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the set was read at start-up.
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = upstream.reload().await {
                    tracing::warn!(error = %e, "could not reload the upstream providers");
                }
            }
        })
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
            let stored = self.describe(row, links(&row.id));
            listed.push(ProviderListing {
                id: stored.id,
                kind: stored.settings.kind,
                label: match stored.settings.label.trim() {
                    "" => row.id.clone(),
                    label => label.to_owned(),
                },
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

    /// The stored row as the console shows it, with why it does not load.
    fn describe(&self, row: &ProviderRow, links: i64) -> StoredProvider {
        let (settings, problem) = match settings_of(row) {
            Ok(settings) => {
                let problem = if self.is_file_provider(&row.id) {
                    Some("the configuration file defines a provider with this id, which is used instead".to_owned())
                } else {
                    load(&self.secrets, row).err()
                };
                (settings, problem)
            }
            Err(reason) => (RawUpstream::default(), Some(reason)),
        };
        StoredProvider {
            id: row.id.clone(),
            settings,
            created_at: row.created_at,
            updated_at: row.updated_at,
            links,
            problem,
        }
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
        Ok(found.map(|(row, links)| self.describe(&row, links)))
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
                    } else if upstream_providers::find(conn, &id)?.is_some() {
                        errors.add("id", "is the id of another provider: choose another");
                    }
                    settings.client_secret = Some(client_secret.clone());
                    let provider = checked(errors, upstream_settings(&id, settings.clone()))?;
                    settings.client_secret = None;
                    let sealed = secrets
                        .seal(&id, &client_secret)
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
    /// one it was created with (`settings.kind` is ignored). Checked by [`upstream_settings`],
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
                    if let Ok(stored) = settings_of(&row) {
                        settings.kind = stored.kind;
                    }
                    let mut errors = UpstreamErrors::new(&id);
                    let secret_changed = client_secret.is_some();
                    let secret = match client_secret {
                        Some(secret) => Some(secret),
                        None => match secrets.open(&id, &row.client_secret_sealed) {
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
                    // A placeholder stands in for an unreadable secret, so that the other
                    // settings are checked too; the problem above refuses the change anyway.
                    settings.client_secret =
                        Some(secret.clone().unwrap_or_else(|| SecretString::from("unreadable")));
                    let provider = checked(errors, upstream_settings(&id, settings.clone()))?;
                    settings.client_secret = None;
                    let sealed = match (secret_changed, &secret) {
                        (true, Some(secret)) => Some(
                            secrets
                                .seal(&id, secret)
                                .map_err(|_| ProviderChangeError::Seal)?,
                        ),
                        _ => None,
                    };
                    let json = settings_json(&settings);
                    upstream_providers::update(conn, &id, &json, sealed.as_deref(), db::now())?;
                    audit::record(
                        conn,
                        AuditEvent::new("upstream.provider_updated")
                            .by(&actor)
                            .detail("provider", id.clone())
                            .detail("kind", provider.kind.as_str())
                            .detail("enabled", provider.enabled)
                            .detail("secret_changed", secret_changed),
                    )?;
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
    /// more: on this node at once, on the others within [`PROVIDER_RELOAD_SECONDS`]. Recorded
    /// as `upstream.provider_deleted` by `actor`.
    ///
    /// # Errors
    /// [`ProviderChangeError::Forbidden`] (checked first); [`ProviderChangeError::FileDefined`];
    /// [`ProviderChangeError::NotFound`]; [`ProviderChangeError::Db`].
    #[tracing::instrument(skip_all, fields(provider = id))]
    pub async fn delete_provider(
        &self,
        actor: &Actor,
        id: &str,
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
                    audit::record(
                        conn,
                        AuditEvent::new("upstream.provider_deleted")
                            .by(&actor)
                            .detail("provider", id.clone())
                            .detail("kind", kind)
                            .detail("links", links),
                    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_secrets_open_only_for_their_provider_and_key() {
        let secrets = ProviderSecrets::new(&[3u8; 64]).expect("sealer");
        let sealed = secrets
            .seal("corp", &SecretString::from("the-client-secret"))
            .expect("seal");
        assert!(!sealed.contains("the-client-secret"));
        assert_eq!(
            secrets
                .open("corp", &sealed)
                .expect("opens")
                .expose_secret(),
            "the-client-secret"
        );
        assert!(secrets.open("other", &sealed).is_err());
        let other_key = ProviderSecrets::new(&[4u8; 64]).expect("sealer");
        assert!(other_key.open("corp", &sealed).is_err());
    }

    #[test]
    fn stored_settings_have_the_configuration_shape_without_the_secret() {
        let raw: RawUpstream = serde_json::from_str(
            r#"{"kind":"oidc","issuer":"https://sso.example","client_id":"x","client_secret":"s"}"#,
        )
        .expect("the configuration's shape");
        let json = serde_json::to_string(&raw).expect("serializes");
        assert!(
            !json.contains("client_secret") && !json.contains("\"s\""),
            "{json}"
        );
        let back: RawUpstream = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back.issuer, "https://sso.example");
        assert!(back.client_secret.is_none() && back.enabled);
    }
}
