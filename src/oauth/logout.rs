//! Logging a first-party app out of one grant (`POST /api/logout/`): the app shows the access
//! token of the grant as its bearer credential (RFC 6750 §2.1) and the grant's refresh token;
//! the whole token family (the refresh token and every access token issued with it) is
//! revoked, as RFC 7009 §2.1 does for a revoked refresh token.
//!
//! Logging the user out of everything (`POST /api/logout_all/`, [`OAuth::log_out_everywhere`])
//! ends every session and revokes every token of every application, so it takes more than any
//! token of the user: the token's client must be first-party (`skip_authorization`, which only
//! an operator or staff can set) or the token must carry the
//! [`LOGOUT_ALL_SCOPE`](crate::config::LOGOUT_ALL_SCOPE) scope (which the user consented to, and
//! which only staff can allow a client). Otherwise any application the user once allowed could
//! sign them out everywhere, over and over.

use std::net::IpAddr;

use diesel::Connection;

use super::bearer::{bearer_token, BearerError};
use super::OAuth;
use crate::accounts::AccountError;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::LOGOUT_ALL_SCOPE;
use crate::db::{self, tokens, users, DbError};
use crate::secret;

/// Why a user could not be signed out everywhere.
#[derive(Debug, thiserror::Error)]
pub enum EverywhereLogoutError {
    /// The bearer token is missing, malformed or unusable (401/400), was issued to no user, or
    /// neither belongs to a first-party client nor carries the `logout_all` scope (403
    /// `insufficient_scope`, RFC 6750 §3.1).
    #[error(transparent)]
    Bearer(#[from] BearerError),
    /// The account change failed (storage; the user deleted meanwhile).
    #[error(transparent)]
    Account(#[from] AccountError),
}

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

impl OAuth {
    /// Signs the user of the bearer access token in `authorization` out of everything: every
    /// token of every client revoked, every browser session ended (`Accounts::
    /// end_sessions_and_tokens`, recorded as `user.signed_out_everywhere` by the user from
    /// `ip`); returns how many tokens were revoked. Allowed for tokens of first-party clients
    /// (`skip_authorization`) and tokens with the `logout_all` scope only.
    ///
    /// # Errors
    /// [`EverywhereLogoutError::Bearer`] — `InsufficientScope("logout_all")` for a third-party
    /// token without the scope, `UserRequired` for a client-credentials token, and the other
    /// RFC 6750 §3.1 answers; nothing changes then. [`EverywhereLogoutError::Account`] when the
    /// change fails.
    #[tracing::instrument(skip_all)]
    pub async fn log_out_everywhere(
        &self,
        authorization: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<usize, EverywhereLogoutError> {
        let grant = self.validate_bearer(authorization, None).await?;
        let Some(user) = grant.user else {
            return Err(BearerError::UserRequired.into());
        };
        if !grant.scope.contains(LOGOUT_ALL_SCOPE) {
            let first_party = self
                .clients
                .find(&grant.client_id)
                .await
                .map_err(BearerError::from)?
                .is_some_and(|c| c.skip_authorization());
            if !first_party {
                return Err(BearerError::InsufficientScope(LOGOUT_ALL_SCOPE.to_owned()).into());
            }
        }
        let actor = Actor::user(user.id.clone(), ip);
        Ok(self
            .accounts
            .end_sessions_and_tokens(&actor, &user.id)
            .await?)
    }
}

impl OAuth {
    /// Checks an RP-initiated logout request (OpenID Connect RP-Initiated Logout §2–§3) read
    /// from `params`, for a browser in which `signed_in` (a user id) is signed in, if anyone:
    /// [`crate::oidc::logout::plan_logout`] with this server's keys, clients and issuer.
    ///
    /// # Errors
    /// As [`crate::oidc::logout::plan_logout`].
    pub async fn plan_logout(
        &self,
        params: &super::Params,
        signed_in: Option<&str>,
    ) -> Result<crate::oidc::logout::LogoutPlan, crate::oidc::logout::LogoutError> {
        let request = crate::oidc::logout::LogoutRequest {
            id_token_hint: params.get("id_token_hint").map(str::to_owned),
            client_id: params.get("client_id").map(str::to_owned),
            post_logout_redirect_uri: params.get("post_logout_redirect_uri").map(str::to_owned),
            state: params.get("state").map(str::to_owned),
        };
        crate::oidc::logout::plan_logout(
            self.keys(),
            self.clients(),
            &self.config().issuer,
            &request,
            signed_in,
        )
        .await
    }
}
