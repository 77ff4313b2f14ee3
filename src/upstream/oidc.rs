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

use super::client::{call, token_failure, HttpError, UpstreamError};
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
/// client secret, the code and the verifier, or choose the keys.
///
/// # Errors
/// [`UpstreamError::Unreachable`], with the detail in the log only.
pub async fn discover(
    http: &reqwest::Client,
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
    let document = get_json(http, &url, None)
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
    let keys = fetch_keys(http, metadata.jwks_uri().url())
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
    http: &reqwest::Client,
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
        .set_token_uri(token_url)
        .set_redirect_uri(redirect);
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
    /// One a first-party app obtained for itself: a single `aud` among `accepted`, or an `azp`
    /// among `accepted` (which several audiences require).
    AnyOf(&'a [String]),
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

/// Verifies `id_token` from `provider` (OIDC Core §3.1.3.7) and returns its claims: the
/// signature with a key of the provider's JWKS — the key named by `kid`, or the only one of the
/// algorithm's type without a `kid` (§10.1) — and an asymmetric algorithm the provider lists
/// (step 7); `iss` equal to the discovered issuer (step 2; for Google also
/// [`GOOGLE_BARE_ISSUER`]); the audience rules of `audience` (steps 3–5); `exp` in the
/// future, with a minute's leeway for clocks (step 9); `nonce` equal to `nonce` when one was
/// sent (step 11, compared in constant time).
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
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !crate::secret::ct_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(invalid(
                "its nonce is not the one this sign-in sent".to_owned(),
            ));
        }
    }
    Ok(claims)
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
        Audience::AnyOf(accepted) => {
            let accepted_azp = azp.is_some_and(|azp| accepted.iter().any(|a| a == azp));
            let accepted_aud = matches!(aud.as_slice(), [one] if accepted.iter().any(|a| a == one));
            if accepted_azp || accepted_aud {
                Ok(())
            } else {
                Err(
                    "it was issued to an application this server does not accept (aud, azp)"
                        .to_owned(),
                )
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
    http: &reqwest::Client,
    provider: &UpstreamProvider,
    discovered: &Discovered,
    access_token: &str,
    subject: Option<&str>,
) -> Result<Option<Map<String, Value>>, UpstreamError> {
    let Some(endpoint) = discovered.metadata.userinfo_endpoint() else {
        return Ok(None);
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

/// Google's tokeninfo answer for an access token, checked: it was issued to one of `accepted`
/// (its `aud` or `azp` — the confused-deputy check that calling UserInfo alone skips: any
/// app's token for the user would do there) and has not expired. Returns the answer (`sub`,
/// `email`, …).
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
) -> Result<Map<String, Value>, UpstreamError> {
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
    let issued_to_us = [text("aud"), text("azp")]
        .into_iter()
        .flatten()
        .any(|a| provider.accepted_audiences.iter().any(|x| x == a));
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
    if !live {
        return Err(UpstreamError::Invalid(format!(
            "this {} access token has expired",
            provider.label
        )));
    }
    Ok(info)
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
    fn a_first_party_token_needs_an_accepted_audience_or_party() {
        let accepted = vec!["web".to_owned(), "android".to_owned()];
        let ok = |json| check_audience(&claims(json), Audience::AnyOf(&accepted)).is_ok();
        assert!(ok(
            serde_json::json!({"aud": "web", "azp": "some-android-app"})
        ));
        assert!(ok(
            serde_json::json!({"aud": "elsewhere", "azp": "android"})
        ));
        assert!(ok(
            serde_json::json!({"aud": ["web", "x"], "azp": "android"})
        ));
        assert!(!ok(serde_json::json!({"aud": ["web", "x"], "azp": "x"})));
        assert!(!ok(
            serde_json::json!({"aud": "someone-else", "azp": "someone-else"})
        ));
        assert!(!ok(serde_json::json!({"aud": ["web", "x"]})));
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
