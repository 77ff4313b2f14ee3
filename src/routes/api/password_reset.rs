//! Password reset through the API (issue 5, "Password reset"; the hosted pages are
//! `routes/login/reset.rs`, the rules `accounts/reset.rs`):
//!
//! * `POST /api/password-reset/` (`email`) → 200 `{"status":"sent"}` for every address; 400
//!   `invalid_request` with `fields` for a malformed address; 429 `too_many_requests` with
//!   `Retry-After` when the limits for the address or the client refuse it.
//! * `POST /api/password-reset-confirm/<uidb64>/<token>/` (`password`, `confirm_password`) →
//!   200 `{"status":"password_changed"}`, 400 `invalid_link`, or 400 `invalid_request` with
//!   `fields` naming each wrong field.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;

use crate::accounts::reset::ResetError;
use crate::accounts::Accounts;
use crate::domain::Email;
use crate::limits::LimitError;
use crate::routes::errors::responses::{
    BodyTooLarge, ServerError, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::errors::{ApiError, ApiErrorBody, ApiErrorCode, FieldErrors};
use crate::routes::extract::ApiBody;
use crate::routes::format::capitalized;
use crate::routes::http::peer_ip;

impl From<ResetError> for ApiError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::InvalidLink => invalid_link(),
            ResetError::Invalid(message) => {
                Self::invalid_fields(FieldErrors::one("password", capitalized(&message)))
            }
            ResetError::Db(e) => e.into(),
            ResetError::Hash(e) if e.is_busy() => ApiError::busy(),
            e @ ResetError::Hash(_) => {
                tracing::error!(error = %e, "password reset failed");
                Self::server_error("the password could not be changed; try again")
            }
        }
    }
}

/// The refusals of a reset request: a limit (429), or storage.
fn request_refused(e: LimitError) -> ApiError {
    match e {
        LimitError::Limited(retry) | LimitError::Reached(retry) => ApiError::too_many(
            retry.0,
            &format!(
                "too many password reset requests for this address or from this network; retry in {} seconds",
                retry.0
            ),
        ),
        LimitError::Db(e) => e.into(),
    }
}

fn invalid_link() -> ApiError {
    ApiError::new(
        ApiErrorCode::InvalidLink,
        "the password reset link is invalid or has expired; ask for a new one",
    )
}

/// The body of `POST /api/password-reset/`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct ResetRequestBody {
    /// The account's address.
    email: String,
}

/// `POST /api/password-reset/` (`email`): 200 `{"status":"sent"}` whether or not an account
/// has the address; 400 for a malformed address; 429 with `Retry-After` when a limit refuses.
#[utoipa::path(
    post,
    path = "/api/password-reset/",
    tag = "account",
    request_body(content(
        (ResetRequestBody = "application/json"),
        (ResetRequestBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"status\": \"sent\"}` whether or not an account has \
            the address.", body = super::Done),
        (status = 400, description = "`invalid_request`: the body cannot be read, or the \
            address is malformed (`fields`).", body = ApiErrorBody),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn request_reset(
    req: HttpRequest,
    ApiBody(body): ApiBody<ResetRequestBody>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email).map_err(|message| {
        ApiError::invalid_fields(FieldErrors::one("email", capitalized(&message)))
    })?;
    accounts
        .request_password_reset(&email, peer_ip(&req))
        .await
        .map_err(request_refused)?;
    Ok(super::done(super::DoneStatus::Sent))
}

/// The body of `POST /api/password-reset-confirm/<uidb64>/<token>/`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPasswordBody {
    /// The new password (the registration rules apply).
    password: String,
    /// The same again.
    confirm_password: String,
}

/// `POST /api/password-reset-confirm/{uidb64}/{token}/` (`password`, `confirm_password`):
/// 200 `{"status":"password_changed"}`; 400 `invalid_link`; 400 `invalid_request` with
/// `fields` for a mismatch or a password the validators refuse.
#[utoipa::path(
    post,
    path = "/api/password-reset-confirm/{uidb64}/{token}/",
    tag = "account",
    params(
        ("uidb64" = String, Path, description = "From the emailed link."),
        ("token" = String, Path, description = "From the emailed link."),
    ),
    request_body(content(
        (NewPasswordBody = "application/json"),
        (NewPasswordBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The password is changed, every token of the user revoked \
            and every session ended: `{\"status\": \"password_changed\"}`.", body = super::Done),
        (status = 400, description = "`invalid_link`: the link is invalid, expired or used; \
            `invalid_request`: the body cannot be read, or the passwords differ or are refused \
            (`fields`).", body = ApiErrorBody),
        (status = 404, description = "`not_found`: the path holds an encoded NUL, or an empty \
            segment.", body = ApiErrorBody),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
pub async fn confirm_reset(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    ApiBody(body): ApiBody<NewPasswordBody>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let (uidb64, token) = path.into_inner();
    // The link first: a dead link is the answer whatever the passwords are.
    if accounts.check_reset_link(&uidb64, &token).await?.is_none() {
        return Err(invalid_link());
    }
    if body.password != body.confirm_password {
        return Err(ApiError::invalid_fields(FieldErrors::one(
            "confirm_password",
            "The two passwords are not the same.",
        )));
    }
    accounts
        .reset_password(
            &uidb64,
            &token,
            SecretString::from(body.password),
            peer_ip(&req),
        )
        .await?;
    Ok(super::done(super::DoneStatus::PasswordChanged))
}
