//! The adapter between oxide-auth's `code_grant` state machines and our storage: the
//! `Registrar`, `Authorizer` and `Issuer` primitives over diesel, and the canonical request the
//! machines read. oxide-auth drives the token endpoint's authorization-code exchange and
//! refresh flows with them; the other grants and the authorization endpoint do not pass through
//! oxide-auth (`docs/architecture.md`, "What oxide-auth does for us").
//!
//! One [`Primitives`] lives for one token request, inside one database transaction on the
//! blocking pool. oxide-auth's primitives answer `Result<_, ()>` and some take `&self`, so what
//! happened (a replayed code, a reused refresh token, a PKCE mismatch, a storage error) is
//! recorded in [`FlowState`] for [`Primitives::finish`] to turn into the RFC's error (oxide-auth's
//! measured deviations, listed in `docs/architecture.md`, never reach a client).

use std::borrow::Cow;
use std::cell::RefCell;

use chrono::{TimeDelta, TimeZone, Utc};
use diesel::QueryResult;
use oxide_auth::code_grant::error::AccessTokenErrorType;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::code_grant::{accesstoken, refresh};
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::{Extensions, Grant, Value};
use oxide_auth::primitives::issuer::{IssuedToken, Issuer, RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, PreGrant, Registrar, RegistrarError,
};
use oxide_auth::primitives::scope::Scope;

use super::error::OAuthError;
use super::mint::{Issued, Issuing, MintError, Minted, Refusal, TokenGrant};
use super::params::Params;
use crate::audit::{self, AuditEvent};
use crate::clients::{Client, GrantType};
use crate::db::codes;
use crate::db::tokens::{self, TokenRow};
use crate::db::{self, DbConnection};
use crate::domain::{pkce, ResourceSet, ScopeSet};
use crate::oidc::{Authentication, OFFLINE_ACCESS};
use crate::secret;

/// Stand-in `redirect_uri` for a token request that omitted it, accepted only when the
/// authorization request omitted it too (RFC 6749 §4.1.3). oxide-auth requires the parameter
/// (and compares it with the code's), where the RFC requires it only when the authorization
/// request carried one: the code's stored `redirect_uri_explicit` decides
/// ([`Authorizer::extract`]).
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

/// Facts recorded by the primitives while oxide-auth drives them.
#[derive(Debug, Default)]
pub(crate) struct FlowState {
    pub db_error: Option<diesel::result::Error>,
    pub mint_error: Option<MintError>,
    pub code: Option<CodeOutcome>,
    pub refresh: Option<RefreshOutcome>,
    pub pkce_error: Option<&'static str>,
    /// Token family of the grant being exchanged.
    pub family_id: Option<String>,
    /// Whether `issue` also mints a refresh token.
    pub issue_refresh: bool,
    /// Whether the token request omitted `redirect_uri`.
    pub redirect_uri_omitted: bool,
    pub minted: Option<Minted>,
    /// The refresh token `recover_refresh` found, for `refresh` to rotate (no second lookup).
    pub recovered_refresh: Option<TokenRow>,
    /// The user's authentication behind this grant, recovered from the code or refresh token.
    /// Minted tokens keep `auth_time` and `amr`; ID tokens are built from it.
    pub auth: Option<Authentication>,
    /// The RFC 8707 `resource`s of this request (already checked to be registered resources).
    pub requested_resources: ResourceSet,
    /// The resources of the grant being exchanged: the code's (its authorization request's) or
    /// the refresh token's.
    pub grant_resources: Option<ResourceSet>,
}

/// The primitives for one token request.
pub(crate) struct Primitives<'a> {
    conn: RefCell<&'a mut DbConnection>,
    issuing: &'a Issuing<'a>,
    grant_type: GrantType,
    pkce: Pkce,
    pub state: RefCell<FlowState>,
}

impl<'a> Primitives<'a> {
    pub fn new(
        conn: &'a mut DbConnection,
        issuing: &'a Issuing<'a>,
        grant_type: GrantType,
        state: FlowState,
    ) -> Self {
        Self {
            conn: RefCell::new(conn),
            issuing,
            grant_type,
            pkce: pkce_policy(issuing.client),
            state: RefCell::new(state),
        }
    }

    /// What the flow came to: the minted tokens, or the refusal in the RFC's words. `result`
    /// is the state machine's own answer (oxide-auth's error kind, if it gave one).
    ///
    /// # Errors
    /// [`Refusal::Db`] when storage failed, [`Refusal::Rollback`] when a JWT could not be
    /// signed, [`Refusal::Commit`] for every protocol error (so that the revocations done on
    /// code replay or refresh-token reuse stay done).
    pub fn finish(
        self,
        result: Result<(), Option<AccessTokenErrorType>>,
    ) -> Result<Issued, Refusal> {
        let mut state = self.state.into_inner();
        if let Some(e) = state.db_error.take() {
            return Err(Refusal::Db(e));
        }
        if let Some(e) = state.mint_error.take() {
            return Err(Refusal::from(e));
        }
        match (result, state.minted.take()) {
            (Ok(()), Some(minted)) => Ok(Issued {
                minted,
                auth: state.auth.take(),
            }),
            (Ok(()), None) => Err(Refusal::Rollback(OAuthError::server_error())),
            (Err(kind), _) => Err(Refusal::Commit(map_failure(kind, &state))),
        }
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut DbConnection) -> QueryResult<T>) -> Result<T, ()> {
        let mut conn = self.conn.borrow_mut();
        f(&mut conn).map_err(|e| {
            self.state.borrow_mut().db_error = Some(e);
        })
    }

    /// Mints through [`super::mint`] with this flow's authentication and resources.
    fn mint(&self, grant: &TokenGrant<'_>) -> Result<Minted, ()> {
        let state = self.state.borrow();
        let minted = self
            .issuing
            .mint(
                state.auth.as_ref(),
                &state.requested_resources,
                state.grant_resources.as_ref(),
            )
            .mint(&mut self.conn.borrow_mut(), grant);
        drop(state);
        let mut state = self.state.borrow_mut();
        match minted {
            Ok(minted) => {
                state.minted = Some(minted.clone());
                Ok(minted)
            }
            Err(e) => {
                state.mint_error = Some(e);
                Err(())
            }
        }
    }
}

/// The PKCE rule of `client` as oxide-auth's extension: required for public clients and clients
/// configured for it (RFC 9700 §2.1.1), `plain` only where allowed.
fn pkce_policy(client: &Client) -> Pkce {
    let mut pkce = if client.requires_pkce() {
        Pkce::required()
    } else {
        Pkce::optional()
    };
    if client.allows_plain_pkce() {
        pkce.allow_plain();
    }
    pkce
}

/// The stored form of an authorization request's PKCE challenge (RFC 7636 §4.3), in the
/// `extensions` column of its code: oxide-auth's encoding, which its `Pkce` verifies at the
/// token endpoint. `None` when the request had no challenge. The request was already checked
/// ([`super::authorize`]): `Err` only if it breaks the client's PKCE rule after all.
pub(crate) fn encode_pkce(client: &Client, params: &Params) -> Result<String, ()> {
    let pkce = pkce_policy(client);
    let mut ext = Extensions::new();
    if let Some(value) = pkce.challenge(
        params.get("code_challenge_method").map(Cow::Borrowed),
        params.get("code_challenge").map(Cow::Borrowed),
    )? {
        ext.set(&pkce, value);
    }
    Ok(encode_extensions(&ext))
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
    /// Not used: the flows run through oxide-auth (the code exchange and refresh) only
    /// authenticate the client; the authorization endpoint, where redirect URIs are bound, is
    /// ours ([`super::authorize`]).
    fn bound_redirect<'b>(&self, _bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        Err(RegistrarError::Unspecified)
    }

    /// Not used, as [`Registrar::bound_redirect`]: scope is negotiated at the authorization
    /// endpoint, and narrowed at refresh by oxide-auth against the grant itself.
    fn negotiate(
        &self,
        _bound: BoundClient,
        _scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        Err(RegistrarError::Unspecified)
    }

    fn check(&self, client_id: &str, _passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        // The client was authenticated before the flow started (client_auth.rs): this only
        // confirms that oxide-auth is talking about that client.
        if client_id == self.issuing.client.id() {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

impl Authorizer for Primitives<'_> {
    /// Not used: codes are issued by the authorization endpoint, which is ours
    /// ([`super::authorize`]); oxide-auth only extracts them at the token endpoint.
    fn authorize(&mut self, _grant: Grant) -> Result<String, ()> {
        Err(())
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
            user: user.into(),
            auth_time: row.auth_time.unwrap_or(row.created_at),
            amr: row.amr.clone().unwrap_or_else(|| "pwd".to_owned()),
            idp: row.idp.clone(),
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
        let granted = ScopeSet::from_stored(&grant.scope.to_string());
        // OIDC Core §11: the authorization-code grant yields a refresh token only with
        // `offline_access` (which the user saw on the consent page), unless the client is
        // configured to always get one (django-oauth-toolkit's behaviour).
        let with_refresh = with_refresh
            && (granted.contains(OFFLINE_ACCESS)
                || self.issuing.client.always_issue_refresh_token());
        let minted = self.mint(&TokenGrant {
            user_id: Some(&grant.owner_id),
            scope: &granted,
            family_id: &family,
            grant_type: self.grant_type.as_str(),
            refresh_scope: with_refresh.then_some(&granted),
        })?;
        Ok(IssuedToken {
            until: until(&minted),
            token: minted.access_token,
            refresh: minted.refresh_token,
            token_type: TokenType::Bearer,
        })
    }

    fn refresh(&mut self, _refresh: &str, grant: Grant) -> Result<RefreshedToken, ()> {
        // oxide-auth always recovers the refresh token before asking for a new one.
        let row = self.state.borrow_mut().recovered_refresh.take().ok_or(())?;
        // A resource outside the grant is refused before the refresh token is rotated, so the
        // client keeps it.
        {
            let state = self.state.borrow();
            let checked = self
                .issuing
                .mint(
                    state.auth.as_ref(),
                    &state.requested_resources,
                    state.grant_resources.as_ref(),
                )
                .resources();
            drop(state);
            if let Err(e) = checked {
                self.state.borrow_mut().mint_error = Some(e);
                return Err(());
            }
        }
        let now = db::now();
        if !self.with_conn(|conn| tokens::mark_rotated(conn, &row.id, now))? {
            // Another request rotated it first: treat as reuse (RFC 9700 §4.14.2).
            self.with_conn(|conn| tokens::revoke_family(conn, &row.family_id, now))?;
            self.state.borrow_mut().refresh = Some(RefreshOutcome::Reused);
            return Err(());
        }
        // RFC 6749 §6: a narrower access token does not narrow the grant; the new refresh
        // token keeps the scope of the one it replaces.
        let minted = self.mint(&TokenGrant {
            user_id: row.user_id.as_deref(),
            scope: &ScopeSet::from_stored(&grant.scope.to_string()),
            family_id: &row.family_id,
            grant_type: &row.grant_type,
            refresh_scope: Some(&ScopeSet::from_stored(&row.scope)),
        })?;
        Ok(RefreshedToken {
            until: until(&minted),
            token: minted.access_token,
            refresh: minted.refresh_token,
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
            redirect_uri: self.issuing.cfg.issuer.parse().map_err(|_| ())?,
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
            redirect_uri: self.issuing.cfg.issuer.parse().map_err(|_| ())?,
            until: Utc.from_utc_datetime(&row.expires_at),
            extensions: Extensions::new(),
        };
        let mut state = self.state.borrow_mut();
        state.auth = user.map(|user| Authentication {
            user: user.into(),
            auth_time: row.auth_time.unwrap_or(row.created_at),
            amr: row.amr.clone().unwrap_or_else(|| "pwd".to_owned()),
            idp: row.idp.clone(),
            nonce: None,
            session_id: None,
        });
        state.refresh = Some(RefreshOutcome::Valid);
        state.grant_resources = Some(ResourceSet::from_stored(&row.resources));
        state.recovered_refresh = Some(row);
        Ok(Some(grant))
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

/// When `minted`'s access token expires, for oxide-auth's answer types.
fn until(minted: &Minted) -> chrono::DateTime<Utc> {
    Utc::now() + TimeDelta::seconds(minted.expires_in)
}

/// Turns what the primitives recorded (and oxide-auth's error kind) into the RFC's error:
/// code replay, unknown codes and PKCE failures are `invalid_grant` (RFC 6749 §5.2,
/// RFC 7636 §4.6), never oxide-auth's `invalid_request`.
fn map_failure(kind: Option<AccessTokenErrorType>, state: &FlowState) -> OAuthError {
    if let Some(message) = state.pkce_error {
        return OAuthError::invalid_grant(message);
    }
    match state.code {
        Some(CodeOutcome::Unknown) => {
            return OAuthError::invalid_grant("the authorization code is invalid")
        }
        Some(CodeOutcome::Replayed) => {
            return OAuthError::invalid_grant(
                "the authorization code was already used; the tokens issued for it are revoked",
            )
        }
        Some(CodeOutcome::Expired) => {
            return OAuthError::invalid_grant("the authorization code has expired")
        }
        Some(CodeOutcome::OwnerInactive) => {
            return OAuthError::invalid_grant("the user's account is disabled")
        }
        Some(CodeOutcome::SessionsEnded) => {
            return OAuthError::invalid_grant(
                "the authorization code is no longer valid: the user was signed out everywhere after it was issued",
            )
        }
        Some(CodeOutcome::Valid) | None => {}
    }
    match state.refresh {
        Some(RefreshOutcome::Unknown) => {
            return OAuthError::invalid_grant("the refresh token is invalid")
        }
        Some(RefreshOutcome::Reused) => {
            return OAuthError::invalid_grant(
                "the refresh token was already used; every token of this grant is now revoked",
            )
        }
        Some(RefreshOutcome::Inactive) => {
            return OAuthError::invalid_grant("the refresh token has expired or was revoked")
        }
        Some(RefreshOutcome::Valid) | None => {}
    }
    match kind {
        Some(AccessTokenErrorType::InvalidGrant) if state.code.is_some() => OAuthError::invalid_grant(
            "the authorization code was issued to another client, or redirect_uri differs from the authorization request",
        ),
        Some(AccessTokenErrorType::InvalidGrant) => OAuthError::invalid_grant("the grant is invalid"),
        Some(AccessTokenErrorType::InvalidScope) => {
            OAuthError::invalid_scope("the requested scope exceeds the scope originally granted")
        }
        Some(AccessTokenErrorType::InvalidClient) => OAuthError::invalid_client("client authentication failed"),
        Some(AccessTokenErrorType::UnauthorizedClient) => {
            OAuthError::unauthorized_client("this client may not use this grant")
        }
        Some(AccessTokenErrorType::UnsupportedGrantType) => OAuthError::new(
            super::ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        ),
        _ => OAuthError::invalid_request("the token request is malformed"),
    }
}
