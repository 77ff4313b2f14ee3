//! The relying-party side of upstream login: the authorization request (RFC 6749 §4.1.1 with
//! PKCE S256, RFC 7636; OIDC Core §3.1.2.1 with a nonce), the code exchange (RFC 6749 §4.1.3),
//! and who signed in — from a verified ID token (OIDC Core §3.1.3.7) or Discord's
//! `GET /users/@me`. Built on the `openidconnect` and `oauth2` crates over reqwest, with
//! redirects off, timeouts and a bound on every answer's size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::Nonce;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use super::discord::{DiscordProfile, RawDiscordUser};
use super::tokens::UpstreamTokens;
use super::{clean, oidc, Identity};
use crate::config::UpstreamProvider;
use crate::domain::ProviderKind;

/// The largest answer read from a provider, in bytes (discovery documents, JWKS, token
/// responses and profiles are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long one call to a provider may take, in seconds (connecting included).
pub const TIMEOUT_SECONDS: u64 = 10;

/// How long a started upstream sign-in may take before its callback, in seconds.
pub const PENDING_LIFETIME_SECONDS: i64 = 600;

/// How long a provider's discovery document (and JWKS) is reused, in seconds.
pub const DISCOVERY_CACHE_SECONDS: u64 = 3600;

/// How long a failed discovery is remembered, in seconds: within it, starting a sign-in at
/// that provider answers at once instead of waiting up to [`TIMEOUT_SECONDS`] again.
pub const DISCOVERY_FAILURE_CACHE_SECONDS: u64 = 30;

/// The least time between two fetches of a provider's JWKS for an ID token signed with an
/// unknown key, in seconds: a rotated key is found at once, and forged `kid`s cannot make
/// this server call the provider on every request.
pub const JWKS_REFETCH_FLOOR_SECONDS: u64 = 60;

/// An upstream sign-in between its start and its callback, kept in the browser's encrypted
/// session: bound to that browser, and removed when the callback reads it (single use).
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The provider's id.
    pub provider: String,
    /// The `state` sent (RFC 6749 §10.12).
    pub state: String,
    /// The PKCE `code_verifier` (RFC 7636 §4.1).
    pub code_verifier: String,
    /// The OIDC `nonce` sent (OIDC Core §3.1.2.1); `None` for Discord.
    pub nonce: Option<String>,
    /// Where to continue after signing in (a local path).
    pub next: String,
    /// When the sign-in started (Unix seconds).
    pub started_at: i64,
    /// The signed-in user who asked to link this provider (the linked-accounts page's
    /// button); `None` for a sign-in, which never links to a signed-in user.
    #[serde(default)]
    pub link_for: Option<String>,
    /// The path of the `redirect_uri` sent (under the issuer): the callback must come back
    /// to it, and the code exchange sends the same URI (RFC 6749 §4.1.3).
    #[serde(default)]
    pub callback_path: String,
    /// The `max_age` sent to an OpenID Connect provider (OIDC Core §3.1.2.1), in seconds: the
    /// Latchkey authorization request behind this sign-in asked for a fresh login
    /// (`prompt=login` gives 0, `max_age` its value). The ID token's `auth_time` must then be
    /// at most this long before the sign-in started.
    #[serde(default)]
    pub max_age: Option<u64>,
}

impl PendingLogin {
    /// Whether a callback with `state` for `provider_id` answers this sign-in (RFC 6749
    /// §10.12; compared in constant time).
    #[must_use]
    pub fn answers(&self, provider_id: &str, state: &str) -> bool {
        self.provider == provider_id
            && crate::secret::ct_eq(self.state.as_bytes(), state.as_bytes())
    }

    /// Whether `path` (a request's path) is the callback this sign-in's `redirect_uri` named,
    /// with or without its trailing slash.
    #[must_use]
    pub fn came_back_to(&self, path: &str) -> bool {
        let bare = self.callback_path.trim_end_matches('/');
        !bare.is_empty() && bare == path.trim_end_matches('/')
    }
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state, verifier and nonce are secrets of this sign-in: never printed.
        f.debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("next", &self.next)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

/// Why an upstream sign-in failed; every one is a readable page with a way back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No enabled provider has that id.
    #[error("there is no sign-in provider called {0:?}")]
    UnknownProvider(String),
    /// The callback's `state` is missing, replayed or not this browser's (RFC 6749 §10.12), or
    /// the sign-in took too long.
    #[error("this sign-in was not started in this browser, was already finished, or took too long; please start again")]
    State,
    /// The user refused at the provider, or the provider answered the authorization request
    /// with an error (RFC 6749 §4.1.2.1).
    #[error("{0}")]
    Denied(String),
    /// The provider could not be reached, was too slow, or answered with an error.
    #[error("{0}")]
    Unreachable(String),
    /// The provider's answer is not acceptable: an invalid ID token (signature, `iss`, `aud`,
    /// `exp`, `nonce`), a missing subject, a refused hosted domain or missing required claim.
    #[error("{0}")]
    Invalid(String),
}

/// An HTTP failure talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, sending or reading failed (timeouts included).
    #[error("{0}")]
    Send(#[from] reqwest::Error),
    /// The answer is larger than [`MAX_RESPONSE_BYTES`].
    #[error("the provider's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The answer could not be rebuilt as an HTTP response.
    #[error("{0}")]
    Build(#[from] oauth2::http::Error),
}

/// The HTTP client for providers: no redirects followed (an OAuth endpoint that redirects is
/// misconfigured or hostile), [`TIMEOUT_SECONDS`], Latchkey's `User-Agent` (Discord requires
/// one).
///
/// # Panics
/// Never in practice: building a reqwest client with these settings cannot fail.
#[must_use]
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(TIMEOUT_SECONDS))
        .connect_timeout(Duration::from_secs(TIMEOUT_SECONDS))
        .user_agent(USER_AGENT)
        .build()
        .expect("the HTTP client's settings are valid")
}

/// [`http_client`] resolving through [`super::dns::PublicOnly`] (public addresses only),
/// without proxies (a proxy would resolve the name itself): for the endpoints a public
/// issuer's discovery document names on other hosts.
///
/// # Panics
/// Never in practice: building a reqwest client with these settings cannot fail.
#[must_use]
pub fn guarded_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(TIMEOUT_SECONDS))
        .connect_timeout(Duration::from_secs(TIMEOUT_SECONDS))
        .user_agent(USER_AGENT)
        .dns_resolver(Arc::new(super::dns::PublicOnly))
        .no_proxy()
        .build()
        .expect("the HTTP client's settings are valid")
}

/// The `User-Agent` of calls to providers.
pub const USER_AGENT: &str = concat!(
    "Latchkey (https://github.com/latchkey, ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// The relying party's two HTTP clients: `plain` ([`http_client`]) for what the operator
/// configured (the issuer, overrides, Discord, Google's tokeninfo), and `guarded`
/// ([`guarded_http_client`]: public addresses only) for the endpoints a public
/// issuer's discovery document names on other hosts.
#[derive(Clone, Debug)]
pub struct HttpClients {
    /// For configured endpoints.
    pub plain: reqwest::Client,
    /// For discovered endpoints on another host than a public issuer's.
    pub guarded: reqwest::Client,
}

impl Default for HttpClients {
    fn default() -> Self {
        Self {
            plain: http_client(),
            guarded: guarded_http_client(),
        }
    }
}

impl HttpClients {
    /// The client for `url`, an endpoint `provider`'s discovery document named
    /// ([`crate::domain::upstream::needs_public_resolution`]).
    #[must_use]
    pub fn for_discovered(&self, provider: &UpstreamProvider, url: &Url) -> &reqwest::Client {
        match provider.issuer.as_deref() {
            Some(issuer) if crate::domain::upstream::needs_public_resolution(issuer, url) => {
                &self.guarded
            }
            _ => &self.plain,
        }
    }
}

/// One request for the `oauth2`/`openidconnect` crates, its answer read to at most
/// [`MAX_RESPONSE_BYTES`].
pub(super) async fn call(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let request = reqwest::Request::try_from(request)?;
    let mut response = client.execute(request).await?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(HttpError::TooLarge);
    }
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(builder.body(body)?)
}

/// [`call`] as an `oauth2` HTTP client whose future is boxed: a background job (the Discord
/// connector's token refresh) can hold it, where the future of a closure client is not `Send`
/// for every lifetime the scheduler asks about.
struct Bounded<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Bounded<'_> {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(call(self.0, request))
    }
}

/// What the relying party knows of one OpenID Connect provider. Its lock is held while the
/// provider is being discovered, so that sign-ins starting together wait for one discovery
/// (and, when it fails, all see the failure) rather than each calling the provider.
#[derive(Default)]
struct ProviderState {
    /// The discovery document and keys, when discovery succeeded.
    discovered: Option<oidc::Discovered>,
    /// The last failed discovery: when, and the error shown.
    failed: Option<(Instant, String)>,
    /// When the JWKS was last fetched again for an unknown key.
    keys_refetched_at: Option<Instant>,
}

/// What is known of one provider: the revision of its settings it was learnt under, and the
/// state itself.
type Learnt = (String, Arc<Mutex<ProviderState>>);

/// The relying party for every configured provider.
pub struct RelyingParty {
    http: reqwest::Client,
    /// Both clients, for OpenID Connect calls to discovered endpoints.
    clients: HttpClients,
    /// Our issuer, without a trailing slash: callbacks are under it.
    issuer: String,
    /// What is known of each OpenID Connect provider, by id, with the revision of the
    /// provider's settings it was learnt under ([`UpstreamProvider::revision`]).
    discovered: Mutex<HashMap<String, Learnt>>,
}

impl RelyingParty {
    /// A relying party whose callbacks are under `issuer`.
    #[must_use]
    pub fn new(issuer: &str) -> Self {
        let clients = HttpClients::default();
        Self {
            http: clients.plain.clone(),
            clients,
            issuer: issuer.trim_end_matches('/').to_owned(),
            discovered: Mutex::new(HashMap::new()),
        }
    }

    /// The redirect URI registered at the provider: `<issuer>` and the provider's callback
    /// path (`/accounts/upstream/<id>/callback/` unless its `callback_path` says otherwise).
    #[must_use]
    pub fn callback_url(&self, provider: &UpstreamProvider) -> String {
        format!("{}{}", self.issuer, provider.callback_path())
    }

    fn redirect_url(&self, provider: &UpstreamProvider) -> Result<RedirectUrl, UpstreamError> {
        self.redirect_url_at(&provider.callback_path())
    }

    /// The redirect URI of callback `path` under the issuer.
    fn redirect_url_at(&self, path: &str) -> Result<RedirectUrl, UpstreamError> {
        RedirectUrl::new(format!("{}{path}", self.issuer))
            .map_err(|e| UpstreamError::Invalid(format!("the callback URL is invalid: {e}")))
    }

    /// Starts a sign-in: the provider's authorization URL to send the browser to, and what to
    /// keep for the callback. `callback_path` is the path of the `redirect_uri` to send (the
    /// provider's own, or a seed's for Discord); `next` is where to continue afterwards;
    /// `link_for` the signed-in user who asked to link the provider, if that is what this is.
    ///
    /// # Errors
    /// [`UpstreamError::Unreachable`] when an OpenID Connect provider's discovery fails.
    pub async fn begin(
        &self,
        provider: &UpstreamProvider,
        callback_path: &str,
        next: &str,
        link_for: Option<String>,
        max_age: Option<u64>,
        now: i64,
    ) -> Result<(Url, PendingLogin), UpstreamError> {
        let redirect = self.redirect_url_at(callback_path)?;
        // A fresh login is passed on to generic OpenID Connect providers only: Google knows no
        // `prompt=login`, and Discord's OAuth 2.0 has neither.
        let max_age = max_age.filter(|_| provider.kind == ProviderKind::Oidc);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = provider.scopes.iter().map(|s| Scope::new(s.clone()));
        let (url, state, nonce) = if provider.kind.is_oidc() {
            let client = CoreClient::from_provider_metadata(
                self.discovered(provider).await?.metadata,
                ClientId::new(provider.client_id.clone()),
                Some(ClientSecret::new(
                    provider.client_secret.expose_secret().to_owned(),
                )),
            )
            .set_redirect_uri(redirect);
            let mut request = client
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                )
                .add_scopes(scopes.filter(|s| s.as_str() != "openid"))
                .set_pkce_challenge(challenge);
            // Google: a single allowed domain is also hinted (the ID token's `hd` is checked
            // either way).
            if let [domain] = provider.allowed_hosted_domains.as_slice() {
                request = request.add_extra_param("hd", domain.clone());
            }
            // OIDC Core §3.1.2.1: the provider authenticates again, or says when it last did.
            if let Some(age) = max_age {
                request = request.add_extra_param("max_age", age.to_string());
                if age == 0 {
                    request = request.add_extra_param("prompt", "login");
                }
            }
            let (url, state, nonce) = request.url();
            (url, state, Some(nonce.secret().clone()))
        } else {
            let (url, state) = self
                .oauth_client(provider, redirect)
                .authorize_url(CsrfToken::new_random)
                .add_scopes(scopes)
                .set_pkce_challenge(challenge)
                .url();
            (url, state, None)
        };
        Ok((
            url,
            PendingLogin {
                provider: provider.id.to_string(),
                state: state.secret().clone(),
                code_verifier: verifier.secret().clone(),
                nonce,
                next: next.to_owned(),
                started_at: now,
                link_for,
                callback_path: callback_path.to_owned(),
                max_age,
            },
        ))
    }

    /// Checks a callback's `state` against the pending sign-in (which the caller has already
    /// removed from the session): the same provider, the same state (constant time), and at
    /// most [`PENDING_LIFETIME_SECONDS`] since the start (RFC 6749 §10.12). At an OpenID
    /// Connect provider, the pending sign-in must also have sent a nonce (OIDC Core
    /// §3.1.2.1, see [`RelyingParty::finish`]).
    ///
    /// # Errors
    /// [`UpstreamError::State`] for a foreign or late callback, or one without a nonce.
    pub fn check_state(
        provider: &UpstreamProvider,
        pending: &PendingLogin,
        state: &str,
        now: i64,
    ) -> Result<(), UpstreamError> {
        let fresh = (0..=PENDING_LIFETIME_SECONDS).contains(&(now - pending.started_at));
        if provider.kind.is_oidc() && pending_nonce(pending).is_none() {
            tracing::warn!(provider = %provider.id, "a callback at an OpenID Connect provider for a sign-in that sent no nonce");
            return Err(UpstreamError::State);
        }
        if fresh && pending.answers(provider.id.as_str(), state) {
            Ok(())
        } else {
            Err(UpstreamError::State)
        }
    }

    /// Finishes a sign-in whose state passed [`Self::check_state`] (and was recorded as used):
    /// exchanges `code` with the pending sign-in's PKCE verifier, and says who signed in. At
    /// an OpenID Connect provider the pending sign-in's nonce is required, and the ID token
    /// must carry it: a sign-in that sent none (a Discord one begun under a provider id that
    /// has since become an OpenID Connect provider) would otherwise accept any ID token the
    /// provider issued for this client, replayed or injected (OIDC Core §3.1.2.1, §15.5.2).
    ///
    /// # Errors
    /// [`UpstreamError::Unreachable`] when the provider fails; [`UpstreamError::Invalid`] for
    /// an answer that does not verify; [`UpstreamError::State`] for an OpenID Connect sign-in
    /// that sent no nonce.
    pub async fn finish(
        &self,
        provider: &UpstreamProvider,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<Identity, UpstreamError> {
        let code = AuthorizationCode::new(code.to_owned());
        let verifier = PkceCodeVerifier::new(pending.code_verifier.clone());
        match provider.kind {
            ProviderKind::Discord => {
                // RFC 6749 §4.1.3: the redirect URI of the authorization request, again.
                let redirect = self.redirect_url_at(&pending.callback_path)?;
                let now = crate::db::now().and_utc().timestamp();
                self.discord_identity(provider, redirect, code, verifier, now)
                    .await
            }
            ProviderKind::Google | ProviderKind::Oidc => {
                let nonce = pending_nonce(pending).ok_or(UpstreamError::State)?;
                let fresh = pending.max_age.map(|age| (age, pending.started_at));
                self.oidc_identity(provider, code, verifier, nonce, fresh)
                    .await
            }
        }
    }

    /// The state kept for `provider`: a fresh one when none is kept, or when what is kept was
    /// learnt under another revision of the provider's settings (changed in the console: its
    /// issuer, endpoints or keys may be others now).
    async fn state_of(&self, provider: &UpstreamProvider) -> Arc<Mutex<ProviderState>> {
        let mut map = self.discovered.lock().await;
        let entry = map
            .entry(provider.id.to_string())
            .or_insert_with(|| (provider.revision.clone(), Arc::default()));
        if entry.0 != provider.revision {
            *entry = (provider.revision.clone(), Arc::default());
        }
        entry.1.clone()
    }

    /// Drops what is known of provider `id` (discovery, keys, a remembered failure): its
    /// settings changed, or it was deleted. The next sign-in with it starts afresh.
    pub async fn forget(&self, id: &str) {
        self.discovered.lock().await.remove(id);
    }

    /// The provider's discovery document and keys ([`oidc::discover`]), cached for
    /// [`DISCOVERY_CACHE_SECONDS`]; a failure is remembered for
    /// [`DISCOVERY_FAILURE_CACHE_SECONDS`], during which no call is made.
    async fn discovered(
        &self,
        provider: &UpstreamProvider,
    ) -> Result<oidc::Discovered, UpstreamError> {
        let state = self.state_of(provider).await;
        let mut state = state.lock().await;
        if let Some(discovered) = &state.discovered {
            if discovered.fetched_at.elapsed() < Duration::from_secs(DISCOVERY_CACHE_SECONDS) {
                return Ok(discovered.clone());
            }
        }
        if let Some((at, message)) = &state.failed {
            if at.elapsed() < Duration::from_secs(DISCOVERY_FAILURE_CACHE_SECONDS) {
                return Err(UpstreamError::Unreachable(message.clone()));
            }
        }
        match oidc::discover(&self.clients, provider).await {
            Ok(discovered) => {
                state.discovered = Some(discovered.clone());
                state.failed = None;
                Ok(discovered)
            }
            Err(UpstreamError::Unreachable(message)) => {
                state.failed = Some((Instant::now(), message.clone()));
                Err(UpstreamError::Unreachable(message))
            }
            Err(e) => Err(e),
        }
    }

    /// The provider with its JWKS fetched again, for an ID token signed with a key not in
    /// hand (the provider rotated its keys) — at most once per
    /// [`JWKS_REFETCH_FLOOR_SECONDS`]; `None` when that was done too recently or failed.
    async fn refetch_keys(&self, provider: &UpstreamProvider) -> Option<oidc::Discovered> {
        let state = self.state_of(provider).await;
        // The floor is claimed under the lock, the JWKS fetched without it (a slow provider
        // must not hold up every sign-in with it, nor discovery), then the keys put in place.
        let jwks_uri = {
            let mut state = state.lock().await;
            if state
                .keys_refetched_at
                .is_some_and(|at| at.elapsed() < Duration::from_secs(JWKS_REFETCH_FLOOR_SECONDS))
            {
                return None;
            }
            state.keys_refetched_at = Some(Instant::now());
            state.discovered.as_ref()?.metadata.jwks_uri().url().clone()
        };
        let http = self.clients.for_discovered(provider, &jwks_uri);
        match oidc::fetch_keys(http, &jwks_uri).await {
            Ok(keys) => {
                let mut state = state.lock().await;
                // Discovery may have run meanwhile; the keys belong to the document they came
                // from.
                let discovered = state
                    .discovered
                    .as_mut()
                    .filter(|d| *d.metadata.jwks_uri().url() == jwks_uri)?;
                discovered.keys = keys;
                Some(discovered.clone())
            }
            Err(e) => {
                tracing::warn!(provider = %provider.id, error = %e, "refetching the JWKS failed");
                None
            }
        }
    }

    /// [`oidc::verify_id_token`], with the JWKS fetched again once when the token's key is
    /// unknown ([`RelyingParty::refetch_keys`]).
    async fn verify_id_token(
        &self,
        provider: &UpstreamProvider,
        discovered: &oidc::Discovered,
        id_token: &str,
        audience: oidc::Audience<'_>,
        nonce: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
        match oidc::verify_id_token(provider, discovered, id_token, audience, nonce) {
            Err(oidc::TokenProblem::UnknownKey) => match self.refetch_keys(provider).await {
                Some(fresh) => oidc::verify_id_token(provider, &fresh, id_token, audience, nonce),
                None => Err(oidc::TokenProblem::UnknownKey),
            },
            verified => verified,
        }
        .map_err(|problem| refused_id_token(provider, &problem))
    }

    /// RFC 9207 §2.4: the `iss` of an authorization response must be the provider's issuer,
    /// and a provider whose discovery document says it sends one
    /// (`authorization_response_iss_parameter_supported`) must have sent it — otherwise the
    /// answer may come from another provider this server also uses (a mix-up attack). Discord
    /// has no issuer: its callbacks are not checked.
    ///
    /// # Errors
    /// [`UpstreamError::State`] for a missing or foreign `iss`; discovery's errors.
    pub async fn check_issuer(
        &self,
        provider: &UpstreamProvider,
        iss: Option<&str>,
    ) -> Result<(), UpstreamError> {
        if !provider.kind.is_oidc() {
            return Ok(());
        }
        let discovered = self.discovered(provider).await?;
        let required = discovered
            .metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported;
        match iss {
            Some(iss) if iss == discovered.issuer() => Ok(()),
            None if !required => Ok(()),
            _ => {
                tracing::warn!(provider = %provider.id, iss, "an authorization response with a missing or foreign iss (RFC 9207)");
                Err(UpstreamError::State)
            }
        }
    }

    /// Who a token that a first-party app obtained from `provider` says signed in (RFC 8693
    /// `subject_token`; no browser, so no state, PKCE or nonce), at `now` (Unix seconds):
    /// - an ID token is verified like a sign-in's ([`oidc::verify_id_token`]: not a JWT access
    ///   token, signature with the JWKS, `iss`, `exp`), except that every audience and the
    ///   `azp` must be among the provider's `accepted_audiences` (the apps' own client ids,
    ///   [`oidc::Audience::FirstParty`]) and no nonce is asked; it must have been issued at
    ///   most [`oidc::EXCHANGE_MAX_AGE_SECONDS`] ago, and the answer carries the
    ///   [`oidc::SingleUse`] record the caller keeps so that it is exchanged once;
    /// - an access token (Google only, when its `accept_access_tokens` is on) is first checked
    ///   at Google's tokeninfo endpoint ([`oidc::tokeninfo`]: `aud` — and `azp` when present —
    ///   an accepted client id, not expired), then UserInfo says who it is, for the same
    ///   subject; it too is exchanged once ([`oidc::SingleUse`], until it expires).
    ///
    /// Then the provider's own rules ([`oidc::admit`]), `hd` read from the ID token, or from
    /// UserInfo for an access token.
    ///
    /// # Errors
    /// [`UpstreamError::Invalid`] for a token that does not verify or is someone else's (and for
    /// an access token at a provider that is not Google); [`UpstreamError::Unreachable`] when
    /// the provider cannot be reached.
    pub async fn token_identity(
        &self,
        provider: &UpstreamProvider,
        token: &oidc::SubjectToken,
        now: i64,
    ) -> Result<(Identity, Option<oidc::SingleUse>), UpstreamError> {
        if !provider.kind.is_oidc() {
            return Err(UpstreamError::Invalid(format!(
                "{} is not an OpenID Connect provider",
                provider.label
            )));
        }
        let discovered = self.discovered(provider).await?;
        match token {
            oidc::SubjectToken::IdToken(id_token) => {
                let audience = oidc::Audience::FirstParty(&provider.accepted_audiences);
                let claims = self
                    .verify_id_token(provider, &discovered, id_token, audience, None)
                    .await?;
                let once = oidc::exchange_once(id_token, &claims, now)
                    .map_err(|why| refused_id_token(provider, &oidc::TokenProblem::Invalid(why)))?;
                oidc::admit(
                    provider,
                    claims.get("hd").and_then(serde_json::Value::as_str),
                    &claims,
                )?;
                Ok((oidc::identity(&claims, &provider.label)?, Some(once)))
            }
            oidc::SubjectToken::AccessToken(access_token) => {
                let endpoint = match &provider.tokeninfo_endpoint {
                    Some(endpoint) if provider.accept_access_tokens => endpoint,
                    _ => {
                        return Err(UpstreamError::Invalid(format!(
                            "access tokens are not accepted from {0}; send {0}'s ID token",
                            provider.label
                        )))
                    }
                };
                let (info, once) =
                    oidc::tokeninfo(&self.http, provider, endpoint, access_token, now).await?;
                let subject = info.get("sub").and_then(serde_json::Value::as_str);
                let claims =
                    oidc::userinfo(&self.clients, provider, &discovered, access_token, subject)
                        .await?
                        .ok_or_else(|| {
                            UpstreamError::Invalid(format!(
                                "{} has no UserInfo endpoint to say whose this access token is",
                                provider.label
                            ))
                        })?;
                oidc::admit(
                    provider,
                    claims.get("hd").and_then(serde_json::Value::as_str),
                    &claims,
                )?;
                Ok((oidc::identity(&claims, &provider.label)?, Some(once)))
            }
        }
    }

    /// An OpenID Connect sign-in: the code exchange, then the ID token verified against the
    /// issuer's JWKS ([`oidc::verify_id_token`]: signature, `iss` — Google also issues the
    /// spelling without `https://` —, `aud`, `azp`, `exp`, `nonce`), then UserInfo for the same
    /// subject when the provider has it, and the provider's own rules ([`oidc::admit`]):
    /// Google's hosted domains, the required claims.
    async fn oidc_identity(
        &self,
        provider: &UpstreamProvider,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
        nonce: &str,
        fresh: Option<(u64, i64)>,
    ) -> Result<Identity, UpstreamError> {
        let discovered = self.discovered(provider).await?;
        let tokens = oidc::exchange_code(
            &self.clients,
            provider,
            &discovered,
            self.redirect_url(provider)?,
            code,
            verifier,
        )
        .await?;
        let audience = oidc::Audience::RelyingParty {
            client_id: &provider.client_id,
            trusted: &provider.accepted_audiences,
        };
        let claims = self
            .verify_id_token(
                provider,
                &discovered,
                &tokens.id_token,
                audience,
                Some(nonce),
            )
            .await?;
        if let Some((max_age, started_at)) = fresh {
            check_auth_time(provider, &claims, max_age, started_at)?;
        }
        let subject = claims.get("sub").and_then(serde_json::Value::as_str);
        let userinfo = oidc::userinfo(
            &self.clients,
            provider,
            &discovered,
            &tokens.access_token,
            subject,
        )
        .await?;
        let all = oidc::merged(&claims, userinfo);
        oidc::admit(
            provider,
            claims.get("hd").and_then(serde_json::Value::as_str),
            &all,
        )?;
        oidc::identity(&all, &provider.label)
    }

    /// The OAuth 2.0 client for Discord, sending `redirect`: its endpoints unless overridden.
    fn oauth_client(
        &self,
        provider: &UpstreamProvider,
        redirect: RedirectUrl,
    ) -> BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    > {
        let parse = |raw: &str| Url::parse(raw).expect("Discord's endpoints are URLs");
        let auth = provider
            .authorization_endpoint
            .clone()
            .unwrap_or_else(|| parse("https://discord.com/oauth2/authorize"));
        let token = provider
            .token_endpoint
            .clone()
            .unwrap_or_else(|| parse("https://discord.com/api/oauth2/token"));
        BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                provider.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(auth))
            .set_token_uri(TokenUrl::from_url(token))
            .set_redirect_uri(redirect)
    }

    /// A Discord sign-in: the code exchange, then `GET /users/@me` (API v10) with the new
    /// token. The subject is the user's snowflake; the name is the unique username, or the
    /// legacy `name#1234` tag where the discriminator is not `"0"`. The identity carries the
    /// whole profile and the tokens (their expiry counted from `now`, Unix seconds). `redirect`
    /// is the authorization request's redirect URI.
    async fn discord_identity(
        &self,
        provider: &UpstreamProvider,
        redirect: RedirectUrl,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let http = |request| call(&self.http, request);
        let tokens = self
            .oauth_client(provider, redirect)
            .exchange_code(code)
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .map_err(|e| token_failure(&provider.label, &e))?;
        let base = provider
            .api_base
            .as_ref()
            .map_or("https://discord.com/api/v10", Url::as_str)
            .trim_end_matches('/');
        let request = oauth2::http::Request::get(format!("{base}/users/@me"))
            .header(
                oauth2::http::header::AUTHORIZATION,
                format!("Bearer {}", tokens.access_token().secret()),
            )
            .body(Vec::new())
            .map_err(|e| UpstreamError::Invalid(format!("the profile request is invalid: {e}")))?;
        let response = call(&self.http, request).await.map_err(|e| {
            tracing::warn!(provider = %provider.id, error = %e, "reading the Discord profile failed");
            UpstreamError::Unreachable("Discord's profile could not be read".to_owned())
        })?;
        if !response.status().is_success() {
            return Err(UpstreamError::Unreachable(format!(
                "Discord's profile could not be read (HTTP {})",
                response.status().as_u16()
            )));
        }
        let me: DiscordUser = serde_json::from_slice(response.body()).map_err(|e| {
            UpstreamError::Invalid(format!("Discord's profile is not what Discord sends: {e}"))
        })?;
        let expires_at = expiry(tokens.expires_in(), now);
        Ok(Identity {
            tokens: Some(UpstreamTokens {
                access_token: SecretString::from(tokens.access_token().secret().as_str()),
                refresh_token: tokens
                    .refresh_token()
                    .map(|r| SecretString::from(r.secret().as_str())),
                expires_at,
            }),
            ..me.identity()?
        })
    }
}

impl RelyingParty {
    /// New Discord tokens for a kept refresh token (RFC 6749 §6), their expiry counted from
    /// `now` (Unix seconds). Discord rotates refresh tokens: the answer's refresh token replaces
    /// the old one (kept when the answer has none, RFC 6749 §5.1).
    ///
    /// # Errors
    /// [`UpstreamError::Invalid`] when Discord refuses the refresh token (RFC 6749 §5.2:
    /// revoked, expired, the application de-authorized) — the user must sign in with Discord
    /// again; [`UpstreamError::Unreachable`] when Discord cannot be reached or fails.
    pub async fn refresh_discord(
        &self,
        provider: &UpstreamProvider,
        refresh_token: &SecretString,
        now: i64,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let redirect = self.redirect_url(provider)?;
        let tokens = self
            .oauth_client(provider, redirect)
            .exchange_refresh_token(&oauth2::RefreshToken::new(
                refresh_token.expose_secret().to_owned(),
            ))
            .request_async(&Bounded(&self.http))
            .await
            .map_err(|e| token_failure(&provider.label, &e))?;
        Ok(UpstreamTokens {
            access_token: SecretString::from(tokens.access_token().secret().as_str()),
            refresh_token: Some(tokens.refresh_token().map_or_else(
                || refresh_token.clone(),
                |r| SecretString::from(r.secret().as_str()),
            )),
            expires_at: expiry(tokens.expires_in(), now),
        })
    }
}

/// RFC 6749 §5.1: `expires_in` is the access token's lifetime in seconds, counted from `now`
/// (Unix seconds); bounded to a year, so that no answer makes an unrepresentable time.
fn expiry(lifetime: Option<Duration>, now: i64) -> Option<chrono::NaiveDateTime> {
    lifetime.and_then(|lifetime| {
        let seconds = i64::try_from(lifetime.as_secs()).ok()?.min(365 * 24 * 3600);
        chrono::DateTime::from_timestamp(now.checked_add(seconds)?, 0).map(|t| t.naive_utc())
    })
}

/// The page of a failed code exchange: the provider refusing the code (RFC 6749 §5.2, e.g. a
/// code used twice) is not worth a retry; anything else (down, slow, 429, 5xx) is. The detail
/// goes to the log, not the page.
pub(super) fn token_failure<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    label: &str,
    e: &oauth2::RequestTokenError<RE, T>,
) -> UpstreamError {
    tracing::warn!(provider = label, error = %e, "an upstream code exchange failed");
    match e {
        oauth2::RequestTokenError::ServerResponse(_) => UpstreamError::Invalid(format!(
            "{label} did not accept this sign-in; please start again"
        )),
        _ => UpstreamError::Unreachable(format!("{label} could not be reached")),
    }
}

/// The nonce `pending` sent, when it sent one (an empty one counts as none).
fn pending_nonce(pending: &PendingLogin) -> Option<&str> {
    pending.nonce.as_deref().filter(|n| !n.is_empty())
}

/// Leeway for the provider's clock when `auth_time` is compared with ours, in seconds.
const AUTH_TIME_LEEWAY_SECONDS: i64 = 60;

/// OIDC Core §3.1.2.1: with `max_age` sent, the ID token MUST carry `auth_time`, and the
/// provider's authentication must be at most `max_age` seconds older than the sign-in's start
/// (`started_at`, Unix seconds), give or take [`AUTH_TIME_LEEWAY_SECONDS`].
fn check_auth_time(
    provider: &UpstreamProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
    max_age: u64,
    started_at: i64,
) -> Result<(), UpstreamError> {
    let Some(auth_time) = claims.get("auth_time").and_then(serde_json::Value::as_i64) else {
        return Err(UpstreamError::Invalid(format!(
            "{} did not say when you signed in there, and this application asked for a fresh sign-in",
            provider.label
        )));
    };
    let oldest = started_at
        .saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX))
        .saturating_sub(AUTH_TIME_LEEWAY_SECONDS);
    if auth_time < oldest {
        return Err(UpstreamError::Invalid(format!(
            "{} used an earlier sign-in, and this application asked for a fresh one: sign out at {} and try again",
            provider.label, provider.label
        )));
    }
    Ok(())
}

/// The page of a refused ID token; the detail goes to the log too.
fn refused_id_token(provider: &UpstreamProvider, problem: &oidc::TokenProblem) -> UpstreamError {
    let why = match problem {
        oidc::TokenProblem::UnknownKey => "it is signed with a key the provider does not publish",
        oidc::TokenProblem::Invalid(why) => why.as_str(),
    };
    tracing::warn!(provider = %provider.id, reason = why, "an upstream ID token was refused");
    UpstreamError::Invalid(format!("{}'s ID token is invalid: {why}", provider.label))
}

/// The longest subject accepted, in bytes (OIDC Core §2: at most 255 ASCII characters).
const MAX_SUBJECT_BYTES: usize = 255;

/// Whether `picture` is shown and stored: an https URL of at most [`MAX_PICTURE_BYTES`]
/// (pages load it as an image; the Content-Security-Policy's `img-src` allows https).
fn picture_ok(picture: &str) -> bool {
    picture.len() <= super::MAX_PICTURE_BYTES
        && Url::parse(picture).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
}

impl Identity {
    /// `self` with every string the provider chose made safe to store and show: a subject of
    /// 1 to 255 visible ASCII characters (or an error), names without control characters and
    /// at most 150 characters, the address kept only when it is a valid one.
    pub(super) fn checked(self, label: &str) -> Result<Self, UpstreamError> {
        if self.subject.is_empty()
            || self.subject.len() > MAX_SUBJECT_BYTES
            || !self.subject.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(UpstreamError::Invalid(format!(
                "{label} sent an unusable account identifier"
            )));
        }
        // An address with anything but ASCII is not kept: Unicode lower-casing folds some
        // characters into ASCII ones (the Kelvin sign K into k), and a provider-verified
        // "\u{212A}im@corp.example" must not become the verified kim@corp.example here.
        let email = self
            .email
            .as_deref()
            .filter(|e| e.is_ascii())
            .and_then(|e| crate::domain::Email::parse(&e.to_ascii_lowercase()).ok())
            .map(|e| e.as_str().to_owned());
        Ok(Self {
            email_verified: self.email_verified && email.is_some(),
            email,
            username: clean(&self.username, 150),
            display_name: clean(&self.display_name, 150),
            picture: self.picture.filter(|p| picture_ok(p)),
            subject: self.subject,
            // A domain name: ASCII only, like the address.
            hosted_domain: self
                .hosted_domain
                .filter(|hd| hd.is_ascii() && hd.len() <= 253),
            discord: self.discord,
            tokens: self.tokens,
        })
    }
}

/// Discord's user object (`GET /users/@me`, API v10): what a sign-in reads and what the Discord
/// profile keeps.
#[derive(Debug, Deserialize)]
struct DiscordUser {
    id: String,
    username: String,
    #[serde(default)]
    discriminator: Option<String>,
    #[serde(default)]
    global_name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    public_flags: Option<i64>,
    #[serde(default)]
    flags: Option<i64>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    mfa_enabled: Option<bool>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    verified: Option<bool>,
}

impl DiscordUser {
    /// Who signed in, with their Discord profile: the subject is the snowflake (refused unless
    /// it is a decimal 64-bit id), the name the tag Discord shows.
    fn identity(self) -> Result<Identity, UpstreamError> {
        let identity = Identity {
            subject: self.id.clone(),
            display_name: self
                .global_name
                .clone()
                .unwrap_or_else(|| self.username.clone()),
            username: self.username.clone(),
            email: self.email,
            email_verified: self.verified.unwrap_or(false),
            hosted_domain: None,
            picture: None,
            discord: None,
            tokens: None,
        }
        .checked("Discord")?;
        let profile = DiscordProfile::new(RawDiscordUser {
            id: self.id,
            username: self.username,
            discriminator: self.discriminator,
            global_name: self.global_name,
            avatar: self.avatar,
            public_flags: self.public_flags,
            flags: self.flags,
            locale: self.locale,
            mfa_enabled: self.mfa_enabled,
            email: identity.email.clone(),
            verified: self.verified,
        })
        .ok_or_else(|| {
            UpstreamError::Invalid("Discord sent an unusable account identifier".to_owned())
        })?;
        Ok(Identity {
            username: profile.tag(),
            picture: Some(profile.avatar_url()),
            discord: Some(profile),
            ..identity
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_names_are_the_unique_username_or_the_legacy_tag() {
        let user = |discriminator: Option<&str>, global: Option<&str>| DiscordUser {
            id: "80351110224678912".to_owned(),
            username: "nelly".to_owned(),
            discriminator: discriminator.map(str::to_owned),
            global_name: global.map(str::to_owned),
            avatar: None,
            public_flags: Some(0),
            flags: None,
            locale: Some("en-US".to_owned()),
            mfa_enabled: Some(false),
            email: Some("Nelly@Example.com".to_owned()),
            verified: Some(true),
        };
        let new = user(Some("0"), Some("Nelly")).identity().expect("valid");
        assert_eq!(new.username, "nelly");
        assert_eq!(new.display_name, "Nelly");
        assert_eq!(new.email.as_deref(), Some("nelly@example.com"));
        assert!(new.email_verified);
        assert_eq!(
            user(Some("1337"), None).identity().expect("valid").username,
            "nelly#1337"
        );
        assert_eq!(
            user(None, None).identity().expect("valid").display_name,
            "nelly"
        );
        let hostile = DiscordUser {
            global_name: Some("Nel\u{0}ly\u{202e}".to_owned()),
            email: Some("not an address".to_owned()),
            ..user(Some("0"), None)
        };
        let cleaned = hostile.identity().expect("valid");
        assert_eq!(cleaned.display_name, "Nelly");
        assert_eq!((cleaned.email, cleaned.email_verified), (None, false));
        // The Kelvin sign lower-cases to an ASCII k: such an address is not kept at all, so it
        // can neither match kim@… for linking nor register as a verified kim@….
        let kelvin = DiscordUser {
            email: Some("\u{212A}im@corp.example".to_owned()),
            ..user(Some("0"), None)
        };
        let kept = kelvin.identity().expect("valid");
        assert_eq!((kept.email, kept.email_verified), (None, false));
        let no_id = DiscordUser {
            id: "a b".to_owned(),
            ..user(Some("0"), None)
        };
        assert!(no_id.identity().is_err());
        // A subject that is not a 64-bit snowflake makes no profile, so no sign-in.
        let not_a_snowflake = DiscordUser {
            id: "abc".to_owned(),
            ..user(Some("0"), None)
        };
        assert!(not_a_snowflake.identity().is_err());
        let profile = new.discord.expect("a Discord sign-in carries the profile");
        assert_eq!(profile.id, 80_351_110_224_678_912);
        assert_eq!(profile.email.as_deref(), Some("nelly@example.com"));
        assert_eq!(profile.locale.as_deref(), Some("en-US"));
    }
}
