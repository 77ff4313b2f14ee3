//! The relying-party side of upstream login: the authorization request (RFC 6749 §4.1.1 with
//! PKCE S256, RFC 7636; OIDC Core §3.1.2.1 with a nonce), the code exchange (RFC 6749 §4.1.3),
//! and who signed in — from a verified ID token (OIDC Core §3.1.3.7) or Discord's
//! `GET /users/@me`. Built on the `openidconnect` and `oauth2` crates over reqwest, with
//! redirects off, timeouts and a bound on every answer's size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{IssuerUrl, Nonce, UserInfoUrl};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use super::discord::{DiscordProfile, RawDiscordUser};
use super::tokens::UpstreamTokens;
use super::{clean, Identity};
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
        .user_agent(concat!(
            "Latchkey (https://github.com/latchkey, ",
            env!("CARGO_PKG_VERSION"),
            ")"
        ))
        .build()
        .expect("the HTTP client's settings are valid")
}

/// One request for the `oauth2`/`openidconnect` crates, its answer read to at most
/// [`MAX_RESPONSE_BYTES`].
async fn call(
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

/// The relying party for every configured provider.
pub struct RelyingParty {
    http: reqwest::Client,
    /// Our issuer, without a trailing slash: callbacks are under it.
    issuer: String,
    /// Discovery documents by provider id, with when they were fetched.
    discovered: Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>,
}

impl RelyingParty {
    /// A relying party whose callbacks are under `issuer`.
    #[must_use]
    pub fn new(issuer: &str) -> Self {
        Self {
            http: http_client(),
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
        now: i64,
    ) -> Result<(Url, PendingLogin), UpstreamError> {
        let redirect = self.redirect_url_at(callback_path)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = provider.scopes.iter().map(|s| Scope::new(s.clone()));
        let (url, state, nonce) = if provider.kind.is_oidc() {
            let client = CoreClient::from_provider_metadata(
                self.metadata(provider).await?,
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
            },
        ))
    }

    /// Finishes a sign-in at the callback: checks `state` against the pending sign-in (which
    /// the caller has already removed from the session), exchanges `code`, and says who
    /// signed in.
    ///
    /// # Errors
    /// [`UpstreamError::State`] for a foreign or late callback; [`UpstreamError::Unreachable`]
    /// when the provider fails; [`UpstreamError::Invalid`] for an answer that does not verify.
    pub async fn finish(
        &self,
        provider: &UpstreamProvider,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let fresh = (0..=PENDING_LIFETIME_SECONDS).contains(&(now - pending.started_at));
        if !fresh || !pending.answers(provider.id.as_str(), state) {
            return Err(UpstreamError::State);
        }
        let code = AuthorizationCode::new(code.to_owned());
        let verifier = PkceCodeVerifier::new(pending.code_verifier.clone());
        match provider.kind {
            ProviderKind::Discord => {
                // RFC 6749 §4.1.3: the redirect URI of the authorization request, again.
                let redirect = self.redirect_url_at(&pending.callback_path)?;
                self.discord_identity(provider, redirect, code, verifier, now)
                    .await
            }
            ProviderKind::Google | ProviderKind::Oidc => {
                let nonce = Nonce::new(pending.nonce.clone().unwrap_or_default());
                self.oidc_identity(provider, code, verifier, &nonce).await
            }
        }
    }

    /// The provider's discovery document (OIDC Discovery 1.0 §4, which also fetches its
    /// JWKS), cached for [`DISCOVERY_CACHE_SECONDS`], with the configured endpoint overrides.
    async fn metadata(
        &self,
        provider: &UpstreamProvider,
    ) -> Result<CoreProviderMetadata, UpstreamError> {
        let id = provider.id.to_string();
        if let Some((metadata, at)) = self.discovered.lock().await.get(&id) {
            if at.elapsed() < Duration::from_secs(DISCOVERY_CACHE_SECONDS) {
                return Ok(metadata.clone());
            }
        }
        let issuer = provider
            .issuer
            .as_ref()
            .ok_or_else(|| UpstreamError::Invalid("the provider has no issuer".to_owned()))?;
        let issuer = IssuerUrl::new(issuer.clone())
            .map_err(|e| UpstreamError::Invalid(format!("the issuer is invalid: {e}")))?;
        let http = |request| call(&self.http, request);
        let mut metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %provider.id, error = %e, "upstream discovery failed");
                UpstreamError::Unreachable(format!("{} could not be reached", provider.label))
            })?;
        // What discovery names is checked like what is configured: https (or loopback http),
        // no credentials — a document pointing the token endpoint or the JWKS elsewhere would
        // otherwise receive the client secret, the code and the verifier.
        let discovered = [
            Some(metadata.authorization_endpoint().url().as_str()),
            metadata.token_endpoint().map(|u| u.url().as_str()),
            metadata.userinfo_endpoint().map(|u| u.url().as_str()),
            Some(metadata.jwks_uri().url().as_str()),
        ];
        for url in discovered.into_iter().flatten() {
            if let Err(e) = crate::domain::upstream::endpoint_url(url) {
                tracing::warn!(provider = %provider.id, url, "a discovered endpoint is refused");
                return Err(UpstreamError::Unreachable(format!(
                    "{}'s discovery document names an endpoint this server will not call (it {e})",
                    provider.label
                )));
            }
        }
        if let Some(url) = &provider.authorization_endpoint {
            metadata = metadata.set_authorization_endpoint(AuthUrl::from_url(url.clone()));
        }
        if let Some(url) = &provider.token_endpoint {
            metadata = metadata.set_token_endpoint(Some(TokenUrl::from_url(url.clone())));
        }
        if let Some(url) = &provider.userinfo_endpoint {
            metadata = metadata.set_userinfo_endpoint(Some(UserInfoUrl::from_url(url.clone())));
        }
        self.discovered
            .lock()
            .await
            .insert(id, (metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// An OpenID Connect sign-in: the code exchange, then the ID token verified against the
    /// issuer's JWKS — signature, `iss` (Google also issues the spelling without `https://`),
    /// `aud`, `azp` when several audiences, `exp`, `nonce` (OIDC Core §3.1.3.7) — and the
    /// provider's own rules: Google's hosted domains, the required claims.
    async fn oidc_identity(
        &self,
        provider: &UpstreamProvider,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
        nonce: &Nonce,
    ) -> Result<Identity, UpstreamError> {
        let metadata = self.metadata(provider).await?;
        let configured_issuer = metadata.issuer().as_str().to_owned();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(
                provider.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect_url(provider)?);
        let http = |request| call(&self.http, request);
        let tokens = client
            .exchange_code(code)
            .map_err(|e| {
                UpstreamError::Invalid(format!("the provider has no token endpoint: {e}"))
            })?
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .map_err(|e| token_failure(&provider.label, &e))?;
        let id_token = openidconnect::TokenResponse::id_token(&tokens).ok_or_else(|| {
            UpstreamError::Invalid(format!("{} sent no ID token", provider.label))
        })?;
        let google = provider.kind == ProviderKind::Google;
        let verifier = client.id_token_verifier().require_issuer_match(!google);
        let claims = id_token.claims(&verifier, nonce).map_err(|e| {
            UpstreamError::Invalid(format!("{}'s ID token is invalid: {e}", provider.label))
        })?;
        if google {
            let iss = claims.issuer().as_str();
            if iss != configured_issuer && iss != "accounts.google.com" {
                return Err(UpstreamError::Invalid(format!(
                    "Google's ID token names another issuer ({iss})"
                )));
            }
        }
        // Claims outside the standard set (Google's `hd`, the required claims), read from the
        // payload the verifier has just accepted.
        let extra = payload(&id_token.to_string())
            .ok_or_else(|| UpstreamError::Invalid("the ID token cannot be read".to_owned()))?;
        if !provider.allowed_hosted_domains.is_empty() {
            let hd = extra.get("hd").and_then(|v| v.as_str()).unwrap_or_default();
            if !provider
                .allowed_hosted_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(hd))
            {
                return Err(UpstreamError::Invalid(format!(
                    "this {} account does not belong to an allowed organisation",
                    provider.label
                )));
            }
        }
        for (name, wanted) in &provider.required_claims {
            let has = match extra.get(name) {
                Some(serde_json::Value::String(s)) => s == wanted,
                Some(serde_json::Value::Array(items)) => {
                    items.iter().any(|i| i.as_str() == Some(wanted.as_str()))
                }
                _ => false,
            };
            if !has {
                return Err(UpstreamError::Invalid(format!(
                    "this {} account may not sign in here (it lacks the required {name})",
                    provider.label
                )));
            }
        }
        let text = |v: Option<String>| v.unwrap_or_default();
        Identity {
            subject: claims.subject().as_str().to_owned(),
            username: text(claims.preferred_username().map(|u| u.as_str().to_owned())),
            display_name: text(
                claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned()),
            ),
            email: claims.email().map(|e| e.as_str().to_lowercase()),
            email_verified: claims.email_verified().unwrap_or(false),
            discord: None,
            tokens: None,
        }
        .checked(&provider.label)
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
        // RFC 6749 §5.1: `expires_in` is the access token's lifetime in seconds (bounded here
        // to a year, so that no answer makes an unrepresentable time).
        let expires_at = tokens.expires_in().and_then(|lifetime| {
            let seconds = i64::try_from(lifetime.as_secs()).ok()?.min(365 * 24 * 3600);
            chrono::DateTime::from_timestamp(now.checked_add(seconds)?, 0).map(|t| t.naive_utc())
        });
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

/// The page of a failed code exchange: the provider refusing the code (RFC 6749 §5.2, e.g. a
/// code used twice) is not worth a retry; anything else (down, slow, 429, 5xx) is. The detail
/// goes to the log, not the page.
fn token_failure<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
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

/// The longest subject accepted, in bytes (OIDC Core §2: at most 255 ASCII characters).
const MAX_SUBJECT_BYTES: usize = 255;

impl Identity {
    /// `self` with every string the provider chose made safe to store and show: a subject of
    /// 1 to 255 visible ASCII characters (or an error), names without control characters and
    /// at most 150 characters, the address kept only when it is a valid one.
    fn checked(self, label: &str) -> Result<Self, UpstreamError> {
        if self.subject.is_empty()
            || self.subject.len() > MAX_SUBJECT_BYTES
            || !self.subject.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(UpstreamError::Invalid(format!(
                "{label} sent an unusable account identifier"
            )));
        }
        let email = self
            .email
            .as_deref()
            .and_then(|e| crate::domain::Email::parse(e).ok())
            .map(|e| e.as_str().to_owned());
        Ok(Self {
            email_verified: self.email_verified && email.is_some(),
            email,
            username: clean(&self.username, 150),
            display_name: clean(&self.display_name, 150),
            subject: self.subject,
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
            email: self.email.map(|e| e.to_lowercase()),
            email_verified: self.verified.unwrap_or(false),
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
            discord: Some(profile),
            ..identity
        })
    }
}

/// The JSON payload of a JWT whose signature was already verified.
fn payload(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let encoded = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
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

    #[test]
    fn a_payload_is_read_from_the_middle_part() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"hd":"example.com"}"#);
        let map = payload(&format!("e30.{claims}.sig")).expect("payload");
        assert_eq!(map["hd"], "example.com");
        assert!(payload("no-dots").is_none());
    }
}
