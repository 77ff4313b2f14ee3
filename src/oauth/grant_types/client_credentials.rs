//! The client-credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token
//! (§4.4.3), no resource owner.
//!
//! A token without a user is only as trustworthy as whoever registered the client: for a client
//! registered through the developer portal (any signed-in user can), only the scopes an operator
//! lists in `tokens.scopes_without_user` are granted (none by default, and then the grant is
//! refused); operator-registered clients get any of their allowed scopes. `resource`
//! (RFC 8707 §2) names the resource servers the token is for.

use super::super::error::OAuthError;
use super::super::mint::Issued;
use super::super::mint::TokenGrant;
use super::super::mint::TokenResponse;
use super::super::params::Params;
use super::super::{OAuth, OAuthConfig};
use crate::clients::{Client, ClientType, GrantType};
use crate::domain::ScopeSet;

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
    let scope = negotiate(&client, oauth.config(), params.get("scope"))?;
    let resources = oauth.requested_resources(&params).await?;
    let family = uuid::Uuid::now_v7().to_string();
    if !client.jwt_access_tokens() {
        // Opaque tokens: everything is made here, storage only inserts.
        return super::run_prepared(oauth, client, move |issuing| {
            issuing
                .mint(None, &resources, None)
                .prepare_opaque(&grant(&scope, &family))
        })
        .await;
    }
    super::run(oauth, client, move |conn, issuing| {
        let minted = issuing
            .mint(None, &resources, None)
            .mint(conn, &grant(&scope, &family))?;
        Ok(Issued { minted, auth: None })
    })
    .await
}

/// A client-credentials grant's tokens: no user, and (RFC 6749 §4.4.3) no refresh token.
fn grant<'a>(scope: &'a ScopeSet, family: &'a str) -> TokenGrant<'a> {
    TokenGrant {
        user_id: None,
        scope,
        family_id: family,
        grant_type: GrantType::ClientCredentials.as_str(),
        refresh_scope: None,
    }
}

/// The scope a client-credentials request gets: as for every grant
/// ([`super::negotiate_scope`]), and for a portal client ([`Client::is_portal_client`]) only
/// within `tokens.scopes_without_user`; a portal client that names no scope gets its default
/// scopes that are in that list.
///
/// # Errors
/// `unauthorized_client` for a portal client when the list is empty; `invalid_scope` for a
/// scope outside it (or when none of the client's scopes is in it).
pub(crate) fn negotiate(
    client: &Client,
    cfg: &OAuthConfig,
    requested: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let scope = super::negotiate_scope(client, cfg, requested)?;
    if !client.is_portal_client() {
        return Ok(scope);
    }
    let allowed = &cfg.scopes_without_user;
    if allowed.is_empty() {
        return Err(OAuthError::unauthorized_client(
            "this server issues no tokens without a user to applications registered in the developer portal",
        ));
    }
    let named = requested
        .and_then(|r| ScopeSet::parse(r).ok())
        .is_some_and(|s| !s.is_empty());
    if named {
        if !scope.is_subset(allowed) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {} cannot be granted without a user to an application registered in the developer portal",
                scope.difference(allowed)
            )));
        }
        return Ok(scope);
    }
    let within: ScopeSet = scope
        .iter()
        .filter(|s| allowed.contains(s))
        .map(str::to_owned)
        .collect();
    if within.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of this application's scopes can be granted without a user",
        ));
    }
    Ok(within)
}
