//! OpenID Connect on top of the OAuth core: signing keys and JWKS ([`keys`]), the claims of ID
//! tokens, UserInfo and RFC 9068 JWT access tokens (here), discovery
//! ([`crate::oauth::metadata`]) and RP-initiated logout ([`logout`]).
//!
//! oxide-auth knows nothing of OIDC. The authorization endpoint stores the authentication
//! context (`nonce`, `auth_time`, `amr`) with the authorization code; the token endpoint's
//! primitives carry it onto the tokens they mint (refreshes keep it, OIDC Core §12.2); after the
//! token transaction commits, [`crate::oauth::grant_types`] signs an ID token when the granted
//! scope contains `openid`.

pub mod keys;
pub mod logout;

use chrono::{NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::accounts::Account;
use crate::domain::ScopeSet;
use crate::upstream::{DiscordProfile, DISCORD_SCOPE};

pub use keys::{KeyStore, SigningAlg};

pub use crate::domain::{OFFLINE_ACCESS, OPENID};

/// Claims advertised in discovery (`claims_supported`): exactly what Latchkey puts in ID tokens
/// and UserInfo responses.
pub const CLAIMS_SUPPORTED: [&str; 18] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "azp",
    "amr",
    "idp",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
    "discord",
];

/// Who authenticated, when and how: what an ID token says about the login behind a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// The user, as read when the login was checked.
    pub user: Account,
    /// When they authenticated (UTC).
    pub auth_time: NaiveDateTime,
    /// RFC 8176 method values, space-separated (`pwd`, `pwd otp`; empty for an upstream login
    /// without Latchkey's emailed code, which no RFC 8176 value describes).
    pub amr: String,
    /// The upstream identity provider the user signed in through (`[upstream.<id>]`): the ID
    /// token's `idp` claim. `None` for a local login.
    pub idp: Option<String>,
    /// The authorization request's `nonce`, echoed once (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    /// The browser session this login is (its `user_sessions` row id), for the authorization
    /// endpoint, which checks it again under the user's row lock before issuing a code;
    /// `None` for logins that are not a browser session (token grants).
    pub session_id: Option<String>,
}

/// Claims about `user` that `scope` grants (OIDC Core §5.4): `sub` always; `profile` gives
/// `name`, `given_name`, `family_name`, `preferred_username`; `email` gives `email` and
/// `email_verified`. Empty names are left out rather than sent empty (§5.3.2).
#[must_use]
pub fn user_claims(user: &Account, scope: &ScopeSet) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(user.id.clone()));
    if scope.contains("profile") {
        let name = format!("{} {}", user.first_name.trim(), user.last_name.trim());
        let name = name.trim();
        for (key, value) in [
            ("name", name),
            ("given_name", user.first_name.trim()),
            ("family_name", user.last_name.trim()),
        ] {
            if !value.is_empty() {
                claims.insert(key.into(), Value::String(value.to_owned()));
            }
        }
        claims.insert(
            "preferred_username".into(),
            Value::String(user.username.clone()),
        );
    }
    if scope.contains("email") {
        claims.insert("email".into(), Value::String(user.email.clone()));
        claims.insert("email_verified".into(), Value::Bool(user.email_verified));
    }
    claims
}

/// Adds the `discord` claim — the user's Discord profile ([`DiscordProfile::claim`]) — when
/// `scope` holds the `discord` scope and the user linked a Discord account (`discord`): a
/// scope-requested claim in the manner of OIDC Core §5.4, left out when there is no value
/// (§5.3.2).
pub fn add_discord_claim(
    claims: &mut Map<String, Value>,
    scope: &ScopeSet,
    discord: Option<&DiscordProfile>,
) {
    if let (true, Some(profile)) = (scope.contains(DISCORD_SCOPE), discord) {
        claims.insert(DISCORD_SCOPE.into(), profile.claim());
    }
}

/// Everything an ID token needs beyond the authentication.
#[derive(Clone, Debug)]
pub struct IdTokenRequest<'a> {
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// The client (`aud` and `azp`).
    pub client_id: &'a str,
    /// The granted scope (decides the user claims).
    pub scope: &'a ScopeSet,
    /// The access token issued with it (`at_hash`).
    pub access_token: &'a str,
    /// The client's algorithm (decides the `at_hash` hash).
    pub alg: SigningAlg,
    /// Lifetime in seconds.
    pub lifetime_seconds: i64,
    /// The user's Discord profile, for the `discord` claim ([`add_discord_claim`]).
    pub discord: Option<&'a DiscordProfile>,
}

/// The claims of an ID token (OIDC Core §2, §3.1.3.6): `iss`, `sub`, `aud`, `exp`, `iat`,
/// `auth_time`, `nonce` (when the request had one), `at_hash`, `azp`, `amr`, plus the user
/// claims of the granted scope (`discord` included).
#[must_use]
pub fn id_token_claims(auth: &Authentication, req: &IdTokenRequest<'_>) -> Map<String, Value> {
    let now = Utc::now().timestamp();
    let mut claims = user_claims(&auth.user, req.scope);
    add_discord_claim(&mut claims, req.scope, req.discord);
    claims.insert("iss".into(), req.issuer.into());
    claims.insert("aud".into(), req.client_id.into());
    claims.insert("azp".into(), req.client_id.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + req.lifetime_seconds).into());
    claims.insert(
        "auth_time".into(),
        auth.auth_time.and_utc().timestamp().into(),
    );
    if let Some(nonce) = &auth.nonce {
        claims.insert("nonce".into(), nonce.clone().into());
    }
    claims.insert("at_hash".into(), req.alg.half_hash(req.access_token).into());
    // `amr` is OPTIONAL (OIDC Core §2): left out rather than sent empty when no RFC 8176
    // value describes the login (an upstream sign-in alone).
    let amr: Vec<Value> = auth
        .amr
        .split(' ')
        .filter(|m| !m.is_empty())
        .map(|m| Value::String(m.to_owned()))
        .collect();
    if !amr.is_empty() {
        claims.insert("amr".into(), Value::Array(amr));
    }
    // Not a registered claim: the name Azure AD and others use for the identity provider a
    // federated login went through (the `[upstream.<id>]` id).
    if let Some(idp) = &auth.idp {
        claims.insert("idp".into(), idp.clone().into());
    }
    claims
}

/// The claims of an RFC 9068 JWT access token (§2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user, or the client itself for client-credentials tokens (§2.2).
    pub sub: String,
    /// The resource(s) the token is for (RFC 9068 §3): the RFC 8707 resources of the request,
    /// or `oidc.access_token_audience` when it named none. One string, or an array of several.
    pub aud: Audience,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Unique id (the token's row id).
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// When the user authenticated, when there is a user.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
}

/// The `typ` header of ID tokens (OIDC Core §2 does not fix one; `JWT` per RFC 7519 §5.1).
pub const ID_TOKEN_TYP: &str = "JWT";

/// The `typ` header of RFC 9068 access tokens (§2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims an `id_token_hint` must carry for RP-initiated logout; other claims are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct IdTokenHint {
    /// The user it was issued for.
    pub sub: String,
    /// The client(s) it was issued to.
    pub aud: Audience,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// The audience of an access token (RFC 9068 §3, RFC 7662 §2.2): its RFC 8707 resources,
    /// or `default` (`oidc.access_token_audience`) when it has none. One resource is a string.
    #[must_use]
    pub fn of_resources(resources: &crate::domain::ResourceSet, default: &str) -> Self {
        match resources.len() {
            0 => Self::One(default.to_owned()),
            1 => Self::One(resources.iter().collect()),
            _ => Self::Many(resources.iter().map(str::to_owned).collect()),
        }
    }

    /// Whether `client_id` is among the audiences.
    #[must_use]
    pub fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(a) => a == client_id,
            Self::Many(v) => v.iter().any(|a| a == client_id),
        }
    }

    /// The single audience, when there is exactly one.
    #[must_use]
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::One(a) => Some(a),
            Self::Many(v) if v.len() == 1 => v.first().map(String::as_str),
            Self::Many(_) => None,
        }
    }
}
