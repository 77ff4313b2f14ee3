//! The JSON APIs — every JSON route that is not an OAuth or OpenID Connect protocol endpoint:
//!
//! * `GET /api/me` (here): the token's user, a protected resource (RFC 6750).
//! * [`accounts`]: logging out of one grant or everywhere (`/api/logout/`, `/api/logout_all/`).
//! * [`users`]: the admin users API (`/api/users/`, `/api/users/{id}/`).
//! * [`registration`]: self-registration and email verification (`/api/register/`,
//!   `/api/verify-otp/`, `/api/activate/…`, `/api/resend-otp/`,
//!   `/api/resend-activation-email/`).
//! * [`password_reset`]: `/api/password-reset/` and `/api/password-reset-confirm/…`.
//! * [`google`]: `/api/google/` (and `/accounts/api/google/`), a mobile app's Google token
//!   traded for Latchkey tokens — RFC 8693 token exchange in seed 002's shape, so its errors
//!   are the token endpoint's RFC 6749 §5.2 bodies, not the ones below.
//! * [`discord`]: `/auth/`, the signed-in user's Discord profile (seed 000's path; the
//!   browser's session, not a bearer token).
//!
//! One shape for all of them: a handler takes its body as [`ApiBody`](super::extract::ApiBody)
//! and its credentials as [`Bearer`], and returns `Result<HttpResponse, ApiError>`; every error
//! is an [`ApiError`] with one of the [`ApiErrorCode`](super::errors::ApiErrorCode)s —
//! `{"error", "error_description", "fields"?}`, `Cache-Control: no-store`, `Retry-After` for
//! limits and storage failures, and RFC 6750 §3 challenges for token problems. The README's
//! "Errors of the JSON APIs" lists the codes. The protocol endpoints answer RFC 6749 §5.2
//! bodies of their own ([`crate::oauth::OAuthError`]).

pub(super) mod accounts;
pub(super) mod discord;
pub(super) mod google;
pub(super) mod password_reset;
pub(super) mod registration;
pub(super) mod users;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::oauth::bearer::BearerError;
use crate::oauth::OAuth;
use crate::routes::errors::responses::{BearerRequired, ScopeRequired, Unavailable};
use crate::routes::errors::{ApiError, ApiErrorBody};
use crate::routes::extract::Bearer;
use crate::routes::http::no_store;
use crate::upstream::{Upstream, DISCORD_SCOPE};

/// The profile returned by `/api/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Me {
    /// The user's stable id.
    sub: String,
    username: String,
    first_name: String,
    last_name: String,
    /// With the `email` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// With the `email` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email_verified: Option<bool>,
    /// The token's scope, space-separated.
    scope: String,
    /// The client the token was issued to.
    client_id: String,
    /// The user's Discord profile (the `discord` claim), with the `discord` scope and a linked
    /// Discord account.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::upstream::discord::DiscordClaim>, nullable = false)]
    discord: Option<serde_json::Value>,
}

/// `GET /api/me`: needs an access token with the `profile` scope issued to a user; `email`
/// and `email_verified` are included when the token also has `email`, and `discord` (the
/// user's Discord profile, when they linked a Discord account) when it has `discord`.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "account",
    security(("bearer" = ["profile"])),
    responses(
        (status = 200, description = "The token's user.", body = Me),
        (status = 400, description = "`invalid_request`: the `Authorization` header is not \
            `Bearer` with a well-formed token.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, response = ScopeRequired),
        (status = 503, response = Unavailable),
    )
)]
pub async fn me(
    bearer: Bearer,
    oauth: web::Data<OAuth>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, ApiError> {
    let grant = oauth
        .validate_bearer(bearer.authorization(), Some("profile"))
        .await?;
    let user = grant.user.ok_or(BearerError::UserRequired)?;
    let with_email = grant.scope.contains("email");
    let discord = if grant.scope.contains(DISCORD_SCOPE) {
        upstream
            .discord_account(&user.id)
            .await?
            .map(|d| d.profile.claim())
    } else {
        None
    };
    Ok(no_store(&mut HttpResponse::Ok()).json(Me {
        sub: user.id,
        username: user.username,
        first_name: user.first_name,
        last_name: user.last_name,
        email: with_email.then_some(user.email),
        email_verified: with_email.then_some(user.email_verified),
        scope: grant.scope.to_string(),
        client_id: grant.client_id,
        discord,
    }))
}

/// A method an `/api/` route does not answer: `405 invalid_request`.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let message = format!("{} is not allowed on {}", req.method(), req.path());
    Err(ApiError::invalid_request(&message).with_status(StatusCode::METHOD_NOT_ALLOWED))
}

/// `{"status": …}`: the answer of the API calls that only report that they were done.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Done {
    /// What was done.
    status: DoneStatus,
}

/// What an API call that only reports it was done did.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum DoneStatus {
    /// `/api/verify-otp/`, `/api/activate/…`: the address is verified.
    Verified,
    /// `/api/resend-otp/`, `/api/resend-activation-email/`, `/api/password-reset/`: an email
    /// is on its way if the address is waiting for one.
    Sent,
    /// `/api/logout/`: the grant's tokens are revoked.
    LoggedOut,
    /// `/api/password-reset-confirm/…`: the password is changed.
    PasswordChanged,
}

/// `{"status": status}` with 200 and `Cache-Control: no-store`.
fn done(status: DoneStatus) -> HttpResponse {
    no_store(&mut HttpResponse::Ok()).json(Done { status })
}
