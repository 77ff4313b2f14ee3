//! RFC 8693 token exchange, for one case: a first-party app trades a token that an upstream
//! OpenID Connect provider (Google) issued to it for Latchkey tokens of the user it names —
//! the user linked to that identity, or one made for it under upstream login's linking rules
//! ([`crate::upstream::Upstream::sign_in_with_token`]). `/api/google/` is the same grant with
//! a JSON body.
//!
//! The request (RFC 8693 §2.1), after client authentication (a client allowed this grant):
//! `subject_token`, `subject_token_type` — `urn:ietf:params:oauth:token-type:id_token` or
//! `…:access_token` (Google only) —, `subject_issuer` (Latchkey's own parameter: the id of the
//! `[upstream.<id>]` provider that issued the token; by default the only Google provider),
//! and optionally `scope`, `resource` (RFC 8707) and `requested_token_type` (only
//! `…:access_token`). No `actor_token`: this is impersonation of nobody but the token's own
//! user, never delegation. The answer (§2.2.1) is the token endpoint's with
//! `issued_token_type = urn:ietf:params:oauth:token-type:access_token`; errors are §2.2.2's
//! (RFC 6749 §5.2): `invalid_request` for a malformed request or an unknown provider,
//! `invalid_grant` for a token that does not verify, is another application's, expired, or
//! whose identity may not sign in; `temporarily_unavailable` (503) when the provider cannot be
//! reached.
//!
//! Every attempt that gets as far as the provider's checks counts against
//! `rate_limits.token_exchanges_per_ip` for the client's address ([`Limiter::attempt`]: counted
//! first, valid or not, since each may cost calls to the provider — an access token costs two
//! to Google — and a public client needs no secret to try): past it the answer is
//! `invalid_grant` with 429 and `Retry-After`, and the first refusal of a window is the audit
//! event `token_exchange.locked`.
//!
//! [`Limiter::attempt`]: crate::limits::Limiter::attempt

use std::net::IpAddr;

use super::super::error::{ErrorCode, OAuthError};
use super::super::mint::{Issued, Refusal, TokenGrant, TokenResponse};
use super::super::params::Params;
use super::super::OAuth;
use super::{negotiate_scope, run};
use crate::accounts::Account;
use crate::audit::AuditEvent;
use crate::clients::{Client, GrantType};
use crate::db::users;
use crate::limits::{self, LimitError};
use crate::oidc::Authentication;
use crate::upstream::{SubjectToken, TokenSignInError};

/// The grant type (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type of an ID token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The token type of an access token (RFC 8693 §3), and of what this grant issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Issues tokens for the user an upstream provider's token names.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, OAuthError> {
    let token = params
        .get("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?
        .to_owned();
    let token = match params.get("subject_token_type") {
        Some(ID_TOKEN_TYPE) => SubjectToken::IdToken(token),
        Some(ACCESS_TOKEN_TYPE) => SubjectToken::AccessToken(token),
        Some(_) => {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type must be {ID_TOKEN_TYPE} or {ACCESS_TOKEN_TYPE}"
            )))
        }
        None => {
            return Err(OAuthError::invalid_request(
                "subject_token_type is required",
            ))
        }
    };
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type can only be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if params.contains("actor_token") || params.contains("actor_token_type") {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    let scope = negotiate_scope(&client, oauth.config(), params.get("scope"))?;
    let resources = oauth.requested_resources(&params).await?;
    let Some(upstream) = oauth.upstream.as_ref() else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "token exchange is not available on this server",
        ));
    };
    count_attempt(oauth, ip).await?;
    let (user_id, provider_id) = upstream
        .sign_in_with_token(params.get("subject_issuer"), &token, ip)
        .await
        .map_err(|e| match e {
            TokenSignInError::Provider(message) => {
                OAuthError::invalid_request(format!("subject_issuer: {message}"))
            }
            TokenSignInError::Refused(message) => OAuthError::invalid_grant(message),
            TokenSignInError::Unreachable(message) => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, message)
            }
            e @ TokenSignInError::Limited(seconds) => {
                OAuthError::invalid_grant(e.to_string()).rate_limited(seconds)
            }
            TokenSignInError::Db(e) => OAuthError::from(e),
        })?;
    let with_refresh = client.allows(GrantType::RefreshToken);
    let mut response = run(oauth, client, move |conn, issuing| {
        // The user's row lock before minting (the lock rule in `db::tokens`): a deactivation
        // since the sign-in shows here.
        let user = match users::lock(conn, &user_id)? {
            Some(user) if user.is_active => user,
            _ => {
                return Err(Refusal::Commit(OAuthError::invalid_grant(
                    "the account is disabled",
                )))
            }
        };
        let auth = Authentication {
            user: Account::from(&user),
            auth_time: crate::db::now(),
            // RFC 8176 has no value for a sign-in at another provider; `idp` names it.
            amr: String::new(),
            idp: Some(provider_id.clone()),
            nonce: None,
            session_id: None,
        };
        let family = uuid::Uuid::now_v7().to_string();
        let minted = issuing.mint(Some(&auth), &resources, None).mint(
            conn,
            &TokenGrant {
                user_id: Some(&auth.user.id),
                scope: &scope,
                family_id: &family,
                grant_type: GRANT_TYPE,
                refresh_scope: with_refresh.then_some(&scope),
            },
        )?;
        Ok(Issued {
            minted,
            auth: Some(auth),
        })
    })
    .await?;
    response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(response)
}

/// The limiter bucket of token-exchange attempts from `ip` (the whole IPv4 address, or the IPv6
/// /64).
fn attempts_bucket(ip: IpAddr) -> String {
    limits::bucket("token_exchange:ip", &limits::ip_prefix(ip))
}

/// Counts a token-exchange attempt from `ip` against `rate_limits.token_exchanges_per_ip`
/// (0 = no limit; no address, as for a request that did not come over TCP: not counted).
///
/// # Errors
/// `invalid_grant` with 429 and the seconds until the window ends, past the limit (the first
/// refusal of a window is recorded as `token_exchange.locked`); storage failures.
async fn count_attempt(oauth: &OAuth, ip: Option<IpAddr>) -> Result<(), OAuthError> {
    let Some(ip) = ip else {
        return Ok(());
    };
    let limits = oauth.cfg.rate_limits;
    let refused = |seconds: u64| {
        OAuthError::invalid_grant("too many token exchanges from this network; try again later")
            .rate_limited(seconds)
    };
    match oauth
        .limiter
        .attempt(
            vec![(attempts_bucket(ip), limits.token_exchanges_per_ip)],
            limits.window,
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(LimitError::Reached(retry)) => {
            oauth
                .audit
                .record(
                    AuditEvent::new("token_exchange.locked")
                        .ip(Some(ip))
                        .detail("retry_after_seconds", retry.0),
                )
                .await?;
            Err(refused(retry.0))
        }
        Err(LimitError::Limited(retry)) => Err(refused(retry.0)),
        Err(LimitError::Db(e)) => Err(e.into()),
    }
}
