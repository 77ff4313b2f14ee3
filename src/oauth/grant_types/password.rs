//! The resource owner password credentials grant (RFC 6749 §4.3), ours rather than
//! oxide-auth's: client authentication → grant check (done by the caller) → argon2id
//! verification (rate-limited, timing-safe) → [`super::issue_for_login`].
//!
//! A user who must enter an emailed login code (`accounts.login_otp`, or their own switch) gets
//! no tokens here: the code is emailed and the answer is `403 mfa_required` with an
//! `mfa_token`, which the client completes with the mfa-otp grant ([`super::mfa_otp`]).

use std::net::IpAddr;

use secrecy::SecretString;

use super::super::error::{ErrorCode, OAuthError};
use super::super::mint::TokenResponse;
use super::super::params::Params;
use super::super::OAuth;
use crate::accounts::{LoginError, PasswordLogin};
use crate::clients::Client;
use crate::metrics::{self, LoginOutcome, LoginVia};

/// The RFC 8176 method of a login by password alone.
const AMR_PASSWORD: &str = "pwd";

/// Issues tokens for a username and password.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, OAuthError> {
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return Err(OAuthError::invalid_request(
            "username and password are required",
        ));
    };
    let scope = super::negotiate_scope(&client, oauth.config(), params.get("scope"))?;
    let login = oauth
        .accounts
        .check_login(username, SecretString::from(password.to_owned()), ip)
        .await
        .inspect(|_| metrics::login(LoginVia::PasswordGrant, LoginOutcome::Success))
        .inspect_err(|e| metrics::login(LoginVia::PasswordGrant, e.outcome()))
        .map_err(|e| match e {
            LoginError::InvalidCredentials => {
                OAuthError::invalid_grant("invalid username or password")
            }
            LoginError::Locked(retry) => {
                OAuthError::invalid_grant("too many failed logins; try again later")
                    .rate_limited(retry.0)
            }
            // `accounts.email_verification = "mandatory"`: told only after a right password.
            LoginError::Unverified(_) => {
                OAuthError::invalid_grant("the email address is not verified")
            }
            LoginError::Db(e) => OAuthError::from(e),
            LoginError::Hash(e) => {
                tracing::error!(error = %e, "the password could not be checked");
                OAuthError::new(
                    ErrorCode::ServerError,
                    "the password could not be checked; try again in a moment",
                )
            }
        })?;
    if oauth.accounts.needs_login_code(login.user()) {
        return Err(super::mfa_otp::challenge(oauth, &client, &login, &scope, ip).await);
    }
    super::issue_for_login(oauth, client, params, login, scope, AMR_PASSWORD).await
}

impl OAuth {
    /// The password grant after the password check (RFC 6749 §4.3.3): tokens for `client` and
    /// `login`, a password that [`Accounts::check_login`](crate::accounts::Accounts::check_login)
    /// accepted, with the scope and RFC 8707 resources of `params`. What the token endpoint
    /// runs once the password matched, so that the check and the issue can be driven apart.
    ///
    /// # Errors
    /// [`OAuthError`] with `invalid_scope`, `invalid_target`, or `invalid_grant` (the same
    /// answer as a wrong password) when the login no longer holds under the user's row lock:
    /// the password changed, or the user's sessions were ended, since the check began.
    pub async fn issue_for_password_login(
        &self,
        client: Client,
        params: Params,
        login: PasswordLogin,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = super::negotiate_scope(&client, self.config(), params.get("scope"))?;
        super::issue_for_login(self, client, params, login, scope, AMR_PASSWORD).await
    }
}
