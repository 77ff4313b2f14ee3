//! One module per grant type, and the runner they share: it opens a transaction on the writer
//! connection, lets oxide-auth's state machine drive our primitives, and turns what happened
//! into an RFC 6749 §5.1 response or §5.2 error.

pub mod authorization_code;
pub mod client_credentials;
pub mod mfa_otp;
pub mod password;
pub mod refresh_token;

use diesel::Connection;
use oxide_auth::code_grant::error::AccessTokenErrorType;

use super::error::OAuthError;
use super::params::Params;
use super::primitives::{CanonicalRequest, CodeOutcome, FlowState, Primitives, RefreshOutcome};
use super::token::TokenResponse;
use super::{OAuth, OAuthConfig};
use crate::clients::{Client, GrantType};
use crate::domain::ScopeSet;
use crate::oidc::keys::KeyError;
use crate::oidc::{id_token_claims, IdTokenRequest, ID_TOKEN_TYP, OFFLINE_ACCESS, OPENID};

/// How a flow ended when it did not issue tokens: oxide-auth's error kind, if it gave one.
pub(crate) type FlowFailure = Option<AccessTokenErrorType>;

/// Runs `flow` in a transaction. Storage errors roll back (500); protocol errors commit, so that
/// the revocations done on code replay or refresh-token reuse stay done.
pub(crate) async fn run<S, F>(
    oauth: &OAuth,
    client: Client,
    params: Params,
    grant: GrantType,
    setup: S,
    flow: F,
) -> Result<TokenResponse, OAuthError>
where
    S: FnOnce(&mut FlowState) + Send + 'static,
    F: for<'a> FnOnce(&mut Primitives<'a>, &CanonicalRequest<'a>) -> Result<(), FlowFailure>
        + Send
        + 'static,
{
    let cfg = oauth.cfg.clone();
    let signer = if client.jwt_access_tokens() {
        Some(
            oauth
                .keys
                .signer(client.signing_alg())
                .await
                .map_err(signing_failed)?,
        )
    } else {
        None
    };
    let alg = client.signing_alg();
    let client_id = client.id().to_owned();
    let (mut response, auth) = oauth
        .db
        .write(move |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let cfg: &OAuthConfig = &cfg;
                let mut primitives = Primitives::new(conn, cfg, &client, grant).with_signer(signer);
                setup(primitives.state.get_mut());
                let request = CanonicalRequest {
                    params: &params,
                    client_id: client.id(),
                };
                let result = flow(&mut primitives, &request);
                let mut state = primitives.into_state();
                if let Some(e) = state.db_error.take() {
                    return Err(e);
                }
                if state.signing_failed {
                    // Nothing may be stored for a response that cannot be sent.
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                Ok(match (result, state.minted.take()) {
                    (Ok(()), Some(minted)) => Ok((
                        TokenResponse {
                            access_token: minted.access_token,
                            token_type: "Bearer",
                            expires_in: minted.expires_in,
                            refresh_token: minted.refresh_token,
                            scope: minted.scope,
                            id_token: None,
                        },
                        state.auth.take(),
                    )),
                    (Ok(()), None) => Err(OAuthError::server_error()),
                    (Err(kind), _) => Err(map_failure(kind, &state)),
                })
            })
            .map_err(OAuthError::from)
        })
        .await??;
    // OIDC Core §3.1.3.3: an ID token whenever the granted scope contains `openid`; on refresh
    // too (§12.2), with the original auth_time and without a nonce.
    let scope = ScopeSet::from_stored(&response.scope);
    if let (true, Some(auth)) = (scope.contains(OPENID), auth) {
        let claims = id_token_claims(
            &auth,
            &IdTokenRequest {
                issuer: &oauth.cfg.issuer,
                client_id: &client_id,
                scope: &scope,
                access_token: &response.access_token,
                alg,
                lifetime_seconds: i64::try_from(oauth.cfg.lifetimes.id_token.as_secs())
                    .unwrap_or(3600),
            },
        );
        response.id_token = Some(
            oauth
                .keys
                .sign(alg, ID_TOKEN_TYP, &claims)
                .await
                .map_err(signing_failed)?,
        );
    }
    Ok(response)
}

fn signing_failed(e: KeyError) -> OAuthError {
    tracing::error!(error = %e, "signing failed");
    OAuthError::server_error()
}

/// Turns what the primitives recorded (and oxide-auth's error kind) into the RFC's error:
/// code replay, unknown codes and PKCE failures are `invalid_grant` (RFC 6749 §5.2,
/// RFC 7636 §4.6), never oxide-auth's `invalid_request`.
fn map_failure(kind: FlowFailure, state: &FlowState) -> OAuthError {
    if let Some(message) = state.pkce_error {
        return OAuthError::invalid_grant(message);
    }
    if let Some(message) = state.target_error {
        return OAuthError::invalid_target(message);
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
    if state.owner_inactive {
        return OAuthError::invalid_grant("the user's account is disabled");
    }
    // RFC 6749 §5.2: the password checked is no longer the user's (or their sessions were
    // ended meanwhile): the same answer as a wrong password.
    if state.login_outdated {
        return OAuthError::invalid_grant("invalid username or password");
    }
    if state.scope_refused {
        return OAuthError::invalid_scope("the requested scope is not allowed for this client");
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

/// RFC 6749 §3.3 scope negotiation shared by every grant: no scope (or an empty one) means the
/// client's allowed scopes; anything beyond them is `invalid_scope`.
pub(crate) fn negotiate_scope(
    client: &Client,
    cfg: &OAuthConfig,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let allowed: ScopeSet = client
        .allowed_scopes
        .iter()
        .filter(|s| cfg.scopes.contains_key(*s))
        .map(str::to_owned)
        .collect();
    let requested = match requested {
        Some(raw) => ScopeSet::parse(raw).map_err(OAuthError::invalid_scope)?,
        None => ScopeSet::default(),
    };
    if requested.is_empty() {
        // `openid` and `offline_access` change what the client gets (an ID token, a refresh
        // token that outlives the session): only an explicit request grants them.
        return Ok(allowed
            .iter()
            .filter(|s| *s != OPENID && *s != OFFLINE_ACCESS)
            .map(str::to_owned)
            .collect());
    }
    if !requested.is_subset(&allowed) {
        return Err(OAuthError::invalid_scope(format!(
            "scope not allowed for this client: {}",
            requested.difference(&allowed)
        )));
    }
    Ok(requested)
}
