//! The OpenID Connect half of the relying party: discovery (OIDC Discovery 1.0 §4) with the
//! provider's signing keys, the code exchange that keeps the ID token as sent, ID-token
//! verification (OIDC Core §3.1.3.7) and UserInfo (OIDC Core §5.3).
//!
//! ID tokens are verified with `jsonwebtoken` against the provider's JWKS rather than by the
//! `openidconnect` crate's verifier, for two reasons: Google still issues ID tokens whose `iss`
//! is the bare `accounts.google.com`, which that crate cannot even parse (its issuer type is a
//! URL), and its verifier leaves the `azp` checks of OIDC Core §3.1.3.7 steps 4–5 out. The
//! rules here are that section's, in its order; only asymmetric signatures are accepted (never
//! `none`, never HS256 keyed with the client secret or with a public key).

use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _, TokenUrl,
};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::UserInfoUrl;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::client::{call, token_failure, HttpClients, HttpError, UpstreamError};
use super::Identity;
use crate::config::UpstreamProvider;
use crate::domain::ProviderKind;

/// The spelling of Google's issuer without the scheme, which Google still puts in some ID
/// tokens ("Validate an ID token" in Google's OpenID Connect guide accepts both).
pub const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

/// Discovery metadata beyond OIDC Discovery 1.0's that the relying party reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RFC 9207 §3: the provider sends `iss` with every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl openidconnect::AdditionalProviderMetadata for ExtraMetadata {}

/// A provider's discovery document, as `openidconnect` reads it, with [`ExtraMetadata`].
pub type ProviderMetadata = openidconnect::ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A provider as discovered: its metadata (with the configured endpoint overrides) and its
/// signing keys.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The discovery document, endpoints overridden as configured.
    pub metadata: ProviderMetadata,
    /// The signature keys of its JWKS (`use` other than `enc`, of a kind `jsonwebtoken` reads).
    pub keys: JwkSet,
    /// When the document was fetched.
    pub fetched_at: Instant,
}

impl Discovered {
    /// The issuer exactly as the document states it (equal to the configured one).
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }
}

/// The token response of an OpenID Connect code exchange: RFC 6749 §5.1 plus the `id_token`,
/// kept as the compact JWT it is until it is verified here.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdTokenField {
    /// The ID token (OIDC Core §3.1.3.3).
    #[serde(default)]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type ExchangeClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Fetches `provider`'s discovery document and JWKS. The document's `issuer` must equal the
/// configured one character for character (OIDC Discovery 1.0 §4.3), and every endpoint it
/// names passes the rule configured ones pass (https, or http on loopback; no credentials):
/// a document pointing the token endpoint or the JWKS elsewhere would otherwise receive the
/// client secret, the code and the verifier, or choose the keys. The endpoints this server
/// calls itself (token, UserInfo, JWKS) must moreover not be on this machine or a private
/// network unless the issuer is ([`crate::domain::upstream::discovered_endpoint`]): a remote
/// issuer's document would otherwise make this server send a user's bearer token, or its
/// requests, to services that trust the local network. Nothing is fetched from a refused
/// document.
///
/// # Errors
/// [`UpstreamError::Unreachable`], with the detail in the log only.
pub async fn discover(
    clients: &HttpClients,
    provider: &UpstreamProvider,
) -> Result<Discovered, UpstreamError> {
    let unreachable = |detail: String| {
        tracing::warn!(provider = %provider.id, error = %detail, "upstream discovery failed");
        UpstreamError::Unreachable(format!("{} could not be reached", provider.label))
    };
    let issuer = provider
        .issuer
        .as_deref()
        .ok_or_else(|| UpstreamError::Invalid("the provider has no issuer".to_owned()))?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document = get_json(&clients.plain, &url, None)
        .await
        .map_err(|e| unreachable(format!("{url}: {e}")))?;
    let mut metadata: ProviderMetadata = serde_json::from_value(Value::Object(document))
        .map_err(|e| unreachable(format!("{url} is not a discovery document: {e}")))?;
    if metadata.issuer().as_str() != issuer {
        return Err(unreachable(format!(
            "{url} names another issuer ({})",
            metadata.issuer().as_str()
        )));
    }
    // The authorization endpoint is the browser's to visit; the others this server calls.
    let discovered = [
        (
            Some(metadata.authorization_endpoint().url().as_str()),
            false,
        ),
        (metadata.token_endpoint().map(|u| u.url().as_str()), true),
        (metadata.userinfo_endpoint().map(|u| u.url().as_str()), true),
        (Some(metadata.jwks_uri().url().as_str()), true),
    ];
    for (url, called) in discovered {
        let Some(url) = url else { continue };
        let checked = if called {
            crate::domain::upstream::discovered_endpoint(issuer, url)
        } else {
            crate::domain::upstream::endpoint_url(url)
        };
        if let Err(e) = checked {
            tracing::warn!(provider = %provider.id, url, "a discovered endpoint is refused");
            return Err(UpstreamError::Unreachable(format!(
                "{}'s discovery document names an endpoint this server will not call (it {e})",
                provider.label
            )));
        }
    }
    let jwks_uri = metadata.jwks_uri().url();
    let keys = fetch_keys(clients.for_discovered(provider, jwks_uri), jwks_uri)
        .await
        .map_err(unreachable)?;
    if let Some(url) = &provider.authorization_endpoint {
        metadata = metadata.set_authorization_endpoint(AuthUrl::from_url(url.clone()));
    }
    if let Some(url) = &provider.token_endpoint {
        metadata = metadata.set_token_endpoint(Some(TokenUrl::from_url(url.clone())));
    }
    if let Some(url) = &provider.userinfo_endpoint {
        metadata = metadata.set_userinfo_endpoint(Some(UserInfoUrl::from_url(url.clone())));
    }
    Ok(Discovered {
        metadata,
        keys,
        fetched_at: Instant::now(),
    })
}

/// The signature keys of the JWKS at `uri` (RFC 7517 §5): keys for encryption, and keys of a
/// type or algorithm `jsonwebtoken` does not read, are left out rather than failing the set.
///
/// # Errors
/// The reason, for the log.
pub async fn fetch_keys(http: &reqwest::Client, uri: &Url) -> Result<JwkSet, String> {
    let set = get_json(http, uri.as_str(), None)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let Some(Value::Array(keys)) = set.get("keys") else {
        return Err(format!("{uri} is not a JWK set"));
    };
    let keys = keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| k.common.public_key_use != Some(PublicKeyUse::Encryption))
        .collect();
    Ok(JwkSet { keys })
}

/// GETs `url` (with `Authorization: Bearer bearer` when given) and reads a JSON object.
///
/// # Errors
/// The reason, for the log: the call failed, a status other than 200, or not a JSON object.
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<Map<String, Value>, String> {
    let mut request =
        oauth2::http::Request::get(url).header(oauth2::http::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        request = request.header(
            oauth2::http::header::AUTHORIZATION,
            format!("Bearer {token}"),
        );
    }
    let request = request.body(Vec::new()).map_err(|e| e.to_string())?;
    let response = call(http, request).await.map_err(|e| e.to_string())?;
    if response.status() != oauth2::http::StatusCode::OK {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    match serde_json::from_slice(response.body()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the answer is not a JSON object".to_owned()),
        Err(e) => Err(format!("the answer is not JSON: {e}")),
    }
}

/// The tokens of an OpenID Connect code exchange (RFC 6749 §4.1.3, with the PKCE verifier,
/// RFC 7636 §4.5; client authentication by HTTP Basic, RFC 6749 §2.3.1).
pub struct CodeTokens {
    /// The access token, for UserInfo.
    pub access_token: String,
    /// The ID token, not yet verified.
    pub id_token: String,
}

/// Exchanges `code` at the provider's token endpoint.
///
/// # Errors
/// [`UpstreamError::Invalid`] when the provider refuses the code or sends no ID token;
/// [`UpstreamError::Unreachable`] when it cannot be reached or answers with something else.
pub async fn exchange_code(
    clients: &HttpClients,
    provider: &UpstreamProvider,
    discovered: &Discovered,
    redirect: RedirectUrl,
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
) -> Result<CodeTokens, UpstreamError> {
    let token_url = discovered
        .metadata
        .token_endpoint()
        .cloned()
        .ok_or_else(|| {
            UpstreamError::Invalid(format!("{} has no token endpoint", provider.label))
        })?;
    let client: ExchangeClient = oauth2::Client::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            provider.client_secret.expose_secret().to_owned(),
        ))
        .set_token_uri(token_url.clone())
        .set_redirect_uri(redirect);
    // A configured token endpoint is called as configured; a discovered one on another host
    // than a public issuer's, at public addresses only.
    let http = if provider.token_endpoint.is_some() {
        &clients.plain
    } else {
        clients.for_discovered(provider, token_url.url())
    };
    let send = |request| call(http, request);
    let tokens = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .map_err(|e| token_failure(&provider.label, &e))?;
    let id_token =
        tokens.extra_fields().id_token.clone().ok_or_else(|| {
            UpstreamError::Invalid(format!("{} sent no ID token", provider.label))
        })?;
    Ok(CodeTokens {
        access_token: tokens.access_token().secret().clone(),
        id_token,
    })
}

/// Whose ID token is acceptable.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// One this relying party asked for in a browser sign-in (OIDC Core §3.1.3.7 steps 3–5):
    /// `aud` contains `client_id`, every other audience is among `trusted`, and `azp` — required
    /// when there are several audiences — is `client_id`.
    RelyingParty {
        /// Latchkey's client id at the provider.
        client_id: &'a str,
        /// Other audiences an ID token may also name.
        trusted: &'a [String],
    },
    /// One a first-party app obtained for itself and presents for token exchange: every
    /// audience in `aud` is among `accepted` (OIDC Core §3.1.3.7 step 3 — an audience this
    /// server does not trust is a party that received the token and could replay it here),
    /// `azp`, when present, is among `accepted` too, and several audiences require an `azp`
    /// (step 4). An `azp` of ours never vouches for an `aud` of someone else's: with a
    /// provider whose access tokens are JWTs signed by the same keys, a third-party API that
    /// received our app's token would otherwise replay it as an ID token.
    FirstParty(&'a [String]),
}

/// Why an ID token was refused.
#[derive(Debug)]
pub enum TokenProblem {
    /// Signed with a key (`kid`) the JWKS in hand does not have: the provider may have rotated
    /// its keys.
    UnknownKey,
    /// Not acceptable, with the reason (for the log and the page).
    Invalid(String),
}

/// The algorithms an ID token may be signed with: asymmetric ones only.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Leeway for the provider's clock when `exp` and `iat` are compared with ours, in seconds.
pub const CLOCK_LEEWAY_SECONDS: u64 = 60;

/// How long after its issue (`iat`) an ID token may still be exchanged by a first-party app
/// (token exchange, `/api/google/`), in seconds: ten minutes. An app exchanges the ID token it
/// has just been given; an older one is more likely a copy that travelled further than the
/// app (a log, another service). It also bounds how long each exchanged token must be
/// remembered ([`SingleUse`]).
pub const EXCHANGE_MAX_AGE_SECONDS: i64 = 600;

/// Whether a JWT's `typ` header says it is a JWT access token (RFC 9068 §2.1: `at+jwt`, or
/// `application/at+jwt`; RFC 7515 §4.1.9: media types compare without regard to case, the
/// `application/` prefix being optional).
fn is_access_token_typ(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ.strip_prefix("application/").unwrap_or(&typ) == "at+jwt"
}

/// Verifies `id_token` from `provider` (OIDC Core §3.1.3.7) and returns its claims: not a JWT
/// access token (`typ` `at+jwt`, RFC 9068 §2.1 — the header exists so that one is never taken
/// for an ID token); the signature with a key of the provider's JWKS — the key named by `kid`,
/// or the only one of the algorithm's type without a `kid` (§10.1) — and an asymmetric
/// algorithm the provider lists (step 7); `iss` equal to the discovered issuer (step 2; for
/// Google also [`GOOGLE_BARE_ISSUER`]); the audience rules of `audience` (steps 3–5); `exp`
/// in the future, with [`CLOCK_LEEWAY_SECONDS`] for clocks (step 9); with `nonce` (a browser
/// sign-in, which always sends one), a `nonce` claim equal to it (step 11, compared in
/// constant time): a missing claim, or an empty `nonce`, is refused.
///
/// # Errors
/// [`TokenProblem`].
pub fn verify_id_token(
    provider: &UpstreamProvider,
    discovered: &Discovered,
    id_token: &str,
    audience: Audience<'_>,
    nonce: Option<&str>,
) -> Result<Map<String, Value>, TokenProblem> {
    let invalid = |why: String| TokenProblem::Invalid(why);
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| invalid("its header cannot be read".to_owned()))?;
    if header.typ.as_deref().is_some_and(is_access_token_typ) {
        return Err(invalid(
            "it is a JWT access token (typ at+jwt), not an ID token".to_owned(),
        ));
    }
    let alg = header.alg;
    if !ASYMMETRIC.contains(&alg) {
        return Err(invalid(format!(
            "it is signed with {alg:?}, which is refused"
        )));
    }
    let listed: Vec<String> = discovered
        .metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if !listed.is_empty() && !listed.iter().any(|a| *a == format!("{alg:?}")) {
        return Err(invalid(format!(
            "it is signed with {alg:?}, which the provider does not list"
        )));
    }
    let key = signing_key(&discovered.keys, header.kid.as_deref(), alg)?;
    let mut validation = Validation::new(alg);
    validation.leeway = CLOCK_LEEWAY_SECONDS;
    let mut issuers = vec![discovered.issuer().to_owned()];
    if provider.kind == ProviderKind::Google {
        issuers.push(GOOGLE_BARE_ISSUER.to_owned());
    }
    validation.set_issuer(&issuers);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // The audience rules below are OIDC's, not those of RFC 7519 alone.
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
        .map_err(|e| invalid(format!("it does not verify ({e})")))?
        .claims;
    check_audience(&claims, audience).map_err(invalid)?;
    if let Some(expected) = nonce {
        let Some(sent) = claims.get("nonce").and_then(Value::as_str) else {
            return Err(invalid(
                "it carries no nonce, and this sign-in sent one".to_owned(),
            ));
        };
        if expected.is_empty() || !crate::secret::ct_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(invalid(
                "its nonce is not the one this sign-in sent".to_owned(),
            ));
        }
    }
    Ok(claims)
}

/// What makes an exchanged ID token single use: the record of it in `upstream_used_states`
/// ([`crate::db::upstream_used_states`]), kept until the token could no longer be exchanged
/// anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleUse {
    /// `id_token:` and the SHA-256 (hex) of the token's signed part (header and payload): a
    /// second encoding of the same signature (ECDSA's `s` and `n − s` both verify) is the same
    /// token. A sign-in's state is recorded as its bare digest, so the two never meet.
    pub key: String,
    /// When the token stops being acceptable: its `exp` plus [`CLOCK_LEEWAY_SECONDS`], or
    /// [`EXCHANGE_MAX_AGE_SECONDS`] after its `iat`, whichever comes first.
    pub expires_at: chrono::NaiveDateTime,
}

/// The prefix of [`SingleUse::key`] for an ID token.
pub const SINGLE_USE_PREFIX: &str = "id_token:";

/// The prefix of [`SingleUse::key`] for an access token: its SHA-256 (hex), kept until it
/// expires.
pub const ACCESS_TOKEN_SINGLE_USE_PREFIX: &str = "access_token:";

/// A NumericDate claim (RFC 7519 §2: seconds, possibly with a fraction, here cut off).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    match claims.get(name) {
        #[allow(clippy::cast_possible_truncation)]
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
}

/// The token-exchange rules beyond [`verify_id_token`], for the verified `claims` of
/// `id_token` at `now` (Unix seconds): `iat` is present, not in the future (beyond
/// [`CLOCK_LEEWAY_SECONDS`]) and at most [`EXCHANGE_MAX_AGE_SECONDS`] old. Returns what makes
/// the token single use, for the caller to record.
///
/// # Errors
/// The reason, for the log and the answer.
pub fn exchange_once(
    id_token: &str,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<SingleUse, String> {
    let leeway = i64::try_from(CLOCK_LEEWAY_SECONDS).unwrap_or(i64::MAX);
    let Some(iat) = numeric_date(claims, "iat") else {
        return Err("it does not say when it was issued (iat)".to_owned());
    };
    if iat > now.saturating_add(leeway) {
        return Err("it says it was issued in the future (iat)".to_owned());
    }
    if iat < now.saturating_sub(EXCHANGE_MAX_AGE_SECONDS) {
        return Err(format!(
            "it was issued more than {} minutes ago: exchange a fresh ID token",
            EXCHANGE_MAX_AGE_SECONDS / 60
        ));
    }
    let exp = numeric_date(claims, "exp").ok_or_else(|| "it has no expiry (exp)".to_owned())?;
    let until = exp
        .saturating_add(leeway)
        .min(iat.saturating_add(EXCHANGE_MAX_AGE_SECONDS));
    let expires_at = chrono::DateTime::from_timestamp(until, 0)
        .ok_or_else(|| "its times are out of range".to_owned())?
        .naive_utc();
    let signed = id_token
        .rsplit_once('.')
        .map_or(id_token, |(signed, _)| signed);
    Ok(SingleUse {
        key: format!("{SINGLE_USE_PREFIX}{}", crate::secret::sha256_hex(signed)),
        expires_at,
    })
}

/// The key of `keys` that verifies a signature by `alg` with key id `kid`.
fn signing_key(
    keys: &JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<DecodingKey, TokenProblem> {
    let fits = |jwk: &Jwk| -> Option<DecodingKey> {
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let declared = jwk
            .common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
        (key.family() == alg.family() && declared).then_some(key)
    };
    match kid {
        Some(kid) => {
            let jwk = keys.find(kid).ok_or(TokenProblem::UnknownKey)?;
            fits(jwk).ok_or_else(|| {
                TokenProblem::Invalid(format!("its key {kid:?} is not a key for {alg:?}"))
            })
        }
        None => {
            let mut candidates = keys.keys.iter().filter_map(fits);
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Ok(key),
                (None, _) => Err(TokenProblem::UnknownKey),
                (Some(_), Some(_)) => Err(TokenProblem::Invalid(
                    "it names no key, and the provider has several".to_owned(),
                )),
            }
        }
    }
}

/// The audiences of a token's `aud` (RFC 7519 §4.1.3: a string or an array of strings).
fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Checks `aud` and `azp` against `audience`.
fn check_audience(claims: &Map<String, Value>, audience: Audience<'_>) -> Result<(), String> {
    let aud = audiences(claims);
    let azp = claims.get("azp").and_then(Value::as_str);
    match audience {
        Audience::RelyingParty { client_id, trusted } => {
            if !aud.contains(&client_id) {
                return Err("it was issued to another application (aud)".to_owned());
            }
            if let Some(other) = aud
                .iter()
                .find(|a| **a != client_id && !trusted.iter().any(|t| t == *a))
            {
                return Err(format!(
                    "it names an audience this server does not trust ({other})"
                ));
            }
            match azp {
                Some(azp) if azp != client_id => {
                    Err("it was issued to another application (azp)".to_owned())
                }
                None if aud.len() > 1 => {
                    Err("it names several audiences but no authorized party (azp)".to_owned())
                }
                _ => Ok(()),
            }
        }
        Audience::FirstParty(accepted) => {
            let is_accepted = |a: &str| accepted.iter().any(|x| x == a);
            if aud.is_empty() {
                return Err("it names no audience (aud)".to_owned());
            }
            if let Some(other) = aud.iter().find(|a| !is_accepted(a)) {
                return Err(format!(
                    "it was issued to an application this server does not accept (aud {other})"
                ));
            }
            match azp {
                Some(azp) if !is_accepted(azp) => Err(
                    "it was issued to an application this server does not accept (azp)".to_owned(),
                ),
                None if aud.len() > 1 => {
                    Err("it names several audiences but no authorized party (azp)".to_owned())
                }
                _ => Ok(()),
            }
        }
    }
}

/// Whether the provider said the address is verified: `email_verified` as a boolean, or the
/// string `"true"` some of Google's endpoints send.
fn verified(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// Who the claims say signed in: `sub`, `preferred_username`, `name`, `email`,
/// `email_verified` (OIDC Core §5.1), made safe to store.
///
/// # Errors
/// [`UpstreamError::Invalid`] when `sub` is missing or unusable.
pub fn identity(claims: &Map<String, Value>, label: &str) -> Result<Identity, UpstreamError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Identity {
        subject: text("sub"),
        username: text("preferred_username"),
        display_name: text("name"),
        email: claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned),
        email_verified: verified(claims.get("email_verified")),
        hosted_domain: claims
            .get("hd")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        picture: claims
            .get("picture")
            .and_then(Value::as_str)
            .map(str::to_owned),
        discord: None,
        tokens: None,
    }
    .checked(label)
}

/// The provider's own admission rules: Google's hosted domains, checked on `id_claims` (the ID
/// token's, not only hinted at the authorization request), and the required claims, on
/// `claims` (the ID token's and UserInfo's together): a string claim equal to the value, or an
/// array of strings containing it.
///
/// # Errors
/// [`UpstreamError::Invalid`] with the reason for the user.
pub fn admit(
    provider: &UpstreamProvider,
    hosted_domain: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<(), UpstreamError> {
    if !provider.allowed_hosted_domains.is_empty() {
        let hd = hosted_domain.unwrap_or_default();
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
        let has = match claims.get(name) {
            Some(Value::String(s)) => s == wanted,
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(wanted.as_str())),
            _ => false,
        };
        if !has {
            return Err(UpstreamError::Invalid(format!(
                "this {} account may not sign in here (it lacks the required {name})",
                provider.label
            )));
        }
    }
    Ok(())
}

/// The UserInfo claims (OIDC Core §5.3) for `access_token`, when the provider has a UserInfo
/// endpoint; their `sub` must be `subject` (§5.3.4: otherwise they are someone else's).
///
/// # Errors
/// [`UpstreamError::Unreachable`] when UserInfo fails; [`UpstreamError::Invalid`] for another
/// subject.
pub async fn userinfo(
    clients: &HttpClients,
    provider: &UpstreamProvider,
    discovered: &Discovered,
    access_token: &str,
    subject: Option<&str>,
) -> Result<Option<Map<String, Value>>, UpstreamError> {
    let Some(endpoint) = discovered.metadata.userinfo_endpoint() else {
        return Ok(None);
    };
    let http = if provider.userinfo_endpoint.is_some() {
        &clients.plain
    } else {
        clients.for_discovered(provider, endpoint.url())
    };
    let claims = get_json(http, endpoint.url().as_str(), Some(access_token))
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.id, error = %e, "reading UserInfo failed");
            UpstreamError::Unreachable(format!(
                "{}'s account details could not be read",
                provider.label
            ))
        })?;
    if let Some(subject) = subject {
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(UpstreamError::Invalid(format!(
                "{}'s account details are for another account",
                provider.label
            )));
        }
    }
    Ok(Some(claims))
}

/// A token an upstream provider issued to a first-party app, presented to trade it for
/// Latchkey tokens (RFC 8693 `subject_token`). Never printed.
#[derive(Clone)]
pub enum SubjectToken {
    /// An ID token (`urn:ietf:params:oauth:token-type:id_token`).
    IdToken(String),
    /// An access token (`urn:ietf:params:oauth:token-type:access_token`), Google's only.
    AccessToken(String),
}

impl std::fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::IdToken(_) => "IdToken(..)",
            Self::AccessToken(_) => "AccessToken(..)",
        })
    }
}

/// Google's tokeninfo answer for an access token, checked: it was issued to one of the
/// provider's `accepted_audiences` — its `aud`, and its `azp` when present (the confused-deputy
/// check that calling UserInfo alone skips: any app's token for the user would do there) — and
/// has not expired. Returns the answer (`sub`, `email`, …) and the [`SingleUse`] record that
/// makes the token exchanged once (its digest, kept until it expires).
///
/// # Errors
/// [`UpstreamError::Invalid`] when Google does not know the token, or it is another app's or
/// expired; [`UpstreamError::Unreachable`] when Google cannot be reached.
pub async fn tokeninfo(
    http: &reqwest::Client,
    provider: &UpstreamProvider,
    endpoint: &Url,
    access_token: &str,
    now: i64,
) -> Result<(Map<String, Value>, SingleUse), UpstreamError> {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("access_token", access_token);
    let unreachable = |detail: String| {
        // The URL carries the token: only the detail is logged.
        tracing::warn!(provider = %provider.id, error = %detail, "tokeninfo failed");
        UpstreamError::Unreachable(format!("{} could not be reached", provider.label))
    };
    let request = oauth2::http::Request::get(url.as_str())
        .header(oauth2::http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = call(http, request).await.map_err(|e| {
        unreachable(match e {
            HttpError::Send(e) => e.without_url().to_string(),
            other => other.to_string(),
        })
    })?;
    match response.status().as_u16() {
        200 => {}
        400 | 401 => {
            return Err(UpstreamError::Invalid(format!(
                "{} does not know this access token (it may have expired or been revoked)",
                provider.label
            )))
        }
        other => return Err(unreachable(format!("HTTP {other}"))),
    }
    let info: Map<String, Value> = serde_json::from_slice(response.body())
        .map_err(|e| unreachable(format!("the answer is not a JSON object: {e}")))?;
    let text = |name: &str| info.get(name).and_then(Value::as_str);
    let accepted = |a: &str| provider.accepted_audiences.iter().any(|x| x == a);
    // As for an ID token: the audience must be ours, and so must the authorized party when
    // named (the app the token was issued to).
    let issued_to_us = text("aud").is_some_and(accepted) && text("azp").is_none_or(accepted);
    if !issued_to_us {
        return Err(UpstreamError::Invalid(format!(
            "this {} access token was issued to an application this server does not accept",
            provider.label
        )));
    }
    let seconds = |name: &str| match info.get(name) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        _ => None,
    };
    let live = match (seconds("exp"), seconds("expires_in")) {
        (Some(exp), _) => exp > now,
        (None, Some(left)) => left > 0,
        (None, None) => false,
    };
    let until = match (seconds("exp"), seconds("expires_in")) {
        (Some(exp), _) => Some(exp),
        (None, Some(left)) => now.checked_add(left),
        (None, None) => None,
    };
    let expires_at = until
        .filter(|_| live)
        .and_then(|until| chrono::DateTime::from_timestamp(until, 0));
    let Some(expires_at) = expires_at else {
        return Err(UpstreamError::Invalid(format!(
            "this {} access token has expired",
            provider.label
        )));
    };
    let once = SingleUse {
        key: format!(
            "{ACCESS_TOKEN_SINGLE_USE_PREFIX}{}",
            crate::secret::sha256_hex(access_token)
        ),
        expires_at: expires_at.naive_utc(),
    };
    Ok((info, once))
}

/// `base` with the claims of `more` it lacks.
#[must_use]
pub fn merged(base: &Map<String, Value>, more: Option<Map<String, Value>>) -> Map<String, Value> {
    let mut all = base.clone();
    for (name, value) in more.into_iter().flatten() {
        all.entry(name).or_insert(value);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Map<String, Value> {
        json.as_object().cloned().expect("an object")
    }

    #[test]
    fn the_relying_party_rules_follow_oidc_core_3_1_3_7() {
        let trusted = vec!["mobile".to_owned()];
        let rp = Audience::RelyingParty {
            client_id: "web",
            trusted: &trusted,
        };
        let ok = |json| check_audience(&claims(json), rp).is_ok();
        assert!(ok(serde_json::json!({"aud": "web"})));
        assert!(ok(serde_json::json!({"aud": ["web"], "azp": "web"})));
        assert!(ok(
            serde_json::json!({"aud": ["web", "mobile"], "azp": "web"})
        ));
        assert!(!ok(serde_json::json!({"aud": "other"})));
        assert!(!ok(
            serde_json::json!({"aud": ["web", "stranger"], "azp": "web"})
        ));
        assert!(
            !ok(serde_json::json!({"aud": ["web", "mobile"]})),
            "azp required"
        );
        assert!(!ok(
            serde_json::json!({"aud": ["web", "mobile"], "azp": "mobile"})
        ));
        assert!(!ok(serde_json::json!({"aud": "web", "azp": "other"})));
        assert!(!ok(serde_json::json!({})));
    }

    #[test]
    fn a_first_party_token_needs_accepted_audiences_and_party() {
        let accepted = vec!["web".to_owned(), "android".to_owned()];
        let ok = |json| check_audience(&claims(json), Audience::FirstParty(&accepted)).is_ok();
        // Google's Android sign-in for a server: `aud` the web client id, `azp` the app's.
        assert!(ok(serde_json::json!({"aud": "web", "azp": "android"})));
        assert!(ok(serde_json::json!({"aud": "android"})));
        assert!(ok(
            serde_json::json!({"aud": ["web", "android"], "azp": "android"})
        ));
        // Our app's token for another service: an accepted `azp` does not make it ours.
        assert!(!ok(
            serde_json::json!({"aud": "elsewhere", "azp": "android"})
        ));
        assert!(!ok(
            serde_json::json!({"aud": ["web", "x"], "azp": "android"})
        ));
        assert!(!ok(
            serde_json::json!({"aud": "web", "azp": "some-android-app"})
        ));
        assert!(!ok(serde_json::json!({"aud": ["web", "x"], "azp": "x"})));
        assert!(!ok(
            serde_json::json!({"aud": "someone-else", "azp": "someone-else"})
        ));
        assert!(
            !ok(serde_json::json!({"aud": ["web", "android"]})),
            "azp required"
        );
        assert!(!ok(serde_json::json!({"aud": [], "azp": "web"})));
        assert!(!ok(serde_json::json!({"azp": "web"})));
    }

    #[test]
    fn jwt_access_tokens_are_told_by_their_typ() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            assert!(is_access_token_typ(typ), "{typ}");
        }
        for typ in ["JWT", "jwt", "application/jwt", "at+jwt2", "x/at+jwt", ""] {
            assert!(!is_access_token_typ(typ), "{typ}");
        }
    }

    #[test]
    fn an_exchanged_id_token_is_fresh_and_single_use_until_it_dies() {
        let now = 1_800_000_000;
        let at = |iat: Option<i64>, exp: i64| {
            let mut c = claims(serde_json::json!({ "exp": exp }));
            if let Some(iat) = iat {
                c.insert("iat".into(), iat.into());
            }
            exchange_once("h.p.sig", &c, now)
        };
        let once = at(Some(now - 5), now + 3600).expect("fresh");
        assert_eq!(
            once.key,
            format!("id_token:{}", crate::secret::sha256_hex("h.p"))
        );
        // Remembered until iat + the age allowed, which comes before exp here …
        assert_eq!(
            once.expires_at.and_utc().timestamp(),
            now - 5 + EXCHANGE_MAX_AGE_SECONDS
        );
        // … or until exp (and the leeway) when that comes first.
        assert_eq!(
            at(Some(now), now + 30)
                .expect("fresh")
                .expires_at
                .and_utc()
                .timestamp(),
            now + 90
        );
        // Another signature over the same content is the same token.
        assert_eq!(
            exchange_once(
                "h.p.other",
                &claims(serde_json::json!({"iat": now - 5, "exp": now + 3600})),
                now
            )
            .expect("fresh")
            .key,
            once.key
        );
        assert!(at(None, now + 3600).is_err(), "iat required");
        assert!(at(Some(now - EXCHANGE_MAX_AGE_SECONDS - 1), now + 3600).is_err());
        assert!(at(Some(now - EXCHANGE_MAX_AGE_SECONDS), now + 3600).is_ok());
        assert!(at(Some(now + 61), now + 3600).is_err(), "from the future");
        assert!(at(Some(now + 60), now + 3600).is_ok(), "within the leeway");
        let float = claims(serde_json::json!({"iat": (now as f64) - 0.5, "exp": now + 60}));
        assert!(exchange_once("a.b.c", &float, now).is_ok());
    }

    #[test]
    fn email_verified_is_a_boolean_or_googles_string() {
        assert!(verified(Some(&Value::Bool(true))));
        assert!(verified(Some(&Value::String("true".into()))));
        assert!(!verified(Some(&Value::String("false".into()))));
        assert!(!verified(Some(&Value::String("yes".into()))));
        assert!(!verified(None));
    }
}
