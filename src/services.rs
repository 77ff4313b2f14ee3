//! The services every entry point works with — the server, the command line, the demo — built
//! once from the settings: the composition root below the web layer, so that what uses the
//! services (routes, `demo`, `cli`) need not reach up into `startup`, which builds the server.

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::accounts::links::LinkSigner;
use crate::accounts::password::PasswordPolicy;
use crate::accounts::{Accounts, AccountsConfig, PasswordHasher};
use crate::audit::Audit;
use crate::clients::Clients;
use crate::config::Settings;
use crate::db::Db;
use crate::discord::DiscordConnector;
use crate::groups::Groups;
use crate::mail::{EmailBrand, Mailer};
use crate::oauth::{OAuth, OAuthConfig};
use crate::oidc::KeyStore;
use crate::scheduler::Jobs;
use crate::upstream::{AccountPolicy, Upstream};

/// The services every entry point (server, CLI) works with.
#[derive(Clone, Debug)]
pub struct Services {
    /// Storage.
    pub db: Db,
    /// Users.
    pub accounts: Accounts,
    /// Client registrations.
    pub clients: Clients,
    /// The OAuth core.
    pub oauth: OAuth,
    /// OpenID Connect signing keys.
    pub keys: KeyStore,
    /// Groups of users.
    pub groups: Groups,
    /// The audit log.
    pub audit: Audit,
    /// The scheduled jobs' state (the dashboard's panel).
    pub jobs: Jobs,
    /// Sign-in through upstream identity providers.
    pub upstream: Upstream,
    /// The Discord connector (off unless `[discord] enabled`).
    pub discord: DiscordConnector,
}

impl Services {
    /// Connects to the database, applies pending migrations, and builds the services.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.clone();
        let max = settings.database_max_connections;
        let db = tokio::task::spawn_blocking(move || Db::connect(&url, max))
            .await
            .context("database connection task failed")?
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    settings.database_url.redacted()
                )
            })?;
        let applied = db
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }
        let policy = PasswordPolicy {
            min_chars: settings.accounts.min_password_length,
            max_chars: settings.accounts.max_password_length,
        };
        let hasher =
            PasswordHasher::new(&settings.argon2, policy).context("invalid argon2 settings")?;
        let mailer = Mailer::new(
            &settings.email,
            EmailBrand::new(&settings.branding, &settings.issuer),
        )
        .context("invalid email settings")?;
        let clients = Clients::new(
            db.clone(),
            settings.scopes.clone(),
            settings.secret_key.expose_secret(),
        )
        .context("cannot set up the sealing of held client secrets")?;
        let accounts = Accounts::new(
            db.clone(),
            hasher,
            settings.rate_limits,
            AccountsConfig {
                settings: settings.accounts.clone(),
                issuer: settings.issuer_str().to_owned(),
                mailer,
                links: LinkSigner::new(settings.secret_key.expose_secret()),
            },
        )
        .with_client_cache(clients.cache());
        let keys = KeyStore::new(
            db.clone(),
            settings.secret_key.expose_secret(),
            settings.oidc.key_cache,
        )
        .context("cannot set up signing-key encryption")?;
        keys.ensure().await.context("signing keys are unusable")?;
        let upstream = Upstream::new(
            db.clone(),
            accounts.clone(),
            settings.upstream.clone(),
            settings.issuer_str(),
            AccountPolicy {
                registration_open: settings.accounts.registration_open,
                verification: settings.accounts.email_verification,
                allowed_email_domains: settings.accounts.allowed_email_domains.clone(),
                registrations_per_ip: settings.accounts.registrations_per_ip,
                window: settings.rate_limits.window,
            },
            settings.secret_key.expose_secret(),
        )
        .context("cannot set up the sealing of upstream tokens and provider secrets")?;
        upstream
            .reload()
            .await
            .context("cannot read the upstream providers stored by the console")?;
        let oauth = OAuth::new(
            db.clone(),
            OAuthConfig::from_settings(settings),
            accounts.clone(),
            clients.clone(),
            keys.clone(),
        )
        .with_upstream(upstream.clone());
        let groups = Groups::new(db.clone());
        let discord = DiscordConnector::new(
            db.clone(),
            settings.discord.clone(),
            upstream.clone(),
            groups.clone(),
            settings.secret_key.expose_secret(),
        )
        .context("cannot set up the sealing of the Discord bot token")?;
        Ok(Self {
            upstream,
            discord,
            groups,
            audit: Audit::new(db.clone()),
            jobs: Jobs::new(db.clone()),
            db,
            accounts,
            clients,
            oauth,
            keys,
        })
    }
}
