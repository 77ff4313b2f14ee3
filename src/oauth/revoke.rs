//! Token revocation (RFC 7009). The client must authenticate; revoking a refresh token revokes
//! every token of its grant (RFC 7009 §2.1); unknown tokens, and tokens of other clients, get the
//! same empty 200 so that the endpoint reveals nothing (RFC 7009 §2.2).

use std::net::IpAddr;

use diesel::Connection;

use super::error::OAuthError;
use super::params::Params;
use super::OAuth;
use crate::audit::{self, AuditEvent};
use crate::db::{self, tokens, DbError};

impl OAuth {
    /// Revokes `params["token"]` if it belongs to the authenticated client (a request from `ip`,
    /// for the client-authentication limits).
    /// `token_type_hint` is accepted and not needed (hashes are unique across kinds).
    ///
    /// # Errors
    /// `invalid_client` (401), `invalid_request` without a token, `server_error` when storage
    /// fails.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(
        &self,
        authorization: Option<&str>,
        params: Params,
        ip: Option<IpAddr>,
    ) -> Result<(), OAuthError> {
        let (client, hash) = self
            .authenticated_token_request(authorization, &params, ip)
            .await?;
        let client_id = client.id().to_owned();
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    // The owner's row lock first (see the lock rule in `db::tokens`): a refresh
                    // of this grant commits wholly before or after, never in between.
                    tokens::lock_owner(conn, &hash)?;
                    let Some(row) = tokens::find_by_hash(conn, &hash, None)? else {
                        return Ok(());
                    };
                    if row.client_id != client_id {
                        return Ok(());
                    }
                    let now = db::now();
                    let count = if row.kind == tokens::REFRESH {
                        tokens::revoke_family(conn, &row.family_id, now)?
                    } else {
                        usize::from(tokens::revoke(conn, &row.id, now)?)
                    };
                    if count > 0 {
                        audit::record(
                            conn,
                            AuditEvent::new("token.revoked")
                                .client(row.client_id.clone())
                                .maybe_user(row.user_id.as_deref())
                                .detail("kind", row.kind.clone())
                                .detail("tokens_revoked", count)
                                .detail("via", "revocation_endpoint"),
                        )?;
                    }
                    Ok(())
                })
                .map_err(DbError::from)
            })
            .await?;
        Ok(())
    }
}
