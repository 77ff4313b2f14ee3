//! Client registration rules: types, grant types, authentication methods, redirect URIs,
//! scopes, and the client secret (server-generated, shown once, stored as SHA-256).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use diesel::Connection;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::clients::{self, ClientRow};
use crate::db::held_secrets;
use crate::db::users as db_users;
use crate::db::{self, tokens, Db, DbConnection, DbError};
use crate::domain::{MetadataUri, Page, PageRequest, RedirectUri, ResourceSet, ScopeSet};
use crate::secret;

/// RFC 6749 §2.1 client types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    /// Can keep a secret (server-side apps).
    Confidential,
    /// Cannot (native and browser apps); must use PKCE.
    Public,
}

impl ClientType {
    /// The stored/wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }
}

impl FromStr for ClientType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "confidential" => Ok(Self::Confidential),
            "public" => Ok(Self::Public),
            other => Err(format!(
                "unknown client type {other:?} (confidential or public)"
            )),
        }
    }
}

/// Grant types a client may be allowed (RFC 6749 §4 and §6, RFC 8693).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    /// §4.1, with PKCE (RFC 7636).
    AuthorizationCode,
    /// §6.
    RefreshToken,
    /// §4.3 resource owner password credentials.
    Password,
    /// §4.4.
    ClientCredentials,
    /// RFC 8693 token exchange: a first-party app trades a token an upstream OpenID Connect
    /// provider (Google) issued to it for Latchkey tokens (`/o/token/`, `/api/google/`). A
    /// first-party power, like the password grant: the user consents to nothing here.
    TokenExchange,
}

impl GrantType {
    /// Every grant type, in the order they are listed.
    pub const ALL: [Self; 5] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::Password,
        Self::ClientCredentials,
        Self::TokenExchange,
    ];

    /// The `grant_type` parameter value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown grant type {s:?} (authorization_code, refresh_token, password, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange)"
                )
            })
    }
}

/// Token endpoint client authentication methods (RFC 7591 §2 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// No secret: public clients.
    None,
}

impl AuthMethod {
    /// The stored/wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown token endpoint auth method {other:?} (client_secret_basic, client_secret_post, none)"
            )),
        }
    }
}

/// How access tokens look (a per-client choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessTokenFormat {
    /// 256 random bits; resource servers ask the introspection endpoint (RFC 7662).
    Opaque,
    /// An RFC 9068 JWT signed with the client's algorithm; resource servers may validate it
    /// offline against the JWKS (and still introspect to learn about revocation).
    Jwt,
}

impl AccessTokenFormat {
    /// The stored name: `opaque` or `jwt`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

impl FromStr for AccessTokenFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "opaque" => Ok(Self::Opaque),
            "jwt" => Ok(Self::Jwt),
            other => Err(format!(
                "unknown access token format {other:?} (opaque or jwt)"
            )),
        }
    }
}

/// A client as the rest of the program sees it: the row with its lists parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The stored row: private, so that no caller sees the secret's hash or the raw lists;
    /// the accessors below and [`ClientSpec::from_client`] are the client as others see it.
    row: ClientRow,
    /// Parsed client type.
    pub client_type: ClientType,
    /// Parsed allowed grant types.
    pub grant_types: Vec<GrantType>,
    /// Registered redirect URIs (exact strings).
    pub redirect_uris: Vec<String>,
    /// Allowed scopes.
    pub allowed_scopes: ScopeSet,
    /// RFC 8707 resources this client serves as a resource server (it may introspect access
    /// tokens for them).
    pub resource_uris: ResourceSet,
}

impl Client {
    /// Parses a stored row; unknown list items (from a newer version) are ignored.
    #[must_use]
    pub fn from_row(row: ClientRow) -> Self {
        let client_type = row.client_type.parse().unwrap_or(ClientType::Confidential);
        let grant_types = row
            .grant_types
            .split(' ')
            .filter_map(|g| g.parse().ok())
            .collect();
        let redirect_uris = split_list(&row.redirect_uris);
        let allowed_scopes = ScopeSet::from_stored(&row.allowed_scopes);
        let resource_uris = ResourceSet::from_stored(&row.resource_uris);
        Self {
            row,
            client_type,
            grant_types,
            redirect_uris,
            allowed_scopes,
            resource_uris,
        }
    }

    /// Whether the client was registered through the developer portal (it has an owner) rather
    /// than by an operator (CLI): such clients are held to stricter rules at the authorization,
    /// token and logout endpoints (RFC 9700 §4.11.2 open redirectors, user-less tokens).
    #[must_use]
    pub fn is_portal_client(&self) -> bool {
        self.row.owner_id.is_some()
    }

    /// The `client_id`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.row.client_id
    }

    /// The application's name, as users see it (sign-in and consent pages).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.row.name
    }

    /// Whether the client may use `grant`.
    #[must_use]
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The JWS algorithm of this client's ID tokens and JWT access tokens (RS256 when the
    /// stored value is unknown).
    #[must_use]
    pub fn signing_alg(&self) -> crate::domain::SigningAlg {
        self.row
            .id_token_signed_response_alg
            .parse()
            .unwrap_or(crate::domain::SigningAlg::Rs256)
    }

    /// Whether access tokens are RFC 9068 JWTs rather than opaque strings.
    #[must_use]
    pub fn jwt_access_tokens(&self) -> bool {
        self.row.access_token_format == AccessTokenFormat::Jwt.as_str()
    }

    /// The `users.id` of the user who registered it in the developer portal; `None` for an
    /// operator's client.
    #[must_use]
    pub fn owner_id(&self) -> Option<&str> {
        self.row.owner_id.as_deref()
    }

    /// Whether the consent page is skipped (set by an operator or superuser).
    #[must_use]
    pub fn skip_authorization(&self) -> bool {
        self.row.skip_authorization
    }

    /// Whether it may introspect every token, not only its own and its resources' (RFC 7662
    /// §4 leaves the policy to the server).
    #[must_use]
    pub fn introspect_all(&self) -> bool {
        self.row.introspect_all
    }

    /// Registered `post_logout_redirect_uri`s (OIDC RP-Initiated Logout §3), exact strings.
    #[must_use]
    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        split_list(&self.row.post_logout_redirect_uris)
    }

    /// Origins allowed to call the token endpoint from a browser (CORS).
    #[must_use]
    pub fn allowed_origins(&self) -> Vec<String> {
        split_list(&self.row.allowed_origins)
    }

    /// `token_endpoint_auth_method` (RFC 7591 §2): `client_secret_basic`,
    /// `client_secret_post` or `none`.
    #[must_use]
    pub fn auth_method(&self) -> &str {
        &self.row.token_endpoint_auth_method
    }

    /// The first characters of the secret, shown so a developer can tell secrets apart;
    /// `None` for a public client.
    #[must_use]
    pub fn secret_hint(&self) -> Option<&str> {
        self.row.secret_hint.as_deref()
    }

    /// Whether `presented` is this client's secret: SHA-256 compared in constant time
    /// (RFC 6749 §2.3.1). Always false for a client without a secret.
    #[must_use]
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.row
            .secret_hash
            .as_deref()
            .is_some_and(|hash| secret::verify_hashed(presented, hash))
    }

    /// When it was registered (UTC).
    #[must_use]
    pub fn created_at(&self) -> chrono::NaiveDateTime {
        self.row.created_at
    }

    /// When its settings last changed (UTC).
    #[must_use]
    pub fn updated_at(&self) -> chrono::NaiveDateTime {
        self.row.updated_at
    }

    /// Whether `code_challenge_method=plain` is accepted (RFC 7636 §4.2; S256 otherwise).
    #[must_use]
    pub fn allows_plain_pkce(&self) -> bool {
        self.row.allow_plain_pkce
    }

    /// The client's own access-token lifetime in seconds, if it overrides the server's.
    #[must_use]
    pub fn access_token_lifetime(&self) -> Option<i64> {
        self.row.access_token_lifetime
    }

    /// The client's own refresh-token lifetime in seconds, if it overrides the server's.
    #[must_use]
    pub fn refresh_token_lifetime(&self) -> Option<i64> {
        self.row.refresh_token_lifetime
    }

    /// Whether the authorization-code grant yields a refresh token even without
    /// `offline_access` (django-oauth-toolkit's behaviour; OIDC Core §11 otherwise).
    #[must_use]
    pub fn always_issue_refresh_token(&self) -> bool {
        self.row.always_issue_refresh_token
    }

    /// Whether PKCE is mandatory: always for public clients (RFC 9700 §2.1.1), else per client.
    #[must_use]
    pub fn requires_pkce(&self) -> bool {
        self.client_type == ClientType::Public || self.row.require_pkce
    }

    /// The application's logo (OpenID Connect Dynamic Client Registration 1.0 §2
    /// `logo_uri`), if it gave one.
    #[must_use]
    pub fn logo(&self) -> Option<MetadataUri> {
        stored_uri(self.row.logo_uri.as_deref())
    }

    /// The application's home page (DCR 1.0 §2 `client_uri`), if it gave one.
    #[must_use]
    pub fn homepage(&self) -> Option<MetadataUri> {
        stored_uri(self.row.client_uri.as_deref())
    }

    /// The application's privacy policy (DCR 1.0 §2 `policy_uri`), if it gave one.
    #[must_use]
    pub fn privacy_policy(&self) -> Option<MetadataUri> {
        stored_uri(self.row.policy_uri.as_deref())
    }

    /// The application's terms of service (DCR 1.0 §2 `tos_uri`), if it gave one.
    #[must_use]
    pub fn terms_of_service(&self) -> Option<MetadataUri> {
        stored_uri(self.row.tos_uri.as_deref())
    }
}

/// A stored metadata URL, parsed again: one that no longer passes (stored by hand, or under
/// older rules) is not shown at all.
fn stored_uri(stored: Option<&str>) -> Option<MetadataUri> {
    MetadataUri::parse(stored?).ok()
}

/// Splits a stored space-separated list.
#[must_use]
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What registering (or updating) a client needs, before validation.
#[derive(Clone, Debug, Default)]
pub struct ClientSpec {
    /// Display name (1–200 characters).
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: String,
    /// Token endpoint auth method; default `client_secret_basic` (confidential) or `none`.
    pub auth_method: Option<String>,
    /// Allowed grant types.
    pub grant_types: Vec<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// CORS origins (`https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// Allowed scopes; empty = every scope the server knows.
    pub scopes: Vec<String>,
    /// Skip the consent page.
    pub skip_authorization: bool,
    /// Require PKCE for a confidential client too (public clients always).
    pub require_pkce: bool,
    /// Accept PKCE `plain`.
    pub allow_plain_pkce: bool,
    /// May introspect every client's tokens (a resource server).
    pub introspect_all: bool,
    /// Access-token lifetime override in seconds.
    pub access_token_lifetime: Option<i64>,
    /// Refresh-token lifetime override in seconds.
    pub refresh_token_lifetime: Option<i64>,
    /// Owning user id.
    pub owner_id: Option<String>,
    /// `id_token_signed_response_alg`: RS256 (default), ES256 or EdDSA.
    pub id_token_alg: Option<String>,
    /// `opaque` (default) or `jwt`.
    pub access_token_format: Option<String>,
    /// Issue refresh tokens on authorization-code exchanges even without `offline_access`.
    pub always_issue_refresh_token: bool,
    /// RFC 8707 resource URIs the client serves as a resource server (confidential clients
    /// only; at most [`crate::domain::MAX_RESOURCES`]).
    pub resource_uris: Vec<String>,
    /// URL of the application's logo, shown on the consent page (OpenID Connect Dynamic Client
    /// Registration 1.0 §2 `logo_uri`); `None` or empty = none. Rules: [`MetadataUri`].
    pub logo_uri: Option<String>,
    /// URL of the application's home page (DCR 1.0 §2 `client_uri`); `None` or empty = none.
    pub client_uri: Option<String>,
    /// URL of its privacy policy (DCR 1.0 §2 `policy_uri`); `None` or empty = none.
    pub policy_uri: Option<String>,
    /// URL of its terms of service (DCR 1.0 §2 `tos_uri`); `None` or empty = none.
    pub tos_uri: Option<String>,
}

impl ClientSpec {
    /// The spec that reproduces `client` (for edits that change a few fields).
    #[must_use]
    pub fn from_client(client: &Client) -> Self {
        let row = &client.row;
        Self {
            name: row.name.clone(),
            client_type: row.client_type.clone(),
            auth_method: Some(row.token_endpoint_auth_method.clone()),
            grant_types: split_list(&row.grant_types),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: split_list(&row.post_logout_redirect_uris),
            allowed_origins: split_list(&row.allowed_origins),
            scopes: split_list(&row.allowed_scopes),
            skip_authorization: row.skip_authorization,
            require_pkce: row.require_pkce,
            allow_plain_pkce: row.allow_plain_pkce,
            introspect_all: row.introspect_all,
            access_token_lifetime: row.access_token_lifetime,
            refresh_token_lifetime: row.refresh_token_lifetime,
            owner_id: row.owner_id.clone(),
            id_token_alg: Some(row.id_token_signed_response_alg.clone()),
            access_token_format: Some(row.access_token_format.clone()),
            always_issue_refresh_token: row.always_issue_refresh_token,
            resource_uris: split_list(&row.resource_uris),
            logo_uri: row.logo_uri.clone(),
            client_uri: row.client_uri.clone(),
            policy_uri: row.policy_uri.clone(),
            tos_uri: row.tos_uri.clone(),
        }
    }
}

/// Why a client could not be registered or changed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A field is invalid: (field, message for the user).
    #[error("{field}: {message}")]
    Invalid {
        /// The field's name (`redirect_uris`, `grant_types`, …).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No client with that id — or none the acting user may see: a client of someone else's
    /// answers this too, so that its existence is not confirmed.
    #[error("no such client")]
    NotFound,
    /// The acting user may not make this change ([`check_owner`], [`check_powers`]): give a
    /// first-party power, change where a powered client's codes go, or touch an operator's or
    /// an admin's client; nothing changed.
    #[error("{field}: {message}")]
    Forbidden {
        /// The field holding the power (`grant_types`, `scopes`, `skip_authorization`, …), the
        /// destination refused (`redirect_uris`, …), or `owner` for a client not theirs to
        /// change.
        field: &'static str,
        /// What is refused, for the user.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ClientError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::Invalid {
        field,
        message: message.into(),
    }
}

/// Who is changing a client, as stored now (read on the change's connection, inside its
/// transaction, so a demotion that committed first is seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Editor {
    /// The system (command line, jobs) or an active superuser: every client, every power.
    Admin,
    /// An active staff member who is not a superuser: their own clients and those of ordinary
    /// users, without giving new first-party powers.
    Staff,
    /// Anyone else: their own clients only, without giving new first-party powers.
    User,
}

fn editor(conn: &mut DbConnection, actor: &Actor) -> diesel::QueryResult<Editor> {
    let Some(id) = &actor.user_id else {
        return Ok(Editor::Admin);
    };
    Ok(match db_users::find(conn, id)? {
        Some(u) if u.is_active && u.is_superuser => Editor::Admin,
        Some(u) if u.is_active && u.has_staff_access() => Editor::Staff,
        _ => Editor::User,
    })
}

/// Who may manage (edit, delete, rotate the secret of) a stored client, checked inside the
/// change's transaction whoever calls: the system and active superusers manage every client;
/// anyone manages the clients they own; active staff who are not superusers also manage the
/// portal clients of *ordinary* users — an operator's client (no owner) or one owned by a staff
/// member or superuser is a superuser's ([`ClientError::Forbidden`], field `owner`); a user who
/// is not staff gets [`ClientError::NotFound`] for anyone else's (existence is not confirmed).
fn check_owner(
    conn: &mut DbConnection,
    actor: &Actor,
    client: &ClientRow,
) -> Result<Editor, ClientError> {
    let editor = editor(conn, actor)?;
    let owns = actor.user_id.is_some() && client.owner_id == actor.user_id;
    match editor {
        Editor::Admin => Ok(editor),
        _ if owns => Ok(editor),
        Editor::Staff => {
            let ordinary_owner = match &client.owner_id {
                Some(owner) => db_users::find(conn, owner)?.is_some_and(|u| !u.has_staff_access()),
                None => false,
            };
            if ordinary_owner {
                Ok(editor)
            } else {
                Err(ClientError::Forbidden {
                    field: "owner",
                    message: "only a superuser can change an application registered by an operator or owned by a staff member or superuser".into(),
                })
            }
        }
        Editor::User => Err(ClientError::NotFound),
    }
}

/// The first first-party power that `new` has and `old` had not (`old`: `None` for a new
/// client), as (field, description): the password grant (a client with it collects passwords
/// and gets tokens without consent), the `admin` and `logout_all` scopes, skipping consent,
/// introspecting every token, serving RFC 8707 resources, refresh tokens without
/// `offline_access`, PKCE off or `plain`, and custom token lifetimes. Taking a power away is not
/// giving one.
fn new_power(old: Option<&ClientRow>, new: &ClientRow) -> Option<(&'static str, String)> {
    let listed = |list: &str, item: &str| list.split(' ').any(|x| x == item);
    let kept_or_off = |was: Option<bool>, now: bool| !now || was == Some(true);
    let had_grant = |g: &str| old.is_some_and(|o| listed(&o.grant_types, g));
    if listed(&new.grant_types, GrantType::Password.as_str())
        && !had_grant(GrantType::Password.as_str())
    {
        return Some(("grant_types", "the password grant".into()));
    }
    if listed(&new.grant_types, GrantType::TokenExchange.as_str())
        && !had_grant(GrantType::TokenExchange.as_str())
    {
        return Some(("grant_types", "the token-exchange grant".into()));
    }
    for scope in crate::config::RESTRICTED_SCOPES {
        if listed(&new.allowed_scopes, scope)
            && !old.is_some_and(|o| listed(&o.allowed_scopes, scope))
        {
            return Some(("scopes", format!("the {scope} scope")));
        }
    }
    let flags = [
        (
            "skip_authorization",
            "skipping consent",
            old.map(|o| o.skip_authorization),
            new.skip_authorization,
        ),
        (
            "introspect_all",
            "introspecting every token",
            old.map(|o| o.introspect_all),
            new.introspect_all,
        ),
        (
            "allow_plain_pkce",
            "plain PKCE",
            old.map(|o| o.allow_plain_pkce),
            new.allow_plain_pkce,
        ),
        (
            "require_pkce",
            "PKCE switched off",
            old.map(|o| !o.require_pkce),
            !new.require_pkce,
        ),
        (
            "always_issue_refresh_token",
            "refresh tokens without offline_access",
            old.map(|o| o.always_issue_refresh_token),
            new.always_issue_refresh_token,
        ),
    ];
    for (field, what, was, now) in flags {
        if !kept_or_off(was, now) {
            return Some((field, what.into()));
        }
    }
    let same_or_default = |was: Option<&str>, now: &str| now.is_empty() || was == Some(now);
    if !same_or_default(old.map(|o| o.resource_uris.as_str()), &new.resource_uris) {
        return Some(("resource_uris", "serving resources".into()));
    }
    let lifetimes = |r: &ClientRow| (r.access_token_lifetime, r.refresh_token_lifetime);
    if lifetimes(new) != (None, None) && old.map(lifetimes) != Some(lifetimes(new)) {
        return Some(("lifetimes", "custom token lifetimes".into()));
    }
    None
}

/// The first first-party power `client` holds, as (field, description); see [`new_power`].
fn held_power(client: &ClientRow) -> Option<(&'static str, String)> {
    new_power(None, client)
}

/// The fields that say where a client's codes, tokens and users go: fixed while it holds a
/// first-party power, except for a superuser ([`check_powers`]).
const DESTINATION_FIELDS: [&str; 3] = [
    "redirect_uris",
    "post_logout_redirect_uris",
    "allowed_origins",
];

fn destination<'r>(row: &'r ClientRow, field: &str) -> std::collections::BTreeSet<&'r str> {
    let list = match field {
        "redirect_uris" => &row.redirect_uris,
        "post_logout_redirect_uris" => &row.post_logout_redirect_uris,
        _ => &row.allowed_origins,
    };
    list.split(' ').filter(|s| !s.is_empty()).collect()
}

/// The rule for registering or changing a client, checked by the service inside the change's
/// transaction whoever calls it (portal pages, tests, the command line as the system):
///
/// * who may touch the client at all is [`check_owner`]'s rule; a client registered by anyone
///   but the system or a superuser is the registrant's own (`owner_id`, which makes it a
///   "portal client" that the authorization, token and logout endpoints treat more strictly);
/// * giving a client a first-party power it did not have ([`new_power`]) is a superuser's
///   (or the system's): staff who are not superusers and owners only keep what is stored;
/// * while a client holds a first-party power, its redirect URIs, post-logout redirect URIs
///   and allowed CORS origins are a superuser's too: otherwise its owner (or a staff member)
///   could point a client trusted to skip consent at a host of their own (RFC 9700 §4.1).
///
/// `old`: the stored client; `None` for a new one.
fn check_powers(
    conn: &mut DbConnection,
    actor: &Actor,
    old: Option<&ClientRow>,
    new: &ClientRow,
) -> Result<(), ClientError> {
    let editor = match old {
        Some(old) => check_owner(conn, actor, old)?,
        None => editor(conn, actor)?,
    };
    if editor == Editor::Admin {
        return Ok(());
    }
    if old.is_none() && (actor.user_id.is_none() || new.owner_id != actor.user_id) {
        return Err(ClientError::Forbidden {
            field: "owner",
            message: "an application you register is yours".into(),
        });
    }
    let who = match editor {
        Editor::Staff => "only a superuser can allow it",
        _ => "only administrators can allow it",
    };
    if let Some((field, what)) = new_power(old, new) {
        return Err(ClientError::Forbidden {
            field,
            message: format!("{what}: {who}"),
        });
    }
    if let Some((old, (_, power))) = old.and_then(|o| Some((o, held_power(o)?))) {
        for field in DESTINATION_FIELDS {
            if destination(old, field) != destination(new, field) {
                return Err(ClientError::Forbidden {
                    field,
                    message: destinations_fixed(&power),
                });
            }
        }
    }
    Ok(())
}

/// Why a client's redirect URIs, post-logout redirect URIs and allowed origins stay as they are
/// (`power`: the first-party power it holds).
fn destinations_fixed(power: &str) -> String {
    format!(
        "an administrator gave this application first-party powers ({power}), so only a superuser can change its redirect URIs, post-logout redirect URIs and allowed origins: ask an administrator"
    )
}

/// What an actor may do to a stored client, by the rules of [`check_owner`] and
/// [`check_powers`]: for pages that hide the controls the viewer cannot use (each change checks
/// again in its transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAccess {
    /// `None` when the actor may edit, delete and rotate the secret of the client; otherwise
    /// why not.
    pub refused: Option<String>,
    /// Whether the actor may give first-party powers (the system or a superuser).
    pub grant_powers: bool,
    /// `None` when the actor may change the redirect URIs, post-logout redirect URIs and
    /// allowed origins; otherwise why not (the client holds a first-party power).
    pub destinations_fixed: Option<String>,
}

/// Validates a spec into a row (without id, secret or timestamps set meaningfully). The
/// metadata URLs (`logo_uri`, `client_uri`, `policy_uri`, `tos_uri`; OpenID Connect Dynamic
/// Client Registration 1.0 §2) follow [`MetadataUri`]'s rules and are stored in its form.
///
/// # Errors
/// [`ClientError::Invalid`] naming the first offending field ([`spec_problems`] lists them
/// all).
pub fn validate_spec(
    spec: &ClientSpec,
    known_scopes: &BTreeMap<String, String>,
) -> Result<ClientRow, ClientError> {
    let mut problems = Vec::new();
    let row = check_spec(spec, known_scopes, &mut problems);
    match problems.into_iter().next() {
        Some((field, message)) => Err(ClientError::Invalid { field, message }),
        None => Ok(row),
    }
}

/// Every field of `spec` that [`validate_spec`] refuses, with its message, in form order (a
/// form shows them all at once; a field may appear more than once). Empty when the spec is
/// valid.
#[must_use]
pub fn spec_problems(
    spec: &ClientSpec,
    known_scopes: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    check_spec(spec, known_scopes, &mut problems);
    problems
}

/// Checks every field of `spec`, adding each problem to `problems` and going on with a safe
/// stand-in value, so that one submit reports every field; the row is meaningful only when no
/// problem was added.
#[allow(clippy::too_many_lines)]
fn check_spec(
    spec: &ClientSpec,
    known_scopes: &BTreeMap<String, String>,
    problems: &mut Vec<(&'static str, String)>,
) -> ClientRow {
    let mut problem = |field: &'static str, message: String| problems.push((field, message));
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        problem("name", "must have 1 to 200 characters".to_owned());
    } else if name.chars().any(char::is_control) {
        // The name is shown on consent pages and in emails; a line break, an escape sequence
        // or a NUL (which PostgreSQL cannot store) has no place in it.
        problem(
            "name",
            "may not contain control characters such as line breaks, tabs or NUL".to_owned(),
        );
    }
    let client_type: ClientType = spec.client_type.parse().unwrap_or_else(|e| {
        problem("client_type", e);
        ClientType::Confidential
    });
    let auth_method = match &spec.auth_method {
        Some(m) => m.parse().unwrap_or_else(|e| {
            problem("token_endpoint_auth_method", e);
            if client_type == ClientType::Public {
                AuthMethod::None
            } else {
                AuthMethod::ClientSecretBasic
            }
        }),
        None if client_type == ClientType::Public => AuthMethod::None,
        None => AuthMethod::ClientSecretBasic,
    };
    match (client_type, auth_method) {
        (ClientType::Public, AuthMethod::None)
        | (ClientType::Confidential, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost) => {}
        (ClientType::Public, _) => problem(
            "token_endpoint_auth_method",
            "public clients have no secret: use none".to_owned(),
        ),
        (ClientType::Confidential, AuthMethod::None) => problem(
            "token_endpoint_auth_method",
            "confidential clients authenticate with a secret: use client_secret_basic or client_secret_post".to_owned(),
        ),
    }
    let mut grants: Vec<GrantType> = Vec::new();
    for g in spec
        .grant_types
        .iter()
        .flat_map(|g| g.split([',', ' ']))
        .filter(|g| !g.is_empty())
    {
        match g.parse::<GrantType>() {
            Ok(g) if !grants.contains(&g) => grants.push(g),
            Ok(_) => {}
            Err(e) => problem("grant_types", e),
        }
    }
    if grants.is_empty() && spec.grant_types.iter().all(|g| g.trim().is_empty()) {
        problem("grant_types", "choose at least one grant type".to_owned());
    }
    grants.sort();
    if client_type == ClientType::Public && grants.contains(&GrantType::ClientCredentials) {
        problem(
            "grant_types",
            "client_credentials needs a confidential client (RFC 6749 §4.4)".to_owned(),
        );
    }
    if client_type == ClientType::Public && spec.introspect_all {
        // A public client authenticates with its client_id alone (RFC 6749 section 2.1), which
        // is no secret: with introspect_all anyone who knew the id could read every token.
        problem(
            "introspect_all",
            "introspecting every token needs a confidential client (RFC 7662 section 2.1)"
                .to_owned(),
        );
    }
    let mut redirect_uris = Vec::new();
    for uri in spec
        .redirect_uris
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
    {
        match RedirectUri::parse(uri) {
            Ok(uri) if !redirect_uris.contains(&uri.as_str().to_owned()) => {
                redirect_uris.push(uri.as_str().to_owned());
            }
            Ok(_) => {}
            Err(e) => problem("redirect_uris", e),
        }
    }
    if grants.contains(&GrantType::AuthorizationCode)
        && spec.redirect_uris.iter().all(|u| u.trim().is_empty())
    {
        problem(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI".to_owned(),
        );
    }
    let mut post_logout = Vec::new();
    for uri in spec
        .post_logout_redirect_uris
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
    {
        match RedirectUri::parse(uri) {
            Ok(uri) => post_logout.push(uri.as_str().to_owned()),
            Err(e) => problem("post_logout_redirect_uris", e),
        }
    }
    let mut origins = Vec::new();
    for origin in spec
        .allowed_origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
    {
        match parse_origin(origin) {
            Ok(o) => origins.push(o),
            Err(e) => problem("allowed_origins", e),
        }
    }
    let scopes = if spec.scopes.iter().all(|s| s.trim().is_empty()) {
        // Every scope but `admin` and `logout_all`, which a client gets only by asking for
        // them by name.
        known_scopes
            .keys()
            .filter(|s| !crate::config::RESTRICTED_SCOPES.contains(&s.as_str()))
            .cloned()
            .collect::<ScopeSet>()
    } else {
        let joined = spec.scopes.join(" ").replace(',', " ");
        match ScopeSet::parse(&joined) {
            Ok(set) => {
                if let Some(unknown) = set.iter().find(|s| !known_scopes.contains_key(*s)) {
                    problem(
                        "scopes",
                        format!(
                            "unknown scope {unknown:?}; known scopes: {}",
                            known_scopes.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                set
            }
            Err(e) => {
                problem("scopes", e);
                ScopeSet::default()
            }
        }
    };
    for (field, v) in [
        ("access_token_lifetime", spec.access_token_lifetime),
        ("refresh_token_lifetime", spec.refresh_token_lifetime),
    ] {
        if let Some(v) = v {
            if !(1..=10 * 365 * 24 * 3600).contains(&v) {
                problem(field, "must be between 1 second and 10 years".to_owned());
            }
        }
    }
    let alg: crate::domain::SigningAlg = match spec.id_token_alg.as_deref().map(str::trim) {
        None | Some("") => crate::domain::SigningAlg::Rs256,
        Some(a) => a.parse().unwrap_or_else(|e| {
            problem("id_token_signed_response_alg", e);
            crate::domain::SigningAlg::Rs256
        }),
    };
    let format: AccessTokenFormat = match spec.access_token_format.as_deref().map(str::trim) {
        None | Some("") => AccessTokenFormat::Opaque,
        Some(f) => f.parse().unwrap_or_else(|e| {
            problem("access_token_format", e);
            AccessTokenFormat::Opaque
        }),
    };
    let resource_uris = ResourceSet::parse(
        spec.resource_uris
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty()),
    )
    .unwrap_or_else(|e| {
        problem("resource_uris", e);
        ResourceSet::default()
    });
    // A public client authenticates with its client_id alone: serving a resource would let
    // anyone who knows it introspect that resource's tokens.
    if !resource_uris.is_empty() && client_type == ClientType::Public {
        problem(
            "resource_uris",
            "only a confidential client can serve a resource (introspection needs its secret)"
                .to_owned(),
        );
    }
    // OpenID Connect Dynamic Client Registration 1.0 §2: what users see about the application
    // besides its name. Each optional; empty means none.
    let [logo_uri, client_uri, policy_uri, tos_uri] = [
        ("logo_uri", &spec.logo_uri),
        ("client_uri", &spec.client_uri),
        ("policy_uri", &spec.policy_uri),
        ("tos_uri", &spec.tos_uri),
    ]
    .map(|(field, value)| match value.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => MetadataUri::parse(raw).map_or_else(
            |e| {
                problem(field, e);
                None
            },
            |uri| Some(uri.to_string()),
        ),
    });
    let now = db::now();
    ClientRow {
        client_id: String::new(),
        name: name.to_owned(),
        client_type: client_type.as_str().to_owned(),
        token_endpoint_auth_method: auth_method.as_str().to_owned(),
        secret_hash: None,
        secret_hint: None,
        grant_types: grants
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        redirect_uris: redirect_uris.join(" "),
        post_logout_redirect_uris: post_logout.join(" "),
        allowed_origins: origins.join(" "),
        allowed_scopes: scopes.to_string(),
        skip_authorization: spec.skip_authorization,
        require_pkce: spec.require_pkce || client_type == ClientType::Public,
        allow_plain_pkce: spec.allow_plain_pkce,
        introspect_all: spec.introspect_all,
        access_token_lifetime: spec.access_token_lifetime,
        refresh_token_lifetime: spec.refresh_token_lifetime,
        owner_id: spec.owner_id.clone(),
        created_at: now,
        updated_at: now,
        id_token_signed_response_alg: alg.as_str().to_owned(),
        access_token_format: format.as_str().to_owned(),
        always_issue_refresh_token: spec.always_issue_refresh_token,
        resource_uris: resource_uris.to_string(),
        logo_uri,
        client_uri,
        policy_uri,
        tos_uri,
    }
}

/// Parses a CORS origin: `scheme://host[:port]` and nothing else.
fn parse_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{raw:?} is not an http(s) origin"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != raw.trim_end_matches('/') {
        return Err(format!(
            "{raw:?} is not an origin: use scheme://host[:port] only ({origin})"
        ));
    }
    Ok(origin)
}

/// A newly generated client secret: give it to the client once, never store it.
pub struct PlainSecret(pub String);

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSecret(***)")
    }
}

/// The associated data a held secret is sealed with: it opens only for its own row.
fn held_aad(ticket_hash: &str, client_id: &str, user_id: &str) -> String {
    format!("{ticket_hash}\n{client_id}\n{user_id}")
}

/// Characters of the secret kept as a hint so a person can tell secrets apart.
pub const SECRET_HINT_CHARS: usize = 6;

fn new_secret() -> (PlainSecret, String, String) {
    let secret = secret::new_token();
    let hash = secret::sha256_hex(&secret);
    let hint = secret.chars().take(SECRET_HINT_CHARS).collect();
    (PlainSecret(secret), hash, hint)
}

/// How long a newly generated secret is kept for its one view ([`Clients::hold_secret`]).
pub const HELD_SECRET_SECONDS: i64 = 5 * 60;

/// The HKDF `info` of the held secrets' sealing key.
const HELD_SECRETS_PURPOSE: &str = "held-client-secrets/v1";

/// How long a node authenticates clients from a row it read earlier
/// ([`Clients::find_for_authentication`]): the bound on how long another node (or the command
/// line, another process) keeps accepting a rotated secret or a deleted or changed client. The
/// node that makes the change forgets the row at once.
pub const CLIENT_CACHE_SECONDS: u64 = 5;

/// Most client rows kept; past it the cache starts afresh (only registered clients are kept,
/// so unknown `client_id`s cannot fill it).
const CLIENT_CACHE_ENTRIES: usize = 4096;

/// The client rows that authenticated requests read, kept [`CLIENT_CACHE_SECONDS`] per row:
/// client authentication at the token, introspection and revocation endpoints then needs no
/// database read. Each change a [`Clients`] method makes bumps the generation after its
/// transaction has committed, which drops every row, and a read that began before a change
/// does not store what it read.
#[derive(Debug, Default)]
pub struct ClientCache {
    rows: RwLock<HashMap<String, (Instant, Client)>>,
    generation: AtomicU64,
}

impl ClientCache {
    fn get(&self, client_id: &str, ttl: Duration) -> Option<Client> {
        let rows = self.rows.read().ok()?;
        rows.get(client_id)
            .filter(|(read_at, _)| read_at.elapsed() < ttl)
            .map(|(_, client)| client.clone())
    }

    fn put(&self, generation: u64, client: &Client) {
        if let Ok(mut rows) = self.rows.write() {
            // Checked under the lock that `forget_all` takes: a change committed after the
            // read began leaves its row out.
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if rows.len() >= CLIENT_CACHE_ENTRIES {
                rows.clear();
            }
            rows.insert(client.id().to_owned(), (Instant::now(), client.clone()));
        }
    }

    /// Forgets every row: called after a change to clients committed.
    pub fn forget_all(&self) {
        if let Ok(mut rows) = self.rows.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            rows.clear();
        }
    }
}

/// The clients service.
#[derive(Clone, Debug)]
pub struct Clients {
    db: Db,
    known_scopes: BTreeMap<String, String>,
    /// Seals the secrets held for their one view.
    sealer: Arc<secret::Sealer>,
    /// Rows read to authenticate clients, shared by every clone.
    cache: Arc<ClientCache>,
}

impl Clients {
    /// The service over `db`; `known_scopes` are the server's scopes; `secret_key` is
    /// `secrets.secret_key`, from which the key sealing held secrets is derived.
    ///
    /// # Errors
    /// [`secret::SealError`] if the sealing key cannot be set up.
    pub fn new(
        db: Db,
        known_scopes: BTreeMap<String, String>,
        secret_key: &[u8],
    ) -> Result<Self, secret::SealError> {
        Ok(Self {
            db,
            known_scopes,
            sealer: Arc::new(secret::Sealer::new(secret_key, HELD_SECRETS_PURPOSE)?),
            cache: Arc::default(),
        })
    }

    /// Keeps `secret`, newly generated for `client_id` by `user_id`, for one view within
    /// [`HELD_SECRET_SECONDS`] (post/redirect/get: the page the browser is sent to shows it).
    /// It is stored sealed ([`secret::Sealer`], bound to the ticket, client and user); a newer
    /// held secret of the client replaces it. Returns the ticket the browser keeps (in its
    /// encrypted session) to see it; only its SHA-256 is stored. `None` when the crypto
    /// library failed to seal it (logged; the page then asks for a new secret).
    ///
    /// # Errors
    /// Storage failures only.
    pub async fn hold_secret(
        &self,
        user_id: &str,
        client_id: &str,
        secret: PlainSecret,
    ) -> Result<Option<String>, DbError> {
        let ticket = secret::new_token();
        let ticket_hash = secret::sha256_hex(&ticket);
        let aad = held_aad(&ticket_hash, client_id, user_id);
        let sealed = match self.sealer.seal(aad.as_bytes(), secret.0.as_bytes()) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a new client secret for its view");
                return Ok(None);
            }
        };
        let now = db::now();
        let row = held_secrets::HeldSecretRow {
            ticket_hash,
            client_id: client_id.to_owned(),
            user_id: user_id.to_owned(),
            sealed,
            expires_at: now + chrono::TimeDelta::seconds(HELD_SECRET_SECONDS),
        };
        self.db
            .write(move |conn| held_secrets::replace(conn, &row, now).map_err(DbError::from))
            .await?;
        Ok(Some(ticket))
    }

    /// The secret held under `ticket` for `client_id` and `user_id`, removed: it is shown
    /// once. `None` when it was shown already, has expired, was replaced by a newer secret,
    /// or belongs to another client or user.
    ///
    /// # Errors
    /// Storage failures only.
    pub async fn take_held_secret(
        &self,
        ticket: &str,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<PlainSecret>, DbError> {
        let ticket_hash = secret::sha256_hex(ticket);
        let taken = {
            let hash = ticket_hash.clone();
            self.db
                .write(move |conn| held_secrets::take(conn, &hash).map_err(DbError::from))
                .await?
        };
        let Some(row) = taken else {
            return Ok(None);
        };
        if row.client_id != client_id || row.user_id != user_id || row.expires_at <= db::now() {
            return Ok(None);
        }
        let aad = held_aad(&ticket_hash, client_id, user_id);
        match self.sealer.open(aad.as_bytes(), &row.sealed) {
            Ok(plain) => Ok(String::from_utf8(plain).ok().map(PlainSecret)),
            Err(e) => {
                // The secret key changed between the redirect and this view.
                tracing::warn!(error = %e, "a held client secret does not open");
                Ok(None)
            }
        }
    }

    /// Registers a client. A confidential client gets a fresh secret, returned here once.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for invalid input; [`ClientError::Forbidden`] (field `owner`)
    /// when the owner's account is gone or disabled (checked under its row lock, so a client
    /// registered while its owner is deleted is either refused or deleted with the owner), or
    /// for a power the actor may not give ([`check_powers`]).
    #[tracing::instrument(skip_all, fields(name = %spec.name))]
    pub async fn register(
        &self,
        actor: &Actor,
        spec: &ClientSpec,
    ) -> Result<(Client, Option<PlainSecret>), ClientError> {
        let mut row = validate_spec(spec, &self.known_scopes)?;
        row.client_id = secret::random_alphanumeric(32);
        let plain = if row.client_type == ClientType::Confidential.as_str() {
            let (plain, hash, hint) = new_secret();
            row.secret_hash = Some(hash);
            row.secret_hint = Some(hint);
            Some(plain)
        } else {
            None
        };
        let stored = row.clone();
        let event = AuditEvent::new("client.created")
            .by(actor)
            .client(row.client_id.clone())
            .maybe_user(row.owner_id.as_deref())
            .detail("name", row.name.clone());
        let actor = actor.clone();
        let result = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ClientError, _>(|conn| {
                    // The owner's row lock: a deletion of the owner runs wholly before this
                    // (and the owner is gone) or after it (and deletes this client too).
                    if let Some(owner) = &stored.owner_id {
                        if !db_users::lock(conn, owner)?.is_some_and(|u| u.is_active) {
                            return Err(ClientError::Forbidden {
                                field: "owner",
                                message: "the owner's account no longer exists or is disabled"
                                    .into(),
                            });
                        }
                    }
                    check_powers(conn, &actor, None, &stored)?;
                    clients::insert(conn, &stored)?;
                    audit::record(conn, event)?;
                    Ok(())
                })
            })
            .await;
        self.forget_cached();
        result?;
        Ok((Client::from_row(row), plain))
    }

    /// Creates a client with a caller-chosen `client_id` and secret, or resets an existing one
    /// to `spec` (used only by `serve --demo`, whose credentials are published on purpose).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an invalid spec.
    pub async fn ensure_fixed(
        &self,
        client_id: &str,
        secret: Option<&str>,
        spec: &ClientSpec,
    ) -> Result<(), ClientError> {
        let mut row = validate_spec(spec, &self.known_scopes)?;
        row.client_id = client_id.to_owned();
        if let Some(secret) = secret {
            row.secret_hash = Some(secret::sha256_hex(secret));
            row.secret_hint = Some(secret.chars().take(SECRET_HINT_CHARS).collect());
        }
        let result = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    match clients::find(conn, &row.client_id)? {
                        None => clients::insert(conn, &row)?,
                        Some(old) => {
                            // Keep the demo usable when the issuer (and so the callback) moved.
                            row.created_at = old.created_at;
                            clients::update(conn, &row)?;
                        }
                    }
                    Ok(())
                })
                .map_err(ClientError::from)
            })
            .await;
        self.forget_cached();
        result
    }

    /// Replaces a client's settings (not its id, secret, owner or creation time).
    ///
    /// # Errors
    /// [`ClientError::Invalid`], [`ClientError::NotFound`].
    pub async fn update(
        &self,
        actor: &Actor,
        client_id: &str,
        spec: &ClientSpec,
    ) -> Result<Client, ClientError> {
        let mut row = validate_spec(spec, &self.known_scopes)?;
        let id = client_id.to_owned();
        let event = AuditEvent::new("client.updated")
            .by(actor)
            .client(client_id);
        let actor = actor.clone();
        let updated = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ClientError, _>(|conn| {
                    let Some(old) = clients::lock(conn, &id)? else {
                        return Ok(None);
                    };
                    if old.client_type != row.client_type {
                        return Err(invalid(
                            "client_type",
                            "the client type cannot change; register a new client",
                        ));
                    }
                    row.owner_id.clone_from(&old.owner_id);
                    check_powers(conn, &actor, Some(&old), &row)?;
                    row.client_id = old.client_id;
                    row.secret_hash = old.secret_hash;
                    row.secret_hint = old.secret_hint;
                    row.created_at = old.created_at;
                    clients::update(conn, &row)?;
                    audit::record(conn, event.maybe_user(row.owner_id.as_deref()))?;
                    Ok(Some(row))
                })
            })
            .await;
        self.forget_cached();
        let updated = updated?.ok_or(ClientError::NotFound)?;
        Ok(Client::from_row(updated))
    }

    /// What `actor` may do to `client` (`None`: a client they would register), read now; each
    /// change checks again in its transaction.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn access(
        &self,
        actor: &Actor,
        client: Option<&Client>,
    ) -> Result<ClientAccess, DbError> {
        let actor = actor.clone();
        let row = client.map(|c| c.row.clone());
        self.db
            .read(move |conn| {
                let (refused, editor) = match row.as_ref().map(|r| check_owner(conn, &actor, r)) {
                    None => (None, editor(conn, &actor)?),
                    Some(Ok(editor)) => (None, editor),
                    Some(Err(ClientError::Db(e))) => return Err(e),
                    Some(Err(ClientError::Forbidden { message, .. })) => {
                        (Some(message), Editor::User)
                    }
                    Some(Err(e)) => (Some(e.to_string()), Editor::User),
                };
                let grant_powers = editor == Editor::Admin;
                let destinations_fixed = match &row {
                    Some(row) if !grant_powers => {
                        held_power(row).map(|(_, power)| destinations_fixed(&power))
                    }
                    _ => None,
                };
                Ok(ClientAccess {
                    refused,
                    grant_powers,
                    destinations_fixed,
                })
            })
            .await
    }

    /// The client with this id.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find(&self, client_id: &str) -> Result<Option<Client>, DbError> {
        let id = client_id.to_owned();
        self.db
            .read(move |conn| clients::find(conn, &id).map_err(DbError::from))
            .await
            .map(|r| r.map(Client::from_row))
    }

    /// The client with this id, for client authentication (RFC 6749 §2.3): from a row read at
    /// most [`CLIENT_CACHE_SECONDS`] ago, else read now and kept. Changes made through this
    /// service on this node take effect at once (the rows are forgotten when they commit);
    /// changes made elsewhere within [`CLIENT_CACHE_SECONDS`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn find_for_authentication(
        &self,
        client_id: &str,
    ) -> Result<Option<Client>, DbError> {
        let ttl = Duration::from_secs(CLIENT_CACHE_SECONDS);
        if let Some(client) = self.cache.get(client_id, ttl) {
            return Ok(Some(client));
        }
        let generation = self.cache.generation.load(Ordering::Acquire);
        let found = self.find(client_id).await?;
        if let Some(client) = &found {
            self.cache.put(generation, client);
        }
        Ok(found)
    }

    /// The row kept for `client_id` by [`Clients::find_for_authentication`], if it is fresh
    /// (memory only, no database read).
    #[must_use]
    pub fn cached_for_authentication(&self, client_id: &str) -> Option<Client> {
        self.cache
            .get(client_id, Duration::from_secs(CLIENT_CACHE_SECONDS))
    }

    /// The cache's generation now: pass it to [`Clients::remember_for_authentication`] with a
    /// row read after this call.
    #[must_use]
    pub fn cache_generation(&self) -> u64 {
        self.cache.generation.load(Ordering::Acquire)
    }

    /// Keeps `client`, read after [`Clients::cache_generation`] returned `generation`, for
    /// authentication (left out when a change committed since).
    pub fn remember_for_authentication(&self, generation: u64, client: &Client) {
        self.cache.put(generation, client);
    }

    /// Forgets the rows kept for authentication, after a change to clients committed (or
    /// failed: forgetting costs one read per client).
    pub fn forget_cached(&self) {
        self.cache.forget_all();
    }

    /// The rows kept for authentication, for services that delete clients themselves
    /// (deleting a user deletes the clients they own) to forget them.
    #[must_use]
    pub fn cache(&self) -> Arc<ClientCache> {
        self.cache.clone()
    }

    /// All clients.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<Client>, DbError> {
        self.db
            .read(|conn| clients::list(conn).map_err(DbError::from))
            .await
            .map(|v| v.into_iter().map(Client::from_row).collect())
    }

    /// Deletes a client with its codes, tokens and consents.
    ///
    /// # Errors
    /// [`ClientError::NotFound`].
    pub async fn delete(&self, actor: &Actor, client_id: &str) -> Result<(), ClientError> {
        let id = client_id.to_owned();
        let event = AuditEvent::new("client.deleted")
            .by(actor)
            .client(client_id);
        let actor = actor.clone();
        let deleted = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ClientError, _>(|conn| {
                    let Some(old) = clients::lock(conn, &id)? else {
                        return Ok(false);
                    };
                    check_owner(conn, &actor, &old)?;
                    clients::delete(conn, &id)?;
                    audit::record(
                        conn,
                        event
                            .maybe_user(old.owner_id.as_deref())
                            .detail("name", old.name),
                    )?;
                    Ok(true)
                })
            })
            .await;
        self.forget_cached();
        if !deleted? {
            return Err(ClientError::NotFound);
        }
        Ok(())
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], or [`ClientError::Invalid`] for a public client.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<PlainSecret, ClientError> {
        let client = self.find(client_id).await?.ok_or(ClientError::NotFound)?;
        if client.client_type != ClientType::Confidential {
            return Err(invalid("client_type", "public clients have no secret"));
        }
        let (plain, hash, hint) = new_secret();
        let id = client_id.to_owned();
        let event = AuditEvent::new("client.secret_rotated")
            .by(actor)
            .client(client_id)
            .maybe_user(client.row.owner_id.as_deref());
        let actor = actor.clone();
        let changed = self
            .db
            .write(move |conn| {
                conn.transaction::<_, ClientError, _>(|conn| {
                    let Some(old) = clients::lock(conn, &id)? else {
                        return Ok(false);
                    };
                    check_owner(conn, &actor, &old)?;
                    let changed = clients::set_secret(conn, &id, &hash, &hint, db::now())?;
                    if changed {
                        audit::record(conn, event)?;
                    }
                    Ok(changed)
                })
            })
            .await;
        self.forget_cached();
        if !changed? {
            return Err(ClientError::NotFound);
        }
        Ok(plain)
    }

    /// The scopes a client may be allowed, with their descriptions.
    #[must_use]
    pub fn known_scopes(&self) -> &BTreeMap<String, String> {
        &self.known_scopes
    }

    /// One page of clients, newest first: only those owned by `owner_id` when given, only those
    /// whose name or client_id contains `search` (case-insensitive) when given.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_page(
        &self,
        owner_id: Option<String>,
        search: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Client>, DbError> {
        self.db
            .read(move |conn| {
                clients::list_page(
                    conn,
                    owner_id.as_deref(),
                    search.as_deref(),
                    page.size,
                    page.offset(),
                )
                .map_err(DbError::from)
            })
            .await
            .map(|(rows, total)| Page::new(rows, page, total).map(Client::from_row))
    }

    /// Counts every registered client.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count(&self) -> Result<i64, DbError> {
        self.db
            .read(|conn| clients::count(conn).map_err(DbError::from))
            .await
    }

    /// Whether a browser at `origin` may call the token endpoints (CORS): with `client_id`,
    /// whether that client registered the origin; without (a preflight), whether any client did.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn origin_allowed(
        &self,
        origin: &str,
        client_id: Option<&str>,
    ) -> Result<bool, DbError> {
        let origin = origin.to_owned();
        let client_id = client_id.map(str::to_owned);
        self.db
            .read(move |conn| {
                let candidates = match client_id {
                    Some(id) => clients::find(conn, &id)?.into_iter().collect(),
                    None => clients::with_origin_like(conn, &origin)?,
                };
                Ok(candidates
                    .iter()
                    .any(|c| c.allowed_origins.split(' ').any(|o| o == origin)))
            })
            .await
    }

    /// Every resource URI some client serves (RFC 8707): the resources a `resource` parameter
    /// may name (RFC 8707 §2: anything else is `invalid_target`).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn served_resources(&self) -> Result<ResourceSet, DbError> {
        self.db
            .read(|conn| clients::resource_uri_lists(conn).map_err(DbError::from))
            .await
            .map(|lists| lists.iter().flat_map(|l| split_list(l)).collect())
    }

    /// Active tokens of a client.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn active_token_count(&self, client_id: &str) -> Result<i64, DbError> {
        let id = client_id.to_owned();
        self.db
            .read(move |conn| {
                tokens::count_active_for_client(conn, &id, db::now()).map_err(DbError::from)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> BTreeMap<String, String> {
        [("read", "Read"), ("write", "Write")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    }

    fn spec() -> ClientSpec {
        ClientSpec {
            name: "App".into(),
            client_type: "confidential".into(),
            grant_types: vec!["authorization_code,refresh_token".into()],
            redirect_uris: vec!["https://app.example.com/cb".into()],
            ..ClientSpec::default()
        }
    }

    #[test]
    fn validates_a_good_spec() {
        let row = validate_spec(&spec(), &scopes()).expect("valid");
        assert_eq!(row.grant_types, "authorization_code refresh_token");
        assert_eq!(row.allowed_scopes, "read write");
        assert_eq!(row.token_endpoint_auth_method, "client_secret_basic");
    }

    #[test]
    fn refuses_bad_specs() {
        let field = |s: ClientSpec| match validate_spec(&s, &scopes()) {
            Err(ClientError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(
            field(ClientSpec {
                grant_types: vec!["implicit".into()],
                ..spec()
            }),
            "grant_types"
        );
        assert_eq!(
            field(ClientSpec {
                redirect_uris: vec![],
                ..spec()
            }),
            "redirect_uris"
        );
        assert_eq!(
            field(ClientSpec {
                redirect_uris: vec!["http://evil.example/cb".into()],
                ..spec()
            }),
            "redirect_uris"
        );
        assert_eq!(
            field(ClientSpec {
                scopes: vec!["admin".into()],
                ..spec()
            }),
            "scopes"
        );
        assert_eq!(
            field(ClientSpec {
                client_type: "public".into(),
                grant_types: vec!["client_credentials".into()],
                ..spec()
            }),
            "grant_types"
        );
        assert_eq!(
            field(ClientSpec {
                allowed_origins: vec!["https://a.example/path".into()],
                ..spec()
            }),
            "allowed_origins"
        );
        for name in ["a\u{0}b", "line\nbreak", "esc\u{1b}[31m"] {
            assert_eq!(
                field(ClientSpec {
                    name: name.into(),
                    ..spec()
                }),
                "name",
                "{name:?}"
            );
        }
    }

    #[test]
    fn metadata_urls_are_checked_each_in_its_field() {
        let row = validate_spec(
            &ClientSpec {
                logo_uri: Some(" https://app.example.com/logo.png ".into()),
                client_uri: Some("https://app.example.com".into()),
                policy_uri: Some(String::new()),
                tos_uri: None,
                ..spec()
            },
            &scopes(),
        )
        .expect("valid");
        assert_eq!(
            row.logo_uri.as_deref(),
            Some("https://app.example.com/logo.png")
        );
        assert_eq!(row.client_uri.as_deref(), Some("https://app.example.com/"));
        assert_eq!((row.policy_uri, row.tos_uri), (None, None));

        let problems = spec_problems(
            &ClientSpec {
                logo_uri: Some("javascript:alert(1)".into()),
                client_uri: Some("http://app.example.com/".into()),
                policy_uri: Some("https://me:pw@app.example.com/privacy".into()),
                tos_uri: Some(format!("https://app.example.com/{}", "t".repeat(2000))),
                ..spec()
            },
            &scopes(),
        );
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["logo_uri", "client_uri", "policy_uri", "tos_uri"]);
    }

    #[test]
    fn public_clients_always_require_pkce() {
        let row = validate_spec(
            &ClientSpec {
                client_type: "public".into(),
                ..spec()
            },
            &scopes(),
        )
        .expect("valid");
        assert!(row.require_pkce);
        assert_eq!(row.token_endpoint_auth_method, "none");
    }
}
