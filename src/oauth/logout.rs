//! Logging a first-party app out of one grant (`POST /api/logout/`): the app shows the access
//! token of the grant as its bearer credential (RFC 6750 §2.1) and the grant's refresh token;
//! the whole token family (the refresh token and every access token issued with it) is
//! revoked, as RFC 7009 §2.1 does for a revoked refresh token.

use diesel::Connection;

use super::bearer::{bearer_token, BearerError};
use super::OAuth;
use crate::audit::{self, AuditEvent};
use crate::db::{self, tokens, users, DbError};
use crate::secret;

/// Why a grant could not be logged out.
#[derive(Debug, thiserror::Error)]
pub enum GrantLogoutError {
    /// The bearer access token is missing, malformed, unusable, or was issued to no user
    /// (RFC 6750 §3.1 answers).
    #[error(transparent)]
    Bearer(#[from] BearerError),
    /// The refresh token is unknown, not a refresh token, or of another grant. One answer for
    /// all, so that the endpoint tells nothing about other people's tokens.
    #[error("the refresh token is not valid for this access token")]
    InvalidRefreshToken,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What [`OAuth::log_out_grant`] finds before it revokes anything.
enum Outcome {
    Revoked(usize),
    NoUser,
    BadAccessToken,
    BadRefreshToken,
}

impl OAuth {
    /// Revokes the grant of the bearer access token in `authorization` when `refresh_token` is
    /// that grant's refresh token (same token family, hence same user and client); returns how
    /// many tokens were revoked. Recorded as `token.revoked` with `via: api_logout`.
    ///
    /// # Errors
    /// See [`GrantLogoutError`]; nothing is revoked then.
    #[tracing::instrument(skip_all)]
    pub async fn log_out_grant(
        &self,
        authorization: Option<&str>,
        refresh_token: &str,
    ) -> Result<usize, GrantLogoutError> {
        let access_hash = secret::sha256_hex(bearer_token(authorization)?);
        let refresh_hash = secret::sha256_hex(refresh_token);
        let outcome = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let now = db::now();
                    let Some((access, owner)) =
                        tokens::find_usable(conn, &access_hash, Some(tokens::ACCESS), now)?
                    else {
                        return Ok(Outcome::BadAccessToken);
                    };
                    let Some(user) = owner else {
                        return Ok(Outcome::NoUser);
                    };
                    // The user's row lock before the refresh token is read and its family
                    // revoked (see the lock rule in `db::tokens`).
                    users::lock(conn, &user.id)?;
                    let refresh = tokens::find_by_hash(conn, &refresh_hash, Some(tokens::REFRESH))?;
                    let Some(refresh) = refresh.filter(|r| {
                        r.family_id == access.family_id
                            && r.client_id == access.client_id
                            && r.user_id.as_deref() == Some(user.id.as_str())
                    }) else {
                        return Ok(Outcome::BadRefreshToken);
                    };
                    let count = tokens::revoke_family(conn, &refresh.family_id, now)?;
                    audit::record(
                        conn,
                        AuditEvent::new("token.revoked")
                            .client(access.client_id.clone())
                            .user(user.id.clone())
                            .detail("kind", tokens::REFRESH)
                            .detail("tokens_revoked", count)
                            .detail("via", "api_logout"),
                    )?;
                    Ok(Outcome::Revoked(count))
                })
                .map_err(DbError::from)
            })
            .await?;
        match outcome {
            Outcome::Revoked(count) => Ok(count),
            Outcome::NoUser => Err(BearerError::UserRequired.into()),
            Outcome::BadAccessToken => Err(BearerError::InvalidToken(
                "the access token is invalid, expired or revoked",
            )
            .into()),
            Outcome::BadRefreshToken => Err(GrantLogoutError::InvalidRefreshToken),
        }
    }
}
