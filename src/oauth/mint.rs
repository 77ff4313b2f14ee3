//! Minting tokens: the one place that writes access and refresh tokens (and their audit event)
//! for every grant. The token endpoint's grants call it directly (password, mfa-otp, client
//! credentials) or through oxide-auth's `Issuer` (authorization code, refresh token; see
//! [`super::primitives`]).
//!
//! An access token is opaque (256 random bits) or, for a client configured for it, an RFC 9068
//! JWT; only its SHA-256 is stored. Every mint happens inside the caller's transaction, under the
//! user's row lock (the lock rule in [`crate::db::tokens`]).

use chrono::TimeDelta;

use serde::Serialize;

use super::error::OAuthError;
use super::OAuthConfig;
use crate::audit::AuditEvent;
use crate::clients::Client;
use crate::db::tokens::{self, TokenIssue, TokenRow};
use crate::db::{self, DbConnection};
use crate::domain::{ResourceSet, ScopeSet};
use crate::oidc::keys::{KeyError, Signer};
use crate::oidc::{AccessTokenClaims, Audience, Authentication, ACCESS_TOKEN_TYP, OPENID};
use crate::secret;

/// Tokens just minted, as the token response carries them (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub(crate) struct Minted {
    /// The access token as sent to the client.
    pub access_token: String,
    /// The refresh token, when one was minted.
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The granted scope, space-separated.
    pub scope: String,
}

/// Why nothing was minted.
#[derive(Debug)]
pub(crate) enum MintError {
    /// Storage failed: roll back, `server_error`.
    Db(diesel::result::Error),
    /// A requested resource is outside the grant's (RFC 8707 §2.2): `invalid_target`.
    Target(&'static str),
    /// A JWT access token could not be signed (no usable key): roll back, `server_error`.
    Signing,
}

impl From<diesel::result::Error> for MintError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

/// What one token request mints with: the client, its signer when it gets JWT access tokens,
/// the user's authentication behind the grant (kept with the tokens: `auth_time`, `amr`) and the
/// RFC 8707 resources.
pub(crate) struct Mint<'a> {
    pub cfg: &'a OAuthConfig,
    pub client: &'a Client,
    /// Present when the client gets RFC 9068 JWT access tokens.
    pub signer: Option<&'a Signer>,
    /// The user's authentication behind the grant; `None` for client credentials.
    pub auth: Option<&'a Authentication>,
    /// The RFC 8707 `resource`s of this request (already checked to be registered resources).
    pub requested_resources: &'a ResourceSet,
    /// The resources of the grant being exchanged: the code's (its authorization request's) or
    /// the refresh token's. `None` for grants without a previous request (password, client
    /// credentials), where the requested resources are the grant's.
    pub grant_resources: Option<&'a ResourceSet>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The access token (opaque, 256 bits, or an RFC 9068 JWT for clients that get those).
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    #[schema(value_type = String, pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// A refresh token, when the client may use the refresh_token grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
    /// The granted scope, space-separated (always sent, RFC 6749 §5.1 allows it).
    pub scope: String,
    /// An ID token (OIDC Core §3.1.3.3) when the granted scope contains `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: the type of `access_token`, in a token-exchange answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    pub issued_token_type: Option<&'static str>,
}

impl From<Minted> for TokenResponse {
    /// The answer for `minted` alone: no ID token, no RFC 8693 token type.
    fn from(minted: Minted) -> Self {
        Self {
            access_token: minted.access_token,
            token_type: "Bearer",
            expires_in: minted.expires_in,
            refresh_token: minted.refresh_token,
            scope: minted.scope,
            id_token: None,
            issued_token_type: None,
        }
    }
}

/// What a grant mints with: the settings, the authenticated client, and its signer when it
/// gets RFC 9068 JWT access tokens.
pub(crate) struct Issuing<'a> {
    pub cfg: &'a OAuthConfig,
    pub client: &'a Client,
    pub signer: Option<&'a Signer>,
}

impl<'a> Issuing<'a> {
    /// A [`Mint`] for a grant of `auth` (`None`: client credentials) with the request's
    /// `requested` resources and the previous grant's (`None` when there is none).
    pub fn mint<'b>(
        &'b self,
        auth: Option<&'b Authentication>,
        requested: &'b ResourceSet,
        grant: Option<&'b ResourceSet>,
    ) -> Mint<'b> {
        Mint {
            cfg: self.cfg,
            client: self.client,
            signer: self.signer,
            auth,
            requested_resources: requested,
            grant_resources: grant,
        }
    }
}

/// Tokens a grant minted, and the user's authentication behind them (for the ID token).
pub(crate) struct Issued {
    pub minted: Minted,
    pub auth: Option<Authentication>,
}

impl Issued {
    /// Whether the answer carries an ID token: a user's grant whose scope holds `openid`
    /// (OIDC Core §3.1.3.3).
    pub fn wants_id_token(&self) -> bool {
        self.auth.is_some() && ScopeSet::from_stored(&self.minted.scope).contains(OPENID)
    }
}

/// Why a grant minted nothing, and what becomes of its transaction.
pub(crate) enum Refusal {
    /// Storage failed: roll back, `server_error`.
    Db(diesel::result::Error),
    /// Roll back and answer this (nothing may be stored for a response that cannot be sent).
    Rollback(OAuthError),
    /// Commit and answer this: the revocations done on code replay or refresh-token reuse stay
    /// done.
    Commit(OAuthError),
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl From<MintError> for Refusal {
    fn from(e: MintError) -> Self {
        match e {
            MintError::Db(e) => Self::Db(e),
            MintError::Target(message) => Self::Commit(OAuthError::invalid_target(message)),
            MintError::Signing => Self::Rollback(OAuthError::server_error()),
        }
    }
}

/// The new tokens' identity in the store: the grant they belong to and how it was obtained.
pub(crate) struct TokenGrant<'a> {
    /// The subject (`users.id`); `None` for client credentials.
    pub user_id: Option<&'a str>,
    /// The granted scope of the access token.
    pub scope: &'a ScopeSet,
    /// The token family: the code's id, the refresh token's family, or a new one.
    pub family_id: &'a str,
    /// The RFC 6749 grant type (or the mfa-otp grant's URI) recorded with the tokens.
    pub grant_type: &'a str,
    /// The refresh token's scope, when one is minted (RFC 6749 §6: a narrower access token
    /// does not narrow the grant).
    pub refresh_scope: Option<&'a ScopeSet>,
}

impl Mint<'_> {
    /// The resources of the access token to mint (its audience) and of the grant a refresh token
    /// carries on (RFC 8707 §2.2): a request may name only resources within the grant's; naming
    /// none takes all of them. Without a previous grant (password, client credentials) the
    /// requested resources are both.
    ///
    /// # Errors
    /// [`MintError::Target`] when the request names a resource outside the grant's.
    pub fn resources(&self) -> Result<(ResourceSet, ResourceSet), MintError> {
        let requested = self.requested_resources;
        match self.grant_resources {
            None => Ok((requested.clone(), requested.clone())),
            Some(grant) if requested.is_empty() => Ok((grant.clone(), grant.clone())),
            Some(grant) if requested.is_subset(grant) => Ok((requested.clone(), grant.clone())),
            Some(grant) => Err(MintError::Target(if grant.is_empty() {
                "the authorization request named no resource, so the token request may not name one (RFC 8707 section 2.2)"
            } else {
                "a requested resource is not among the resources of the grant (RFC 8707 section 2.2)"
            })),
        }
    }

    /// Inserts an access token (and a refresh token when `grant.refresh_scope` is set) and the
    /// `token.issued` audit event, on `conn` inside the caller's transaction.
    ///
    /// # Errors
    /// [`MintError`]: storage, a resource outside the grant, or a JWT that could not be signed.
    pub fn mint(
        &self,
        conn: &mut DbConnection,
        grant: &TokenGrant<'_>,
    ) -> Result<Minted, MintError> {
        let (minted, issue) = self.prepare(grant, |signer, alg, claims| {
            // The key stays locked until this transaction commits, so a concurrent
            // revocation of it also revokes this token (`Signer::sign_held`).
            signer.sign_held(conn, alg, ACCESS_TOKEN_TYP, claims)
        })?;
        issue.insert(conn)?;
        crate::db::audit_events::log(&issue.audit);
        Ok(minted)
    }

    /// Makes the tokens and the rows that store them without touching storage, for a client
    /// that gets opaque access tokens (no key to hold while signing): storage then only
    /// inserts the rows ([`crate::db::Db::insert_issued`]).
    ///
    /// # Errors
    /// [`MintError::Target`] for a resource outside the grant; [`MintError::Signing`] when the
    /// client gets JWT access tokens (use [`Mint::mint`] for those).
    pub fn prepare_opaque(
        &self,
        grant: &TokenGrant<'_>,
    ) -> Result<(Minted, TokenIssue), MintError> {
        self.prepare(grant, |_, alg, _| Err(KeyError::NoActiveKey(alg)))
    }

    /// The tokens of `grant` and their rows; a JWT access token is signed by `sign`.
    fn prepare<S>(&self, grant: &TokenGrant<'_>, sign: S) -> Result<(Minted, TokenIssue), MintError>
    where
        S: FnOnce(
            &Signer,
            crate::domain::SigningAlg,
            &AccessTokenClaims,
        ) -> Result<(String, String), KeyError>,
    {
        let (audience, grant_resources) = self.resources()?;
        let now = db::now();
        let scope = grant.scope.to_string();
        let access_ttl = lifetime(
            self.client.access_token_lifetime(),
            self.cfg.lifetimes.access_token,
        );
        let (auth_time, amr, idp) = self
            .auth
            .map(|a| (Some(a.auth_time), Some(a.amr.clone()), a.idp.clone()))
            .unwrap_or_default();
        let id = uuid::Uuid::now_v7().to_string();
        let (access, signing_kid) = match self.signer {
            None => (secret::new_token(), None),
            Some(signer) => {
                // RFC 9068 §2.2.
                let claims = AccessTokenClaims {
                    iss: self.cfg.issuer.clone(),
                    sub: grant.user_id.unwrap_or_else(|| self.client.id()).to_owned(),
                    aud: Audience::of_resources(&audience, &self.cfg.access_token_audience),
                    client_id: self.client.id().to_owned(),
                    scope: scope.clone(),
                    jti: id.clone(),
                    iat: now.and_utc().timestamp(),
                    exp: (now + access_ttl).and_utc().timestamp(),
                    auth_time: auth_time.map(|t| t.and_utc().timestamp()),
                };
                let (jwt, kid) = sign(signer, self.client.signing_alg(), &claims).map_err(|e| {
                    tracing::error!(error = %e, "signing a JWT access token failed");
                    MintError::Signing
                })?;
                (jwt, Some(kid))
            }
        };
        let mut rows = vec![TokenRow {
            id,
            token_hash: secret::sha256_hex(&access),
            kind: tokens::ACCESS.to_owned(),
            client_id: self.client.id().to_owned(),
            user_id: grant.user_id.map(str::to_owned),
            scope: scope.clone(),
            grant_type: grant.grant_type.to_owned(),
            family_id: grant.family_id.to_owned(),
            created_at: now,
            expires_at: now + access_ttl,
            revoked_at: None,
            rotated_at: None,
            auth_time,
            amr,
            resources: audience.to_string(),
            signing_kid,
            idp,
        }];
        let refresh = grant.refresh_scope.map(|refresh_scope| {
            let refresh = secret::new_token();
            let ttl = lifetime(
                self.client.refresh_token_lifetime(),
                self.cfg.lifetimes.refresh_token,
            );
            rows.push(TokenRow {
                id: uuid::Uuid::now_v7().to_string(),
                token_hash: secret::sha256_hex(&refresh),
                kind: tokens::REFRESH.to_owned(),
                scope: refresh_scope.to_string(),
                expires_at: now + ttl,
                resources: grant_resources.to_string(),
                signing_kid: None,
                ..rows[0].clone()
            });
            refresh
        });
        let audit = AuditEvent::new("token.issued")
            .client(self.client.id())
            .maybe_user(grant.user_id)
            .detail("grant_type", grant.grant_type)
            .detail("family_id", grant.family_id)
            .detail("scope", scope.clone())
            .detail("resources", audience.to_string())
            .detail("refresh_token", refresh.is_some())
            .into_row();
        Ok((
            Minted {
                access_token: access,
                refresh_token: refresh,
                expires_in: access_ttl.num_seconds(),
                scope,
            },
            TokenIssue {
                tokens: rows,
                audit,
            },
        ))
    }
}

/// A client's own lifetime (seconds) or the server's default.
fn lifetime(override_secs: Option<i64>, default: std::time::Duration) -> TimeDelta {
    override_secs
        .map(TimeDelta::seconds)
        .or_else(|| TimeDelta::from_std(default).ok())
        .unwrap_or(TimeDelta::hours(1))
}
