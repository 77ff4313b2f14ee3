//! The command line (clap). `main.rs` parses it, loads settings, starts telemetry and calls
//! [`run`].

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use serde_json::json;

use crate::accounts::password::{PasswordHasher, PasswordPolicy};
use crate::accounts::NewUser;
use crate::audit::Actor;
use crate::clients::{Client, ClientError, ClientSpec};
use crate::config::{Environment, Settings};
use crate::demo;
use crate::domain::{Email, Username};
use crate::maintenance::{self, MaintenancePlan};
use crate::oidc::SigningAlg;
use crate::scheduler::Scheduler;
use crate::startup::{Application, Services};

/// Latchkey, a standalone OAuth 2.0 authorization server.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about, long_about = None)]
pub struct Cli {
    /// A TOML configuration file layered over the built-in defaults.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations and serve HTTP.
    Serve {
        /// Also create a demo user and demo clients (idempotent) and print how to use them.
        /// Refused in production.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients (applications).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the OpenID Connect signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// What `serve --demo` created.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// Delete expired and revoked tokens, expired authorization codes and old rate-limit
    /// counters (like django-oauth-toolkit's `cleartokens`). `serve` also does this every
    /// scheduler.cleanup_interval_seconds.
    Cleartokens,
    /// Check the configuration and that the database is reachable.
    Check,
    /// The Discord connector's jobs, run now (`serve` runs them on its schedule).
    #[command(subcommand)]
    Discord(DiscordCommand),
    /// Measure argon2id alone with the configured argon2.* parameters, on as many password
    /// threads as the server uses (argon2.max_concurrent), and print verifications per second
    /// (the benchmark compares the password grant with it). Needs no database.
    Argon2Rate {
        /// How many verifications to run.
        #[arg(long, default_value_t = 200)]
        verifications: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `latchkey discord …` (issue 12): each runs as the system, on this node, and prints what it
/// did; exits non-zero when the connector is off or Discord refuses.
#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Test the bot token, the bot's membership of the server and its permissions.
    Test,
    /// Read the server's roles from Discord ("sync roles from Discord").
    SyncRoles,
    /// Apply the queued role changes that are due (the `discord_apply_role_changes` job).
    Apply,
    /// Compare every linked user's mapped roles with their groups and fix the differences in
    /// the direction discord.remote_priority says (the `verify_all_discord_users_groups` job).
    Verify,
    /// Make linked members' local groups follow their mapped roles in Discord
    /// (`remote_sync_all_discord_users_groups`; expensive). Refused unless Discord's roles win
    /// (discord.remote_priority, or the Discord page).
    RemoteSync,
    /// Refresh linked members' usernames, display names, avatars and nicknames from the
    /// server's member list (`sync_discord_users_accounts`).
    SyncAccounts,
    /// Set linked members' nicknames from discord.nickname_template
    /// (`enforce_discord_nicknames`).
    EnforceNicknames,
}

/// `latchkey user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password the password is prompted for (or read from stdin).
    Create {
        /// Login name: letters, digits and @ . + - _ (at most 150).
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// Password (at least `accounts.min_password_length` characters, 12 by default; at most
        /// 128). Prefer the prompt: arguments end up in shell history.
        #[arg(long)]
        password: Option<String>,
        /// Given name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Family name.
        #[arg(long, default_value = "")]
        last_name: String,
        /// Make the user staff and superuser.
        #[arg(long)]
        superuser: bool,
    },
}

/// `latchkey demo …`
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Delete the demo users (demo, admin) while their password is the published one, the demo
    /// clients, and clients the demo users own, with their tokens and sessions (one
    /// transaction, one `demo.removed` audit event). `serve` refuses to start in production
    /// until they are gone.
    Remove,
}

/// `latchkey keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: kid, algorithm, status (active, pending, retired, expired) and
    /// dates. Never prints private material.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key. It is published in the JWKS at once and signs from
    /// oidc.key_cache_seconds later (every node has re-read the keys by then); the key it
    /// replaces keeps verifying until the longest-lived token it signed has expired.
    Rotate {
        /// Which algorithm's key to rotate: RS256, ES256, EdDSA or all.
        #[arg(long, default_value = "all", value_name = "RS256|ES256|EdDSA|all")]
        alg: String,
    },
    /// Revoke a (compromised) signing key at once: it is deleted, leaves the JWKS, and no node
    /// signs or verifies with it any more; unexpired JWT access tokens it signed are revoked.
    /// If it was signing, a new key of its algorithm is generated first and signs at once.
    /// Relying parties drop it when their cached copy of the JWKS expires (the JWKS is served
    /// with max-age 300).
    Revoke {
        /// The key's kid (see `latchkey keys list`). A kid is a base64url JWK thumbprint
        /// (RFC 7638) and may start with `-`: it is read as the kid, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `latchkey client …`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id and (confidential clients) its secret, once.
    Create(Box<ClientCreateArgs>),
    /// List clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a client; options not given keep their value.
    Update(Box<ClientUpdateArgs>),
    /// Show one client (never its secret).
    Show {
        /// The client_id.
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its tokens, codes and consents.
    Delete {
        /// The client_id.
        client_id: String,
    },
    /// Generate a new secret for a confidential client; the old one stops working at once.
    RotateSecret {
        /// The client_id.
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `latchkey client create`.
#[derive(Debug, Args)]
pub struct ClientCreateArgs {
    /// Display name shown on the consent page.
    #[arg(long)]
    pub name: String,
    /// confidential (has a secret) or public (native/browser app, PKCE).
    #[arg(long = "type", value_name = "confidential|public")]
    pub client_type: String,
    /// Allowed grant types, comma-separated: authorization_code, refresh_token, password,
    /// client_credentials.
    #[arg(long, value_delimiter = ',', required = true)]
    pub grant_types: Vec<String>,
    /// A redirect URI (repeat for several). https, or http on loopback, or a private-use
    /// scheme like com.example.app:/cb (RFC 8252).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A CORS origin allowed to call the token endpoint, like https://app.example.com (repeat).
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Allowed scopes, space- or comma-separated (default: every scope the server knows
    /// except `admin`, which must be named).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// client_secret_basic (default for confidential), client_secret_post, or none (public).
    #[arg(long)]
    pub token_endpoint_auth_method: Option<String>,
    /// Skip the consent page (first-party apps).
    #[arg(long)]
    pub skip_authorization: bool,
    /// Do not require PKCE for this confidential client (public clients always need it).
    #[arg(long)]
    pub no_pkce: bool,
    /// Accept the PKCE `plain` method (not recommended).
    #[arg(long)]
    pub allow_plain_pkce: bool,
    /// Let this client introspect every client's tokens (a resource server).
    #[arg(long)]
    pub introspect_all: bool,
    /// An RFC 8707 resource URI this (confidential) client serves as a resource server, like
    /// https://api.example.com (repeat for several): clients may ask for tokens with
    /// `resource=` it, and it may introspect those tokens.
    #[arg(long = "resource-uri")]
    pub resource_uris: Vec<String>,
    /// Access-token lifetime in seconds (default: server setting).
    #[arg(long)]
    pub access_token_lifetime: Option<i64>,
    /// Refresh-token lifetime in seconds (default: server setting).
    #[arg(long)]
    pub refresh_token_lifetime: Option<i64>,
    /// Algorithm of ID tokens and JWT access tokens: RS256 (default), ES256 or EdDSA.
    #[arg(long, value_name = "RS256|ES256|EdDSA")]
    pub id_token_alg: Option<String>,
    /// opaque (default) or jwt (RFC 9068 access tokens, verifiable offline via the JWKS).
    #[arg(long, value_name = "opaque|jwt")]
    pub access_token_format: Option<String>,
    /// Issue a refresh token on every authorization-code exchange, even without the
    /// offline_access scope (django-oauth-toolkit's behaviour).
    #[arg(long)]
    pub always_issue_refresh_token: bool,
    /// What the consent page shows about the client besides its name.
    #[command(flatten)]
    pub metadata: ClientMetadataArgs,
    /// Print JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// Options of `latchkey client update`: only the options given change.
#[derive(Debug, Args)]
pub struct ClientUpdateArgs {
    /// The client_id.
    pub client_id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Allowed grant types, comma-separated (replaces the list).
    #[arg(long, value_delimiter = ',')]
    pub grant_types: Option<Vec<String>>,
    /// Redirect URI (repeat for several; replaces the list).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Option<Vec<String>>,
    /// Post-logout redirect URI (repeat for several; replaces the list; "" clears it).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// CORS origin (repeat for several; replaces the list; "" clears it).
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Option<Vec<String>>,
    /// Allowed scopes, comma-separated (replaces the list).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// RFC 8707 resource URI the client serves (repeat for several; replaces the list; ""
    /// clears it).
    #[arg(long = "resource-uri")]
    pub resource_uris: Option<Vec<String>>,
    /// RS256, ES256 or EdDSA.
    #[arg(long, value_name = "RS256|ES256|EdDSA")]
    pub id_token_alg: Option<String>,
    /// opaque or jwt.
    #[arg(long, value_name = "opaque|jwt")]
    pub access_token_format: Option<String>,
    /// Issue refresh tokens without offline_access (true/false).
    #[arg(long, value_name = "true|false")]
    pub always_issue_refresh_token: Option<bool>,
    /// Skip the consent page (true/false).
    #[arg(long, value_name = "true|false")]
    pub skip_authorization: Option<bool>,
    /// Access-token lifetime in seconds.
    #[arg(long)]
    pub access_token_lifetime: Option<i64>,
    /// Refresh-token lifetime in seconds.
    #[arg(long)]
    pub refresh_token_lifetime: Option<i64>,
    /// What the consent page shows about the client besides its name.
    #[command(flatten)]
    pub metadata: ClientMetadataArgs,
    /// Print the client as JSON afterwards.
    #[arg(long)]
    pub json: bool,
}

/// What the consent page shows about a client besides its name (OpenID Connect Dynamic Client
/// Registration 1.0 §2): each an absolute https URL (http only on localhost, 127.0.0.1 or
/// [::1]), without credentials or fragment, at most 2000 bytes. `update` changes only those
/// given; "" clears one.
#[derive(Debug, Args)]
pub struct ClientMetadataArgs {
    /// URL of the application's logo, shown on the consent page (logo_uri).
    #[arg(long, value_name = "URL")]
    pub logo_uri: Option<String>,
    /// URL of the application's home page (client_uri).
    #[arg(long, value_name = "URL")]
    pub client_uri: Option<String>,
    /// URL of the application's privacy policy (policy_uri).
    #[arg(long, value_name = "URL")]
    pub policy_uri: Option<String>,
    /// URL of the application's terms of service (tos_uri).
    #[arg(long, value_name = "URL")]
    pub tos_uri: Option<String>,
}

impl ClientUpdateArgs {
    fn apply(self, mut spec: ClientSpec) -> ClientSpec {
        let or = |new: Option<Vec<String>>, old: Vec<String>| new.unwrap_or(old);
        spec.name = self.name.unwrap_or(spec.name);
        spec.grant_types = or(self.grant_types, spec.grant_types);
        spec.redirect_uris = or(self.redirect_uris, spec.redirect_uris);
        spec.post_logout_redirect_uris = or(
            self.post_logout_redirect_uris,
            spec.post_logout_redirect_uris,
        );
        spec.allowed_origins = or(self.allowed_origins, spec.allowed_origins);
        spec.scopes = or(self.scopes, spec.scopes);
        spec.resource_uris = or(self.resource_uris, spec.resource_uris);
        spec.id_token_alg = self.id_token_alg.or(spec.id_token_alg);
        spec.access_token_format = self.access_token_format.or(spec.access_token_format);
        spec.always_issue_refresh_token = self
            .always_issue_refresh_token
            .unwrap_or(spec.always_issue_refresh_token);
        spec.skip_authorization = self.skip_authorization.unwrap_or(spec.skip_authorization);
        spec.access_token_lifetime = self.access_token_lifetime.or(spec.access_token_lifetime);
        spec.refresh_token_lifetime = self.refresh_token_lifetime.or(spec.refresh_token_lifetime);
        spec.logo_uri = self.metadata.logo_uri.or(spec.logo_uri);
        spec.client_uri = self.metadata.client_uri.or(spec.client_uri);
        spec.policy_uri = self.metadata.policy_uri.or(spec.policy_uri);
        spec.tos_uri = self.metadata.tos_uri.or(spec.tos_uri);
        spec
    }
}

impl ClientCreateArgs {
    fn spec(&self) -> ClientSpec {
        ClientSpec {
            name: self.name.clone(),
            client_type: self.client_type.clone(),
            auth_method: self.token_endpoint_auth_method.clone(),
            grant_types: self.grant_types.clone(),
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            allowed_origins: self.allowed_origins.clone(),
            scopes: self.scopes.clone(),
            skip_authorization: self.skip_authorization,
            require_pkce: !self.no_pkce,
            allow_plain_pkce: self.allow_plain_pkce,
            introspect_all: self.introspect_all,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            owner_id: None,
            id_token_alg: self.id_token_alg.clone(),
            access_token_format: self.access_token_format.clone(),
            always_issue_refresh_token: self.always_issue_refresh_token,
            resource_uris: self.resource_uris.clone(),
            logo_uri: self.metadata.logo_uri.clone(),
            client_uri: self.metadata.client_uri.clone(),
            policy_uri: self.metadata.policy_uri.clone(),
            tos_uri: self.metadata.tos_uri.clone(),
        }
    }
}

/// Runs a parsed command with loaded settings.
///
/// # Errors
/// Whatever failed, with context for the operator.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { demo } => serve(settings, demo).await,
        Command::Migrate => {
            Services::build(&settings).await?;
            println!(
                "database is up to date ({})",
                settings.database_url.redacted()
            );
            Ok(())
        }
        Command::Check => {
            let services = Services::build(&settings).await?;
            services
                .db
                .ping()
                .await
                .context("database is not reachable")?;
            println!("configuration OK");
            println!("issuer:   {}", settings.issuer_str());
            println!("listen:   {}", settings.listen);
            println!(
                "database: {} (reachable, migrated)",
                settings.database_url.redacted()
            );
            Ok(())
        }
        Command::Argon2Rate {
            verifications,
            json,
        } => {
            let hasher = PasswordHasher::new(&settings.argon2, PasswordPolicy::default())
                .context("invalid argon2 settings")?;
            let rate = hasher.measure(verifications.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string(&rate)?);
            } else {
                println!(
                    "argon2id m={} KiB t={} p={}: {} verifications on {} threads in {:.2} s = {:.1}/s",
                    rate.memory_kib,
                    rate.iterations,
                    rate.parallelism,
                    rate.verifications,
                    rate.threads,
                    rate.seconds,
                    rate.per_second
                );
            }
            Ok(())
        }
        Command::Cleartokens => {
            let services = Services::build(&settings).await?;
            let (tokens, codes, counters) = services.oauth.clear_expired().await?;
            println!("deleted {tokens} expired or revoked tokens, {codes} expired authorization codes, {counters} old rate-limit counters");
            Ok(())
        }
        Command::User(UserCommand::Create {
            username,
            email,
            password,
            first_name,
            last_name,
            superuser,
        }) => {
            let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = match password {
                Some(p) => SecretString::from(p),
                None => read_password()?,
            };
            let services = Services::build(&settings).await?;
            let user = services
                .accounts
                .create_user(
                    &Actor::system(),
                    NewUser {
                        username,
                        email,
                        password: Some(password),
                        first_name,
                        last_name,
                        superuser,
                        email_verified: true,
                    },
                )
                .await?;
            println!("created user {} (id {})", user.username, user.id);
            Ok(())
        }
        Command::Client(cmd) => client_command(cmd, settings).await,
        Command::Keys(cmd) => keys_command(cmd, settings).await,
        Command::Discord(cmd) => discord_command(cmd, settings).await,
        Command::Demo(DemoCommand::Remove) => {
            let services = Services::build(&settings).await?;
            let removed = demo::remove(&services, &Actor::system()).await?;
            if removed.is_empty() {
                println!("no demo accounts or clients found");
            } else {
                println!("removed {}", removed.describe());
            }
            Ok(())
        }
    }
}

async fn discord_command(cmd: DiscordCommand, settings: Settings) -> anyhow::Result<()> {
    let services = Services::build(&settings).await?;
    let discord = &services.discord;
    let system = Actor::system();
    match cmd {
        DiscordCommand::Test => {
            let report = discord.test_connection(&system).await?;
            match &report.bot {
                Some(bot) => println!("bot token: works (the bot is {bot})"),
                None => println!("bot token: refused"),
            }
            println!(
                "in the server: {}",
                if report.in_guild { "yes" } else { "no" }
            );
            for (name, has, _) in &report.permissions {
                println!("{name}: {}", if *has { "yes" } else { "missing" });
            }
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            if !report.problems.is_empty() {
                bail!("the Discord connector cannot do all it needs");
            }
        }
        DiscordCommand::SyncRoles => {
            let count = discord.sync_roles(&system).await?;
            println!("{count} roles read from Discord");
        }
        DiscordCommand::Apply => println!("{}", discord.apply_queued().await?),
        DiscordCommand::Verify => println!("{}", discord.verify_all().await?),
        DiscordCommand::RemoteSync => println!("{}", discord.remote_sync_all().await?),
        DiscordCommand::SyncAccounts => {
            let (read, changed) = discord.sync_accounts().await?;
            println!("{read} members read, {changed} profiles refreshed");
        }
        DiscordCommand::EnforceNicknames => println!("{}", discord.enforce_nicknames().await?),
    }
    Ok(())
}

async fn serve(mut settings: Settings, demo: bool) -> anyhow::Result<()> {
    if demo && settings.environment == Environment::Production {
        bail!("--demo creates accounts with published passwords and is refused in production");
    }
    settings.demo = demo;
    if demo && settings.scopes_without_user.is_empty() {
        // The demo clients belong to the demo user (so the portal shows them), which makes them
        // portal clients: let the walk-through's client-credentials example have `read`.
        settings.scopes_without_user = crate::domain::ScopeSet::from_stored("read");
        tracing::warn!("--demo: tokens.scopes_without_user = [\"read\"] so that the demo client may use client_credentials");
    }
    let services = Services::build(&settings).await?;
    if settings.environment == Environment::Production {
        // Published credentials left by `--demo` would let anyone in.
        let leftovers = demo::find_leftovers(&services)
            .await
            .context("cannot look for the demo accounts")?;
        if !leftovers.is_empty() {
            bail!("{}", demo::refusal(&leftovers));
        }
    }
    let app = Application::bind(&settings, services.clone())?;
    if demo {
        let report = demo::ensure(&services, settings.issuer_str()).await?;
        println!("{report}");
    }
    let plan = MaintenancePlan::from_settings(&settings);
    let scheduler =
        if settings.scheduler.enabled && (!plan.is_empty() || settings.discord.is_some()) {
            let mut scheduler = Scheduler::new(services.db.clone(), &settings.scheduler);
            maintenance::register(&mut scheduler, &services.oauth, &plan)
                .context("cannot register the maintenance jobs")?;
            if let Some(discord) = &settings.discord {
                crate::discord::jobs::register(&mut scheduler, &services.discord, discord)
                    .context("cannot register the Discord connector's jobs")?;
            }
            Some(scheduler.start())
        } else {
            tracing::info!("no scheduled jobs on this node");
            None
        };
    tracing::info!(
        listen = %settings.listen,
        port = app.port(),
        metrics_port = ?app.metrics_port(),
        issuer = %settings.issuer_str(),
        database = %settings.database_url.redacted(),
        "Latchkey is serving"
    );
    // actix stops on SIGINT/SIGTERM (finishing requests in flight); then the scheduler stops
    // claiming jobs and lets a run in progress end.
    let served = app.run_until_stopped().await;
    if let Some(scheduler) = scheduler {
        scheduler.shutdown().await;
    }
    served.context("server failed")
}

async fn keys_command(cmd: KeysCommand, settings: Settings) -> anyhow::Result<()> {
    let services = Services::build(&settings).await?;
    match cmd {
        KeysCommand::List { json } => {
            let keys = services.keys.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<44} {:<6} {:<8} {:<20} {:<20} EXPIRES",
                    "KID", "ALG", "STATUS", "ACTIVATES", "RETIRED"
                );
                let time = |t: Option<chrono::NaiveDateTime>| {
                    t.map_or_else(
                        || "-".to_owned(),
                        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
                    )
                };
                for k in keys {
                    println!(
                        "{:<44} {:<6} {:<8} {:<20} {:<20} {}",
                        k.kid,
                        k.alg,
                        k.status,
                        time(Some(k.activates_at)),
                        time(k.retired_at),
                        time(k.expires_at)
                    );
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            let algs = if alg.eq_ignore_ascii_case("all") {
                SigningAlg::ALL.to_vec()
            } else {
                vec![alg.parse::<SigningAlg>().map_err(anyhow::Error::msg)?]
            };
            // The old key must outlive every token it signed: ID tokens and JWT access tokens,
            // whose lifetime a client may override.
            let overlap = services.oauth.signing_key_overlap().await?;
            let kids = services.oauth.rotate_signing_keys(algs).await?;
            for kid in kids {
                println!("new signing key {kid}");
            }
            println!(
                "It signs from {} s from now; the keys it replaces stay in the JWKS for {} s more.",
                settings.oidc.key_cache.as_secs(),
                overlap.as_secs()
            );
        }
        KeysCommand::Revoke { kid, json } => {
            let revoked = services.keys.revoke(&Actor::system(), &kid).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&revoked)?);
            } else {
                println!("revoked signing key {} ({})", revoked.kid, revoked.alg);
                if let Some(new) = &revoked.replacement {
                    println!("new {} signing key {new} signs from now", revoked.alg);
                }
                println!(
                    "{} unexpired JWT access tokens it signed are revoked",
                    revoked.tokens_revoked
                );
                println!(
                    "Every node stops signing and verifying with it at its next use, and drops it \
                     from the JWKS; relying parties do when their cached JWKS expires (max-age 300 s)."
                );
            }
        }
    }
    Ok(())
}

async fn client_command(cmd: ClientCommand, settings: Settings) -> anyhow::Result<()> {
    let services = Services::build(&settings).await?;
    let clients = &services.clients;
    match cmd {
        ClientCommand::Create(args) => {
            let (client, secret) = clients
                .register(&Actor::system(), &args.spec())
                .await
                .map_err(client_error)?;
            if args.json {
                let mut value = client_json(&client);
                value["client_secret"] = json!(secret.as_ref().map(|s| s.0.as_str()));
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("client_id:     {}", client.id());
                if let Some(secret) = secret {
                    println!("client_secret: {}", secret.0);
                    println!("Store the secret now: it is not stored and cannot be shown again.");
                }
            }
        }
        ClientCommand::List { json } => {
            let list = clients.list().await?;
            if json {
                let values: Vec<_> = list.iter().map(client_json).collect();
                println!("{}", serde_json::to_string_pretty(&values)?);
            } else if list.is_empty() {
                println!("no clients");
            } else {
                println!(
                    "{:<34} {:<13} {:<45} NAME",
                    "CLIENT_ID", "TYPE", "GRANT TYPES"
                );
                for c in &list {
                    println!(
                        "{:<34} {:<13} {:<45} {}",
                        c.id(),
                        c.client_type.as_str(),
                        c.grant_types
                            .iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                        c.name()
                    );
                }
            }
        }
        ClientCommand::Show { client_id, json } => {
            let client = clients
                .find(&client_id)
                .await?
                .with_context(|| format!("no client {client_id:?}"))?;
            let mut value = client_json(&client);
            value["active_tokens"] = json!(clients.active_token_count(&client_id).await?);
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if let serde_json::Value::Object(map) = value {
                for (k, v) in map {
                    println!("{k:<27} {}", v.to_string().trim_matches('"'));
                }
            }
        }
        ClientCommand::Update(args) => {
            let client_id = args.client_id.clone();
            let json = args.json;
            let client = clients
                .find(&client_id)
                .await?
                .with_context(|| format!("no client {client_id:?}"))?;
            let spec = args.apply(ClientSpec::from_client(&client));
            let client = clients
                .update(&Actor::system(), &client_id, &spec)
                .await
                .map_err(client_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&client_json(&client))?);
            } else {
                println!("updated client {client_id}");
            }
        }
        ClientCommand::Delete { client_id } => {
            clients
                .delete(&Actor::system(), &client_id)
                .await
                .map_err(client_error)?;
            println!("deleted client {client_id}");
        }
        ClientCommand::RotateSecret { client_id, json } => {
            let secret = clients
                .rotate_secret(&Actor::system(), &client_id)
                .await
                .map_err(client_error)?;
            if json {
                println!(
                    "{}",
                    json!({ "client_id": client_id, "client_secret": secret.0 })
                );
            } else {
                println!("client_id:     {client_id}");
                println!("client_secret: {}", secret.0);
                println!("The previous secret no longer works. Store this one now: it cannot be shown again.");
            }
        }
    }
    Ok(())
}

fn client_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Db(db) => anyhow::Error::new(db).context("storage failed"),
        other => anyhow::Error::msg(other.to_string()),
    }
}

/// A client as JSON (no secret, only its hint).
#[must_use]
pub fn client_json(c: &Client) -> serde_json::Value {
    let spec = crate::clients::ClientSpec::from_client(c);
    json!({
        "client_id": c.id(),
        "name": spec.name,
        "client_type": spec.client_type,
        "token_endpoint_auth_method": c.auth_method(),
        "secret_hint": c.secret_hint().map(|h| format!("{h}…")),
        "grant_types": spec.grant_types,
        "redirect_uris": spec.redirect_uris,
        "post_logout_redirect_uris": spec.post_logout_redirect_uris,
        "allowed_origins": spec.allowed_origins,
        "scopes": spec.scopes,
        "skip_authorization": spec.skip_authorization,
        "require_pkce": spec.require_pkce,
        "allow_plain_pkce": spec.allow_plain_pkce,
        "introspect_all": spec.introspect_all,
        "resource_uris": spec.resource_uris,
        "access_token_lifetime": spec.access_token_lifetime,
        "refresh_token_lifetime": spec.refresh_token_lifetime,
        "owner_id": spec.owner_id,
        "id_token_signed_response_alg": spec.id_token_alg,
        "access_token_format": spec.access_token_format,
        "always_issue_refresh_token": spec.always_issue_refresh_token,
        "logo_uri": spec.logo_uri,
        "client_uri": spec.client_uri,
        "policy_uri": spec.policy_uri,
        "tos_uri": spec.tos_uri,
        "created_at": c.created_at().and_utc().to_rfc3339(),
        "updated_at": c.updated_at().and_utc().to_rfc3339(),
    })
}

fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password (again): ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(SecretString::from(first))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, KeysCommand};

    #[test]
    fn a_kid_that_starts_with_a_hyphen_is_read_as_the_kid() {
        let cli = Cli::try_parse_from(["latchkey", "keys", "revoke", "-x1Y_z", "--json"])
            .expect("parsed");
        match cli.command {
            Command::Keys(KeysCommand::Revoke { kid, json }) => {
                assert_eq!(kid, "-x1Y_z");
                assert!(json);
            }
            other => panic!("{other:?}"),
        }
    }
}
