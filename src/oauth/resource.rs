//! RFC 8707 resource indicators: the `resource` parameters of authorization and token requests.
//!
//! A request may name resources (absolute URIs, no fragment, §2) that some client serves as a
//! resource server (`resource_uris`, set by operators and staff); anything else is
//! `invalid_target`. The named resources become the access token's audience (`aud` of JWT
//! access tokens, RFC 9068 §3, and of introspection answers, RFC 7662 §2.2), and the resource
//! servers serving them may introspect it. How a token request relates to the grant's
//! resources is decided where tokens are minted (`mint::Mint::resources`).

use super::error::OAuthError;
use super::params::Params;
use super::OAuth;
use crate::db::DbError;
use crate::domain::ResourceSet;

impl OAuth {
    /// The `resource` parameters of `params` (RFC 8707 §2), each a resource some client serves.
    /// None named: the empty set (no storage read).
    ///
    /// # Errors
    /// `invalid_target` for a malformed or unknown resource (or more than
    /// [`crate::domain::MAX_RESOURCES`]); `server_error` when storage fails.
    pub(crate) async fn requested_resources(
        &self,
        params: &Params,
    ) -> Result<ResourceSet, OAuthError> {
        self.check_resources(params)
            .await?
            .map_err(OAuthError::invalid_target)
    }

    /// [`OAuth::requested_resources`] with the `invalid_target` description as the inner error.
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    pub(crate) async fn check_resources(
        &self,
        params: &Params,
    ) -> Result<Result<ResourceSet, String>, DbError> {
        let values = params.get_all("resource");
        if values.is_empty() {
            return Ok(Ok(ResourceSet::default()));
        }
        let requested = match ResourceSet::parse(values.iter().map(String::as_str)) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let served = self.clients.served_resources().await?;
        if !requested.is_subset(&served) {
            return Ok(Err(
                "a requested resource is not known to this server".to_owned()
            ));
        }
        Ok(Ok(requested))
    }
}
