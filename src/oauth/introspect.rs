//! Token introspection (RFC 7662). Clients must authenticate. A client learns about its own
//! tokens; a confidential client serving RFC 8707 resources (`resource_uris`) also about the
//! access tokens whose audience names one of them (RFC 7662 §4: the server decides who may see
//! which tokens); a client with `introspect_all` about every token. Anything else — unknown,
//! expired, revoked, another client's — is `{"active": false}` (RFC 7662 §2.2).

use std::net::IpAddr;

use serde::Serialize;

use super::client_auth::presented_client;
use super::error::OAuthError;
use super::params::Params;
use super::OAuth;
use crate::clients::{Client, ClientType};
use crate::db::tokens::TokenRow;
use crate::db::{self, clients, tokens, DbError};
use crate::domain::ResourceSet;
use crate::oidc::Audience;
use crate::secret;

/// The introspection response (RFC 7662 §2.2); every field but `active` is omitted for
/// inactive tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    /// Whether the token is currently usable.
    pub active: bool,
    /// Granted scope, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// The resource owner's username.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false, pattern = "^(Bearer|refresh_token)$")]
    pub token_type: Option<&'static str>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exp: Option<i64>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iat: Option<i64>,
    /// The resource owner's stable id (absent for client-credentials tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// Intended audience (RFC 7662 §2.2): the token's RFC 8707 resources, or
    /// `oidc.access_token_audience` when it names none — the `aud` a JWT access token carries.
    /// A string, or an array of several.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<Audience>,
    /// The issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iss: Option<String>,
}

impl OAuth {
    /// Introspects `params["token"]` for the authenticated client (a request from `ip`, for the
    /// client-authentication limits).
    ///
    /// # Errors
    /// `invalid_client` (401) when client authentication fails, `invalid_request` without a
    /// token; `server_error` when storage fails.
    #[tracing::instrument(skip_all)]
    pub async fn introspect(
        &self,
        authorization: Option<&str>,
        params: Params,
        ip: Option<IpAddr>,
    ) -> Result<Introspection, OAuthError> {
        // One trip to the database: the client (unless this node keeps its row, see
        // `Clients::find_for_authentication`: then one query less), then (only once it is
        // authenticated) the token.
        let presented = presented_client(authorization, &params)?;
        let hash = params.get("token").map(secret::sha256_hex);
        let has_token = hash.is_some();
        let cached = self
            .clients
            .cached_for_authentication(presented.id())
            .filter(|c| presented.authenticates(c));
        let generation = self.clients.cache_generation();
        let was_cached = cached.is_some();
        let outcome = match (cached, hash) {
            // The usual case: this node keeps the client's row, and only the token is read —
            // on PostgreSQL in a group with the lookups of other requests waiting at that
            // moment (`Db::find_usable_token`).
            (Some(client), Some(hash)) => {
                let found = self.db.find_usable_token(hash, db::now()).await?;
                Ok((client, found))
            }
            (cached, hash) => {
                self.db
                    .lookup(move |conn| -> Result<_, DbError> {
                        let client = match cached {
                            Some(client) => Some(client),
                            None => clients::find(conn, presented.id())?.map(Client::from_row),
                        };
                        let Some(client) = client.filter(|c| presented.authenticates(c)) else {
                            return Ok(Err(presented));
                        };
                        let found = match &hash {
                            Some(hash) => tokens::find_usable(conn, hash, None, db::now())?,
                            None => None,
                        };
                        Ok(Ok((client, found)))
                    })
                    .await?
            }
        };
        let (client, found) = match outcome {
            Ok(found) => {
                if !was_cached {
                    self.clients
                        .remember_for_authentication(generation, &found.0);
                }
                found
            }
            Err(presented) => return Err(self.client_auth_failed(&presented, ip).await),
        };
        if !has_token {
            return Err(OAuthError::invalid_request("token is required"));
        }
        let issuer = self.cfg.issuer.clone();
        let found = found.filter(|(row, _)| may_introspect(&client, row));
        let Some((row, user)) = found else {
            return Ok(Introspection::default());
        };
        let aud = Audience::of_resources(
            &ResourceSet::from_stored(&row.resources),
            &self.cfg.access_token_audience,
        );
        Ok(Introspection {
            active: true,
            scope: Some(row.scope),
            client_id: Some(row.client_id.clone()),
            username: user.map(|u| u.username),
            token_type: Some(if row.kind == tokens::REFRESH {
                "refresh_token"
            } else {
                "Bearer"
            }),
            exp: Some(row.expires_at.and_utc().timestamp()),
            iat: Some(row.created_at.and_utc().timestamp()),
            sub: row.user_id,
            aud: Some(aud),
            iss: Some(issuer),
        })
    }
}

/// Whether `client` may learn about `token`: its own; every token with `introspect_all`; an
/// access token for a resource it serves. The last two need a confidential client: a public one
/// proves nothing but its client_id (`validate_spec` refuses `introspect_all` for public clients;
/// this also covers rows stored before it did). Refresh tokens are for their client alone.
fn may_introspect(client: &Client, token: &TokenRow) -> bool {
    let confidential = client.client_type == ClientType::Confidential;
    token.client_id == client.id()
        || (confidential && client.introspect_all())
        || (token.kind == tokens::ACCESS
            && confidential
            && client
                .resource_uris
                .intersects(&ResourceSet::from_stored(&token.resources)))
}
