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
/// from `secrets.secret_key` for this purpose alone, with associated data binding the sealed
/// secret to its provider's id *and* to the origins it is sent to ([`secret_origins`]): a sealed
/// secret moved to another row, or to settings that would send it elsewhere, does not open.
///
/// Sealed values written before the origins were bound (no [`SEAL_V2_PREFIX`]) still open with
/// the id alone: [`super::Upstream::update_provider`] refuses to keep such a secret when the
/// origins change (it must be entered again) and seals it anew, bound, at every change.
pub struct ProviderSecrets(Sealer);

impl std::fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSecrets(***)")
    }
}

/// The prefix of a client secret sealed bound to its origins (base64url never holds a dot).
pub const SEAL_V2_PREFIX: &str = "v2.";

/// The associated data of provider `id`'s client secret, sealed before origins were bound.
fn aad_v1(id: &str) -> Vec<u8> {
    format!("upstream_providers/{id}/client_secret").into_bytes()
}

/// The associated data of provider `id`'s client secret, bound to `origins`.
fn aad_v2(id: &str, origins: &[String]) -> Vec<u8> {
    format!(
        "upstream_providers/{id}/client_secret/v2\n{}",
        origins.join("\n")
    )
    .into_bytes()
}

impl ProviderSecrets {
    /// The sealer under `secret` (`secrets.secret_key`).
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library cannot set up the key.
    pub fn new(secret: &[u8]) -> Result<Self, SealError> {
        Sealer::new(secret, PROVIDER_SECRETS_PURPOSE).map(Self)
    }

    /// `client_secret` sealed for provider `id` sending it to `origins` ([`secret_origins`]):
    /// [`SEAL_V2_PREFIX`] then the sealed value.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the crypto library fails.
    pub fn seal(
        &self,
        id: &str,
        origins: &[String],
        client_secret: &SecretString,
    ) -> Result<String, SealError> {
        self.0
            .seal(
                &aad_v2(id, origins),
                client_secret.expose_secret().as_bytes(),
            )
            .map(|sealed| format!("{SEAL_V2_PREFIX}{sealed}"))
    }

    /// The client secret sealed for provider `id` sending it to `origins` (a value sealed
    /// before origins were bound opens with the id alone; see the type's documentation).
    ///
    /// # Errors
    /// [`SealError::Open`] when it was sealed under another secret key, for another provider
    /// or other origins, or altered.
    pub fn open(
        &self,
        id: &str,
        origins: &[String],
        sealed: &str,
    ) -> Result<SecretString, SealError> {
        let plain = match sealed.strip_prefix(SEAL_V2_PREFIX) {
            Some(bound) => self.0.open(&aad_v2(id, origins), bound)?,
            None => self.0.open(&aad_v1(id), sealed)?,
        };
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SealError::Open)
    }
}

/// Discord's default token endpoint's and API's origin.
const DISCORD_ORIGIN: &str = "https://discord.com";

/// The origin of `url` as text (`https://host[:port]`).
fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// The origins that receive `provider`'s client secret or its users' tokens, sorted and
/// without repeats: for OpenID Connect (and Google) the token endpoint's (its override's, or
/// the issuer's — discovery's endpoints are checked against it); for Discord the token
/// endpoint's and the API's (`api_base`, which receives the users' access tokens and whose
/// `/users/@me` says who signed in). When they change, the stored secret is not sent there
/// until it is entered again, and the users' kept tokens are dropped.
#[must_use]
pub fn secret_origins(provider: &UpstreamProvider) -> Vec<String> {
    let mut origins = Vec::new();
    match (&provider.token_endpoint, provider.kind) {
        (Some(url), _) => origins.push(origin_of(url)),
        (None, crate::domain::ProviderKind::Discord) => origins.push(DISCORD_ORIGIN.to_owned()),
        (None, _) => {
            if let Some(issuer) = provider
                .issuer
                .as_deref()
                .and_then(|i| url::Url::parse(i).ok())
            {
                origins.push(origin_of(&issuer));
            }
        }
    }
    if let Some(api) = &provider.api_base {
        origins.push(origin_of(api));
    }
    origins.sort();
    origins.dedup();
    origins
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
    let mut provider = settings_without_secret(row)?;
    provider.client_secret = secrets
        .open(
            &row.id,
            &secret_origins(&provider),
            &row.client_secret_sealed,
        )
        .map_err(|_| UNREADABLE_SECRET.to_owned())?;
    provider.revision = revision_of(row);
    Ok(provider)
}

/// A stored row's settings checked by [`upstream_settings`], a placeholder standing in for the
/// secret (which is opened only once the origins it goes to are known).
///
/// # Errors
/// A sentence saying why the settings do not load.
pub(super) fn settings_without_secret(row: &ProviderRow) -> Result<UpstreamProvider, String> {
    let mut raw = settings_of(row)?;
    raw.client_secret = Some(SecretString::from(PLACEHOLDER_SECRET));
    upstream_settings(&row.id, raw).map_err(|e| e.to_string())
}

/// What stands in for a secret while settings are checked without it.
pub(super) const PLACEHOLDER_SECRET: &str = "unreadable";

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
    fn stored_secrets_open_only_for_their_provider_key_and_origins() {
        let secrets = ProviderSecrets::new(&[3u8; 64]).expect("sealer");
        let here = vec!["https://sso.example".to_owned()];
        let sealed = secrets
            .seal("corp", &here, &SecretString::from("the-client-secret"))
            .expect("seal");
        assert!(sealed.starts_with(SEAL_V2_PREFIX));
        assert!(!sealed.contains("the-client-secret"));
        assert_eq!(
            secrets
                .open("corp", &here, &sealed)
                .expect("opens")
                .expose_secret(),
            "the-client-secret"
        );
        assert!(secrets.open("other", &here, &sealed).is_err());
        let elsewhere = vec!["https://evil.example".to_owned()];
        assert!(
            secrets.open("corp", &elsewhere, &sealed).is_err(),
            "not for another host"
        );
        let other_key = ProviderSecrets::new(&[4u8; 64]).expect("sealer");
        assert!(other_key.open("corp", &here, &sealed).is_err());
        // A secret sealed before origins were bound still opens (the update path guards it).
        let legacy = secrets
            .0
            .seal(&aad_v1("corp"), b"old-secret")
            .expect("seal");
        assert_eq!(
            secrets
                .open("corp", &here, &legacy)
                .expect("opens")
                .expose_secret(),
            "old-secret"
        );
    }

    fn provider(raw: serde_json::Value) -> UpstreamProvider {
        let mut raw: RawUpstream = serde_json::from_value(raw).expect("shape");
        raw.client_secret = Some(SecretString::from("s"));
        upstream_settings("p", raw).expect("valid")
    }

    #[test]
    fn the_secret_goes_to_the_token_endpoint_and_discords_api() {
        let oidc = provider(serde_json::json!({
            "kind": "oidc", "issuer": "https://sso.example/realm", "client_id": "x"}));
        assert_eq!(secret_origins(&oidc), ["https://sso.example"]);
        let moved = provider(serde_json::json!({
            "kind": "oidc", "issuer": "https://sso.example/realm", "client_id": "x",
            "token_endpoint": "https://evil.example:8443/token"}));
        assert_eq!(secret_origins(&moved), ["https://evil.example:8443"]);
        let google = provider(serde_json::json!({"kind": "google", "client_id": "x"}));
        assert_eq!(secret_origins(&google), ["https://accounts.google.com"]);
        let discord = provider(serde_json::json!({"kind": "discord", "client_id": "1"}));
        assert_eq!(secret_origins(&discord), ["https://discord.com"]);
        assert_eq!(discord.subject_issuer(), "discord");
        let other_api = provider(serde_json::json!({
            "kind": "discord", "client_id": "1", "api_base": "https://api.evil.example/v10"}));
        assert_eq!(
            secret_origins(&other_api),
            ["https://api.evil.example", "https://discord.com"]
        );
        assert_eq!(
            other_api.subject_issuer(),
            "discord:https://api.evil.example",
            "links made through one API host are not claimed through another"
        );
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
