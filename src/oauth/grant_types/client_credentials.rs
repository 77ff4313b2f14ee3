//! The client-credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token
//! (§4.4.3), no resource owner.

use oxide_auth::code_grant::client_credentials;

use super::super::error::OAuthError;
use super::super::params::Params;
use super::super::token::TokenResponse;
use super::super::OAuth;
use crate::clients::{Client, ClientType, GrantType};

/// Issues an access token to the client itself.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
) -> Result<TokenResponse, OAuthError> {
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::unauthorized_client(
            "the client_credentials grant is only for confidential clients (RFC 6749 section 4.4)",
        ));
    }
    // Validate here so that an invalid scope gets its own error (oxide-auth ignores the request).
    super::negotiate_scope(&client, oauth.config(), params.get("scope"))?;
    super::run(
        oauth,
        client,
        params,
        GrantType::ClientCredentials,
        |state| state.issue_refresh = false,
        |primitives, request| {
            let owner = request.client_id.to_owned();
            client_credentials::client_credentials(primitives, request)
                .and_then(|pending| pending.issue(primitives, owner, false))
                .map(|_| ())
                .map_err(|mut e| e.description().map(|d| d.kind()))
        },
    )
    .await
}
