//! oxide-auth's primitives (`Registrar`, `Authorizer`, `Issuer`) and grant extensions over
//! diesel, plus the canonical requests we present to its `code_grant` state machines.
//!
//! One [`Primitives`] lives for one request, inside one database transaction on the blocking
//! pool. Client authentication has already happened in [`super::client_auth`], so
//! `Registrar::check` only confirms that oxide-auth is talking about that client. Everything the
//! state machines report only as "invalid" is recorded in [`FlowState`] so that
//! [`super::token`] can answer with the RFC's error code (oxide-auth's measured deviations,
//! listed in `docs/architecture.md`, never reach a client).

use std::borrow::Cow;
use std::cell::RefCell;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use diesel::QueryResult;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::code_grant::{accesstoken, authorization, client_credentials, refresh};
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::{Extensions, Grant, Value};
use oxide_auth::primitives::issuer::{IssuedToken, Issuer, RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth::primitives::scope::Scope;

use super::params::Params;
use super::OAuthConfig;
use crate::accounts::PasswordLogin;
use crate::audit::{self, AuditEvent};
use crate::clients::{Client, GrantType};
use crate::db::codes::{self, CodeRow};
use crate::db::tokens::{self, TokenRow};
use crate::db::{self, users, DbConnection};
use crate::domain::{pkce, ResourceSet, ScopeSet};
use crate::oidc::keys::Signer;
use crate::oidc::{AccessTokenClaims, Audience, Authentication, ACCESS_TOKEN_TYP, OFFLINE_ACCESS};
use crate::secret;

/// Stand-in `redirect_uri` for a token request that omitted it, accepted only when the
/// authorization request omitted it too (RFC 6749 §4.1.3).
pub(crate) const OMITTED_REDIRECT_URI: &str = "urn:latchkey:redirect-uri-omitted";

/// What happened to the authorization code presented at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodeOutcome {
    Unknown,
    Replayed,
    Expired,
    OwnerInactive,
    /// The user's sessions were ended ("sign out everywhere", password reset or change,
    /// deactivation) after the code was issued: the login that approved it is over.
    SessionsEnded,
    Valid,
}

/// What happened to the refresh token presented at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshOutcome {
    Unknown,
    Reused,
    Inactive,
    Valid,
}

/// Tokens minted by our issuer during the flow.
#[derive(Clone, Debug)]
pub(crate) struct Minted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

/// Facts recorded by the primitives while oxide-auth drives them.
#[derive(Debug, Default)]
pub(crate) struct FlowState {
    pub db_error: Option<diesel::result::Error>,
    pub code: Option<CodeOutcome>,
    pub refresh: Option<RefreshOutcome>,
    pub pkce_error: Option<&'static str>,
    pub scope_refused: bool,
    /// The password grant's user was deactivated before the tokens could be minted.
    pub owner_inactive: bool,
    /// The password grant's login no longer holds under the user's row lock: the password
    /// changed, or the user's sessions were ended, while it was being checked.
    pub login_outdated: bool,
    /// A JWT access token could not be signed (no key): a server error.
    pub signing_failed: bool,
    /// Token family of the grant being exchanged.
    pub family_id: Option<String>,
    /// Whether `issue` also mints a refresh token.
    pub issue_refresh: bool,
    /// Whether the authorization request carried `redirect_uri`.
    pub redirect_uri_explicit: bool,
    /// Whether the token request omitted `redirect_uri`.
    pub redirect_uri_omitted: bool,
    pub minted: Option<Minted>,
    /// The refresh token `recover_refresh` found, for `refresh` to rotate (no second lookup).
    pub recovered_refresh: Option<TokenRow>,
    /// The user's authentication behind this grant: set by the authorization endpoint (stored
    /// with the code), recovered from the code or refresh token, or made by the password grant.
    /// Minted tokens keep `auth_time` and `amr`; ID tokens are built from it.
    pub auth: Option<Authentication>,
    /// The RFC 8707 `resource`s of this request (already checked to be registered resources).
    pub requested_resources: ResourceSet,
    /// The resources of the grant being exchanged: the code's (its authorization request's) or
    /// the refresh token's. `None` for grants without a previous request (password, client
    /// credentials), where the requested resources are the grant's.
    pub grant_resources: Option<ResourceSet>,
    /// The requested resources are not within the grant's (RFC 8707 §2.2): `invalid_target`.
    pub target_error: Option<&'static str>,
}

/// The primitives for one request.
pub(crate) struct Primitives<'a> {
    conn: RefCell<&'a mut DbConnection>,
    cfg: &'a OAuthConfig,
    client: &'a Client,
    grant_type: GrantType,
    pkce: Pkce,
    /// Present when the client gets RFC 9068 JWT access tokens.
    signer: Option<Signer>,
    pub state: RefCell<FlowState>,
}

impl<'a> Primitives<'a> {
    pub fn new(
        conn: &'a mut DbConnection,
        cfg: &'a OAuthConfig,
        client: &'a Client,
        grant_type: GrantType,
    ) -> Self {
        let mut pkce = if client.requires_pkce() {
            Pkce::required()
        } else {
            Pkce::optional()
        };
        if client.row.allow_plain_pkce {
            pkce.allow_plain();
        }
        Self {
            conn: RefCell::new(conn),
            cfg,
            client,
            grant_type,
            pkce,
            signer: None,
            state: RefCell::new(FlowState::default()),
        }
    }

    /// Signs access tokens as RFC 9068 JWTs with `signer`.
    pub fn with_signer(mut self, signer: Option<Signer>) -> Self {
        self.signer = signer;
        self
    }

    pub fn into_state(self) -> FlowState {
        self.state.into_inner()
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut DbConnection) -> QueryResult<T>) -> Result<T, ()> {
        let mut conn = self.conn.borrow_mut();
        f(&mut conn).map_err(|e| {
            self.state.borrow_mut().db_error = Some(e);
        })
    }

    fn placeholder_url(&self) -> Result<ExactUrl, RegistrarError> {
        self.cfg
            .issuer
            .parse()
            .map_err(|_| RegistrarError::PrimitiveError)
    }

    fn lifetime(&self, override_secs: Option<i64>, default: std::time::Duration) -> TimeDelta {
        override_secs
            .map(TimeDelta::seconds)
            .or_else(|| TimeDelta::from_std(default).ok())
            .unwrap_or(TimeDelta::hours(1))
    }

    /// Inserts an access token (and a refresh token if `with_refresh`) and records them.
    fn mint(
        &self,
        user_id: Option<String>,
        scope: &Scope,
        family_id: String,
        grant_type: &str,
        refresh_scope: Option<String>,
    ) -> Result<(String, Option<String>, DateTime<Utc>), ()> {
        let (audience, grant_resources) = self.resources()?;
        let with_refresh = refresh_scope.is_some();
        let now = db::now();
        let scope = ScopeSet::from_stored(&scope.to_string()).to_string();
        let access_ttl = self.lifetime(
            self.client.row.access_token_lifetime,
            self.cfg.lifetimes.access_token,
        );
        let (auth_time, amr) = self
            .state
            .borrow()
            .auth
            .as_ref()
            .map(|a| (Some(a.auth_time), Some(a.amr.clone())))
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().to_string();
        let (access, signing_kid) = match &self.signer {
            None => (secret::new_token(), None),
            Some(signer) => {
                // RFC 9068 §2.2.
                let claims = AccessTokenClaims {
                    iss: self.cfg.issuer.clone(),
                    sub: user_id
                        .clone()
                        .unwrap_or_else(|| self.client.id().to_owned()),
                    aud: Audience::of_resources(&audience, &self.cfg.access_token_audience),
                    client_id: self.client.id().to_owned(),
                    scope: scope.clone(),
                    jti: id.clone(),
                    iat: now.and_utc().timestamp(),
                    exp: (now + access_ttl).and_utc().timestamp(),
                    auth_time: auth_time.map(|t| t.and_utc().timestamp()),
                };
                // The key stays locked until this transaction commits, so a concurrent
                // revocation of it also revokes this token (`Signer::sign_held`).
                let signed = {
                    let mut conn = self.conn.borrow_mut();
                    signer.sign_held(
                        &mut conn,
                        self.client.signing_alg(),
                        ACCESS_TOKEN_TYP,
                        &claims,
                    )
                };
                let (jwt, kid) = signed.map_err(|e| {
                    tracing::error!(error = %e, "signing a JWT access token failed");
                    self.state.borrow_mut().signing_failed = true;
                })?;
                (jwt, Some(kid))
            }
        };
        let mut rows = vec![TokenRow {
            id,
            token_hash: secret::sha256_hex(&access),
            kind: tokens::ACCESS.to_owned(),
            client_id: self.client.id().to_owned(),
            user_id: user_id.clone(),
            scope: scope.clone(),
            grant_type: grant_type.to_owned(),
            family_id: family_id.clone(),
            created_at: now,
            expires_at: now + access_ttl,
            revoked_at: None,
            rotated_at: None,
            auth_time,
            amr,
            resources: audience.to_string(),
            signing_kid,
        }];
        let refresh = if with_refresh {
            let refresh = secret::new_token();
            let ttl = self.lifetime(
                self.client.row.refresh_token_lifetime,
                self.cfg.lifetimes.refresh_token,
            );
            rows.push(TokenRow {
                id: uuid::Uuid::new_v4().to_string(),
                token_hash: secret::sha256_hex(&refresh),
                kind: tokens::REFRESH.to_owned(),
                scope: refresh_scope.unwrap_or_default(),
                expires_at: now + ttl,
                resources: grant_resources.to_string(),
                signing_kid: None,
                ..rows[0].clone()
            });
            Some(refresh)
        } else {
            None
        };
        self.with_conn(|conn| {
            for row in &rows {
                tokens::insert(conn, row)?;
            }
            audit::record(
                conn,
                AuditEvent::new("token.issued")
                    .client(self.client.id())
                    .maybe_user(user_id.as_deref())
                    .detail("grant_type", grant_type)
                    .detail("family_id", family_id.clone())
                    .detail("scope", scope.clone())
                    .detail("resources", audience.to_string())
                    .detail("refresh_token", with_refresh),
            )
        })?;
        let until = Utc.from_utc_datetime(&(now + access_ttl));
        self.state.borrow_mut().minted = Some(Minted {
            access_token: access.clone(),
            refresh_token: refresh.clone(),
            expires_in: access_ttl.num_seconds(),
            scope,
        });
        Ok((access, refresh, until))
    }

    /// The resources of the access token to mint (its audience) and of the grant a refresh token
    /// carries on (RFC 8707 §2.2): a request may name only resources within the grant's; naming
    /// none takes all of them. Without a previous grant (password, client credentials) the
    /// requested resources are both.
    ///
    /// # Errors
    /// Records `target_error` when the request names a resource outside the grant's.
    fn resources(&self) -> Result<(ResourceSet, ResourceSet), ()> {
        let mut state = self.state.borrow_mut();
        let requested = state.requested_resources.clone();
        match state.grant_resources.clone() {
            None => Ok((requested.clone(), requested)),
            Some(grant) if requested.is_empty() => Ok((grant.clone(), grant)),
            Some(grant) if requested.is_subset(&grant) => Ok((requested, grant)),
            Some(grant) => {
                state.target_error = Some(if grant.is_empty() {
                    "the authorization request named no resource, so the token request may not name one (RFC 8707 section 2.2)"
                } else {
                    "a requested resource is not among the resources of the grant (RFC 8707 section 2.2)"
                });
                Err(())
            }
        }
    }

    /// Locks the login's user row for the rest of the transaction (see the lock rule in
    /// [`crate::db::tokens`]: before any token row) and returns whether the login still holds
    /// there ([`PasswordLogin::still_holds`]: active, same password hash, no session cut-off
    /// since the check began). The password and mfa-otp grants call it before
    /// [`Issuer::issue`]. Records `owner_inactive` for a deactivated user, `login_outdated`
    /// otherwise.
    pub fn lock_user_for(&self, login: &PasswordLogin) -> Result<bool, ()> {
        let user = self.with_conn(|conn| users::lock(conn, &login.user.id))?;
        let mut state = self.state.borrow_mut();
        match user {
            Some(u) if !u.is_active => state.owner_inactive = true,
            Some(u) if login.still_holds(&u) => return Ok(true),
            _ => state.login_outdated = true,
        }
        Ok(false)
    }
}

fn encode_extensions(ext: &Extensions) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in ext.public() {
        map.insert(k.to_owned(), serde_json::json!({ "public": v }));
    }
    for (k, v) in ext.private() {
        map.insert(k.to_owned(), serde_json::json!({ "private": v }));
    }
    serde_json::Value::Object(map).to_string()
}

fn decode_extensions(raw: &str) -> Extensions {
    let mut ext = Extensions::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(raw) {
        for (k, v) in map {
            let text = |key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_owned);
            if v.get("public").is_some() {
                ext.set_raw(k, Value::public(text("public")));
            } else if v.get("private").is_some() {
                ext.set_raw(k, Value::private(text("private")));
            }
        }
    }
    ext
}

impl Registrar for Primitives<'_> {
    fn bound_redirect<'b>(&self, bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        if bound.client_id.as_ref() != self.client.id() {
            return Err(RegistrarError::Unspecified);
        }
        let uri = match bound.redirect_uri {
            // Exact string comparison (RFC 9700 §4.1.3).
            Some(uri) => {
                if !self.client.redirect_uris.iter().any(|r| r == uri.as_str()) {
                    return Err(RegistrarError::Unspecified);
                }
                uri.into_owned()
            }
            None => match self.client.redirect_uris.as_slice() {
                // RFC 6749 §3.1.2.3: may be omitted when exactly one is registered.
                [only] => only.parse().map_err(|_| RegistrarError::PrimitiveError)?,
                _ if self.grant_type == GrantType::ClientCredentials => self.placeholder_url()?,
                _ => return Err(RegistrarError::Unspecified),
            },
        };
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(uri)),
        })
    }

    fn negotiate(
        &self,
        bound: BoundClient,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        let requested = scope.map(|s| s.to_string());
        let negotiated = if self.grant_type == GrantType::ClientCredentials {
            super::grant_types::client_credentials::negotiate(
                self.client,
                self.cfg,
                requested.as_deref(),
            )
        } else {
            super::grant_types::negotiate_scope(self.client, self.cfg, requested.as_deref())
        };
        let Ok(granted) = negotiated else {
            self.state.borrow_mut().scope_refused = true;
            return Err(RegistrarError::Unspecified);
        };
        Ok(PreGrant {
            client_id: bound.client_id.into_owned(),
            redirect_uri: bound.redirect_uri.into_owned(),
            scope: granted
                .to_string()
                .parse()
                .map_err(|_| RegistrarError::PrimitiveError)?,
        })
    }

    fn check(&self, client_id: &str, _passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        // The client was authenticated before the flow started (client_auth.rs).
        if client_id == self.client.id() {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

impl Authorizer for Primitives<'_> {
    fn authorize(&mut self, grant: Grant) -> Result<String, ()> {
        let code = secret::new_token();
        let now = db::now();
        let ttl = TimeDelta::from_std(self.cfg.lifetimes.authorization_code).map_err(|_| ())?;
        let row = CodeRow {
            id: uuid::Uuid::new_v4().to_string(),
            code_hash: secret::sha256_hex(&code),
            client_id: grant.client_id,
            user_id: grant.owner_id,
            redirect_uri: grant.redirect_uri.to_string(),
            redirect_uri_explicit: self.state.borrow().redirect_uri_explicit,
            scope: ScopeSet::from_stored(&grant.scope.to_string()).to_string(),
            extensions: encode_extensions(&grant.extensions),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
            nonce: None,
            auth_time: None,
            amr: None,
            resources: self.state.borrow().requested_resources.to_string(),
        };
        let row = match &self.state.borrow().auth {
            Some(auth) => CodeRow {
                nonce: auth.nonce.clone(),
                auth_time: Some(auth.auth_time),
                amr: Some(auth.amr.clone()),
                ..row
            },
            None => row,
        };
        self.with_conn(|conn| codes::insert(conn, &row))?;
        Ok(code)
    }

    fn extract(&mut self, code: &str) -> Result<Option<Grant>, ()> {
        let hash = secret::sha256_hex(code);
        // The owner's row lock first (lock order: user → code and token rows), then the code
        // as it is under the lock: a revocation that committed meanwhile deleted it.
        let owner = self.with_conn(|conn| codes::lock_owner(conn, &hash))?;
        let Some(row) = self.with_conn(|conn| codes::find_by_hash(conn, &hash))? else {
            self.state.borrow_mut().code = Some(CodeOutcome::Unknown);
            return Ok(None);
        };
        let now = db::now();
        let first_use =
            row.used_at.is_none() && self.with_conn(|conn| codes::mark_used(conn, &row.id, now))?;
        if !first_use {
            // RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
            self.with_conn(|conn| {
                let revoked = tokens::revoke_family(conn, &row.id, now)?;
                audit::record(
                    conn,
                    AuditEvent::new("code.replayed")
                        .client(row.client_id.clone())
                        .user(row.user_id.clone())
                        .detail("tokens_revoked", revoked),
                )
            })?;
            self.state.borrow_mut().code = Some(CodeOutcome::Replayed);
            return Ok(None);
        }
        if row.expires_at <= now {
            self.state.borrow_mut().code = Some(CodeOutcome::Expired);
            return Ok(None);
        }
        let Some(user) = owner.filter(|u| u.is_active && u.id == row.user_id) else {
            self.state.borrow_mut().code = Some(CodeOutcome::OwnerInactive);
            return Ok(None);
        };
        // A code issued before the user's sessions were ended (its authorization request may
        // have passed the session check just before) buys nothing afterwards.
        if user
            .sessions_valid_after
            .is_some_and(|cut| row.created_at <= cut)
        {
            self.state.borrow_mut().code = Some(CodeOutcome::SessionsEnded);
            return Ok(None);
        }
        let mut state = self.state.borrow_mut();
        state.auth = Some(Authentication {
            user,
            auth_time: row.auth_time.unwrap_or(row.created_at),
            amr: row.amr.clone().unwrap_or_else(|| "pwd".to_owned()),
            nonce: row.nonce.clone(),
            session_id: None,
        });
        state.code = Some(CodeOutcome::Valid);
        state.family_id = Some(row.id.clone());
        state.grant_resources = Some(ResourceSet::from_stored(&row.resources));
        let redirect_uri = if state.redirect_uri_omitted && !row.redirect_uri_explicit {
            OMITTED_REDIRECT_URI
        } else {
            &row.redirect_uri
        };
        Ok(Some(Grant {
            owner_id: row.user_id.clone(),
            client_id: row.client_id.clone(),
            scope: row.scope.parse().map_err(|_| ())?,
            redirect_uri: redirect_uri.parse().map_err(|_| ())?,
            until: Utc.from_utc_datetime(&row.expires_at),
            extensions: decode_extensions(&row.extensions),
        }))
    }
}

impl Issuer for Primitives<'_> {
    fn issue(&mut self, grant: Grant) -> Result<IssuedToken, ()> {
        let (family, with_refresh) = {
            let state = self.state.borrow();
            (
                state
                    .family_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                state.issue_refresh,
            )
        };
        let user_id = match self.grant_type {
            GrantType::ClientCredentials => None,
            _ => Some(grant.owner_id.clone()),
        };
        let granted = ScopeSet::from_stored(&grant.scope.to_string());
        // OIDC Core §11: the authorization-code grant yields a refresh token only with
        // `offline_access` (which the user saw on the consent page), unless the client is
        // configured to always get one (django-oauth-toolkit's behaviour).
        let with_refresh = with_refresh
            && (self.grant_type != GrantType::AuthorizationCode
                || granted.contains(OFFLINE_ACCESS)
                || self.client.row.always_issue_refresh_token);
        let refresh_scope = with_refresh.then(|| granted.to_string());
        let (token, refresh, until) = self.mint(
            user_id,
            &grant.scope,
            family,
            self.grant_type.as_str(),
            refresh_scope,
        )?;
        Ok(IssuedToken {
            token,
            refresh,
            until,
            token_type: TokenType::Bearer,
        })
    }

    fn refresh(&mut self, _refresh: &str, grant: Grant) -> Result<RefreshedToken, ()> {
        // oxide-auth always recovers the refresh token before asking for a new one.
        let row = self.state.borrow_mut().recovered_refresh.take().ok_or(())?;
        // A resource outside the grant is refused before the refresh token is rotated, so the
        // client keeps it.
        self.resources()?;
        let now = db::now();
        if !self.with_conn(|conn| tokens::mark_rotated(conn, &row.id, now))? {
            // Another request rotated it first: treat as reuse (RFC 9700 §4.14.2).
            self.with_conn(|conn| tokens::revoke_family(conn, &row.family_id, now))?;
            self.state.borrow_mut().refresh = Some(RefreshOutcome::Reused);
            return Err(());
        }
        let (token, refresh, until) = self.mint(
            row.user_id.clone(),
            &grant.scope,
            row.family_id.clone(),
            &row.grant_type,
            // RFC 6749 §6: a narrower access token does not narrow the grant; the new refresh
            // token keeps the scope of the one it replaces.
            Some(row.scope.clone()),
        )?;
        Ok(RefreshedToken {
            token,
            refresh,
            until,
            token_type: TokenType::Bearer,
        })
    }

    fn recover_token<'t>(&'t self, token: &'t str) -> Result<Option<Grant>, ()> {
        let hash = secret::sha256_hex(token);
        let Some(row) =
            self.with_conn(|conn| tokens::find_by_hash(conn, &hash, Some(tokens::ACCESS)))?
        else {
            return Ok(None);
        };
        if !row.is_active(db::now()) {
            return Ok(None);
        }
        Ok(Some(Grant {
            owner_id: row.user_id.unwrap_or_default(),
            client_id: row.client_id,
            scope: row.scope.parse().map_err(|_| ())?,
            redirect_uri: self.cfg.issuer.parse().map_err(|_| ())?,
            until: Utc.from_utc_datetime(&row.expires_at),
            extensions: Extensions::new(),
        }))
    }

    fn recover_refresh<'t>(&'t self, token: &'t str) -> Result<Option<Grant>, ()> {
        let hash = secret::sha256_hex(token);
        // The owner's row lock first (lock order: user → token rows), then the token as it is
        // under the lock: a revocation that committed meanwhile shows.
        let owner = self.with_conn(|conn| tokens::lock_owner(conn, &hash))?;
        let Some(row) =
            self.with_conn(|conn| tokens::find_by_hash(conn, &hash, Some(tokens::REFRESH)))?
        else {
            self.state.borrow_mut().refresh = Some(RefreshOutcome::Unknown);
            return Ok(None);
        };
        let now = db::now();
        if row.rotated_at.is_some() {
            // A rotated refresh token came back: someone holds a stolen copy. Revoke the whole
            // family (RFC 9700 §4.14.2).
            self.with_conn(|conn| {
                let revoked = tokens::revoke_family(conn, &row.family_id, now)?;
                audit::record(
                    conn,
                    AuditEvent::new("refresh_token.reused")
                        .client(row.client_id.clone())
                        .maybe_user(row.user_id.as_deref())
                        .detail("family_id", row.family_id.clone())
                        .detail("tokens_revoked", revoked),
                )
            })?;
            self.state.borrow_mut().refresh = Some(RefreshOutcome::Reused);
            return Ok(None);
        }
        let user = owner.filter(|u| u.is_active && row.user_id.as_ref() == Some(&u.id));
        if !row.is_active(now) || (row.user_id.is_some() && user.is_none()) {
            self.state.borrow_mut().refresh = Some(RefreshOutcome::Inactive);
            return Ok(None);
        }
        let grant = Grant {
            owner_id: row.user_id.clone().unwrap_or_default(),
            client_id: row.client_id.clone(),
            scope: row.scope.parse().map_err(|_| ())?,
            redirect_uri: self.cfg.issuer.parse().map_err(|_| ())?,
            until: Utc.from_utc_datetime(&row.expires_at),
            extensions: Extensions::new(),
        };
        let mut state = self.state.borrow_mut();
        state.auth = user.map(|user| Authentication {
            user,
            auth_time: row.auth_time.unwrap_or(row.created_at),
            amr: row.amr.clone().unwrap_or_else(|| "pwd".to_owned()),
            nonce: None,
            session_id: None,
        });
        state.refresh = Some(RefreshOutcome::Valid);
        state.grant_resources = Some(ResourceSet::from_stored(&row.resources));
        state.recovered_refresh = Some(row);
        Ok(Some(grant))
    }
}

impl authorization::Extension for Primitives<'_> {
    fn extend(&mut self, request: &dyn authorization::Request) -> Result<Extensions, ()> {
        let mut ext = Extensions::new();
        match self.pkce.challenge(
            request.extension("code_challenge_method"),
            request.extension("code_challenge"),
        ) {
            Ok(Some(value)) => ext.set(&self.pkce, value),
            Ok(None) => {}
            Err(()) => {
                self.state.borrow_mut().pkce_error =
                    Some("PKCE is required: send code_challenge with code_challenge_method=S256 (RFC 7636)");
                return Err(());
            }
        }
        Ok(ext)
    }
}

impl accesstoken::Extension for Primitives<'_> {
    fn extend(
        &mut self,
        request: &dyn accesstoken::Request,
        mut data: Extensions,
    ) -> Result<Extensions, ()> {
        let method = data.remove(&self.pkce);
        let verifier = request.extension("code_verifier");
        let error = match (&method, &verifier) {
            // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
            (None, Some(_)) => {
                Some("code_verifier sent but the authorization request had no code_challenge")
            }
            (_, Some(v)) if !pkce::is_valid(v) => {
                Some("code_verifier must be 43 to 128 unreserved characters (RFC 7636 section 4.1)")
            }
            _ => None,
        };
        if error.is_none() && self.pkce.verify(method, verifier).is_ok() {
            return Ok(Extensions::new());
        }
        self.state.borrow_mut().pkce_error = Some(error.unwrap_or(
            "PKCE verification failed: code_verifier does not match code_challenge (RFC 7636 section 4.6)",
        ));
        Err(())
    }
}

impl client_credentials::Extension for Primitives<'_> {
    fn extend(&mut self, _request: &dyn client_credentials::Request) -> Result<Extensions, ()> {
        Ok(Extensions::new())
    }
}

impl authorization::Endpoint for Primitives<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn authorizer(&mut self) -> &mut dyn Authorizer {
        self
    }
    fn extension(&mut self) -> &mut dyn authorization::Extension {
        self
    }
}

impl accesstoken::Endpoint for Primitives<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn authorizer(&mut self) -> &mut dyn Authorizer {
        self
    }
    fn issuer(&mut self) -> &mut dyn Issuer {
        self
    }
    fn extension(&mut self) -> &mut dyn accesstoken::Extension {
        self
    }
}

impl refresh::Endpoint for Primitives<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn issuer(&mut self) -> &mut dyn Issuer {
        self
    }
}

impl client_credentials::Endpoint for Primitives<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn issuer(&mut self) -> &mut dyn Issuer {
        self
    }
    fn extension(&mut self) -> &mut dyn client_credentials::Extension {
        self
    }
}

/// The canonical request oxide-auth sees: our parsed, de-duplicated parameters, with client
/// credentials replaced by the already-authenticated `client_id`.
pub(crate) struct CanonicalRequest<'p> {
    pub params: &'p Params,
    pub client_id: &'p str,
}

impl CanonicalRequest<'_> {
    fn param(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            // Credentials were consumed by our client authentication.
            "client_secret" => None,
            _ => self.params.get(name).map(Cow::Borrowed),
        }
    }
}

impl authorization::Request for CanonicalRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.client_id))
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.param("scope")
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.param("redirect_uri")
    }
    fn state(&self) -> Option<Cow<'_, str>> {
        self.param("state")
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.param("response_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.param(key)
    }
}

impl accesstoken::Request for CanonicalRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        self.param("code")
    }
    fn authorization(&self) -> accesstoken::Authorization<'_> {
        accesstoken::Authorization::None
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.client_id))
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.param("redirect_uri")
            .or(Some(Cow::Borrowed(OMITTED_REDIRECT_URI)))
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.param("grant_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.param(key)
    }
}

impl refresh::Request for CanonicalRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn refresh_token(&self) -> Option<Cow<'_, str>> {
        self.param("refresh_token")
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.param("scope")
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.param("grant_type")
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        Some((Cow::Borrowed(self.client_id), Cow::Borrowed(&[][..])))
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.param(key)
    }
}

impl client_credentials::Request for CanonicalRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        Some((Cow::Borrowed(self.client_id), Cow::Borrowed(&[][..])))
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.param("scope")
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.param("grant_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        match key {
            "client_id" => None,
            _ => self.param(key),
        }
    }
}
