//! The upstream-login service: the configured providers, the relying party, and what a verified
//! identity leads to ([`super::decide`]) carried out in one transaction — a sign-in, a new link,
//! a new account with its link — so that no account is ever half-created.

use std::net::IpAddr;
use std::sync::Arc;

use diesel::Connection;
use url::Url;

use super::client::{PendingLogin, RelyingParty, UpstreamError, PENDING_LIFETIME_SECONDS};
use super::discord::{self, DiscordAccount};
use super::oidc::SubjectToken;
use super::providers::{ProviderButton, ProviderSecrets, ProviderSet};
use super::tokens::{TokenSealer, UpstreamTokens};
use super::{decide, may_link_by_email, Decision, Identity};
use crate::accounts::privileges::{self, NotAllowed};
use crate::accounts::registration::{
    domain_allowed, free_username, registration_bucket, username_base,
};
use crate::accounts::reset::RESET_REQUEST_PATH;
use crate::accounts::{Account, Accounts};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::{EmailVerification, UpstreamProvider};
use crate::db::discord_accounts;
use crate::db::upstream_links::{self, LinkRow};
use crate::db::users::{self, UserRow};
use crate::db::{self, Db, DbConnection, DbError};
use crate::db::{rate_limits, upstream_email_vouches, upstream_used_states};
use crate::domain::upstream::DISCORD_LEGACY_LOGIN_CALLBACK;
use crate::domain::{Email, ProviderKind, Username};
use crate::mail::AccountLinkedEmail;
use crate::secret::SealError;

/// Whether a storage error is a unique violation: two sign-ins racing for one identity, address
/// or username.
fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// What a verified upstream identity came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInOutcome {
    /// Sign this user in (through an existing link, or one made just now).
    SignIn {
        /// The local user.
        user_id: String,
        /// Whether an existing account was linked just now (by email); a new account's link
        /// does not count (its owner is the one signing in).
        linked_now: bool,
    },
    /// The identity is linked to this user, whose account asks for an emailed sign-in code
    /// (`accounts.login_code`): the code step follows, and the session starts only after it.
    /// Nothing was recorded yet but the link's refreshed profile.
    CodeRequired {
        /// The local user.
        user_id: String,
    },
    /// The signed-in user linked the identity to their account (from the account page).
    Linked {
        /// The local user.
        user_id: String,
        /// Whether the link is new (not the same link signed in again).
        new: bool,
    },
    /// No link, and none may be made without the password: the user signs in with it, then
    /// links the provider from their account page (the linking rule's last case).
    PasswordFirst,
    /// The account is deactivated.
    Inactive,
    /// A new account would pass `accounts.registrations_per_ip` for the client's network:
    /// nothing was made; the client may try again after this many seconds.
    Limited {
        /// Seconds until the limit's window ends (`Retry-After`).
        retry_after_seconds: u64,
    },
    /// Refused, with the reason for the user: the identity is linked to someone else, the user
    /// already linked another account at this provider, or a new account would need a verified
    /// address.
    Refused(String),
}

/// Why a first-party app's upstream token got no Latchkey tokens
/// ([`Upstream::sign_in_with_token`]).
#[derive(Debug, thiserror::Error)]
pub enum TokenSignInError {
    /// No enabled OpenID Connect provider has that id, or none was named and there is not
    /// exactly one Google provider.
    #[error("{0}")]
    Provider(String),
    /// The token does not verify, is another application's or expired, or its identity may
    /// not sign in (not linked and no account may be made, account disabled, …).
    #[error("{0}")]
    Refused(String),
    /// The provider cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// A new account would pass `accounts.registrations_per_ip`: retry after this many seconds.
    #[error("too many accounts were made from this network; try again in {0} s")]
    Limited(u64),
    /// Storage failed (nothing was kept).
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Upstream login's service.
#[derive(Clone)]
pub struct Upstream {
    /// The providers in use: the configuration file's and the console's
    /// ([`super::providers`]).
    pub(super) providers: ProviderSet,
    /// The configuration file's providers, by id (fixed while the server runs).
    pub(super) files: Arc<Vec<Arc<UpstreamProvider>>>,
    /// Seals the client secrets of the console's providers.
    pub(super) secrets: Arc<ProviderSecrets>,
    /// Held by [`Upstream::reload`], so that reloads never overlap.
    pub(super) reload_lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) rp: Arc<RelyingParty>,
    pub(super) db: Db,
    accounts: Accounts,
    policy: AccountPolicy,
    /// Seals the upstream tokens kept for providers with `keep_tokens`.
    sealer: Arc<TokenSealer>,
}

/// Why kept upstream tokens could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum KeptTokensError {
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The sealed tokens do not open: sealed under another `secrets.secret_key`, or altered.
    /// The user must sign in with the provider again.
    #[error("the kept tokens cannot be opened (was secrets.secret_key changed?)")]
    Unreadable,
}

/// The `[accounts]` settings accounts made by upstream sign-in follow.
#[derive(Clone, Debug)]
pub struct AccountPolicy {
    /// `accounts.registration`: whether new accounts may be made at all.
    pub registration_open: bool,
    /// `accounts.email_verification`.
    pub verification: EmailVerification,
    /// `accounts.allowed_email_domains`: empty allows every domain.
    pub allowed_email_domains: Vec<String>,
    /// `accounts.registrations_per_ip`: accounts made per client network and window, password
    /// registrations and upstream ones counted together (0 = no limit).
    pub registrations_per_ip: u32,
    /// `rate_limits.window_seconds`, the limit's window.
    pub window: std::time::Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets: ids only.
        f.debug_struct("Upstream")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The service over the configuration file's `providers` (the console's are read by
    /// [`Upstream::reload`], which `Services::build` calls before the server starts), with
    /// callbacks under `issuer`; new accounts follow `policy`, and `accounts` says who must
    /// enter an emailed sign-in code. Kept upstream tokens and the console's client secrets are
    /// sealed under keys derived from `secret_key` (`secrets.secret_key`).
    ///
    /// # Errors
    /// [`SealError`] if a sealing key cannot be set up.
    pub fn new(
        db: Db,
        accounts: Accounts,
        providers: Vec<UpstreamProvider>,
        issuer: &str,
        policy: AccountPolicy,
        secret_key: &[u8],
    ) -> Result<Self, SealError> {
        let files: Vec<Arc<UpstreamProvider>> = providers.into_iter().map(Arc::new).collect();
        Ok(Self {
            providers: ProviderSet::new_with(files.clone()),
            files: Arc::new(files),
            secrets: Arc::new(ProviderSecrets::new(secret_key)?),
            reload_lock: Arc::new(tokio::sync::Mutex::new(())),
            rp: Arc::new(RelyingParty::new(issuer)),
            db,
            accounts,
            policy,
            sealer: Arc::new(TokenSealer::new(secret_key)?),
        })
    }

    /// The live provider set (the sign-in page's buttons come from it).
    #[must_use]
    pub fn providers(&self) -> ProviderSet {
        self.providers.clone()
    }

    /// The enabled providers' buttons, by id (the live set: see [`super::providers`]).
    #[must_use]
    pub fn buttons(&self) -> Vec<ProviderButton> {
        self.providers.buttons()
    }

    /// Every provider's label by id, enabled or not (pages naming the provider of a stored
    /// link).
    #[must_use]
    pub fn labels(&self) -> std::collections::HashMap<String, String> {
        self.providers.labels()
    }

    /// Whether `provider` (a copy taken earlier) is still enabled in the live set, at the same
    /// revision.
    #[must_use]
    pub fn still_in_use(&self, provider: &UpstreamProvider) -> bool {
        self.providers
            .enabled(provider.id.as_str())
            .is_some_and(|live| live.revision == provider.revision)
    }

    /// The enabled provider `id`, as the live set has it now.
    ///
    /// # Errors
    /// [`UpstreamError::UnknownProvider`] for an unknown or disabled one.
    pub fn provider(&self, id: &str) -> Result<Arc<UpstreamProvider>, UpstreamError> {
        self.providers
            .enabled(id)
            .ok_or_else(|| UpstreamError::UnknownProvider(id.to_owned()))
    }

    /// Starts a sign-in at `provider` (see [`RelyingParty::begin`]), coming back to the
    /// provider's callback path. `max_age` (seconds): the authorization request behind the
    /// sign-in asked for a login at most this old (`prompt=login`: 0), passed on to OpenID
    /// Connect providers.
    ///
    /// # Errors
    /// As [`RelyingParty::begin`].
    pub async fn begin(
        &self,
        provider: &UpstreamProvider,
        next: &str,
        link_for: Option<String>,
        max_age: Option<u64>,
    ) -> Result<(Url, PendingLogin), UpstreamError> {
        self.rp
            .begin(
                provider,
                &provider.callback_path(),
                next,
                link_for,
                max_age,
                db::now().and_utc().timestamp(),
            )
            .await
    }

    /// The Discord provider of the seeds' paths (`/oauth2/login/` and its callbacks): the one
    /// enabled provider of kind `discord`.
    ///
    /// # Errors
    /// [`UpstreamError::UnknownProvider`] when there is none, or more than one (the seeds'
    /// paths cannot tell them apart; each has its own `/accounts/upstream/<id>/login/`).
    pub fn legacy_discord(&self) -> Result<Arc<UpstreamProvider>, UpstreamError> {
        let all = self.providers.all();
        let mut discord = all
            .iter()
            .filter(|p| p.enabled && p.kind == ProviderKind::Discord);
        match (discord.next(), discord.next()) {
            (Some(provider), None) => Ok(Arc::clone(provider)),
            _ => Err(UpstreamError::UnknownProvider("discord".to_owned())),
        }
    }

    /// Starts a sign-in at seed 000's `/oauth2/login/` with the Discord `provider`: its
    /// redirect URI is the provider's `callback_path` when set, else seed 000's
    /// `/oauth2/login/redirect/`, so that a Discord application registered for the seed needs
    /// no change.
    ///
    /// # Errors
    /// As [`RelyingParty::begin`].
    pub async fn begin_legacy_discord(
        &self,
        provider: &UpstreamProvider,
        next: &str,
    ) -> Result<(Url, PendingLogin), UpstreamError> {
        let path = provider
            .callback_path
            .clone()
            .unwrap_or_else(|| DISCORD_LEGACY_LOGIN_CALLBACK.to_owned());
        self.rp
            .begin(
                provider,
                &path,
                next,
                None,
                None,
                db::now().and_utc().timestamp(),
            )
            .await
    }

    /// Finishes a sign-in at its callback: checks `state` ([`RelyingParty::check_state`]),
    /// records it as used on every node — a replayed cookie carrying the same pending sign-in
    /// is refused, not only a second callback in this browser —, then exchanges `code`
    /// ([`RelyingParty::finish`]).
    ///
    /// # Errors
    /// [`UpstreamError::State`] for a foreign, late or replayed callback; otherwise as
    /// [`RelyingParty::finish`]; [`UpstreamError::Unreachable`] when the record cannot be
    /// stored.
    pub async fn finish(
        &self,
        provider: &UpstreamProvider,
        pending: &PendingLogin,
        state: &str,
        code: &str,
    ) -> Result<Identity, UpstreamError> {
        RelyingParty::check_state(provider, pending, state, db::now().and_utc().timestamp())?;
        let hash = crate::secret::sha256_hex(state);
        let expires = chrono::DateTime::from_timestamp(
            pending.started_at.saturating_add(PENDING_LIFETIME_SECONDS),
            0,
        )
        .map_or_else(db::now, |t| t.naive_utc());
        let first = self
            .db
            .write(move |conn| {
                upstream_used_states::record(conn, &hash, expires).map_err(DbError::from)
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not record an upstream sign-in's state");
                UpstreamError::Unreachable("This server could not finish the sign-in".to_owned())
            })?;
        if !first {
            return Err(UpstreamError::State);
        }
        self.rp.finish(provider, pending, code).await
    }

    /// Checks the `iss` of an authorization response (RFC 9207; see
    /// [`RelyingParty::check_issuer`]).
    ///
    /// # Errors
    /// As [`RelyingParty::check_issuer`].
    pub async fn check_issuer(
        &self,
        provider: &UpstreamProvider,
        iss: Option<&str>,
    ) -> Result<(), UpstreamError> {
        self.rp.check_issuer(provider, iss).await
    }

    /// Carries out what `identity` at `provider` leads to, in one transaction: with
    /// `signed_in` (the signed-in user who asked to link the provider, from the linked-accounts
    /// page) the identity is linked to them; otherwise the linking rules ([`decide`]) — sign in through
    /// the link, link by email, create the account and its link, or ask for the password
    /// first. Every link, new account and upstream sign-in is an audit event. With the link
    /// comes what the sign-in brought: the Discord profile, and the provider's tokens (sealed)
    /// when its `keep_tokens` is on.
    ///
    /// # Errors
    /// [`DbError`] when storage fails (nothing is kept).
    pub async fn sign_in(
        &self,
        provider: &UpstreamProvider,
        identity: Identity,
        signed_in: Option<String>,
        ip: Option<IpAddr>,
    ) -> Result<SignInOutcome, DbError> {
        // The upstream round trip may have taken a while (up to the timeouts): a provider
        // disabled, deleted or changed meanwhile signs nobody in with its old copy.
        if !self.still_in_use(provider) {
            tracing::info!(provider = %provider.id, "a sign-in through a provider disabled or changed during it is refused");
            return Ok(SignInOutcome::Refused(format!(
                "{} was disabled or changed while you were signing in: please start again",
                provider.label
            )));
        }
        let provider_id = provider.id.to_string();
        let issuer = provider.subject_issuer();
        let label = provider.label.clone();
        let label_for_mail = label.clone();
        let linked_as = identity.username.clone();
        let link_by_email = provider.link_by_email;
        let kind = provider.kind;
        let policy = self.policy.clone();
        let accounts = self.accounts.clone();
        let sealer = provider.keep_tokens.then(|| self.sealer.clone());
        // An account with sign-in codes is linked only from a signed-in browser: a link made by
        // email before the code was entered would outlive an abandoned code step.
        let code_refusal = format!(
            "Your account asks for an emailed sign-in code: sign in with your password and code, then link {label} under Account → Linked accounts."
        );
        let outcome = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let now = db::now();
                    let sealer = sealer.as_deref();
                    let link = upstream_links::find(conn, &provider_id, &issuer, &identity.subject)?;
                    let linked_user = match &link {
                        Some(link) => users::lock(conn, &link.user_id)?,
                        None => None,
                    };
                    if let Some(user_id) = signed_in {
                        return link_to(
                            conn,
                            (&provider_id, &issuer, &label),
                            (&identity, sealer),
                            link.as_ref(),
                            &user_id,
                            ip,
                        );
                    }
                    let same_email = match &identity.email {
                        Some(email) => users::find_by_email(conn, email)?,
                        None => None,
                    };
                    // Linking by email also needs an address Latchkey (or this provider)
                    // verified, and Google's word only for the addresses it hosts.
                    let link_by_email = match &same_email {
                        Some(user) if link_by_email => {
                            let vouch = upstream_email_vouches::find(conn, &user.id)?;
                            may_link_by_email(
                                kind,
                                &provider_id,
                                &identity,
                                &user.email,
                                vouch.as_ref(),
                            )
                        }
                        _ => false,
                    };
                    let decision = decide(
                        &identity,
                        link.as_ref().zip(linked_user.as_ref()),
                        same_email.as_ref(),
                        link_by_email,
                        policy.registration_open,
                    );
                    // Someone who must enter an emailed code is not signed in by this alone,
                    // and nothing is linked or made for them.
                    let needs_code =
                        |user: &UserRow| accounts.needs_login_code(&Account::from(user));
                    Ok(match decision {
                        Decision::SignIn { user_id } => {
                            let (Some(link), Some(user)) = (link, linked_user) else {
                                return Ok(SignInOutcome::Inactive);
                            };
                            if policy.verification == EmailVerification::Mandatory
                                && !user.email_verified
                            {
                                return Ok(SignInOutcome::Refused(
                                    "Your email address is not verified: sign in with your password to verify it first.".to_owned(),
                                ));
                            }
                            touch(conn, &link, (&identity, sealer), now)?;
                            if needs_code(&user) {
                                return Ok(SignInOutcome::CodeRequired { user_id });
                            }
                            record(conn, "upstream.login", &user_id, &provider_id, ip)?;
                            SignInOutcome::SignIn {
                                user_id,
                                linked_now: false,
                            }
                        }
                        Decision::LinkByEmail { user_id } => {
                            let Some(user) = users::lock(conn, &user_id)? else {
                                return Ok(SignInOutcome::PasswordFirst);
                            };
                            // The rule again on the locked row: a promotion to staff, an
                            // address change or a deactivation that committed since the
                            // unlocked read is seen here.
                            if Some(&user.email) != identity.email.as_ref()
                                || !user.email_verified
                                || user.has_staff_access()
                            {
                                return Ok(SignInOutcome::PasswordFirst);
                            }
                            if !user.is_active {
                                return Ok(SignInOutcome::Inactive);
                            }
                            if linked_at(conn, &user_id, &provider_id)? {
                                return Ok(SignInOutcome::Refused(format!(
                                    "Your account is linked to another {label} account: sign in with that one, or with your password."
                                )));
                            }
                            if needs_code(&user) {
                                return Ok(SignInOutcome::Refused(code_refusal));
                            }
                            insert_link(conn, (&provider_id, &issuer), (&identity, sealer), &user_id, now)?;
                            record(conn, "upstream.linked", &user_id, &provider_id, ip)?;
                            record(conn, "upstream.login", &user_id, &provider_id, ip)?;
                            SignInOutcome::SignIn {
                                user_id,
                                linked_now: true,
                            }
                        }
                        Decision::UnverifiedAddress => SignInOutcome::Refused(format!(
                            "{label} has not verified your email address, so no account can be made from it: verify it at {label}, or register with a password."
                        )),
                        Decision::Register => {
                            // The limit password registration keeps, counted in the same
                            // bucket and in this transaction: an account is made only when
                            // its hit is within the allowance.
                            if let Some(retry_after_seconds) =
                                registration_limited(conn, &policy, ip, now)?
                            {
                                return Ok(SignInOutcome::Limited {
                                    retry_after_seconds,
                                });
                            }
                            let Some(user) = new_user(conn, &identity, &policy, now)? else {
                                return Ok(SignInOutcome::Refused(format!(
                                    "This server does not accept the email address {label} gave: register with a password and an address it accepts."
                                )));
                            };
                            users::insert(conn, &user)?;
                            if user.email_verified {
                                // Only this provider's word verified the address.
                                upstream_email_vouches::record(
                                    conn,
                                    &user.id,
                                    &provider_id,
                                    &user.email,
                                    now,
                                )?;
                            }
                            audit::record(
                                conn,
                                AuditEvent::new("user.created")
                                    .by(&Actor::user(user.id.clone(), ip))
                                    .user(user.id.clone())
                                    .detail("username", user.username.clone())
                                    .detail("provider", provider_id.clone()),
                            )?;
                            insert_link(conn, (&provider_id, &issuer), (&identity, sealer), &user.id, now)?;
                            record(conn, "upstream.linked", &user.id, &provider_id, ip)?;
                            // Every account asks for a code (`accounts.login_code`): the new
                            // one too, sent to the address the provider verified.
                            if needs_code(&user) {
                                return Ok(SignInOutcome::CodeRequired { user_id: user.id });
                            }
                            record(conn, "upstream.login", &user.id, &provider_id, ip)?;
                            SignInOutcome::SignIn {
                                user_id: user.id,
                                linked_now: false,
                            }
                        }
                        Decision::PasswordFirst => SignInOutcome::PasswordFirst,
                        Decision::Inactive => SignInOutcome::Inactive,
                    })
                })
                .map_err(DbError::from)
            })
            .await;
        if let Ok(
            SignInOutcome::SignIn {
                user_id,
                linked_now: true,
            }
            | SignInOutcome::Linked { user_id, new: true },
        ) = &outcome
        {
            self.notify_linked(user_id, &label_for_mail, &linked_as)
                .await;
        }
        match outcome {
            // Two sign-ins racing for one identity, address or username: the other one won,
            // and nothing of this one was kept.
            Err(DbError::Query(e)) if is_unique_violation(&e) => Ok(SignInOutcome::Refused(
                "Another sign-in with this account happened at the same moment: please try again."
                    .to_owned(),
            )),
            other => other,
        }
    }

    /// Emails `user_id` that an account at `provider` (named `linked_as` there) was linked to
    /// theirs ([`AccountLinkedEmail`]): every new way in is told to the owner. A failure to send
    /// is logged (without the address) and does not undo the link.
    async fn notify_linked(&self, user_id: &str, provider: &str, linked_as: &str) {
        let user = match self.accounts.find(user_id.to_owned()).await {
            Ok(Some(user)) => user,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "could not read the account to tell of a new link");
                return;
            }
        };
        let email = AccountLinkedEmail {
            name: user.greeting_name(),
            username: user.username.clone(),
            provider: provider.to_owned(),
            linked_as: linked_as.to_owned(),
            manage_link: self.accounts.public_url("/account/linked/"),
            reset_link: self.accounts.public_url(RESET_REQUEST_PATH),
        };
        if let Err(e) = self.accounts.mailer().send(&user.email, &email).await {
            tracing::warn!(error = %e, "the notice of a new link could not be sent");
        }
    }

    /// A sign-in with a token a first-party app obtained from an upstream OpenID Connect
    /// provider (RFC 8693 token exchange, `/api/google/`): the provider `provider_id` (by
    /// default the only Google provider), the token verified as
    /// [`RelyingParty::token_identity`] says (an ID token once only), then the linking rules of [`Upstream::sign_in`]
    /// with no browser (nothing is linked to a signed-in user). Returns the user to issue
    /// tokens for and the provider's id (the ID token's `idp`).
    ///
    /// # Errors
    /// [`TokenSignInError`].
    #[tracing::instrument(skip_all, fields(provider = provider_id.unwrap_or("")))]
    pub async fn sign_in_with_token(
        &self,
        provider_id: Option<&str>,
        token: &SubjectToken,
        ip: Option<IpAddr>,
    ) -> Result<(String, String), TokenSignInError> {
        let provider = match provider_id {
            Some(id) => self
                .provider(id)
                .map_err(|e| TokenSignInError::Provider(e.to_string()))?,
            None => {
                let all = self.providers.all();
                let mut google = all
                    .iter()
                    .filter(|p| p.enabled && p.kind == ProviderKind::Google);
                match (google.next(), google.next()) {
                    (Some(only), None) => Arc::clone(only),
                    _ => {
                        return Err(TokenSignInError::Provider(
                            "name the provider (there is not exactly one Google provider)"
                                .to_owned(),
                        ))
                    }
                }
            }
        };
        if !provider.kind.is_oidc() {
            return Err(TokenSignInError::Provider(format!(
                "{} is not an OpenID Connect provider",
                provider.id
            )));
        }
        let (identity, once) = self
            .rp
            .token_identity(&provider, token, db::now().and_utc().timestamp())
            .await
            .map_err(|e| match e {
                UpstreamError::Unreachable(message) => TokenSignInError::Unreachable(message),
                other => TokenSignInError::Refused(other.to_string()),
            })?;
        let label = &provider.label;
        // A token (ID or access) is exchanged once, on every node: recorded before anything is
        // signed in, so that of two exchanges of one token one is refused
        // (`upstream_used_states`).
        let kind_of_token = match token {
            SubjectToken::IdToken(_) => "ID token",
            SubjectToken::AccessToken(_) => "access token",
        };
        if let Some(once) = once {
            let first = self
                .db
                .write(move |conn| {
                    upstream_used_states::record(conn, &once.key, once.expires_at)
                        .map_err(DbError::from)
                })
                .await?;
            if !first {
                return Err(TokenSignInError::Refused(format!(
                    "this {label} {kind_of_token} was already exchanged: obtain a new one"
                )));
            }
        }
        let provider_id = provider.id.to_string();
        match self.sign_in(&provider, identity, None, ip).await? {
            SignInOutcome::SignIn { user_id, .. } | SignInOutcome::Linked { user_id, .. } => {
                Ok((user_id, provider_id))
            }
            // An app has no page for the emailed code: the browser sign-in asks for it.
            SignInOutcome::CodeRequired { .. } => Err(TokenSignInError::Refused(
                "the account asks for an emailed sign-in code, which token exchange cannot ask for: sign in through the browser".to_owned(),
            )),
            SignInOutcome::Limited {
                retry_after_seconds,
            } => Err(TokenSignInError::Limited(retry_after_seconds)),
            SignInOutcome::PasswordFirst => Err(TokenSignInError::Refused(format!(
                "no account here is linked to this {label} account, and none can be made from it: sign in with the password and link {label} first"
            ))),
            SignInOutcome::Inactive => Err(TokenSignInError::Refused(
                "the account is disabled".to_owned(),
            )),
            SignInOutcome::Refused(message) => Err(TokenSignInError::Refused(message)),
        }
    }

    /// Removes `user_id`'s link at `provider_id` — unless it is their last way to sign in (no
    /// password and no link at another enabled provider) — and ends the sessions and revokes
    /// the tokens of logins through it ([`cut_off`]). Returns whether a link was removed.
    ///
    /// # Errors
    /// [`DbError`] when storage fails; `Ok(Err(message))` when the link is the last way in.
    pub async fn unlink(
        &self,
        user_id: &str,
        provider_id: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<bool, String>, DbError> {
        let (user_id, provider_id) = (user_id.to_owned(), provider_id.to_owned());
        // Only links at enabled providers are ways in.
        let usable: std::collections::HashSet<String> =
            self.buttons().into_iter().map(|b| b.id).collect();
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let Some(user) = users::lock(conn, &user_id)? else {
                        return Ok(Ok(false));
                    };
                    let links = upstream_links::for_user(conn, &user_id)?;
                    if !links.iter().any(|l| l.provider_id == provider_id) {
                        return Ok(Ok(false));
                    }
                    let other_ways_in = links
                        .iter()
                        .filter(|l| l.provider_id != provider_id && usable.contains(&l.provider_id))
                        .count();
                    if user.password_hash.is_none() && other_ways_in == 0 {
                        return Ok(Err(
                            "This is your only way to sign in: set a password first (\"Forgot your password?\" on the sign-in page sends a link), then unlink it.".to_owned(),
                        ));
                    }
                    // The Discord account keeps nothing the user's groups gave it.
                    crate::db::discord_connector::queue_removals_for_link(
                        conn,
                        &user_id,
                        &provider_id,
                        db::now(),
                    )?;
                    upstream_links::delete(conn, &user_id, &provider_id)?;
                    cut_off(conn, &user_id, &provider_id)?;
                    record(conn, "upstream.unlinked", &user_id, &provider_id, ip)?;
                    Ok(Ok(true))
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Removes `user_id`'s link at `provider_id` for an administrator (`actor`): allowed when
    /// `actor` may change the account ([`crate::accounts::privileges::check_may_change`],
    /// checked in the removal's transaction after the account's row is locked). Unlike the
    /// user's own unlink, it may remove the last way in — cutting off a compromised upstream
    /// account must not wait — and the user then signs in by setting a password ("Forgot your
    /// password?"). The sessions and tokens of logins through it end with it ([`cut_off`]).
    /// Recorded as `upstream.unlinked` by the admin. Returns whether a link was removed.
    ///
    /// # Errors
    /// [`LinkRemovalError::NotFound`] for an unknown user, [`LinkRemovalError::Forbidden`] when
    /// `actor` may not change the account, [`LinkRemovalError::Db`] when storage fails.
    pub async fn remove_link(
        &self,
        actor: &Actor,
        user_id: &str,
        provider_id: &str,
    ) -> Result<bool, LinkRemovalError> {
        let (actor, user_id, provider_id) =
            (actor.clone(), user_id.to_owned(), provider_id.to_owned());
        self.db
            .write(move |conn| {
                conn.transaction::<_, LinkRemovalError, _>(|conn| {
                    let target = privileges::lock_target(conn, &user_id)?
                        .ok_or(LinkRemovalError::NotFound)?;
                    privileges::check_may_change::<LinkRemovalError>(conn, &actor, &target)?;
                    crate::db::discord_connector::queue_removals_for_link(
                        conn,
                        &user_id,
                        &provider_id,
                        db::now(),
                    )?;
                    if !upstream_links::delete(conn, &user_id, &provider_id)? {
                        return Ok(false);
                    }
                    cut_off(conn, &user_id, &provider_id)?;
                    audit::record(
                        conn,
                        AuditEvent::new("upstream.unlinked")
                            .by(&actor)
                            .user(user_id.clone())
                            .detail("provider", provider_id.clone()),
                    )?;
                    Ok(true)
                })
            })
            .await
    }

    /// `user_id`'s Discord profile, when they linked a Discord account (with links at several
    /// Discord providers: the one signed in with last).
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn discord_account(&self, user_id: &str) -> Result<Option<DiscordAccount>, DbError> {
        let id = user_id.to_owned();
        self.db
            .read(move |conn| discord::account_of(conn, &id).map_err(DbError::from))
            .await
    }

    /// The upstream tokens kept from `user_id`'s latest sign-in at `provider_id` (a provider
    /// with `keep_tokens`), unsealed: for calls to the provider's API on the user's behalf
    /// (the Discord connector). `None` when the user has no link there or no tokens were
    /// kept. The tokens must never be logged.
    ///
    /// # Errors
    /// [`KeptTokensError::Db`] when storage fails; [`KeptTokensError::Unreadable`] when they
    /// were sealed under another secret key or altered.
    pub async fn kept_tokens(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<Option<UpstreamTokens>, KeptTokensError> {
        let id = user_id.to_owned();
        let links = self
            .db
            .read(move |conn| upstream_links::for_user(conn, &id).map_err(DbError::from))
            .await?;
        let Some(link) = links.into_iter().find(|l| l.provider_id == provider_id) else {
            return Ok(None);
        };
        let Some(access) = &link.access_token_sealed else {
            return Ok(None);
        };
        self.sealer
            .open(
                &link.id,
                (access, link.refresh_token_sealed.as_deref()),
                link.token_expires_at,
            )
            .map(Some)
            .map_err(|_| {
                tracing::warn!(provider = provider_id, "kept upstream tokens do not open");
                KeptTokensError::Unreadable
            })
    }

    /// `user_id`'s links, by provider id.
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub async fn links_of(&self, user_id: &str) -> Result<Vec<LinkRow>, DbError> {
        let id = user_id.to_owned();
        self.db
            .read(move |conn| upstream_links::for_user(conn, &id).map_err(DbError::from))
            .await
    }
}

/// Why kept tokens could not be made fresh ([`Upstream::fresh_kept_tokens`]).
#[derive(Debug, thiserror::Error)]
pub enum FreshTokensError {
    /// Reading or opening the kept tokens failed.
    #[error(transparent)]
    Kept(#[from] KeptTokensError),
    /// The provider refused the refresh token (revoked, expired, the application removed):
    /// the kept tokens are dropped and the user must sign in with the provider again.
    #[error("{0} refused the kept refresh token; the user must sign in with it again")]
    Refused(String),
    /// The provider could not be reached; try again later.
    #[error("{0}")]
    Unreachable(String),
    /// No such provider, or not one of kind `discord`.
    #[error("{0}")]
    Provider(String),
    /// Another node is refreshing these tokens right now; try again shortly.
    #[error("another node is refreshing the user's kept tokens; trying again shortly")]
    Busy,
}

impl Upstream {
    /// The tokens kept from `user_id`'s latest sign-in at the Discord provider `provider_id`,
    /// refreshed first (RFC 6749 §6) when the access token has expired or expires within a
    /// minute; the refreshed tokens are sealed in place of the old ones. One node refreshes a
    /// link's tokens at a time (a lease on the link, claimed with one conditional `UPDATE`,
    /// and the tokens read again once it is held): Discord rotates refresh tokens, so a second
    /// refresh with the same one would be refused and drop the tokens the first stored. `None` when the user
    /// has no link there or no tokens were kept (or had no refresh token left to renew an
    /// expired access token with). A refused refresh drops the kept tokens, so that the link
    /// shows it needs a fresh sign-in. For the Discord connector's `guilds.join`.
    ///
    /// # Errors
    /// [`FreshTokensError`].
    pub async fn fresh_kept_tokens(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<Option<UpstreamTokens>, FreshTokensError> {
        let Some(tokens) = self.kept_tokens(user_id, provider_id).await? else {
            return Ok(None);
        };
        if still_fresh(&tokens, db::now()) {
            return Ok(Some(tokens));
        }
        if tokens.refresh_token.is_none() {
            return Ok(None);
        }
        if !self
            .provider(provider_id)
            .is_ok_and(|p| p.kind == ProviderKind::Discord)
        {
            return Err(FreshTokensError::Provider(format!(
                "there is no enabled Discord provider called {provider_id:?}"
            )));
        }
        let (user, provider) = (user_id.to_owned(), provider_id.to_owned());
        let links = self
            .db
            .read(move |conn| upstream_links::for_user(conn, &user).map_err(DbError::from))
            .await
            .map_err(KeptTokensError::from)?;
        let Some(link) = links.into_iter().find(|l| l.provider_id == provider) else {
            return Ok(None);
        };
        // One node refreshes at a time (Discord rotates refresh tokens: a second refresh with
        // the same one is refused, and would drop what the first stored).
        let (id, now) = (link.id.clone(), db::now());
        let claimed = self
            .db
            .write(move |conn| {
                upstream_links::claim_token_refresh(conn, &id, now, now + TOKEN_REFRESH_LEASE)
                    .map_err(DbError::from)
            })
            .await
            .map_err(KeptTokensError::from)?;
        if !claimed {
            return Err(FreshTokensError::Busy);
        }
        let refreshed = self.refresh_claimed(user_id, provider_id, &link).await;
        let id = link.id.clone();
        let ended = self
            .db
            .write(move |conn| upstream_links::end_token_refresh(conn, &id).map_err(DbError::from))
            .await;
        let tokens = refreshed?;
        ended.map_err(KeptTokensError::from)?;
        Ok(tokens)
    }

    /// [`Self::fresh_kept_tokens`] once this node holds the link's refresh: the tokens are read
    /// again (another node may have refreshed them just before), then refreshed if they still
    /// need it.
    async fn refresh_claimed(
        &self,
        user_id: &str,
        provider_id: &str,
        link: &LinkRow,
    ) -> Result<Option<UpstreamTokens>, FreshTokensError> {
        let Some(tokens) = self.kept_tokens(user_id, provider_id).await? else {
            return Ok(None);
        };
        let now = db::now();
        if still_fresh(&tokens, now) {
            return Ok(Some(tokens));
        }
        let Some(refresh) = &tokens.refresh_token else {
            return Ok(None);
        };
        let provider = self
            .provider(provider_id)
            .ok()
            .filter(|p| p.kind == ProviderKind::Discord)
            .ok_or_else(|| {
                FreshTokensError::Provider(format!(
                    "there is no enabled Discord provider called {provider_id:?}"
                ))
            })?;
        let label = provider.label.clone();
        let refreshed = self
            .rp
            .refresh_discord(&provider, refresh, now.and_utc().timestamp())
            .await;
        match refreshed {
            Ok(tokens) => {
                let (access, refresh) = self
                    .sealer
                    .seal(&link.id, &tokens)
                    .map_err(|_| KeptTokensError::Unreadable)?;
                let (id, expires_at) = (link.id.clone(), tokens.expires_at);
                self.db
                    .write(move |conn| {
                        upstream_links::set_tokens(
                            conn,
                            &id,
                            Some((&access, refresh.as_deref(), expires_at)),
                        )
                        .map_err(DbError::from)
                    })
                    .await
                    .map_err(KeptTokensError::from)?;
                Ok(Some(tokens))
            }
            Err(UpstreamError::Invalid(_)) => {
                let (id, user_id) = (link.id.clone(), link.user_id.clone());
                let provider = provider_id.to_owned();
                self.db
                    .write(move |conn| {
                        conn.transaction::<_, diesel::result::Error, _>(|conn| {
                            upstream_links::set_tokens(conn, &id, None)?;
                            audit::record(
                                conn,
                                AuditEvent::new("upstream.tokens_refused")
                                    .user(user_id)
                                    .detail("provider", provider),
                            )
                        })
                        .map_err(DbError::from)
                    })
                    .await
                    .map_err(KeptTokensError::from)?;
                Err(FreshTokensError::Refused(label))
            }
            Err(e) => Err(FreshTokensError::Unreachable(e.to_string())),
        }
    }
}

/// How long a node holds a link's token refresh (longer than the refresh's HTTP timeout).
const TOKEN_REFRESH_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Whether kept `tokens` can be used as they are at `now`: no expiry, or more than a minute
/// left.
fn still_fresh(tokens: &UpstreamTokens, now: chrono::NaiveDateTime) -> bool {
    tokens
        .expires_at
        .is_none_or(|at| at > now + chrono::TimeDelta::seconds(60))
}

/// Why an administrator's removal of a link failed ([`Upstream::remove_link`]).
#[derive(Debug, thiserror::Error)]
pub enum LinkRemovalError {
    /// No such user.
    #[error("the user does not exist")]
    NotFound,
    /// The administrator may not change this account.
    #[error(transparent)]
    Forbidden(#[from] NotAllowed),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for LinkRemovalError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

/// Links `identity` to the signed-in `user_id` (the account page's "link"): refused when it is
/// linked to someone else, or the user already linked another account at this provider.
fn link_to(
    conn: &mut DbConnection,
    (provider_id, issuer, label): (&str, &str, &str),
    brought: Brought<'_>,
    link: Option<&LinkRow>,
    user_id: &str,
    ip: Option<IpAddr>,
) -> diesel::QueryResult<SignInOutcome> {
    let now = db::now();
    match link {
        Some(link) if link.user_id == user_id => {
            touch(conn, link, brought, now)?;
            return Ok(SignInOutcome::Linked {
                user_id: user_id.to_owned(),
                new: false,
            });
        }
        Some(_) => {
            return Ok(SignInOutcome::Refused(format!(
                "this {label} account is already linked to another account here"
            )))
        }
        None => {}
    }
    if users::lock(conn, user_id)?.is_none_or(|u| !u.is_active) {
        return Ok(SignInOutcome::Inactive);
    }
    if linked_at(conn, user_id, provider_id)? {
        return Ok(SignInOutcome::Refused(format!(
            "you have already linked another {label} account: unlink it first"
        )));
    }
    insert_link(conn, (provider_id, issuer), brought, user_id, now)?;
    record(conn, "upstream.linked", user_id, provider_id, ip)?;
    Ok(SignInOutcome::Linked {
        user_id: user_id.to_owned(),
        new: true,
    })
}

/// What a removed link took with it: every browser session and every token of `user_id` whose
/// login went through `provider_id` ends now, so that whoever signed in with the upstream
/// account — the reason to remove it, often — is out at once.
fn cut_off(conn: &mut DbConnection, user_id: &str, provider_id: &str) -> diesel::QueryResult<()> {
    let now = db::now();
    crate::db::user_sessions::end_for_idp(conn, user_id, provider_id, now)?;
    crate::db::tokens::revoke_for_idp(conn, user_id, provider_id, now)?;
    Ok(())
}

/// What a disabled or deleted provider takes with it (when asked): every live browser session
/// and every token whose login went through `provider_id`, whoever's, as [`cut_off`] does for
/// one user (users in id order, each row-locked by the revocation). Returns how many users.
///
/// # Errors
/// Query failures only.
pub(super) fn cut_off_provider(
    conn: &mut DbConnection,
    provider_id: &str,
) -> diesel::QueryResult<usize> {
    let mut users = crate::db::user_sessions::users_with_idp(conn, provider_id)?;
    users.extend(crate::db::tokens::users_with_idp(conn, provider_id)?);
    users.sort();
    users.dedup();
    for user_id in &users {
        cut_off(conn, user_id, provider_id)?;
    }
    Ok(users.len())
}

/// Whether `user_id` already has a link at `provider_id` (one per provider per user).
fn linked_at(
    conn: &mut DbConnection,
    user_id: &str,
    provider_id: &str,
) -> diesel::QueryResult<bool> {
    Ok(upstream_links::for_user(conn, user_id)?
        .iter()
        .any(|l| l.provider_id == provider_id))
}

/// What a sign-in brought: the identity, and the sealer of its tokens when the provider keeps
/// them.
type Brought<'a> = (&'a Identity, Option<&'a TokenSealer>);

/// Makes the link of `identity` to `user_id`, and keeps what comes with it (see [`keep`]).
fn insert_link(
    conn: &mut DbConnection,
    (provider_id, issuer): (&str, &str),
    brought: Brought<'_>,
    user_id: &str,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let identity = brought.0;
    upstream_links::insert(
        conn,
        &LinkRow {
            id: id.clone(),
            user_id: user_id.to_owned(),
            provider_id: provider_id.to_owned(),
            issuer: issuer.to_owned(),
            subject: identity.subject.clone(),
            username: identity.username.clone(),
            display_name: identity.display_name.clone(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            access_token_sealed: None,
            refresh_token_sealed: None,
            token_expires_at: None,
            created_at: now,
            last_login_at: Some(now),
            picture: identity.picture.clone(),
        },
    )?;
    keep(conn, &id, brought, false, now)?;
    if identity.discord.is_some() {
        crate::db::discord_connector::requeue_sign_in_failures(conn, user_id, now)?;
    }
    Ok(())
}

/// Records a sign-in through `link`: the provider's current names and address, and what comes
/// with them (see [`keep`]).
fn touch(
    conn: &mut DbConnection,
    link: &LinkRow,
    brought: Brought<'_>,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    let identity = brought.0;
    upstream_links::touch(
        conn,
        &link.id,
        now,
        (
            &identity.username,
            &identity.display_name,
            identity.email.as_deref(),
            identity.email_verified,
            identity.picture.as_deref(),
        ),
    )?;
    let had_tokens = link.access_token_sealed.is_some() || link.refresh_token_sealed.is_some();
    keep(conn, &link.id, brought, had_tokens, now)?;
    if brought.0.discord.is_some() {
        // Role changes given up for want of a usable guilds.join token try the new one.
        crate::db::discord_connector::requeue_sign_in_failures(conn, &link.user_id, now)?;
    }
    Ok(())
}

/// Keeps what a sign-in brings beside the link `link_id`, in the sign-in's transaction: the
/// Discord profile (`discord_accounts`), refreshed at every Discord sign-in; and, when the
/// provider keeps tokens (a sealer is given), this sign-in's tokens sealed in place of the
/// previous ones. A link that `had_tokens` from when the provider kept them loses them.
fn keep(
    conn: &mut DbConnection,
    link_id: &str,
    (identity, sealer): Brought<'_>,
    had_tokens: bool,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    if let Some(profile) = &identity.discord {
        discord_accounts::upsert(conn, &profile.to_row(link_id, now))?;
    }
    let sealed = match (sealer, &identity.tokens) {
        (Some(sealer), Some(tokens)) => match sealer.seal(link_id, tokens) {
            Ok(sealed) => Some((sealed, tokens.expires_at)),
            Err(e) => {
                // The sign-in stands; the connector finds no tokens and asks for a new one.
                tracing::error!(error = %e, "the upstream tokens could not be sealed; not kept");
                None
            }
        },
        _ => None,
    };
    match sealed {
        Some(((access, refresh), expires_at)) => upstream_links::set_tokens(
            conn,
            link_id,
            Some((&access, refresh.as_deref(), expires_at)),
        ),
        None if sealer.is_some() || had_tokens => upstream_links::set_tokens(conn, link_id, None),
        None => Ok(()),
    }
}

fn record(
    conn: &mut DbConnection,
    event: &'static str,
    user_id: &str,
    provider_id: &str,
    ip: Option<IpAddr>,
) -> diesel::QueryResult<()> {
    audit::record(
        conn,
        AuditEvent::new(event)
            .by(&Actor::user(user_id.to_owned(), ip))
            .user(user_id.to_owned())
            .detail("provider", provider_id.to_owned()),
    )
}

/// Counts an account made by upstream sign-in from `ip` against `accounts.registrations_per_ip`
/// (the bucket password registration counts in, [`crate::accounts::registration::registration_bucket`]);
/// `Some(seconds until the window ends)` when this one is past the limit.
fn registration_limited(
    conn: &mut DbConnection,
    policy: &AccountPolicy,
    ip: Option<IpAddr>,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<Option<u64>> {
    let Some(ip) = ip.filter(|_| policy.registrations_per_ip > 0) else {
        return Ok(None);
    };
    let window = chrono::TimeDelta::from_std(policy.window).unwrap_or(chrono::TimeDelta::days(1));
    let (hits, until) = rate_limits::hit(conn, &registration_bucket(ip), window, now)?;
    Ok((hits > i64::from(policy.registrations_per_ip)).then(|| {
        u64::try_from((until - now).num_seconds())
            .unwrap_or(0)
            .max(1)
    }))
}

/// A new account for `identity`: its address (verified only if the provider verified it), no
/// password, names from the provider, and a username derived from the provider's (or the
/// address's local part) as password registration derives one — never holding `@`, unique
/// without regard to case. `None` when the address is not usable or not in
/// `accounts.allowed_email_domains`.
fn new_user(
    conn: &mut DbConnection,
    identity: &Identity,
    policy: &AccountPolicy,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<Option<UserRow>> {
    let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        return Ok(None);
    };
    if !domain_allowed(&email, &policy.allowed_email_domains) {
        return Ok(None);
    }
    let wanted = if identity.username.is_empty() {
        email.as_str().split('@').next().unwrap_or_default()
    } else {
        identity.username.as_str()
    };
    let username = free_username(conn, &username_base(wanted))?;
    let Ok(username) = Username::parse(&username) else {
        return Ok(None);
    };
    let mut words = identity.display_name.split_whitespace();
    let first_name: String = words.next().unwrap_or_default().chars().take(150).collect();
    let last_name: String = words
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(150)
        .collect();
    Ok(Some(UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.as_str().to_owned(),
        email: email.as_str().to_owned(),
        first_name,
        last_name,
        password_hash: None,
        is_active: true,
        is_staff: false,
        is_superuser: false,
        email_verified: identity.email_verified,
        date_joined: now,
        last_login: None,
        sessions_valid_after: None,
        mfa_enabled: false,
    }))
}
