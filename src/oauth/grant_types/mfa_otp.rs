//! The mfa-otp grant (`urn:latchkey:params:oauth:grant-type:mfa-otp`), an extension grant
//! (RFC 6749 §4.5) that completes a password-grant login for a user who must enter an emailed
//! one-time code.
//!
//! 1. `grant_type=password` with the right password answers
//!    `403 {"error":"mfa_required","error_description":…,"mfa_token":…}` and emails the code
//!    ([`challenge`]).
//! 2. The same client, authenticated the same way, sends `grant_type=<this URN>`, `mfa_token`
//!    and `otp` ([`exchange`]) and gets the normal token response (RFC 6749 §5.1) for the scope
//!    negotiated in step 1 (a `scope` parameter here is ignored), with `amr` = `pwd otp` on the
//!    tokens and the ID token.
//!
//! A client allowed the `password` grant may use this grant: it is the second half of the same
//! login, so it needs no registration of its own. Errors are `invalid_grant` (400): a wrong
//! code (the description says how many attempts are left), or an expired, exhausted, used or
//! unknown `mfa_token`, or one that another client started; `invalid_grant` with 429 and
//! `Retry-After` past `rate_limits.code_guesses_per_ip` guesses from the client address.

use std::net::IpAddr;

use super::super::error::{ErrorCode, OAuthError};
use super::super::mint::TokenResponse;
use super::super::params::Params;
use super::super::OAuth;
use crate::accounts::login_code::{ChallengeFor, LoginCodeOutcome, AMR_PASSWORD_AND_CODE};
use crate::accounts::PasswordLogin;
use crate::clients::Client;
use crate::domain::ScopeSet;
use crate::limits::LimitError;

/// The `grant_type` value of this grant (advertised in the server metadata).
pub const GRANT_TYPE: &str = "urn:latchkey:params:oauth:grant-type:mfa-otp";

/// Starts the second step of a password-grant login: emails a login code to `user` and returns
/// the `mfa_required` answer that carries the `mfa_token` (or the error that prevented it).
pub(super) async fn challenge(
    oauth: &OAuth,
    client: &Client,
    login: &PasswordLogin,
    scope: &ScopeSet,
    ip: Option<IpAddr>,
) -> OAuthError {
    let requester = ChallengeFor::Client {
        client_id: client.id().to_owned(),
        scope: scope.to_string(),
    };
    match oauth
        .accounts
        .start_login_challenge(login.user(), login.began, ip, requester)
        .await
    {
        Ok(started) if started.emailed => OAuthError::mfa_required(
            format!(
                "a one-time code was emailed to the user; send it as otp with this mfa_token and grant_type={GRANT_TYPE}"
            ),
            started.handle,
        ),
        // The code exists but did not go out: tell the client, which may retry after the
        // cooldown (the user's account is unchanged).
        Ok(_) => OAuthError::new(
            ErrorCode::ServerError,
            "the one-time code could not be emailed to the user; try again in a minute",
        ),
        Err(LimitError::Limited(wait) | LimitError::Reached(wait)) => OAuthError::invalid_grant(format!(
            "a one-time code was emailed to this user moments ago: finish that login with its mfa_token, or try again in {} seconds",
            wait.0
        ))
        .rate_limited(wait.0),
        Err(LimitError::Db(e)) => OAuthError::from(e),
    }
}

/// Completes a login with `mfa_token` and `otp`, and issues tokens through the password
/// grant's path.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, OAuthError> {
    let (Some(mfa_token), Some(otp)) = (params.get("mfa_token"), params.get("otp")) else {
        return Err(OAuthError::invalid_request(
            "mfa_token and otp are required",
        ));
    };
    let outcome = oauth
        .accounts
        .finish_login_challenge(mfa_token, otp, Some(client.id()), None, ip)
        .await?;
    let (login, stored_scope) = match outcome {
        LoginCodeOutcome::Passed { login, scope } => (*login, scope),
        LoginCodeOutcome::Wrong { remaining } => {
            return Err(OAuthError::invalid_grant(match remaining {
                1 => "the code is wrong; 1 attempt left".to_owned(),
                n => format!("the code is wrong; {n} attempts left"),
            }))
        }
        LoginCodeOutcome::Expired => {
            return Err(OAuthError::invalid_grant(
                "the code has expired; log in with the password grant again",
            ))
        }
        LoginCodeOutcome::Exhausted => {
            return Err(OAuthError::invalid_grant(
                "too many wrong codes; log in with the password grant again",
            ))
        }
        LoginCodeOutcome::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the mfa_token is invalid, already used, or was issued to another client",
            ))
        }
        // `rate_limits.code_guesses_per_ip`: nothing was checked.
        LoginCodeOutcome::Limited(retry) => {
            return Err(OAuthError::invalid_grant(
                "too many one-time codes were tried from this address; try again later",
            )
            .rate_limited(retry.0))
        }
    };
    // The scope negotiated when the login started, checked again against what the client may
    // have now (an admin may have narrowed it since). An empty one stays empty: negotiating
    // nothing would grant the client's whole default scope.
    let stored = ScopeSet::from_stored(stored_scope.as_deref().unwrap_or_default());
    let scope = if stored.is_empty() {
        stored
    } else {
        super::negotiate_scope(&client, oauth.config(), Some(&stored.to_string()))?
    };
    super::issue_for_login(oauth, client, params, login, scope, AMR_PASSWORD_AND_CODE).await
}
