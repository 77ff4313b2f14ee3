//! The sign-in providers (issue 11): those of the configuration file (`[upstream.<id>]`, fixed
//! while the server runs) and those added in the admin console, stored in `upstream_providers`
//! ([`crate::db::upstream_providers`], read and changed by [`super::stored`]): their settings
//! as JSON in the configuration's shape ([`RawUpstream`]) and checked by the same
//! [`upstream_settings`], their client secret sealed apart ([`ProviderSecrets`]).
//!
//! * **The live set** ([`ProviderSet`]) is an immutable snapshot behind a lock held only to
//!   clone or swap an `Arc`: every request reads it without waiting on the database.
//!   [`super::Upstream::reload`] reads the table and swaps in a new snapshot. A change made in
//!   the console reloads at once on the node that made it; every node also reloads every
//!   [`PROVIDER_RELOAD_SECONDS`] ([`super::Upstream::spawn_reloader`], started with the HTTP
//!   server), so a provider changed, disabled or deleted on one node stops working as it was
//!   on every node within that bound.
//! * A stored provider whose row does not load (its secret sealed under another
//!   `secrets.secret_key`, settings a newer version wrote, an id the configuration file now
//!   uses) is left out with a warning in the log — once per version of the row —, and the
//!   console says why; it never fails a request.
//! * Each stored provider carries a revision (a digest of its row): the relying party drops
//!   what it cached under another revision (discovery, keys, a remembered failure).
//! * Changes are a superuser's (`accounts::privileges::check_superuser`, in the change's
//!   transaction): who may add a provider decides who can sign in. Each is an audit event
//!   (`upstream.provider_created`, `…_updated`, `…_deleted`) by the actor. A provider of the
//!   configuration file cannot be changed or deleted here, and its id cannot be taken.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::privileges::NotAllowed;
use crate::config::{upstream_settings, RawUpstream, UpstreamErrors, UpstreamProvider};
use crate::db::upstream_providers::ProviderRow;
use crate::db::DbError;
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
pub(super) struct Snapshot {
    /// Every provider in use, enabled or not, by id.
    pub(super) providers: Vec<Arc<UpstreamProvider>>,
    /// The stored rows left out, by id, with their revision (so each is logged once).
    pub(super) skipped: HashMap<String, String>,
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
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Puts `next` in place; returns the snapshot it replaces.
    pub(super) fn replace(&self, next: Snapshot) -> Arc<Snapshot> {
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
pub(super) fn revision_of(row: &ProviderRow) -> String {
    crate::secret::sha256_hex(&format!("{}\n{}", row.settings, row.client_secret_sealed))
}

/// Why a stored row's secret does not open, as the console and the log say it.
pub(super) const UNREADABLE_SECRET: &str = "its client secret cannot be opened (sealed under another secrets.secret_key, or altered): enter it again";

/// The settings of a stored row (without the secret).
///
/// # Errors
/// A sentence saying why they cannot be read (written by a newer version, or altered).
pub(super) fn settings_of(row: &ProviderRow) -> Result<RawUpstream, String> {
    serde_json::from_str(&row.settings)
        .map_err(|e| format!("its stored settings cannot be read ({e})"))
}

/// `settings` as stored: JSON in the configuration's shape, without the secret.
pub(super) fn settings_json(settings: &RawUpstream) -> String {
    serde_json::to_string(settings).expect("strings, lists, maps and flags always serialize")
}

/// A stored row as a provider in use: its settings read, its secret opened, both checked by
/// [`upstream_settings`].
///
/// # Errors
/// A sentence saying why the row does not load.
pub(super) fn load(
    secrets: &ProviderSecrets,
    row: &ProviderRow,
) -> Result<UpstreamProvider, String> {
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
