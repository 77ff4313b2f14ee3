//! Logging out through the API: of one grant (`POST /api/logout/`) or everywhere
//! (`POST /api/logout_all/`).
//!
//! Both are protected resources (RFC 6750): the access token goes in `Authorization: Bearer …`,
//! and token problems get RFC 6750 §3 answers with a `WWW-Authenticate` challenge.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::accounts::AccountError;
use crate::oauth::bearer::BearerError;
use crate::oauth::logout::{EverywhereLogoutError, GrantLogoutError};
use crate::oauth::OAuth;
use crate::routes::errors::responses::{
    BearerRequired, BodyTooLarge, ScopeRequired, ServerError, Unavailable, UnsupportedMediaType,
};
use crate::routes::errors::{ApiError, ApiErrorBody, ApiErrorCode};
use crate::routes::extract::{ApiBody, Bearer};
use crate::routes::http::{no_store, peer_ip};

impl From<GrantLogoutError> for ApiError {
    fn from(e: GrantLogoutError) -> Self {
        match e {
            GrantLogoutError::Bearer(e) => e.into(),
            // A token the caller sent, not the one it authenticates with: 400, not 401.
            GrantLogoutError::InvalidRefreshToken => Self::new(
                ApiErrorCode::InvalidToken,
                "the refresh token is invalid, or is not of this access token's grant",
            )
            .with_status(StatusCode::BAD_REQUEST),
            GrantLogoutError::Db(e) => e.into(),
        }
    }
}

impl From<EverywhereLogoutError> for ApiError {
    fn from(e: EverywhereLogoutError) -> Self {
        match e {
            EverywhereLogoutError::Bearer(e) => e.into(),
            // The user was deleted after the token was checked: their tokens went with them.
            EverywhereLogoutError::Account(AccountError::NotFound) => {
                BearerError::InvalidToken("the access token is invalid, expired or revoked").into()
            }
            EverywhereLogoutError::Account(AccountError::Db(e)) => e.into(),
            EverywhereLogoutError::Account(e) => {
                tracing::error!(error = %e, "logout_all failed");
                Self::server_error("the logout could not be completed")
            }
        }
    }
}

/// The body of `POST /api/logout/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LogoutBody {
    /// The refresh token of the access token's grant.
    refresh_token: String,
}

/// The answer of `POST /api/logout_all/`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(in crate::routes) struct LoggedOutEverywhere {
    /// Always `logged_out_everywhere`.
    #[schema(value_type = String, pattern = "^logged_out_everywhere$")]
    status: &'static str,
    /// How many tokens were revoked (of every client).
    tokens_revoked: usize,
}

/// `POST /api/logout/` with `Authorization: Bearer ACCESS_TOKEN` and `{"refresh_token": …}`
/// (JSON or form): revokes the refresh token and every access token of its grant. The refresh
/// token must belong to the access token's grant; any other (unknown, another user's or
/// client's, another grant's) is `400 invalid_token` and nothing is revoked. A request without
/// credentials is answered before its body is read.
#[utoipa::path(
    post,
    path = "/api/logout/",
    tag = "account",
    security(("bearer" = [])),
    request_body(content(
        (LogoutBody = "application/json"),
        (LogoutBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The refresh token and every token of its grant are \
            revoked: `{\"status\": \"logged_out\"}`.", body = super::Done),
        (status = 400, description = "`invalid_token`: the refresh token is not of the access \
            token's grant (nothing is revoked); `invalid_request`: the body cannot be read or \
            lacks `refresh_token`, or the `Authorization` header is not `Bearer` with a \
            well-formed token.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, response = ScopeRequired),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    )
)]
pub async fn logout(
    bearer: Bearer,
    ApiBody(body): ApiBody<LogoutBody>,
    oauth: web::Data<OAuth>,
) -> Result<HttpResponse, ApiError> {
    oauth
        .log_out_grant(bearer.authorization(), &body.refresh_token)
        .await?;
    Ok(super::done(super::DoneStatus::LoggedOut))
}

/// `POST /api/logout_all/` with `Authorization: Bearer ACCESS_TOKEN`: revokes every token of
/// the token's user (for every client) and ends every browser session they have. The token must
/// be a first-party client's (`skip_authorization`) or carry the `logout_all` scope; any other
/// gets `403 insufficient_scope` with `scope="logout_all"` in the challenge (RFC 6750 §3.1).
#[utoipa::path(
    post,
    path = "/api/logout_all/",
    tag = "account",
    security(("bearer" = ["logout_all"])),
    responses(
        (status = 200, description = "Every token and every browser session of the user are \
            ended.", body = LoggedOutEverywhere),
        (status = 400, description = "`invalid_request`: the `Authorization` header is not \
            `Bearer` with a well-formed token.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, response = ScopeRequired),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
pub async fn logout_all(
    req: HttpRequest,
    bearer: Bearer,
    oauth: web::Data<OAuth>,
) -> Result<HttpResponse, ApiError> {
    let revoked = oauth
        .log_out_everywhere(bearer.authorization(), peer_ip(&req))
        .await?;
    Ok(no_store(&mut HttpResponse::Ok()).json(LoggedOutEverywhere {
        status: "logged_out_everywhere",
        tokens_revoked: revoked,
    }))
}
