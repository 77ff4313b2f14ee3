//! The refresh-token grant (RFC 6749 §6) with rotation: every use returns a new refresh token
//! and retires the old one; presenting a retired one revokes the whole grant (RFC 9700 §4.14.2).
//! `resource` may narrow the new access token's audience to some of the grant's resources
//! (RFC 8707 §2.2); the new refresh token keeps all of them.

use oxide_auth::code_grant::refresh;

use super::super::error::OAuthError;
use super::super::mint::TokenResponse;
use super::super::params::Params;
use super::super::primitives::{CanonicalRequest, FlowState, Primitives};
use super::super::OAuth;
use crate::clients::{Client, GrantType};

/// Exchanges a refresh token for new tokens.
pub(crate) async fn exchange(
    oauth: &OAuth,
    client: Client,
    params: Params,
) -> Result<TokenResponse, OAuthError> {
    if params.get("refresh_token").is_none() {
        return Err(OAuthError::invalid_request("refresh_token is required"));
    }
    // A scope of only spaces is no scope: keep the granted one (RFC 6749 §6).
    let params = match params.get("scope").map(crate::domain::ScopeSet::parse) {
        Some(Err(e)) => return Err(OAuthError::invalid_scope(e)),
        Some(Ok(scope)) if scope.is_empty() => params.without("scope"),
        _ => params,
    };
    let resources = oauth.requested_resources(&params).await?;
    super::run(oauth, client, move |conn, issuing| {
        let state = FlowState {
            requested_resources: resources,
            ..FlowState::default()
        };
        let mut primitives = Primitives::new(conn, issuing, GrantType::RefreshToken, state);
        let request = CanonicalRequest {
            params: &params,
            client_id: issuing.client.id(),
        };
        let result = refresh::refresh(&mut primitives, &request)
            .map(|_| ())
            .map_err(|mut e| e.description().map(|d| d.kind()));
        primitives.finish(result)
    })
    .await
}
