//! The authorization-code grant's token request (RFC 6749 §4.1.3), with PKCE (RFC 7636 §4.5).

use oxide_auth::code_grant::accesstoken;

use super::super::error::OAuthError;
use super::super::mint::TokenResponse;
use super::super::params::Params;
use super::super::primitives::{CanonicalRequest, FlowState, Primitives};
use super::super::OAuth;
use crate::clients::{Client, GrantType};

/// Exchanges an authorization code for tokens.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
) -> Result<TokenResponse, OAuthError> {
    if params.get("code").is_none() {
        return Err(OAuthError::invalid_request("code is required"));
    }
    let omitted = params.get("redirect_uri").is_none();
    let with_refresh = client.allows(GrantType::RefreshToken);
    // RFC 8707 §2.2: within the resources of the authorization request (checked against the
    // code by the primitives).
    let resources = oauth.requested_resources(&params).await?;
    super::run(oauth, client, move |conn, issuing| {
        let state = FlowState {
            requested_resources: resources,
            redirect_uri_omitted: omitted,
            issue_refresh: with_refresh,
            ..FlowState::default()
        };
        let mut primitives = Primitives::new(conn, issuing, GrantType::AuthorizationCode, state);
        let request = CanonicalRequest {
            params: &params,
            client_id: issuing.client.id(),
        };
        let result = accesstoken::access_token(&mut primitives, &request)
            .map(|_| ())
            .map_err(|mut e| e.description().map(|d| d.kind()));
        primitives.finish(result)
    })
    .await
}
