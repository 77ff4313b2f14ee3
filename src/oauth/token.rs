//! The token endpoint (RFC 6749 §3.2): client authentication, then one module per grant type
//! under `grant_types/`. Every answer is JSON; the route adds `Cache-Control: no-store` and
//! `Pragma: no-cache` (RFC 6749 §5.1).

use std::net::IpAddr;

use super::client_auth::presented_client;
use super::error::{ErrorCode, OAuthError};
use super::grant_types;
pub use super::mint::TokenResponse;
use super::params::Params;
use super::OAuth;
use crate::clients::GrantType;

impl OAuth {
    /// Handles a token request: `authorization` is the `Authorization` header, `params` the
    /// parsed form body, `ip` the caller's address (for brute-force limits).
    ///
    /// # Errors
    /// RFC 6749 §5.2 errors: `invalid_request`, `invalid_client` (401), `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`; `server_error` (500)
    /// only when storage fails.
    #[tracing::instrument(skip_all, fields(grant_type = params.get("grant_type").unwrap_or("")))]
    pub async fn token(
        &self,
        authorization: Option<&str>,
        params: Params,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?
            .to_owned();
        let presented = presented_client(authorization, &params)?;
        let client = self.authenticate_client(presented, ip).await?;
        if grant_type == grant_types::mfa_otp::GRANT_TYPE {
            // The second half of a password-grant login: a client allowed the password grant
            // may use it, with no registration of its own.
            if !client.allows(GrantType::Password) {
                return Err(OAuthError::unauthorized_client(
                    "only a client allowed the password grant may use the mfa-otp grant",
                ));
            }
            let answer = grant_types::mfa_otp::exchange(self, client, params, ip).await;
            if answer.is_ok() {
                crate::metrics::token_issued("mfa_otp");
            }
            return answer;
        }
        let grant: GrantType = grant_type.parse().map_err(|_| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "unsupported grant_type '{grant_type}': use authorization_code, refresh_token, password, client_credentials, {} or {}",
                    grant_types::token_exchange::GRANT_TYPE,
                    grant_types::mfa_otp::GRANT_TYPE
                ),
            )
        })?;
        if !client.allows(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client is not allowed to use the {grant_type} grant"
            )));
        }
        let answer = match grant {
            GrantType::AuthorizationCode => {
                grant_types::authorization_code::exchange(self, client, params).await
            }
            GrantType::RefreshToken => {
                grant_types::refresh_token::exchange(self, client, params).await
            }
            GrantType::Password => grant_types::password::exchange(self, client, params, ip).await,
            GrantType::ClientCredentials => {
                grant_types::client_credentials::exchange(self, client, params).await
            }
            GrantType::TokenExchange => {
                grant_types::token_exchange::exchange(self, client, params, ip).await
            }
        };
        if answer.is_ok() {
            crate::metrics::token_issued(metric_label(grant));
        }
        answer
    }
}

/// The `grant_type` label of [`crate::metrics::TOKENS_ISSUED`]: the parameter's value, with
/// RFC 8693's URN shortened.
fn metric_label(grant: GrantType) -> &'static str {
    match grant {
        GrantType::TokenExchange => "token_exchange",
        other => other.as_str(),
    }
}
