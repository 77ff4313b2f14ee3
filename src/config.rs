//! Configuration: compiled-in `config/default.toml` ← optional TOML file (`--config` /
//! `LATCHKEY_CONFIG`) ← `LATCHKEY_*` environment variables (`__` separates levels) ← `.env`
//! (loaded into the environment by `main` before anything else, never overriding variables that
//! are already set).
//!
//! [`Settings::load`] parses and validates everything once, at start-up, into typed values; the
//! rest of the program never reads configuration again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use url::Url;

use crate::db::DatabaseUrl;

/// The defaults, compiled into the binary so that it runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Longest lifetime accepted for tokens, codes and sessions: 10 years, in seconds.
pub const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The accepted range of one duration setting (inclusive), in the setting's own unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationRange {
    /// The setting's dotted key, e.g. `rate_limits.window_seconds`.
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// The unit of the value: `"seconds"` or `"days"`.
    pub unit: &'static str,
}

const DAY: u64 = 24 * 3600;

const fn seconds(key: &'static str, min: u64, max: u64) -> DurationRange {
    DurationRange {
        key,
        min,
        max,
        unit: "seconds",
    }
}

const fn days(key: &'static str, min: u64, max: u64) -> DurationRange {
    DurationRange {
        key,
        min,
        max,
        unit: "days",
    }
}

/// Every duration setting and its accepted range. A value outside its range is refused at
/// start-up (and by `latchkey check`) with a message naming the setting and the range: an
/// unbounded duration once made every login panic (`rate_limits.window_seconds` added to the
/// current time overflowed). The upper bounds are far beyond any sensible value, yet keep
/// every `now + duration` a server computes within the calendar; the lower bounds keep
/// meaning (a code, token, session or window that lasts 0 seconds is a mistake, except the
/// signing-key cache, which 0 turns off). The README's configuration table shows the same
/// ranges.
pub const DURATION_RANGES: &[DurationRange] = &[
    seconds("server.session_max_age_seconds", 1, MAX_LIFETIME_SECONDS),
    // RFC 6749 §4.1.2: a maximum code lifetime of 10 minutes is RECOMMENDED.
    seconds("tokens.authorization_code_seconds", 1, 600),
    seconds("tokens.access_token_seconds", 1, MAX_LIFETIME_SECONDS),
    seconds("tokens.refresh_token_seconds", 1, MAX_LIFETIME_SECONDS),
    seconds("tokens.id_token_seconds", 1, MAX_LIFETIME_SECONDS),
    seconds("rate_limits.window_seconds", 1, 7 * DAY),
    seconds("rate_limits.login_delay_max_seconds", 1, 3600),
    seconds("oidc.key_cache_seconds", 0, 3600),
    seconds("accounts.otp_expiration_seconds", 1, DAY),
    seconds("accounts.resend_cooldown_seconds", 1, DAY),
    seconds("accounts.activation_link_seconds", 1, 30 * DAY),
    seconds("accounts.password_reset_seconds", 1, 7 * DAY),
    seconds("email.smtp_timeout_seconds", 1, 300),
    seconds("scheduler.retry_seconds", 1, 3600),
    seconds("scheduler.lease_seconds", 10, 3600),
    days("audit.retention_days", 1, 36_500),
];

/// `value` of the duration setting `key` as a [`Duration`], checked against its range in
/// [`DURATION_RANGES`].
///
/// # Errors
/// A message naming the setting and its range when `value` is outside it.
///
/// # Panics
/// When `key` has no row in [`DURATION_RANGES`] (a programming error, caught by the tests).
pub fn bounded_duration(key: &str, value: u64) -> anyhow::Result<Duration> {
    let range = DURATION_RANGES
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("{key} has no row in DURATION_RANGES"));
    if !(range.min..=range.max).contains(&value) {
        bail!(
            "{key} must be between {} and {} {} (got {value})",
            range.min,
            range.max,
            range.unit
        );
    }
    let seconds = if range.unit == "days" {
        value * DAY
    } else {
        value
    };
    Ok(Duration::from_secs(seconds))
}

/// The largest `accounts.max_password_length` accepted, in characters (at most 4 KiB of UTF-8).
pub const MAX_PASSWORD_LENGTH_LIMIT: usize = 1024;

/// Minimum length of the cookie/CSRF secret key in bytes (actix's cookie `Key` needs 64).
pub const SECRET_KEY_BYTES: usize = 64;

/// The scope of the admin JSON API (`/api/users/`). A client without an explicit scope list
/// is not allowed it (see `clients::validate_spec`), and a token with it works only for an
/// active staff user.
pub const ADMIN_SCOPE: &str = "admin";

/// The scope that lets a third-party application sign its user out of everything
/// (`POST /api/logout_all/`; first-party clients, those with `skip_authorization`, need no
/// scope for it). Like [`ADMIN_SCOPE`] it is never among a client's default scopes.
pub const LOGOUT_ALL_SCOPE: &str = "logout_all";

/// Scopes a client is allowed only when they are named in its scope list, and which only staff
/// can tick in the developer portal.
pub const RESTRICTED_SCOPES: [&str; 2] = [ADMIN_SCOPE, LOGOUT_ALL_SCOPE];

#[derive(Debug, Deserialize)]
struct Raw {
    server: RawServer,
    database: RawDatabase,
    secrets: RawSecrets,
    tokens: RawTokens,
    argon2: RawArgon2,
    rate_limits: RawRateLimits,
    log: RawLog,
    oidc: RawOidc,
    audit: RawAudit,
    console: RawConsole,
    accounts: RawAccounts,
    email: RawEmail,
    scopes: BTreeMap<String, String>,
    scheduler: RawScheduler,
    branding: RawBranding,
    #[serde(default)]
    upstream: BTreeMap<String, RawUpstream>,
    discord: RawDiscord,
    metrics: RawMetrics,
}

/// `[metrics]`: Prometheus metrics at `/metrics`.
#[derive(Deserialize)]
struct RawMetrics {
    enabled: bool,
    listen: String,
    bearer_token: SecretString,
    bearer_token_file: PathBuf,
    allow_unauthenticated: bool,
}

impl std::fmt::Debug for RawMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMetrics")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// `[discord]`: the Discord connector (issue 12).
#[derive(Deserialize)]
struct RawDiscord {
    enabled: bool,
    provider: String,
    bot_token: SecretString,
    bot_token_file: PathBuf,
    guild_id: RawSnowflake,
    invite_link: String,
    remote_priority: bool,
    apply_interval_seconds: u64,
    verify_interval_seconds: u64,
    remote_sync_interval_seconds: u64,
    sync_accounts_interval_seconds: u64,
    nickname_template: String,
    enforce_nicknames_interval_seconds: u64,
}

/// A Discord id as written: a string (as Discord shows ids), or a number (TOML, or an
/// environment variable, which figment reads as one).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSnowflake {
    Text(String),
    Number(u64),
}

/// A setting written as a string or a number ([`RawSnowflake`]), as text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    RawSnowflake::deserialize(d).map(|raw| raw.text())
}

impl RawSnowflake {
    fn text(&self) -> String {
        match self {
            Self::Text(t) => t.trim().to_owned(),
            Self::Number(n) => n.to_string(),
        }
    }
}

impl std::fmt::Debug for RawDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bot token is never printed.
        f.debug_struct("RawDiscord")
            .field("enabled", &self.enabled)
            .field("provider", &self.provider)
            .field("guild_id", &self.guild_id)
            .finish_non_exhaustive()
    }
}

/// One `[upstream.<id>]` table (issue 11): an identity provider users may sign in with, as
/// written — in the configuration file, or (without `client_secret`, which is sealed in a column
/// of its own) as the `settings` JSON of a provider stored by the console (`upstream_providers`).
/// [`upstream_settings`] checks it into an [`UpstreamProvider`], the same way for both. Empty
/// strings and `None` mean "not set" (the kind's default, where it has one).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `discord`, `google` or `oidc`.
    pub kind: String,
    /// The button's words; empty: the kind's name (the id for `oidc`).
    #[serde(default)]
    pub label: String,
    /// The id the provider gave Latchkey. Read from a string or a number: Discord's ids are
    /// digits, and figment reads `LATCHKEY_UPSTREAM__<ID>__CLIENT_ID=1234567890` as a number.
    #[serde(default, deserialize_with = "text_or_number")]
    pub client_id: String,
    /// The secret the provider gave Latchkey. Never serialized: a stored provider keeps it
    /// sealed beside the settings.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// The OpenID Connect issuer (Google's by default; none for Discord).
    #[serde(default)]
    pub issuer: String,
    /// The scopes asked for; `None`: the kind's defaults.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Whether the provider is offered and accepted (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Overrides the discovered (or Discord's) authorization endpoint.
    #[serde(default)]
    pub authorization_endpoint: String,
    /// Overrides the discovered (or Discord's) token endpoint.
    #[serde(default)]
    pub token_endpoint: String,
    /// Overrides the discovered UserInfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: String,
    /// Discord's API root.
    #[serde(default)]
    pub api_base: String,
    /// Whether an unknown identity may be linked to the account with the same verified address.
    #[serde(default)]
    pub link_by_email: bool,
    /// Google: the hosted domains (`hd`) admitted; empty: any account.
    #[serde(default)]
    pub allowed_hosted_domains: Vec<String>,
    /// OpenID Connect: claims the user must carry, by name.
    #[serde(default)]
    pub required_claims: BTreeMap<String, String>,
    /// OpenID Connect: the client ids whose tokens are accepted; `None`: `[client_id]`.
    #[serde(default)]
    pub accepted_audiences: Option<Vec<String>>,
    /// Google: where app access tokens are checked.
    #[serde(default)]
    pub tokeninfo_endpoint: String,
    /// Discord: keep the sign-in's tokens, sealed; `None`: on when `scopes` has `guilds.join`.
    #[serde(default)]
    pub keep_tokens: Option<bool>,
    /// Google: whether apps may exchange Google access tokens (not only ID tokens); off by
    /// default.
    #[serde(default)]
    pub accept_access_tokens: bool,
    /// Discord: the redirect URI's path.
    #[serde(default)]
    pub callback_path: String,
}

impl Default for RawUpstream {
    /// Nothing set: an empty kind, enabled (as a table that does not say).
    fn default() -> Self {
        Self {
            kind: String::new(),
            label: String::new(),
            client_id: String::new(),
            client_secret: None,
            issuer: String::new(),
            scopes: None,
            enabled: true,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            userinfo_endpoint: String::new(),
            api_base: String::new(),
            link_by_email: false,
            allowed_hosted_domains: Vec::new(),
            required_claims: BTreeMap::new(),
            accepted_audiences: None,
            tokeninfo_endpoint: String::new(),
            keep_tokens: None,
            accept_access_tokens: false,
            callback_path: String::new(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct RawBranding {
    name: String,
    logo_url: String,
    accent_color: String,
}

#[derive(Debug, Deserialize)]
struct RawScheduler {
    enabled: bool,
    cleanup_interval_seconds: u64,
    retry_seconds: u64,
    lease_seconds: u64,
}

#[derive(Debug, Deserialize)]
struct RawAccounts {
    registration: String,
    allowed_email_domains: Vec<String>,
    email_verification: String,
    otp_expiration_seconds: u64,
    otp_max_attempts: u32,
    resend_cooldown_seconds: u64,
    activation_link_seconds: u64,
    password_reset_seconds: u64,
    login_otp: String,
    registrations_per_ip: u32,
    min_password_length: usize,
    max_password_length: usize,
}

#[derive(Deserialize)]
struct RawEmail {
    transport: String,
    outbox_dir: PathBuf,
    from: String,
    smtp_host: String,
    smtp_port: u16,
    smtp_security: String,
    smtp_username: String,
    smtp_password: SecretString,
    smtp_timeout_seconds: u64,
}

impl std::fmt::Debug for RawEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEmail")
            .field("transport", &self.transport)
            .field("smtp_host", &self.smtp_host)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct RawAudit {
    retention_days: u64,
}

#[derive(Debug, Deserialize)]
struct RawConsole {
    page_size: i64,
}

#[derive(Debug, Deserialize)]
struct RawOidc {
    key_cache_seconds: u64,
    access_token_audience: String,
    rotate_keys_days: u64,
}

#[derive(Debug, Deserialize)]
struct RawServer {
    environment: String,
    listen: String,
    issuer: String,
    workers: usize,
    max_body_bytes: usize,
    cookie_secure: String,
    session_max_age_seconds: u64,
    data_dir: PathBuf,
    trusted_proxies: Vec<String>,
    forwarded_header: String,
    hsts_include_subdomains: bool,
}

#[derive(Debug, Deserialize)]
struct RawDatabase {
    url: String,
    max_connections: u32,
}

#[derive(Deserialize)]
struct RawSecrets {
    secret_key: SecretString,
    secret_key_file: PathBuf,
}

impl std::fmt::Debug for RawSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSecrets(..)")
    }
}

#[derive(Debug, Deserialize)]
struct RawTokens {
    authorization_code_seconds: u64,
    access_token_seconds: u64,
    refresh_token_seconds: u64,
    id_token_seconds: u64,
    scopes_without_user: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawArgon2 {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    max_concurrent: usize,
    policy_queue: usize,
}

#[derive(Debug, Deserialize)]
struct RawRateLimits {
    failed_logins_per_account: u32,
    failed_logins_per_ip: u32,
    failed_logins_before_delay: u32,
    login_delay_max_seconds: u64,
    failed_client_auth_per_client: u32,
    failed_client_auth_per_ip: u32,
    code_guesses_per_ip: u32,
    token_exchanges_per_ip: u32,
    window_seconds: u64,
}

#[derive(Debug, Deserialize)]
struct RawLog {
    level: String,
    format: String,
}

/// Development conveniences on, or production strictness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// Generates a secret key when none is set (with a warning).
    Development,
    /// Refuses to start without a configured secret key.
    Production,
}

/// Token and code lifetimes (RFC 6749 §4.1.2 recommends at most 10 minutes for codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Authorization code lifetime (default 60 s).
    pub authorization_code: Duration,
    /// Access token lifetime (default 1 h); clients may override.
    pub access_token: Duration,
    /// Refresh token lifetime (default 30 days); clients may override.
    pub refresh_token: Duration,
    /// ID token lifetime (default 1 h), OpenID Connect Core §2 `exp`.
    pub id_token: Duration,
}

/// OpenID Connect settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// How long a node serves signing keys from memory before re-reading them, and how long a
    /// rotated-in key is published in the JWKS before any node signs with it (default 30 s).
    pub key_cache: Duration,
    /// `aud` of JWT access tokens (RFC 9068 §3 default resource indicator); default the issuer.
    pub access_token_audience: String,
    /// `oidc.rotate_keys_days`: the scheduler rotates a signing key once it has signed this
    /// long; `None` (0 days, the default) leaves rotation to `latchkey keys rotate`.
    pub rotate_keys_after: Option<Duration>,
}

/// Longest `oidc.rotate_keys_days`: 10 years.
pub const MAX_ROTATE_KEYS_DAYS: u64 = 3650;

/// The scheduled jobs `serve` runs (`[scheduler]`, see [`crate::scheduler`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// Whether this node runs scheduled jobs at all (`scheduler.enabled`). Every node may: each
    /// run is claimed by exactly one.
    pub enabled: bool,
    /// How often the cleanup job (what `latchkey cleartokens` does) runs; `None` when
    /// `scheduler.cleanup_interval_seconds` is 0. Between 10 s and 1 day.
    pub cleanup_interval: Option<Duration>,
    /// First retry delay after a failed run (1 s to 1 h); it doubles with each consecutive
    /// failure, never beyond the job's own interval.
    pub retry: Duration,
    /// How long a claimed run holds its job (10 s to 1 h); the node renews it while the job runs,
    /// so another node takes over only after the holder stopped (crash, kill).
    pub lease: Duration,
}

/// argon2id parameters and the bound on concurrent hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Time cost (passes).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes computed at once.
    pub max_concurrent: usize,
    /// Password-policy checks (zxcvbn and the other validators) running or waiting at once;
    /// one more is refused with 503 and `Retry-After` (1 or more).
    pub policy_queue: usize,
}

/// Whether unverified email addresses matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailVerification {
    /// Unverified users cannot log in or get tokens.
    Mandatory,
    /// Verification is offered; nothing is refused.
    Optional,
    /// No verification emails are sent.
    Off,
}

/// Who must pass an emailed one-time code after the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOtp {
    /// Users who switched it on at `/account/`.
    Optional,
    /// Staff always; others if they switched it on.
    Staff,
    /// Everyone.
    All,
}

/// Self-service account settings (`[accounts]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// Whether anyone may register.
    pub registration_open: bool,
    /// Lower-cased domains registration is limited to; empty = any.
    pub allowed_email_domains: Vec<String>,
    /// Verification policy.
    pub email_verification: EmailVerification,
    /// Lifetime of an emailed one-time code.
    pub otp_expiration: Duration,
    /// Wrong guesses allowed per code.
    pub otp_max_attempts: u32,
    /// First resend cooldown (doubles with each resend within an hour).
    pub resend_cooldown: Duration,
    /// Lifetime of an activation link.
    pub activation_link: Duration,
    /// Lifetime of a password-reset link.
    pub password_reset: Duration,
    /// Login code policy.
    pub login_otp: LoginOtp,
    /// Registration attempts (valid or not) per client IP per rate-limit window.
    pub registrations_per_ip: u32,
    /// Shortest password a user may set, in characters (a run of spaces counts once; default
    /// 12, OWASP ASVS V2.1.1).
    pub min_password_length: usize,
    /// Longest password a user may set or sign in with, in characters (default 128, ASVS
    /// V2.1.2); longer ones are refused before any validator or hash runs.
    pub max_password_length: usize,
}

/// How to reach the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS (a relay on the same machine only).
    None,
}

/// Where emails go (`[email]`).
#[derive(Clone, Debug)]
pub enum EmailTransport {
    /// Each message becomes an `.eml` file in this directory.
    Outbox(PathBuf),
    /// An SMTP server.
    Smtp {
        /// Host name (also the TLS server name).
        host: String,
        /// Port.
        port: u16,
        /// TLS mode.
        security: SmtpSecurity,
        /// User name and password, when the server wants them.
        credentials: Option<(String, SecretString)>,
        /// Connection and command timeout.
        timeout: Duration,
    },
}

/// Email settings.
#[derive(Clone, Debug)]
pub struct EmailSettings {
    /// Transport.
    pub transport: EmailTransport,
    /// The `From` mailbox, e.g. `Latchkey <no-reply@example.com>`.
    pub from: String,
}

/// Brute-force limits; counters live in the database so they hold across nodes. What each one
/// counts, and what an attacker can still do, is `## Limits` in `docs/architecture.md`. 0
/// switches a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed logins per account *from one client address* per window; past it that address is
    /// refused (429) for that account until the window ends. Other addresses are unaffected.
    pub failed_logins_per_account: u32,
    /// Failed logins per client address (IPv6: per /64), whatever the account, per window; past
    /// it the address is refused (429) until the window ends.
    pub failed_logins_per_ip: u32,
    /// Failed logins per account from all addresses per window after which each further
    /// attempt waits a delay after the previous failure: 1 s, doubling up to
    /// `login_delay_max`. A slowdown, never a lock.
    pub failed_logins_before_delay: u32,
    /// The longest such delay.
    pub login_delay_max: Duration,
    /// Failed client authentications per registered `client_id` per window; past it failures
    /// answer 429 (a correct secret is always accepted).
    pub failed_client_auth_per_client: u32,
    /// Failed client authentications per client address per window, whatever the `client_id`
    /// (unknown ones included); past it failures from the address answer 429.
    pub failed_client_auth_per_ip: u32,
    /// Emailed-code guesses (address verification, login codes, the mfa-otp grant) per client
    /// address per window, across accounts; a right code is not counted.
    pub code_guesses_per_ip: u32,
    /// Token-exchange attempts (RFC 8693 at the token endpoint, `/api/google/`) per client
    /// address per window, valid or not: each can cost calls to the provider. Past it the
    /// address gets 429.
    pub token_exchanges_per_ip: u32,
    /// Window length.
    pub window: Duration,
}

/// How pages and emails show the product (`[branding]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Branding {
    /// `branding.name`: the product name in page titles, the page header and emails
    /// (default `Latchkey`).
    pub name: crate::domain::BrandName,
    /// `branding.logo_url`: the logo in the page header and at the top of HTML emails; `None`
    /// shows Latchkey's mark. An absolute URL is https, which the pages' CSP `img-src` allows.
    pub logo_url: Option<crate::domain::LogoUrl>,
    /// `branding.accent_color`: the pages' accent (buttons, links, focus ring; light and dark
    /// mode, through `/static/branding.css`) and the button colour of HTML emails; `None` keeps
    /// the stylesheet's own.
    pub accent_color: Option<crate::domain::AccentColor>,
}

/// An upstream identity provider users may sign in with (`[upstream.<id>]`, issue 11).
#[derive(Clone, Debug)]
pub struct UpstreamProvider {
    /// The table's key: the id in URLs (`/accounts/upstream/<id>/login/`) and the `idp` claim.
    pub id: crate::domain::ProviderId,
    /// `kind`: `discord`, `google` or `oidc`.
    pub kind: crate::domain::ProviderKind,
    /// `label`: the button's words ("Sign in with …"); default: the kind's name.
    pub label: String,
    /// `client_id` Latchkey is registered under at the provider.
    pub client_id: String,
    /// `client_secret` issued by the provider (sent with HTTP Basic, RFC 6749 §2.3.1).
    pub client_secret: SecretString,
    /// `issuer`: the OpenID Connect issuer exactly as configured (discovery compares it
    /// character for character, OIDC Discovery 1.0 §4.3), whose discovery document gives the
    /// endpoints and the JWKS; Google's by default. `None` for Discord.
    pub issuer: Option<String>,
    /// `scopes` asked for; default per kind ([`crate::domain::ProviderKind::default_scopes`]).
    pub scopes: Vec<String>,
    /// `enabled`: shown on the sign-in page and accepted at the callback.
    pub enabled: bool,
    /// `authorization_endpoint`, overriding discovery (or Discord's).
    pub authorization_endpoint: Option<Url>,
    /// `token_endpoint`, overriding discovery (or Discord's).
    pub token_endpoint: Option<Url>,
    /// `userinfo_endpoint`, overriding discovery.
    pub userinfo_endpoint: Option<Url>,
    /// `api_base`: Discord's API root (default `https://discord.com/api/v10`); `None` for other
    /// kinds.
    pub api_base: Option<Url>,
    /// `link_by_email`: an unknown upstream identity may be linked to the local account with
    /// the same address when both sides verified it (off by default).
    pub link_by_email: bool,
    /// `allowed_hosted_domains` (Google): the ID token's `hd` must be one of them; empty: any
    /// account.
    pub allowed_hosted_domains: Vec<String>,
    /// `required_claims` (OpenID Connect): claims the ID token or UserInfo must carry with
    /// these values (a string claim equal to it, or an array of strings containing it).
    pub required_claims: BTreeMap<String, String>,
    /// `accepted_audiences` (OpenID Connect): the provider's client ids whose tokens Latchkey
    /// accepts — the audiences a first-party app's Google token may carry at `/api/google/`
    /// and in token exchange (the mobile apps' own client ids), and the other audiences a
    /// sign-in's ID token may also name. Default: `[client_id]`.
    pub accepted_audiences: Vec<String>,
    /// `tokeninfo_endpoint` (Google): where an access token's audience and expiry are checked
    /// before it is used (default `https://oauth2.googleapis.com/tokeninfo`); `None` for other
    /// kinds, whose access tokens are not accepted from apps.
    pub tokeninfo_endpoint: Option<Url>,
    /// `keep_tokens` (Discord): keep the access and refresh tokens of each sign-in, sealed, for
    /// later calls to Discord's API on the user's behalf (the Discord connector's
    /// `guilds.join`). Default: on when `scopes` holds `guilds.join`, else off.
    pub keep_tokens: bool,
    /// `accept_access_tokens` (Google): whether a first-party app may trade a Google *access*
    /// token (at `/api/google/` and in token exchange) — checked at `tokeninfo_endpoint`,
    /// issued to an accepted audience, single use. Off by default: only ID tokens, which are
    /// verified locally, carry their audience and issue time, are exchanged.
    pub accept_access_tokens: bool,
    /// `callback_path` (Discord): the path of the redirect URI every sign-in with this provider
    /// sends (the one registered at Discord): its own `/accounts/upstream/<id>/callback/` (the
    /// default), or a seed's `/oauth2/login/redirect/` or `/discord/sso/callback`
    /// ([`crate::domain::upstream::DISCORD_LEGACY_CALLBACK_PATHS`]). `None` when not set.
    pub callback_path: Option<String>,
    /// Which version of the provider's settings this is: empty for a provider of the
    /// configuration file (fixed while the server runs); for one stored by the console, a
    /// digest of its stored row, so that what the relying party cached for an earlier version
    /// (discovery, keys, a failure) is never used for this one.
    pub revision: String,
}

impl UpstreamProvider {
    /// The path of the redirect URI this provider's sign-ins send: `callback_path`, or
    /// `/accounts/upstream/<id>/callback/`.
    #[must_use]
    pub fn callback_path(&self) -> String {
        self.callback_path
            .clone()
            .unwrap_or_else(|| crate::domain::upstream::default_callback_path(&self.id))
    }

    /// What the provider's subjects are unique within, stored with every link: the OpenID
    /// Connect issuer (OIDC Core §2: `sub` is unique per issuer), or `discord` — and
    /// `discord:<origin>` for a Discord provider whose `api_base` is not Discord's own
    /// (`https://discord.com`): whoever answers `/users/@me` there says who signed in, so links
    /// made through one API host cannot be claimed through another.
    #[must_use]
    pub fn subject_issuer(&self) -> String {
        if let Some(issuer) = &self.issuer {
            return issuer.clone();
        }
        match &self.api_base {
            Some(api) if self.kind == crate::domain::ProviderKind::Discord => {
                let origin = api.origin().ascii_serialization();
                if origin == "https://discord.com" {
                    "discord".to_owned()
                } else {
                    format!("discord:{origin}")
                }
            }
            _ => self.kind.as_str().to_owned(),
        }
    }
}

/// The Discord connector's settings (`[discord]`, issue 12), present when `discord.enabled`.
#[derive(Clone)]
pub struct DiscordSettings {
    /// `provider`: the `[upstream.<id>]` provider users link their Discord account with. Checked
    /// against the providers when the connector starts (it must be of kind `discord`), not here:
    /// providers may also live in the database. `None` when empty: set in the console.
    pub provider: Option<crate::domain::ProviderId>,
    /// `bot_token` (or the contents of `bot_token_file`): the bot's token. Never printed.
    /// `None` when empty: set in the console (sealed in the database), which wins.
    pub bot_token: Option<SecretString>,
    /// `guild_id`: the Discord server's snowflake (non-zero); `None` when empty: set in the
    /// console.
    pub guild_id: Option<u64>,
    /// `invite_link`: a non-expiring invite to the server (https), shown to users.
    pub invite_link: Option<Url>,
    /// `remote_priority`: Discord's role membership wins over local groups (the seed's
    /// `DISCORD_REMOTE_PRIORITY`).
    pub remote_priority: bool,
    /// `apply_interval_seconds` (1 s to 1 h): how often queued role changes are applied.
    pub apply_interval: Duration,
    /// `verify_interval_seconds` (60 s to 7 days; `None` when 0): how often
    /// `verify_all_discord_users_groups` runs.
    pub verify_interval: Option<Duration>,
    /// `remote_sync_interval_seconds` (60 s to 30 days; `None` when 0, the default): how often
    /// `remote_sync_all_discord_users_groups` runs (it refuses to run unless Discord's roles
    /// win).
    pub remote_sync_interval: Option<Duration>,
    /// `sync_accounts_interval_seconds` (60 s to 30 days; `None` when 0): how often
    /// `sync_discord_users_accounts` runs.
    pub sync_accounts_interval: Option<Duration>,
    /// `nickname_template`: the nickname strategy of `enforce_discord_nicknames`; `None` (empty,
    /// the default) leaves nicknames alone.
    pub nickname_template: Option<crate::domain::NicknameTemplate>,
    /// `enforce_nicknames_interval_seconds` (60 s to 30 days; `None` when 0 or without a
    /// template): how often `enforce_discord_nicknames` runs.
    pub enforce_nicknames_interval: Option<Duration>,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("provider", &self.provider)
            .field("guild_id", &self.guild_id)
            .field("remote_priority", &self.remote_priority)
            .finish_non_exhaustive()
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`, validated: where `/metrics` is served and who may read it.
#[derive(Debug)]
pub struct MetricsSettings {
    /// `metrics.listen`: a separate address serving only `/metrics` (the main listener then
    /// answers 404 there); `None` = the main listener.
    pub listen: Option<SocketAddr>,
    /// `metrics.bearer_token` (or the contents of `metrics.bearer_token_file`): when set,
    /// `/metrics` asks for `Authorization: Bearer <token>` (RFC 6750), on whichever listener.
    pub bearer_token: Option<SecretString>,
}

/// Shortest `metrics.bearer_token`, in characters.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

/// Every setting, validated.
#[derive(Debug)]
pub struct Settings {
    /// Development or production.
    pub environment: Environment,
    /// Bind address.
    pub listen: SocketAddr,
    /// Public issuer URL, without a trailing slash (RFC 8414 §2: no query or fragment).
    pub issuer: Url,
    /// Worker threads (0 = per core).
    pub workers: usize,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Whether cookies carry the `Secure` attribute (always with an https issuer).
    pub cookie_secure: bool,
    /// Whether HSTS (sent with an https issuer) carries `includeSubDomains` (RFC 6797 §6.1.2):
    /// off by default, so that a sibling subdomain's plain-HTTP site keeps working.
    pub hsts_include_subdomains: bool,
    /// Reverse proxies whose forwarding header gives the client's address
    /// (`server.trusted_proxies`, `server.forwarded_header`); empty = the TCP peer is the client.
    pub trusted_proxies: crate::domain::TrustedProxies,
    /// How long a login lasts.
    pub session_max_age: Duration,
    /// Directory for generated files.
    pub data_dir: PathBuf,
    /// Database location.
    pub database_url: DatabaseUrl,
    /// Pool size.
    pub database_max_connections: u32,
    /// Key for session cookies and CSRF tokens (≥ 64 bytes).
    pub secret_key: SecretBox<Vec<u8>>,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// Password hashing.
    pub argon2: Argon2Settings,
    /// Brute-force limits.
    pub rate_limits: RateLimits,
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Known scopes and their descriptions, by name.
    pub scopes: BTreeMap<String, String>,
    /// `tokens.scopes_without_user`: the scopes a client registered through the developer
    /// portal may get from the client-credentials grant (a token with no user behind it);
    /// empty (the default) refuses that grant to portal clients. Operator clients are not
    /// limited.
    pub scopes_without_user: crate::domain::ScopeSet,
    /// OpenID Connect settings.
    pub oidc: OidcSettings,
    /// How long audit events are kept; `cleartokens` deletes older ones.
    pub audit_retention: Duration,
    /// Rows per page in the web console's lists (1..=200).
    pub page_size: i64,
    /// Self-service accounts.
    pub accounts: AccountSettings,
    /// Outgoing email.
    pub email: EmailSettings,
    /// Scheduled jobs.
    pub scheduler: SchedulerSettings,
    /// The product name, logo and accent colour of pages and emails.
    pub branding: Branding,
    /// Upstream identity providers (`[upstream.<id>]`), by id.
    pub upstream: Vec<UpstreamProvider>,
    /// The Discord connector (`[discord]`); `None` when `discord.enabled` is false.
    pub discord: Option<DiscordSettings>,
    /// Prometheus metrics (`[metrics]`); `None` when `metrics.enabled` is false.
    pub metrics: Option<MetricsSettings>,
    /// Messages to log once telemetry is up (unknown variables, generated key).
    pub warnings: Vec<String>,
    /// Set by `serve --demo` (not a configuration key): serves the demo callback page.
    pub demo: bool,
}

impl Settings {
    /// The issuer as a string without a trailing slash, e.g. `https://id.example.com`.
    #[must_use]
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// Loads and validates settings. `file` is the `--config` path (or `LATCHKEY_CONFIG`).
    ///
    /// # Errors
    /// A message naming the setting: unknown database URL scheme, malformed issuer or listen
    /// address, missing secret key in production, unreadable files.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let defaults = Figment::from(Toml::string(DEFAULT_TOML));
        let mut figment = defaults.clone();
        if let Some(path) = file {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("LATCHKEY_")
            .ignore(&["config", "test_postgres_url"])
            .split("__");
        let mut warnings = Vec::new();
        for (key, _) in env.iter() {
            // Scopes and upstream providers are open tables; every other key must exist in the
            // defaults.
            let open = key.as_str().starts_with("scopes.") || key.as_str().starts_with("upstream.");
            if !open && defaults.find_value(key.as_str()).is_err() {
                warnings.push(format!(
                    "ignoring unknown setting `{key}` from environment variable LATCHKEY_{}",
                    key.as_str().replace('.', "__").to_uppercase()
                ));
            }
        }
        figment = figment.merge(env);
        let raw: Raw = figment.extract().context("invalid configuration")?;
        Self::validate(raw, warnings)
    }

    /// Settings from the defaults with TOML `layers` merged over them in order (tests and
    /// tools; no files or environment variables are read).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_toml_layers(layers: &[&str]) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        for layer in layers {
            figment = figment.merge(Toml::string(layer));
        }
        let raw: Raw = figment.extract().context("invalid configuration")?;
        Self::validate(raw, Vec::new())
    }

    /// [`Settings::from_toml_layers`] with one layer.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_toml(overrides: &str) -> anyhow::Result<Self> {
        Self::from_toml_layers(&[overrides])
    }

    fn validate(raw: Raw, mut warnings: Vec<String>) -> anyhow::Result<Self> {
        let environment = match raw.server.environment.as_str() {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => {
                bail!("server.environment must be \"development\" or \"production\", not {other:?}")
            }
        };
        let listen: SocketAddr = raw.server.listen.parse().with_context(|| {
            format!(
                "server.listen {:?} is not an address like 127.0.0.1:8080",
                raw.server.listen
            )
        })?;
        let issuer = parse_issuer(&raw.server.issuer)?;
        let database_url = DatabaseUrl::parse(&raw.database.url)
            .with_context(|| "database.url is not usable".to_owned())?;
        if raw.server.max_body_bytes < 1024 {
            bail!("server.max_body_bytes must be at least 1024");
        }
        let cookie_secure = match raw.server.cookie_secure.as_str() {
            "auto" => issuer.scheme() == "https",
            "true" => true,
            "false" if issuer.scheme() == "https" => bail!(
                "server.cookie_secure cannot be \"false\" with an https issuer: the session cookie \
                 is named with the __Host- prefix there, which browsers accept only when Secure"
            ),
            "false" => false,
            other => {
                bail!("server.cookie_secure must be \"auto\", \"true\" or \"false\", not {other:?}")
            }
        };
        let trusted_proxies = crate::domain::TrustedProxies::parse(
            &raw.server.trusted_proxies,
            &raw.server.forwarded_header,
        )
        .map_err(|e| anyhow::anyhow!("server.trusted_proxies / server.forwarded_header: {e}"))?;
        let secret_key = resolve_secret_key(
            &raw.secrets,
            environment,
            &raw.server.data_dir,
            &mut warnings,
        )?;
        let lifetimes = Lifetimes {
            authorization_code: bounded_duration(
                "tokens.authorization_code_seconds",
                raw.tokens.authorization_code_seconds,
            )?,
            access_token: bounded_duration(
                "tokens.access_token_seconds",
                raw.tokens.access_token_seconds,
            )?,
            refresh_token: bounded_duration(
                "tokens.refresh_token_seconds",
                raw.tokens.refresh_token_seconds,
            )?,
            id_token: bounded_duration("tokens.id_token_seconds", raw.tokens.id_token_seconds)?,
        };
        let audit_retention = bounded_duration("audit.retention_days", raw.audit.retention_days)?;
        if !(1..=crate::domain::page::MAX_PAGE_SIZE).contains(&raw.console.page_size) {
            bail!(
                "console.page_size must be between 1 and {}",
                crate::domain::page::MAX_PAGE_SIZE
            );
        }
        let page_size = raw.console.page_size;
        let accounts = account_settings(&raw.accounts)?;
        let scheduler = scheduler_settings(&raw.scheduler)?;
        let email = email_settings(raw.email, &raw.server.data_dir)?;
        if raw.oidc.rotate_keys_days > MAX_ROTATE_KEYS_DAYS {
            bail!("oidc.rotate_keys_days must be between 0 (off) and {MAX_ROTATE_KEYS_DAYS}");
        }
        let oidc = OidcSettings {
            rotate_keys_after: (raw.oidc.rotate_keys_days > 0)
                .then(|| Duration::from_secs(raw.oidc.rotate_keys_days * 86_400)),
            key_cache: bounded_duration("oidc.key_cache_seconds", raw.oidc.key_cache_seconds)?,
            access_token_audience: if raw.oidc.access_token_audience.trim().is_empty() {
                issuer.as_str().trim_end_matches('/').to_owned()
            } else {
                raw.oidc.access_token_audience.trim().to_owned()
            },
        };
        if raw.argon2.memory_kib < 8 * raw.argon2.parallelism.max(1)
            || raw.argon2.iterations == 0
            || raw.argon2.parallelism == 0
        {
            bail!("argon2 parameters are out of range (memory_kib >= 8 × parallelism, iterations >= 1, parallelism >= 1)");
        }
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let argon2 = Argon2Settings {
            memory_kib: raw.argon2.memory_kib,
            iterations: raw.argon2.iterations,
            parallelism: raw.argon2.parallelism,
            max_concurrent: if raw.argon2.max_concurrent == 0 {
                cores
            } else {
                raw.argon2.max_concurrent
            },
            policy_queue: raw.argon2.policy_queue,
        };
        let rate_limits = RateLimits {
            failed_logins_per_account: raw.rate_limits.failed_logins_per_account,
            failed_logins_per_ip: raw.rate_limits.failed_logins_per_ip,
            failed_logins_before_delay: raw.rate_limits.failed_logins_before_delay,
            login_delay_max: bounded_duration(
                "rate_limits.login_delay_max_seconds",
                raw.rate_limits.login_delay_max_seconds,
            )?,
            failed_client_auth_per_client: raw.rate_limits.failed_client_auth_per_client,
            failed_client_auth_per_ip: raw.rate_limits.failed_client_auth_per_ip,
            code_guesses_per_ip: raw.rate_limits.code_guesses_per_ip,
            token_exchanges_per_ip: raw.rate_limits.token_exchanges_per_ip,
            window: bounded_duration("rate_limits.window_seconds", raw.rate_limits.window_seconds)?,
        };
        let log_format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log.format must be \"text\" or \"json\", not {other:?}"),
        };
        for name in raw.scopes.keys() {
            if name.is_empty() || !name.chars().all(crate::domain::is_scope_char) {
                bail!("scope name {name:?} contains characters RFC 6749 §3.3 does not allow");
            }
        }
        let scopes_without_user =
            scopes_without_user(&raw.tokens.scopes_without_user, &raw.scopes)?;
        let branding = branding_settings(&raw.branding)?;
        let upstream = raw
            .upstream
            .into_iter()
            .map(|(id, provider)| upstream_settings(&id, provider))
            .collect::<Result<Vec<_>, _>>()?;
        let discord = discord_settings(&raw.discord)?;
        let metrics = metrics_settings(&raw.metrics, listen)?;
        if let Some(color) = branding.accent_color {
            let contrast = color.contrast_with_white();
            if contrast < 4.5 {
                warnings.push(format!(
                    "branding.accent_color {} has a contrast of {contrast:.1}:1 with white: links \
                     in it will be hard to read on the light pages (WCAG asks for 4.5:1); a \
                     darker shade reads better",
                    color.hex()
                ));
            }
        }
        Ok(Self {
            environment,
            listen,
            issuer,
            workers: raw.server.workers,
            max_body_bytes: raw.server.max_body_bytes,
            cookie_secure,
            hsts_include_subdomains: raw.server.hsts_include_subdomains,
            trusted_proxies,
            session_max_age: bounded_duration(
                "server.session_max_age_seconds",
                raw.server.session_max_age_seconds,
            )?,
            data_dir: raw.server.data_dir,
            database_url,
            database_max_connections: raw.database.max_connections.max(1),
            secret_key,
            lifetimes,
            argon2,
            rate_limits,
            log_level: raw.log.level,
            log_format,
            scopes: raw.scopes,
            scopes_without_user,
            oidc,
            audit_retention,
            page_size,
            accounts,
            email,
            scheduler,
            branding,
            upstream,
            discord,
            metrics,
            warnings,
            demo: false,
        })
    }
}

/// Validates `tokens.scopes_without_user`: known scopes only, and none that describes a user
/// (`openid`, `offline_access`).
fn scopes_without_user(
    names: &[String],
    known: &BTreeMap<String, String>,
) -> anyhow::Result<crate::domain::ScopeSet> {
    let set = crate::domain::ScopeSet::parse(&names.join(" "))
        .map_err(|e| anyhow::anyhow!("tokens.scopes_without_user: {e}"))?;
    for name in set.iter() {
        if !known.contains_key(name) {
            bail!("tokens.scopes_without_user: {name:?} is not one of the [scopes]");
        }
        if name == crate::domain::OPENID || name == crate::domain::OFFLINE_ACCESS {
            bail!("tokens.scopes_without_user: {name:?} describes a user and cannot be granted without one");
        }
    }
    Ok(set)
}

fn parse_issuer(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("server.issuer {raw:?} is not a URL"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        bail!("server.issuer must be an http(s) URL, not {raw:?}");
    }
    if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
        bail!("server.issuer must have a host and no query or fragment (RFC 8414 §2): {raw:?}");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("server.issuer must not contain credentials");
    }
    Ok(url)
}

fn resolve_secret_key(
    raw: &RawSecrets,
    environment: Environment,
    data_dir: &Path,
    warnings: &mut Vec<String>,
) -> anyhow::Result<SecretBox<Vec<u8>>> {
    let configured = if raw.secret_key_file.as_os_str().is_empty() {
        raw.secret_key.expose_secret().trim().to_owned()
    } else {
        std::fs::read_to_string(&raw.secret_key_file)
            .with_context(|| {
                format!(
                    "cannot read secrets.secret_key_file {}",
                    raw.secret_key_file.display()
                )
            })?
            .trim()
            .to_owned()
    };
    if !configured.is_empty() {
        return decode_key(&configured).map(|k| SecretBox::new(Box::new(k)));
    }
    if environment == Environment::Production {
        bail!(
            "secrets.secret_key is required in production: set LATCHKEY_SECRETS__SECRET_KEY \
             (base64 of at least {SECRET_KEY_BYTES} random bytes, e.g. `openssl rand -base64 64`) \
             or LATCHKEY_SECRETS__SECRET_KEY_FILE"
        );
    }
    let path = data_dir.join("secret_key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return decode_key(existing.trim()).map(|k| SecretBox::new(Box::new(k)));
    }
    let mut key = vec![0u8; SECRET_KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    // Written whole under a name of its own, then linked into place: a process starting at
    // the same moment (tests do, in a fresh checkout) either links first — and this one
    // reads that key — or finds this one complete, never a half-written file.
    let partial = data_dir.join(format!(
        "secret_key.{}.partial",
        crate::secret::random_alphanumeric(12)
    ));
    write_private_file(
        &partial,
        &base64::engine::general_purpose::STANDARD.encode(&key),
    )
    .with_context(|| format!("cannot write {}", partial.display()))?;
    let linked = std::fs::hard_link(&partial, &path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return decode_key(existing.trim()).map(|k| SecretBox::new(Box::new(k)));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
    warnings.push(format!(
        "no secrets.secret_key configured: generated one in {} (development only; set \
         LATCHKEY_SECRETS__SECRET_KEY in production)",
        path.display()
    ));
    Ok(SecretBox::new(Box::new(key)))
}

fn decode_key(encoded: &str) -> anyhow::Result<Vec<u8>> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("secrets.secret_key is not valid base64")?;
    if key.len() < SECRET_KEY_BYTES {
        bail!(
            "secrets.secret_key must decode to at least {SECRET_KEY_BYTES} bytes, got {}",
            key.len()
        );
    }
    Ok(key)
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

fn account_settings(raw: &RawAccounts) -> anyhow::Result<AccountSettings> {
    let registration_open = match raw.registration.as_str() {
        "open" => true,
        "closed" => false,
        other => bail!("accounts.registration must be \"open\" or \"closed\", not {other:?}"),
    };
    let email_verification = match raw.email_verification.as_str() {
        "mandatory" => EmailVerification::Mandatory,
        "optional" => EmailVerification::Optional,
        "off" => EmailVerification::Off,
        other => bail!(
            "accounts.email_verification must be \"mandatory\", \"optional\" or \"off\", not {other:?}"
        ),
    };
    let login_otp = match raw.login_otp.as_str() {
        "optional" => LoginOtp::Optional,
        "staff" => LoginOtp::Staff,
        "all" => LoginOtp::All,
        other => {
            bail!("accounts.login_otp must be \"optional\", \"staff\" or \"all\", not {other:?}")
        }
    };
    let secs = |name: &str, v: u64| bounded_duration(&format!("accounts.{name}"), v);
    if !(1..=100).contains(&raw.otp_max_attempts) {
        bail!("accounts.otp_max_attempts must be between 1 and 100");
    }
    // NIST SP 800-63B §5.1.1.2 asks for at least 8; ASVS V2.1.2 for at least 64 permitted.
    if !(8..=64).contains(&raw.min_password_length) {
        bail!("accounts.min_password_length must be between 8 and 64 characters");
    }
    if !(64..=MAX_PASSWORD_LENGTH_LIMIT).contains(&raw.max_password_length) {
        bail!(
            "accounts.max_password_length must be between 64 and {MAX_PASSWORD_LENGTH_LIMIT} characters"
        );
    }
    let mut domains = Vec::new();
    for d in &raw.allowed_email_domains {
        let d = d.trim().trim_start_matches('@').to_lowercase();
        if d.is_empty() || d.contains(|c: char| c.is_whitespace() || c == '@') {
            bail!("accounts.allowed_email_domains: {d:?} is not a domain");
        }
        domains.push(d);
    }
    Ok(AccountSettings {
        registration_open,
        allowed_email_domains: domains,
        email_verification,
        otp_expiration: secs("otp_expiration_seconds", raw.otp_expiration_seconds)?,
        otp_max_attempts: raw.otp_max_attempts,
        resend_cooldown: secs("resend_cooldown_seconds", raw.resend_cooldown_seconds)?,
        activation_link: secs("activation_link_seconds", raw.activation_link_seconds)?,
        password_reset: secs("password_reset_seconds", raw.password_reset_seconds)?,
        login_otp,
        registrations_per_ip: raw.registrations_per_ip,
        min_password_length: raw.min_password_length,
        max_password_length: raw.max_password_length,
    })
}

fn scheduler_settings(raw: &RawScheduler) -> anyhow::Result<SchedulerSettings> {
    let interval = raw.cleanup_interval_seconds;
    if interval != 0 && !(10..=86_400).contains(&interval) {
        bail!("scheduler.cleanup_interval_seconds must be 0 (off) or between 10 and 86400");
    }
    Ok(SchedulerSettings {
        enabled: raw.enabled,
        cleanup_interval: (interval > 0).then(|| Duration::from_secs(interval)),
        retry: bounded_duration("scheduler.retry_seconds", raw.retry_seconds)?,
        lease: bounded_duration("scheduler.lease_seconds", raw.lease_seconds)?,
    })
}

/// Validates `[metrics]`: nothing is read while it is off. When on, `/metrics` on the main
/// listener (`listen` empty) needs a bearer token or an explicit `allow_unauthenticated`: the
/// issuer's listener is usually reachable by anyone, and operators rarely mean to publish their
/// traffic figures. A separate `listen` address is the operator's choice of who reaches it, so
/// it serves without a token unless one is set.
fn metrics_settings(raw: &RawMetrics, main: SocketAddr) -> anyhow::Result<Option<MetricsSettings>> {
    if !raw.enabled {
        return Ok(None);
    }
    let listen = match raw.listen.trim() {
        "" => None,
        text => {
            let addr: SocketAddr = text.parse().with_context(|| {
                format!("metrics.listen {text:?} is not an address like 127.0.0.1:9464")
            })?;
            if addr == main {
                bail!("metrics.listen must differ from server.listen ({main})");
            }
            Some(addr)
        }
    };
    let token = if raw.bearer_token_file.as_os_str().is_empty() {
        raw.bearer_token.expose_secret().trim().to_owned()
    } else {
        std::fs::read_to_string(&raw.bearer_token_file)
            .with_context(|| {
                format!(
                    "cannot read metrics.bearer_token_file {}",
                    raw.bearer_token_file.display()
                )
            })?
            .trim()
            .to_owned()
    };
    // RFC 6750 §2.1: a b64token, which is all a client can send.
    if !token.is_empty()
        && (token.chars().count() < MIN_METRICS_TOKEN_CHARS
            || !token.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
            }))
    {
        bail!(
            "metrics.bearer_token (or metrics.bearer_token_file) must be at least \
             {MIN_METRICS_TOKEN_CHARS} characters of A-Z a-z 0-9 - . _ ~ + / = \
             (e.g. `openssl rand -hex 32`)"
        );
    }
    let bearer_token = (!token.is_empty()).then(|| SecretString::from(token));
    if listen.is_none() && bearer_token.is_none() && !raw.allow_unauthenticated {
        bail!(
            "metrics.enabled serves /metrics on server.listen, which needs metrics.bearer_token \
             (or metrics.bearer_token_file), or metrics.allow_unauthenticated = true; or set \
             metrics.listen to serve it on an address of its own"
        );
    }
    Ok(Some(MetricsSettings {
        listen,
        bearer_token,
    }))
}

/// Validates `[discord]`: nothing is read while it is off; when on, what is given is checked
/// (the provider id, the bot token's characters, the guild id, an https invite link); what is
/// empty is set in the console's Discord page instead.
fn discord_settings(raw: &RawDiscord) -> anyhow::Result<Option<DiscordSettings>> {
    if !raw.enabled {
        return Ok(None);
    }
    let provider = match raw.provider.trim() {
        "" => None,
        id => Some(crate::domain::ProviderId::parse(id).map_err(|e| {
            anyhow::anyhow!(
                "discord.provider must name the [upstream.<id>] provider of kind \"discord\": the id {e}"
            )
        })?),
    };
    let bot_token = if raw.bot_token_file.as_os_str().is_empty() {
        raw.bot_token.expose_secret().trim().to_owned()
    } else {
        std::fs::read_to_string(&raw.bot_token_file)
            .with_context(|| {
                format!(
                    "cannot read discord.bot_token_file {}",
                    raw.bot_token_file.display()
                )
            })?
            .trim()
            .to_owned()
    };
    // Discord's tokens are printable ASCII (base64 parts and dots); anything else would not
    // even fit an HTTP header.
    if !bot_token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("discord.bot_token (or discord.bot_token_file) must be the bot's token from Discord's developer portal");
    }
    let bot_token = (!bot_token.is_empty()).then(|| SecretString::from(bot_token));
    let guild_id = raw.guild_id.text();
    let guild_id = match guild_id.parse::<u64>() {
        _ if guild_id.is_empty() => None,
        Ok(id) if id > 0 && guild_id.bytes().all(|b| b.is_ascii_digit()) => Some(id),
        _ => bail!("discord.guild_id must be the server's id, a number like 81384788765712384 (got {guild_id:?})"),
    };
    let invite_link = match raw.invite_link.trim() {
        "" => None,
        link => {
            let url = Url::parse(link)
                .ok()
                .filter(|u| u.scheme() == "https" && u.host().is_some())
                .ok_or_else(|| {
                    anyhow::anyhow!("discord.invite_link must be an https URL like https://discord.gg/abc123 (got {link:?})")
                })?;
            Some(url)
        }
    };
    if !(1..=3600).contains(&raw.apply_interval_seconds) {
        bail!("discord.apply_interval_seconds must be between 1 and 3600");
    }
    let verify = raw.verify_interval_seconds;
    if verify != 0 && !(60..=7 * DAY).contains(&verify) {
        bail!("discord.verify_interval_seconds must be 0 (off) or between 60 and 604800");
    }
    let nickname_template = match raw.nickname_template.trim() {
        "" => None,
        t => Some(
            crate::domain::NicknameTemplate::parse(t)
                .map_err(|e| anyhow::anyhow!("discord.nickname_template: {e}"))?,
        ),
    };
    let optional = |key: &str, seconds: u64| -> anyhow::Result<Option<Duration>> {
        match seconds {
            0 => Ok(None),
            s if (60..=30 * DAY).contains(&s) => Ok(Some(Duration::from_secs(s))),
            _ => bail!("discord.{key} must be 0 (off) or between 60 and 2592000"),
        }
    };
    Ok(Some(DiscordSettings {
        provider,
        bot_token,
        guild_id,
        invite_link,
        remote_priority: raw.remote_priority,
        apply_interval: Duration::from_secs(raw.apply_interval_seconds),
        verify_interval: (verify > 0).then(|| Duration::from_secs(verify)),
        remote_sync_interval: optional(
            "remote_sync_interval_seconds",
            raw.remote_sync_interval_seconds,
        )?,
        sync_accounts_interval: optional(
            "sync_accounts_interval_seconds",
            raw.sync_accounts_interval_seconds,
        )?,
        enforce_nicknames_interval: optional(
            "enforce_nicknames_interval_seconds",
            raw.enforce_nicknames_interval_seconds,
        )?
        .filter(|_| nickname_template.is_some()),
        nickname_template,
    }))
}

/// Why one provider's settings were refused (`[upstream.<id>]`, or the console's form): every
/// problem found, each naming its setting, so that a form shows them all at once and the
/// configuration error lists them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamErrors {
    id: String,
    problems: Vec<(&'static str, String)>,
}

impl UpstreamErrors {
    /// No problem yet with provider `id`'s settings.
    #[must_use]
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            problems: Vec::new(),
        }
    }

    /// One problem: `field` (a setting's name, or `id`) and what is wrong with it, as a phrase
    /// that follows the name ("is required …").
    #[must_use]
    pub fn one(id: &str, field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = Self::new(id);
        errors.add(field, message);
        errors
    }

    /// Adds a problem with `field` (see [`UpstreamErrors::one`]).
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.problems.push((field, message.into()));
    }

    /// Whether nothing is wrong.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds `other`'s problems after these.
    pub fn extend(&mut self, other: Self) {
        self.problems.extend(other.problems);
    }

    /// Every problem as (setting, sentence naming it: `client_id is required …`), in the order
    /// found.
    pub fn sentences(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.problems
            .iter()
            .map(|(field, message)| (*field, format!("{field} {message}")))
    }
}

impl std::fmt::Display for UpstreamErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = format!("upstream.{}", self.id);
        for (i, (field, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if *field == "id" {
                write!(f, "{key}: the id {message}")?;
            } else {
                write!(f, "{key}.{field} {message}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for UpstreamErrors {}

/// `value` as an endpoint URL ([`crate::domain::upstream::endpoint_url`]); `None` when empty,
/// or when it is refused (the problem then recorded under `field`).
fn endpoint_setting(errors: &mut UpstreamErrors, field: &'static str, value: &str) -> Option<Url> {
    match value.trim() {
        "" => None,
        v => crate::domain::upstream::endpoint_url(v)
            .map_err(|e| errors.add(field, e))
            .ok(),
    }
}

/// Whether `value` is a list entry worth keeping: not empty, no whitespace or control
/// characters, at most 255 characters.
fn is_list_word(value: &str) -> bool {
    !value.is_empty()
        && value.chars().count() <= 255
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Validates one provider's settings — a `[upstream.<id>]` table of the configuration, or a
/// provider stored by the console (its `settings` JSON with the opened secret): every URL
/// https (http only on loopback), the settings that belong to another kind refused rather than
/// ignored, the kind's defaults filled in. The one check both sources go through.
///
/// # Errors
/// [`UpstreamErrors`] with every problem found, each under its setting's name.
#[allow(clippy::too_many_lines)] // one check per setting, in the order of the table
pub fn upstream_settings(id: &str, raw: RawUpstream) -> Result<UpstreamProvider, UpstreamErrors> {
    use crate::domain::{ProviderId, ProviderKind};
    let mut errors = UpstreamErrors::new(id);
    let parsed_id = ProviderId::parse(id).map_err(|e| errors.add("id", e)).ok();
    let kind = ProviderKind::parse(raw.kind.trim())
        .map_err(|e| errors.add("kind", e))
        .ok();
    let client_id = raw.client_id.trim().to_owned();
    if client_id.is_empty() {
        errors.add(
            "client_id",
            "is required (the id the provider gave Latchkey)",
        );
    } else if client_id.chars().count() > 1000 || client_id.chars().any(char::is_control) {
        errors.add("client_id", "must be at most 1000 printable characters");
    }
    let client_secret = raw.client_secret.filter(|s| !s.expose_secret().is_empty());
    if client_secret.is_none() {
        errors.add(
            "client_secret",
            "is required (the secret the provider gave Latchkey)",
        );
    }
    let issuer_url = endpoint_setting(&mut errors, "issuer", &raw.issuer);
    let api_base_url = endpoint_setting(&mut errors, "api_base", &raw.api_base);
    let tokeninfo_url =
        endpoint_setting(&mut errors, "tokeninfo_endpoint", &raw.tokeninfo_endpoint);
    let authorization_endpoint = endpoint_setting(
        &mut errors,
        "authorization_endpoint",
        &raw.authorization_endpoint,
    );
    let token_endpoint = endpoint_setting(&mut errors, "token_endpoint", &raw.token_endpoint);
    let userinfo_endpoint =
        endpoint_setting(&mut errors, "userinfo_endpoint", &raw.userinfo_endpoint);
    let label = match raw.label.trim() {
        label if label.chars().count() > 64 || label.chars().any(char::is_control) => {
            errors.add("label", "must be at most 64 printable characters");
            String::new()
        }
        "" => match kind {
            Some(ProviderKind::Discord) => "Discord".to_owned(),
            Some(ProviderKind::Google) => "Google".to_owned(),
            _ => id.to_owned(),
        },
        label => label.to_owned(),
    };
    // The rest depends on the kind.
    let Some(kind) = kind else {
        return Err(errors);
    };
    let issuer_set = !raw.issuer.trim().is_empty();
    let issuer = match (kind, issuer_url) {
        (ProviderKind::Discord, _) if issuer_set => {
            errors.add(
                "issuer",
                "is for OpenID Connect providers; Discord has none",
            );
            None
        }
        (ProviderKind::Oidc, _) if !issuer_set => {
            errors.add("issuer", "is required for kind = \"oidc\"");
            None
        }
        (ProviderKind::Google, _) if !issuer_set => Some("https://accounts.google.com".to_owned()),
        (_, Some(_)) => Some(raw.issuer.trim().to_owned()),
        (_, None) => None,
    };
    let api_base = match kind {
        ProviderKind::Discord if raw.api_base.trim().is_empty() => {
            Some(Url::parse("https://discord.com/api/v10").expect("Discord's API is a URL"))
        }
        ProviderKind::Discord => api_base_url,
        _ => {
            if !raw.api_base.trim().is_empty() {
                errors.add("api_base", "is for Discord only");
            }
            None
        }
    };
    if kind != ProviderKind::Google && !raw.allowed_hosted_domains.is_empty() {
        errors.add("allowed_hosted_domains", "is for Google only");
    } else if raw
        .allowed_hosted_domains
        .iter()
        .any(|d| !is_list_word(d.trim()))
    {
        errors.add(
            "allowed_hosted_domains",
            "must list domain names, none empty or holding spaces",
        );
    }
    if kind == ProviderKind::Discord && !raw.required_claims.is_empty() {
        errors.add("required_claims", "is for OpenID Connect providers only");
    } else if raw.required_claims.iter().any(|(name, value)| {
        !is_list_word(name) || value.is_empty() || value.chars().any(char::is_control)
    }) {
        errors.add(
            "required_claims",
            "must pair claim names (no spaces) with non-empty values",
        );
    }
    let accepted_audiences = match raw.accepted_audiences {
        None => vec![client_id.clone()],
        Some(_) if kind == ProviderKind::Discord => {
            errors.add("accepted_audiences", "is for OpenID Connect providers only");
            Vec::new()
        }
        Some(list) => {
            if list.is_empty() || list.iter().any(|a| !is_list_word(a.trim())) {
                errors.add(
                    "accepted_audiences",
                    "must name at least one client id, none empty",
                );
            }
            list.iter().map(|a| a.trim().to_owned()).collect()
        }
    };
    let tokeninfo_endpoint = match kind {
        ProviderKind::Google if raw.tokeninfo_endpoint.trim().is_empty() => Some(
            Url::parse("https://oauth2.googleapis.com/tokeninfo")
                .expect("Google's tokeninfo endpoint is a URL"),
        ),
        ProviderKind::Google => tokeninfo_url,
        _ => {
            if !raw.tokeninfo_endpoint.trim().is_empty() {
                errors.add("tokeninfo_endpoint", "is for Google only");
            }
            None
        }
    };
    let scopes = match raw.scopes {
        None => kind
            .default_scopes()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(scopes) => {
            if let Some(bad) = scopes
                .iter()
                .find(|s| s.is_empty() || !s.chars().all(crate::domain::is_scope_char))
            {
                errors.add(
                    "scopes",
                    format!("holds {bad:?}, which is not a scope (RFC 6749 section 3.3)"),
                );
            } else if kind.is_oidc() && !scopes.iter().any(|s| s == "openid") {
                errors.add(
                    "scopes",
                    "must contain \"openid\" for an OpenID Connect provider",
                );
            }
            scopes
        }
    };
    // Upstream tokens are kept only for a later call to the provider's API, which only the
    // Discord connector makes (with `guilds.join`).
    let keep_tokens = match (kind, raw.keep_tokens) {
        (ProviderKind::Discord, Some(keep)) => keep,
        (ProviderKind::Discord, None) => scopes.iter().any(|s| s == "guilds.join"),
        (_, Some(true)) => {
            errors.add("keep_tokens", "is for Discord only");
            false
        }
        (_, _) => false,
    };
    if raw.accept_access_tokens && kind != ProviderKind::Google {
        errors.add("accept_access_tokens", "is for Google only");
    }
    let accept_access_tokens = raw.accept_access_tokens && kind == ProviderKind::Google;
    let callback_path = match (kind, raw.callback_path.trim()) {
        (_, "") => None,
        (ProviderKind::Discord, path) => {
            if let Some(id) = &parsed_id {
                if !crate::domain::upstream::is_discord_callback_path(id, path) {
                    errors.add(
                        "callback_path",
                        format!(
                            "must be /accounts/upstream/{id}/callback/, /oauth2/login/redirect/ or /discord/sso/callback (got {path:?})"
                        ),
                    );
                }
            }
            Some(path.to_owned())
        }
        (_, _) => {
            errors.add("callback_path", "is for Discord only");
            None
        }
    };
    let (Some(id), Some(client_secret), true) = (parsed_id, client_secret, errors.is_empty())
    else {
        return Err(errors);
    };
    Ok(UpstreamProvider {
        authorization_endpoint,
        token_endpoint,
        userinfo_endpoint,
        id,
        kind,
        label,
        client_id,
        client_secret,
        issuer,
        scopes,
        enabled: raw.enabled,
        api_base,
        link_by_email: raw.link_by_email,
        allowed_hosted_domains: raw
            .allowed_hosted_domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect(),
        required_claims: raw.required_claims,
        accepted_audiences,
        tokeninfo_endpoint,
        keep_tokens,
        accept_access_tokens,
        callback_path,
        revision: String::new(),
    })
}

/// Validates `[branding]`: an empty `logo_url` or `accent_color` is unset.
fn branding_settings(raw: &RawBranding) -> anyhow::Result<Branding> {
    let name = crate::domain::BrandName::parse(&raw.name)
        .map_err(|e| anyhow::anyhow!("branding.name {e}"))?;
    let logo_url = match raw.logo_url.trim() {
        "" => None,
        url => Some(
            crate::domain::LogoUrl::parse(url)
                .map_err(|e| anyhow::anyhow!("branding.logo_url {e}"))?,
        ),
    };
    let accent_color = match raw.accent_color.trim() {
        "" => None,
        color => Some(
            crate::domain::AccentColor::parse(color)
                .map_err(|e| anyhow::anyhow!("branding.accent_color {e}"))?,
        ),
    };
    Ok(Branding {
        name,
        logo_url,
        accent_color,
    })
}

fn email_settings(raw: RawEmail, data_dir: &Path) -> anyhow::Result<EmailSettings> {
    let from = raw.from.trim().to_owned();
    if from.parse::<lettre::message::Mailbox>().is_err() {
        bail!("email.from {from:?} is not a mailbox such as \"Latchkey <no-reply@example.com>\"");
    }
    // Checked whatever the transport, so that a bad value never waits for a switch to SMTP.
    let timeout = bounded_duration("email.smtp_timeout_seconds", raw.smtp_timeout_seconds)?;
    let transport = match raw.transport.as_str() {
        "outbox" => {
            let dir = if raw.outbox_dir.is_absolute() {
                raw.outbox_dir
            } else if raw.outbox_dir.starts_with("data") {
                // The default lives under server.data_dir, wherever that was moved.
                data_dir.join(
                    raw.outbox_dir
                        .strip_prefix("data")
                        .unwrap_or(&raw.outbox_dir),
                )
            } else {
                raw.outbox_dir
            };
            EmailTransport::Outbox(dir)
        }
        "smtp" => {
            let host = raw.smtp_host.trim().to_owned();
            if host.is_empty() {
                bail!("email.smtp_host is required with transport = \"smtp\"");
            }
            let security = match raw.smtp_security.as_str() {
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                other => bail!(
                    "email.smtp_security must be \"starttls\", \"tls\" or \"none\", not {other:?}"
                ),
            };
            let username = raw.smtp_username.trim().to_owned();
            EmailTransport::Smtp {
                host,
                port: raw.smtp_port,
                security,
                credentials: (!username.is_empty()).then_some((username, raw.smtp_password)),
                timeout,
            }
        }
        other => bail!("email.transport must be \"outbox\" or \"smtp\", not {other:?}"),
    };
    Ok(EmailSettings { transport, from })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "[secrets]\nsecret_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n";

    #[test]
    fn defaults_validate() {
        let s = Settings::from_toml(KEY).expect("defaults are valid");
        assert_eq!(s.issuer_str(), "http://127.0.0.1:8080");
        assert_eq!(s.lifetimes.authorization_code, Duration::from_secs(60));
        assert_eq!(s.lifetimes.access_token, Duration::from_secs(3600));
        assert_eq!(
            s.lifetimes.refresh_token,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert!(!s.cookie_secure);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = |extra: &str| {
            Settings::from_toml(&format!("{KEY}{extra}"))
                .expect_err("must fail")
                .root_cause()
                .to_string()
        };
        assert!(bad("[database]\nurl = \"mysql://x\"").contains("unsupported database URL scheme"));
        assert!(format!(
            "{:#}",
            Settings::from_toml(&format!("{KEY}[server]\nissuer = \"not a url\""))
                .expect_err("bad")
        )
        .contains("server.issuer"));
        assert!(bad("[server]\nissuer = \"https://x.example/?a=b\"").contains("no query"));
        assert!(bad("[server]\nenvironment = \"staging\"").contains("environment"));
        assert!(bad("[tokens]\nscopes_without_user = [\"nope\"]").contains("scopes_without_user"));
        assert!(bad("[tokens]\nscopes_without_user = [\"openid\"]").contains("describes a user"));
        let s = Settings::from_toml(&format!("{KEY}[tokens]\nscopes_without_user = [\"read\"]"))
            .expect("a known scope");
        assert!(s.scopes_without_user.contains("read"));
        assert!(Settings::from_toml(KEY)
            .expect("defaults")
            .scopes_without_user
            .is_empty());
    }

    #[test]
    fn account_and_email_settings_are_checked() {
        let s = Settings::from_toml(KEY).expect("defaults are valid");
        assert_eq!(s.accounts.email_verification, EmailVerification::Optional);
        assert_eq!(s.accounts.otp_expiration, Duration::from_secs(600));
        assert!(matches!(
            &s.email.transport,
            EmailTransport::Outbox(dir) if dir.ends_with("outbox")
        ));
        let bad = |extra: &str| {
            Settings::from_toml(&format!("{KEY}{extra}"))
                .expect_err("must fail")
                .root_cause()
                .to_string()
        };
        assert!(bad("[accounts]\nemail_verification = \"maybe\"").contains("email_verification"));
        assert!(bad("[accounts]\nlogin_otp = \"sometimes\"").contains("login_otp"));
        assert!(bad("[accounts]\notp_max_attempts = 0").contains("otp_max_attempts"));
        assert!(bad("[accounts]\nallowed_email_domains = [\"a b\"]").contains("not a domain"));
        assert!(bad("[email]\nfrom = \"not a mailbox\"").contains("email.from"));
        assert!(bad("[scheduler]\ncleanup_interval_seconds = 5").contains("cleanup_interval"));
        assert!(bad("[scheduler]\ncleanup_interval_seconds = 86401").contains("cleanup_interval"));
        assert!(bad("[scheduler]\nretry_seconds = 0").contains("retry_seconds"));
        assert!(bad("[scheduler]\nlease_seconds = 99999999999").contains("lease_seconds"));
        assert!(bad("[oidc]\nrotate_keys_days = 18446744073709551615").contains("rotate_keys_days"));
        assert!(
            bad("[email]\ntransport = \"smtp\"\nsmtp_security = \"ssl3\"")
                .contains("smtp_security")
        );
        let smtp = Settings::from_toml(&format!(
            "{KEY}[email]\ntransport = \"smtp\"\nsmtp_host = \"mail.example\"\nsmtp_port = 465\nsmtp_security = \"tls\"\nsmtp_username = \"me\"\nsmtp_password = \"pw\""
        ))
        .expect("smtp settings");
        assert!(matches!(
            smtp.email.transport,
            EmailTransport::Smtp {
                port: 465,
                security: SmtpSecurity::Tls,
                credentials: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn proxies_and_https_cookies_are_checked() {
        let s = Settings::from_toml(&format!(
            "{KEY}[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nforwarded_header = \"Forwarded\"\n"
        ))
        .expect("valid proxies");
        assert!(s.trusted_proxies.contains("10.1.1.1".parse().expect("ip")));
        assert_eq!(
            s.trusted_proxies.header(),
            crate::domain::ForwardedHeader::Forwarded
        );
        let bad = |extra: &str| {
            format!(
                "{:#}",
                Settings::from_toml(&format!("{KEY}{extra}")).expect_err("must fail")
            )
        };
        assert!(
            bad("[server]\ntrusted_proxies = [\"proxy.local\"]").contains("server.trusted_proxies")
        );
        assert!(bad("[server]\nforwarded_header = \"x-real-ip\"").contains("forwarded_header"));
        assert!(
            bad("[server]\nissuer = \"https://id.example.com\"\ncookie_secure = \"false\"")
                .contains("__Host-")
        );
        let https = Settings::from_toml(&format!(
            "{KEY}[server]\nissuer = \"https://id.example.com\""
        ))
        .expect("https issuer");
        assert!(https.cookie_secure);
    }

    /// Every duration setting takes its bounds and refuses one past each, naming itself and
    /// its range (issue 9, item 16).
    #[test]
    fn every_duration_setting_is_bounded() {
        let with = |key: &str, value: u64| {
            let (section, name) = key.split_once('.').expect("dotted key");
            Settings::from_toml(&format!("{KEY}[{section}]\n{name} = {value}\n"))
        };
        for range in DURATION_RANGES {
            for ok in [range.min, range.max] {
                if let Err(e) = with(range.key, ok) {
                    panic!("{} = {ok} must be accepted: {e:#}", range.key);
                }
            }
            let mut refused = vec![range.max + 1, i64::MAX.unsigned_abs()];
            if range.min > 0 {
                refused.push(range.min - 1);
            }
            for bad in refused {
                let message = format!("{:#}", with(range.key, bad).expect_err(range.key));
                assert!(
                    message.contains(&format!(
                        "{} must be between {} and {}",
                        range.key, range.min, range.max
                    )),
                    "{}: {message}",
                    range.key
                );
            }
        }
        // The setting that once made every login panic, at its largest accepted value.
        let s = Settings::from_toml(&format!("{KEY}[rate_limits]\nwindow_seconds = 604800\n"))
            .expect("a week");
        assert_eq!(s.rate_limits.window, Duration::from_secs(604_800));
        assert_eq!(
            bounded_duration("audit.retention_days", 2).expect("in range"),
            Duration::from_secs(2 * 24 * 3600)
        );
    }

    /// The table names settings that exist: each key is in the defaults.
    #[test]
    fn duration_ranges_name_real_settings() {
        let defaults = Figment::from(Toml::string(DEFAULT_TOML));
        for range in DURATION_RANGES {
            assert!(
                defaults.find_value(range.key).is_ok(),
                "{} is not in config/default.toml",
                range.key
            );
        }
    }

    #[test]
    fn upstream_providers_are_read_with_their_kinds_defaults() {
        let s = Settings::from_toml(
            r#"
[upstream.google]
kind = "google"
client_id = "g-id"
client_secret = "g-secret"
allowed_hosted_domains = ["Example.com"]

[upstream.corp]
kind = "oidc"
label = "Corp SSO"
issuer = "http://127.0.0.1:9000"
client_id = "c-id"
client_secret = "c-secret"
required_claims = { groups = "staff" }

[upstream.discord]
kind = "discord"
client_id = "d-id"
client_secret = "d-secret"
enabled = false
"#,
        )
        .expect("valid");
        assert!(Settings::from_toml("")
            .expect("defaults")
            .upstream
            .is_empty());
        let by_id = |id: &str| {
            s.upstream
                .iter()
                .find(|p| p.id.as_str() == id)
                .expect(id)
                .clone()
        };
        let google = by_id("google");
        assert_eq!(google.label, "Google");
        assert_eq!(
            google.issuer.as_deref(),
            Some("https://accounts.google.com")
        );
        assert_eq!(google.scopes, ["openid", "email", "profile"]);
        assert_eq!(google.allowed_hosted_domains, ["example.com"]);
        assert!(google.enabled && !google.link_by_email);
        let corp = by_id("corp");
        assert_eq!(corp.label, "Corp SSO");
        assert_eq!(
            corp.required_claims.get("groups").map(String::as_str),
            Some("staff")
        );
        let discord = by_id("discord");
        assert_eq!(discord.scopes, ["identify", "email"]);
        assert!(discord.issuer.is_none() && !discord.enabled);
        assert_eq!(
            discord.api_base.as_ref().map(Url::as_str),
            Some("https://discord.com/api/v10")
        );
        assert_eq!(discord.client_secret.expose_secret(), "d-secret");
        assert!(!discord.keep_tokens && !google.keep_tokens);
    }

    #[test]
    fn discord_keeps_its_tokens_by_default_only_for_guilds_join() {
        let discord = |more: &str| {
            Settings::from_toml(&format!(
                "[upstream.d]\nkind = \"discord\"\nclient_id = \"x\"\nclient_secret = \"y\"\n{more}"
            ))
            .map(|s| s.upstream[0].keep_tokens)
        };
        assert!(!discord("").expect("valid"));
        assert!(discord("scopes = [\"identify\", \"guilds.join\"]").expect("valid"));
        assert!(
            !discord("scopes = [\"identify\", \"guilds.join\"]\nkeep_tokens = false")
                .expect("valid")
        );
        assert!(discord("keep_tokens = true").expect("valid"));
        let oidc = Settings::from_toml(
            "[upstream.x]\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"y\"\nissuer = \"https://a.example\"\nkeep_tokens = true",
        );
        assert!(
            format!("{:#}", oidc.expect_err("refused")).contains("keep_tokens is for Discord only")
        );
    }

    #[test]
    fn a_numeric_client_id_is_read_as_its_digits() {
        // TOML integers, and environment variables figment reads as numbers.
        let settings = Settings::from_toml(
            "[upstream.d]\nkind = \"discord\"\nclient_id = 1234567890\nclient_secret = \"y\"",
        )
        .expect("a numeric client id is accepted");
        assert_eq!(settings.upstream[0].client_id, "1234567890");
    }

    #[test]
    fn a_discord_callback_path_is_its_own_or_a_seeds() {
        let discord = |more: &str| {
            Settings::from_toml(&format!(
                "[upstream.d]\nkind = \"discord\"\nclient_id = \"x\"\nclient_secret = \"y\"\n{more}"
            ))
            .map(|s| {
                (
                    s.upstream[0].callback_path.clone(),
                    s.upstream[0].callback_path(),
                )
            })
        };
        assert_eq!(
            discord("").expect("valid"),
            (None, "/accounts/upstream/d/callback/".to_owned())
        );
        assert_eq!(
            discord("callback_path = \"/discord/sso/callback\"")
                .expect("valid")
                .1,
            "/discord/sso/callback"
        );
        let refused = discord("callback_path = \"/elsewhere/\"").expect_err("refused");
        assert!(format!("{refused:#}").contains("callback_path must be"));
        let oidc = Settings::from_toml(
            "[upstream.x]\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"y\"\nissuer = \"https://a.example\"\ncallback_path = \"/oauth2/login/redirect/\"",
        );
        assert!(format!("{:#}", oidc.expect_err("refused"))
            .contains("callback_path is for Discord only"));
    }

    #[test]
    fn accepted_audiences_and_tokeninfo_have_defaults_and_belong_to_their_kinds() {
        let base = "client_id = \"web-id\"\nclient_secret = \"s\"\n";
        let read = |toml: &str| Settings::from_toml(toml).map(|s| s.upstream[0].clone());
        let google = read(&format!("[upstream.google]\nkind = \"google\"\n{base}")).expect("valid");
        assert_eq!(google.accepted_audiences, ["web-id"]);
        assert_eq!(
            google.tokeninfo_endpoint.as_ref().map(Url::as_str),
            Some("https://oauth2.googleapis.com/tokeninfo")
        );
        let apps = read(&format!(
            "[upstream.google]\nkind = \"google\"\n{base}accepted_audiences = [\"web-id\", \" android-id \"]\ntokeninfo_endpoint = \"http://127.0.0.1:9/tokeninfo\""
        ))
        .expect("valid");
        assert_eq!(apps.accepted_audiences, ["web-id", "android-id"]);
        assert_eq!(
            apps.tokeninfo_endpoint.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:9/tokeninfo")
        );
        let oidc =
            format!("[upstream.corp]\nkind = \"oidc\"\nissuer = \"https://a.example\"\n{base}");
        assert!(read(&oidc).expect("valid").tokeninfo_endpoint.is_none());
        let refused = |toml: String| format!("{:#}", read(&toml).expect_err("refused"));
        assert!(
            refused(format!("{oidc}tokeninfo_endpoint = \"https://t.example\""))
                .contains("tokeninfo_endpoint is for Google only")
        );
        assert!(refused(format!("{oidc}accepted_audiences = []")).contains("at least one"));
        assert!(refused(format!(
            "[upstream.d]\nkind = \"discord\"\n{base}accepted_audiences = [\"x\"]"
        ))
        .contains("for OpenID Connect providers only"));
        assert!(refused(format!(
            "[upstream.google]\nkind = \"google\"\n{base}tokeninfo_endpoint = \"http://tokeninfo.example\""
        ))
        .contains("tokeninfo_endpoint"));
    }

    #[test]
    fn metrics_are_off_by_default_and_never_public_by_accident() {
        let defaults = Settings::from_toml("").expect("defaults");
        assert!(defaults.metrics.is_none());
        // Nothing is read while off.
        assert!(Settings::from_toml("[metrics]\nlisten = \"nonsense\"")
            .expect("off")
            .metrics
            .is_none());
        let on = |more: &str| Settings::from_toml(&format!("[metrics]\nenabled = true\n{more}"));
        // On the main listener: a token, or an explicit opening.
        let refused = on("").expect_err("neither token nor opening");
        assert!(
            format!("{refused:#}").contains("metrics.bearer_token"),
            "{refused:#}"
        );
        let open = on("allow_unauthenticated = true")
            .expect("open")
            .metrics
            .expect("on");
        assert!(open.listen.is_none() && open.bearer_token.is_none());
        let token = "0123456789abcdef-_.~+/=";
        let guarded = on(&format!("bearer_token = \"  {token}\\n\""))
            .expect("token")
            .metrics
            .expect("on");
        assert_eq!(
            guarded
                .bearer_token
                .as_ref()
                .map(ExposeSecret::expose_secret),
            Some(token)
        );
        assert!(
            !format!("{guarded:?}").contains(token),
            "the token is never printed"
        );
        for bad in ["short", "0123456789abcdef 0", "0123456789abcdef\\u00e9"] {
            let e = on(&format!("bearer_token = \"{bad}\"")).expect_err(bad);
            assert!(format!("{e:#}").contains("at least 16"), "{e:#}");
        }
        // An address of its own needs no token; it must be an address, and not the main one.
        let apart = on("listen = \"127.0.0.1:9464\"")
            .expect("apart")
            .metrics
            .expect("on");
        assert_eq!(apart.listen, Some("127.0.0.1:9464".parse().expect("addr")));
        assert!(on("listen = \"localhost\"").is_err());
        let same = on("listen = \"127.0.0.1:8080\"").expect_err("the main listener");
        assert!(format!("{same:#}").contains("server.listen"), "{same:#}");
        // The token from a file.
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{token}\n")).expect("write");
        let from_file = on(&format!(
            "bearer_token_file = {:?}",
            file.display().to_string()
        ))
        .expect("file")
        .metrics
        .expect("on");
        assert_eq!(
            from_file
                .bearer_token
                .as_ref()
                .map(ExposeSecret::expose_secret),
            Some(token)
        );
        assert!(on("bearer_token_file = \"/nonexistent/token\"").is_err());
    }

    #[test]
    fn the_discord_connector_is_off_by_default_and_checked_when_on() {
        assert!(Settings::from_toml("").expect("defaults").discord.is_none());
        let on = |more: &str| {
            Settings::from_toml(&format!(
                "[discord]\nenabled = true\nprovider = \"discord\"\nbot_token = \"abc.def\"\n{more}"
            ))
        };
        let s = on("guild_id = \"81384788765712384\"\ninvite_link = \"https://discord.gg/x\"")
            .expect("valid")
            .discord
            .expect("on");
        assert_eq!(s.guild_id, Some(81_384_788_765_712_384));
        assert_eq!(s.apply_interval, Duration::from_secs(15));
        assert_eq!(s.verify_interval, Some(Duration::from_secs(300)));
        assert!(
            !format!("{s:?}").contains("abc.def"),
            "the bot token is never printed"
        );
        // A number works as well as a string (environment variables arrive as numbers).
        assert_eq!(
            on("guild_id = 81384788765712384")
                .expect("valid")
                .discord
                .and_then(|d| d.guild_id),
            Some(81_384_788_765_712_384)
        );
        let refused = |more: &str| format!("{:#}", on(more).expect_err("refused"));
        assert_eq!(
            on("")
                .expect("left to the console")
                .discord
                .and_then(|d| d.guild_id),
            None
        );
        assert!(refused("guild_id = \"0\"").contains("discord.guild_id"));
        assert!(
            refused("guild_id = \"12\"\ninvite_link = \"http://discord.gg/x\"").contains("https")
        );
        assert!(
            refused("guild_id = \"12\"\nverify_interval_seconds = 5").contains("verify_interval")
        );
        assert!(refused("guild_id = \"12\"\napply_interval_seconds = 0").contains("apply_interval"));
        assert!(refused("guild_id = \"12\"\nnickname_template = \"{nick}\"")
            .contains("discord.nickname_template"));
        let nicknames = on("guild_id = \"12\"\nnickname_template = \"{first_name}\"")
            .expect("valid")
            .discord
            .expect("on");
        assert_eq!(
            nicknames.enforce_nicknames_interval,
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(s.enforce_nicknames_interval, None, "no template, no job");
        let bare = Settings::from_toml("[discord]\nenabled = true")
            .expect("everything left to the console")
            .discord
            .expect("on");
        assert!(bare.provider.is_none() && bare.bot_token.is_none() && bare.guild_id.is_none());
        let bad_token = Settings::from_toml("[discord]\nenabled = true\nbot_token = \"a b\"")
            .expect_err("refused");
        assert!(format!("{bad_token:#}").contains("bot_token"));
    }

    #[test]
    fn upstream_providers_are_checked_at_start() {
        let refused = |toml: &str| {
            format!(
                "{:#}",
                Settings::from_toml(toml).expect_err("must be refused")
            )
        };
        let base = "client_id = \"x\"\nclient_secret = \"y\"\n";
        assert!(refused(&format!(
            "[upstream.Bad]\nkind = \"oidc\"\n{base}issuer = \"https://a.example\""
        ))
        .contains("upstream.Bad: the id"));
        assert!(refused(&format!("[upstream.x]\nkind = \"github\"\n{base}"))
            .contains("upstream.x.kind"));
        assert!(refused(&format!("[upstream.x]\nkind = \"oidc\"\n{base}"))
            .contains("upstream.x.issuer is required"));
        assert!(refused(&format!(
            "[upstream.x]\nkind = \"oidc\"\n{base}issuer = \"http://idp.example.com\""
        ))
        .contains("https URL"));
        assert!(
            refused("[upstream.x]\nkind = \"discord\"\nclient_id = \"x\"")
                .contains("client_secret is required")
        );
        assert!(refused(&format!(
            "[upstream.x]\nkind = \"discord\"\n{base}issuer = \"https://a.example\""
        ))
        .contains("Discord has none"));
        assert!(refused(&format!("[upstream.x]\nkind = \"oidc\"\n{base}issuer = \"https://a.example\"\nscopes = [\"email\"]")).contains("must contain \"openid\""));
        assert!(refused(&format!(
            "[upstream.x]\nkind = \"discord\"\n{base}allowed_hosted_domains = [\"a.example\"]"
        ))
        .contains("Google only"));
        assert!(refused(&format!(
            "[upstream.x]\nkind = \"discord\"\n{base}clientid = \"typo\""
        ))
        .contains("clientid"));
    }

    #[test]
    fn branding_defaults_to_latchkey_and_is_checked_at_start() {
        let s = Settings::from_toml(KEY).expect("defaults are valid");
        assert_eq!(s.branding, Branding::default());
        assert_eq!(s.branding.name.as_str(), "Latchkey");
        let s = Settings::from_toml(&format!(
            "{KEY}[branding]\nname = \" Acme ID \"\nlogo_url = \"https://cdn.example.com/logo.svg\"\naccent_color = \"#0A7F3B\"\n"
        ))
        .expect("valid branding");
        assert_eq!(s.branding.name.as_str(), "Acme ID");
        assert_eq!(
            s.branding
                .logo_url
                .as_ref()
                .map(crate::domain::LogoUrl::as_str),
            Some("https://cdn.example.com/logo.svg")
        );
        assert_eq!(
            s.branding.accent_color.map(|c| c.hex()).as_deref(),
            Some("#0a7f3b")
        );
        let bad = |extra: &str| {
            format!(
                "{:#}",
                Settings::from_toml(&format!("{KEY}[branding]\n{extra}\n")).expect_err(extra)
            )
        };
        assert!(bad("name = \"\"").contains("branding.name must have between 1 and 64"));
        assert!(bad(&format!("name = \"{}\"", "x".repeat(65))).contains("branding.name"));
        assert!(bad("name = \"Acme\\u0007\"").contains("branding.name may hold only printable"));
        assert!(bad("logo_url = \"javascript:alert(1)\"")
            .contains("branding.logo_url must be a site-relative path"));
        assert!(bad("logo_url = \"data:image/png;base64,AAAA\"").contains("data: URLs are refused"));
        assert!(bad("logo_url = \"https://me:pw@cdn.example.com/l.png\"")
            .contains("branding.logo_url may not contain credentials"));
        assert!(bad(&format!("logo_url = \"/{}\"", "a".repeat(2000)))
            .contains("branding.logo_url may be at most 2000 bytes"));
        assert!(bad("accent_color = \"blue\"").contains("branding.accent_color must be a colour"));
        assert!(bad("accent_color = \"#12345\"").contains("#rrggbb"));
        // A colour too light for links on white starts, with a warning.
        let light = Settings::from_toml(&format!("{KEY}[branding]\naccent_color = \"#ffd400\"\n"))
            .expect("a light colour is allowed");
        assert!(
            light
                .warnings
                .iter()
                .any(|w| w.contains("branding.accent_color #ffd400")),
            "{:?}",
            light.warnings
        );
        assert!(!Settings::from_toml(KEY)
            .expect("defaults")
            .warnings
            .iter()
            .any(|w| w.contains("branding")));
    }

    #[test]
    fn production_requires_a_key() {
        let err =
            Settings::from_toml("[server]\nenvironment = \"production\"").expect_err("no key");
        assert!(err.to_string().contains("secret_key is required"));
    }

    #[test]
    fn password_lengths_and_the_login_delay_are_bounded() {
        let s = Settings::from_toml(KEY).expect("defaults are valid");
        assert_eq!(
            (
                s.accounts.min_password_length,
                s.accounts.max_password_length
            ),
            (12, 128)
        );
        assert_eq!(s.rate_limits.login_delay_max, Duration::from_secs(60));
        for bad in [
            "[accounts]\nmin_password_length = 7",
            "[accounts]\nmin_password_length = 65",
            "[accounts]\nmax_password_length = 63",
            "[accounts]\nmax_password_length = 1025",
            "[rate_limits]\nlogin_delay_max_seconds = 0",
            "[rate_limits]\nlogin_delay_max_seconds = 3601",
        ] {
            let err = Settings::from_toml_layers(&[KEY, bad]).expect_err(bad);
            assert!(err.to_string().contains("must be between"), "{bad}: {err}");
        }
    }
}
