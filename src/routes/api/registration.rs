//! Self-registration and email verification through the API (issue 5, "Registration" and
//! "Email verification"; the hosted pages are `routes/login/register.rs` and `verify.rs`, the
//! rules `accounts/registration.rs`). JSON or form bodies:
//!
//! * `POST /api/register/` → 201 `{"id","username","email","email_verified","verification",
//!   "email_sent"}`; 400 `invalid_request` with `fields`; 403 `registration_closed`; 429
//!   `too_many_requests` with `Retry-After`.
//! * `POST /api/verify-otp/` (`email`, `otp`) → 200 `{"status":"verified"}`; 400
//!   `invalid_otp` for every refused code, whatever the reason or the address (wrong, expired,
//!   used up, no code waiting, unknown or verified address); 429 `too_many_requests` with
//!   `Retry-After` past `rate_limits.code_guesses_per_ip`.
//! * `GET /api/activate/<uidb64>/<token>/` → 200 `{"status":"verified"}`; 400 `invalid_link`.
//! * `POST /api/resend-otp/` and `POST /api/resend-activation-email/` (`email`) → 200
//!   `{"status":"sent"}` whatever the address (the email goes out in the background, to a
//!   pending address only); 429 with `Retry-After` during the address's cooldown or past the
//!   per-client-address limit — counted for every address alike.
//!
//! With `accounts.email_verification = "off"` the verification endpoints answer 403
//! `verification_disabled`.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::accounts::registration::{
    ActivationError, RegisterError, Registered, Registration, ResendError, VerifyError,
};
use crate::accounts::Accounts;
use crate::config::EmailVerification;
use crate::routes::errors::responses::{
    BodyTooLarge, ServerError, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use crate::routes::errors::{ApiError, ApiErrorBody, ApiErrorCode, FieldErrors};
use crate::routes::extract::ApiBody;
use crate::routes::http::{no_store, peer_ip};

use super::{Done, DoneStatus};

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Invalid(errors) => {
                Self::invalid_fields(errors.into_iter().collect::<FieldErrors>())
            }
            RegisterError::Closed => Self::new(
                ApiErrorCode::RegistrationClosed,
                "registration is closed on this server",
            ),
            RegisterError::Limited(retry) => Self::too_many(
                retry.0,
                &format!(
                    "too many registrations from this network; retry in {} seconds",
                    retry.0
                ),
            ),
            RegisterError::Db(e) => e.into(),
            RegisterError::Hash(e) if e.is_busy() => ApiError::busy(),
            RegisterError::Hash(e) => {
                tracing::error!(error = %e, "registration failed");
                Self::server_error("the account could not be created; try again in a moment")
            }
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Rejected => Self::new(
                ApiErrorCode::InvalidOtp,
                "the code is wrong or has expired, or no code is waiting for this address; check both, or ask for a new code",
            ),
            VerifyError::Limited(retry) => Self::too_many(
                retry.0,
                &format!(
                    "too many codes were tried from this network; retry in {} seconds",
                    retry.0
                ),
            ),
            VerifyError::Disabled => verification_disabled(),
            VerifyError::Db(e) => e.into(),
        }
    }
}

impl From<ActivationError> for ApiError {
    fn from(e: ActivationError) -> Self {
        match e {
            ActivationError::InvalidLink => Self::new(
                ApiErrorCode::InvalidLink,
                "the activation link is invalid or has expired, or it was already used",
            ),
            ActivationError::Disabled => verification_disabled(),
            ActivationError::Db(e) => e.into(),
        }
    }
}

impl From<ResendError> for ApiError {
    fn from(e: ResendError) -> Self {
        match e {
            ResendError::Limited(retry) => Self::too_many(
                retry.0,
                &format!(
                    "a code for this address was asked for a moment ago; retry in {} seconds",
                    retry.0
                ),
            ),
            ResendError::Mail(_) => Self::new(
                ApiErrorCode::EmailNotSent,
                "we could not send the email; try again in a moment",
            ),
            ResendError::Disabled => verification_disabled(),
            ResendError::Db(e) => e.into(),
        }
    }
}

fn verification_disabled() -> ApiError {
    ApiError::new(
        ApiErrorCode::VerificationDisabled,
        "email verification is switched off on this server",
    )
}

/// The request body of `POST /api/register/`. A required field left out is reported in
/// `fields` like an empty one.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "email": "ada@example.com", "username": "ada", "first_name": "Ada",
    "last_name": "Lovelace", "password": "blue tiger morning lamp",
    "confirm_password": "blue tiger morning lamp"
}))]
pub struct RegisterBody {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    email: String,
    /// Without it the part of `email` before the `@` is used, with digits added when taken.
    #[serde(default)]
    #[schema(nullable = false)]
    username: Option<String>,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// 12 to 128 characters, and strong enough (README, "Registration and email verification").
    #[serde(default)]
    #[schema(required = true, min_length = 12)]
    password: String,
    /// The same password again.
    #[serde(default)]
    #[schema(required = true, min_length = 12)]
    confirm_password: String,
}

/// The answer of `POST /api/register/`: the new account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct NewAccount {
    /// The user's stable id.
    id: String,
    username: String,
    email: String,
    email_verified: bool,
    /// `accounts.email_verification`: whether the address must be verified before the user
    /// can sign in.
    verification: Verification,
    /// Whether the verification email was sent.
    email_sent: bool,
}

/// `accounts.email_verification`, as the registration answer names it.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Verification {
    /// Unverified users cannot sign in or get tokens.
    Mandatory,
    /// Verification is offered; nothing is refused.
    Optional,
    /// No verification emails are sent.
    Off,
}

impl From<EmailVerification> for Verification {
    fn from(v: EmailVerification) -> Self {
        match v {
            EmailVerification::Mandatory => Self::Mandatory,
            EmailVerification::Optional => Self::Optional,
            EmailVerification::Off => Self::Off,
        }
    }
}

/// `POST /api/register/`: 201 with the new account; 400 `invalid_request` with `fields`; 403
/// `registration_closed`; 429 `too_many_requests`.
#[utoipa::path(
    post,
    path = "/api/register/",
    tag = "account",
    request_body(content(
        (RegisterBody = "application/json"),
        (RegisterBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "The account is created.", body = NewAccount),
        (status = 400, description = "`invalid_request`: the body cannot be read, or fields \
            are wrong (`fields` names each).", body = ApiErrorBody),
        (status = 403, description = "`registration_closed`: `accounts.registration = \
            \"closed\"`.", body = ApiErrorBody),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = ServerError),
        (status = 503, response = Unavailable),
    )
)]
pub async fn register(
    req: HttpRequest,
    ApiBody(body): ApiBody<RegisterBody>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let registration = Registration {
        email: body.email,
        username: body.username,
        first_name: body.first_name,
        last_name: body.last_name,
        password: SecretString::from(body.password),
        confirm_password: SecretString::from(body.confirm_password),
    };
    let Registered {
        user,
        verification,
        email_sent,
    } = accounts.register(registration, peer_ip(&req)).await?;
    Ok(no_store(&mut HttpResponse::Created()).json(NewAccount {
        id: user.id,
        username: user.username,
        email: user.email,
        email_verified: user.email_verified,
        verification: verification.into(),
        email_sent: email_sent.unwrap_or(false),
    }))
}

/// The request body of `POST /api/verify-otp/`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "otp": "492013"}))]
pub struct VerifyBody {
    /// The address the code was sent to.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    email: String,
    /// The 6-digit code from the email.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    otp: String,
}

/// `POST /api/verify-otp/` (`email`, `otp`): 200 `{"status":"verified"}`; 400 `invalid_otp` for
/// every refused code (one answer whatever the reason or the address, so that it reveals
/// nothing); 429 `too_many_requests` past the per-client-address limit on guesses.
#[utoipa::path(
    post,
    path = "/api/verify-otp/",
    tag = "account",
    request_body(content(
        (VerifyBody = "application/json"),
        (VerifyBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The address is verified: `{\"status\": \"verified\"}`.",
            body = Done),
        (status = 400, description = "`invalid_otp`: the code is refused, whatever the reason \
            or the address; `invalid_request`: the body cannot be read, or `email` or `otp` is \
            missing.", body = ApiErrorBody),
        (status = 403, description = "`verification_disabled`: \
            `accounts.email_verification = \"off\"`.", body = ApiErrorBody),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn verify_otp(
    req: HttpRequest,
    ApiBody(body): ApiBody<VerifyBody>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    if body.email.trim().is_empty() || body.otp.trim().is_empty() {
        return Err(ApiError::invalid_request("email and otp are required"));
    }
    accounts
        .verify_email_code(&body.email, &body.otp, peer_ip(&req))
        .await?;
    Ok(super::done(DoneStatus::Verified))
}

/// `GET /api/activate/{uidb64}/{token}/`: 200 `{"status":"verified"}` or 400 `invalid_link`.
#[utoipa::path(
    get,
    path = "/api/activate/{uidb64}/{token}/",
    tag = "account",
    params(
        ("uidb64" = String, Path, description = "From the emailed link."),
        ("token" = String, Path, description = "From the emailed link."),
    ),
    responses(
        (status = 200, description = "The address is verified: `{\"status\": \"verified\"}`.",
            body = Done),
        (status = 400, description = "`invalid_link`: the link is invalid, expired or used.",
            body = ApiErrorBody),
        (status = 403, description = "`verification_disabled`: \
            `accounts.email_verification = \"off\"`.", body = ApiErrorBody),
        (status = 404, description = "`not_found`: the path holds an encoded NUL, or an empty \
            segment.", body = ApiErrorBody),
        (status = 503, response = Unavailable),
    )
)]
pub async fn activate(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let (uidb64, token) = path.into_inner();
    accounts.activate(&uidb64, &token, peer_ip(&req)).await?;
    Ok(super::done(DoneStatus::Verified))
}

/// The request body of the two resend endpoints.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct ResendBody {
    /// The address waiting for verification.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    email: String,
}

/// `POST /api/resend-otp/` and `POST /api/resend-activation-email/` (`email`): a new email with
/// a code and an activation link. 200 `{"status":"sent"}` for every address (only a pending one
/// gets an email, sent in the background); 429 with `Retry-After` while the address's cooldown
/// runs or past the per-client-address limit, for every address alike.
/// (`/api/resend-activation-email/` is the same operation; the OpenAPI document lists it too.)
#[utoipa::path(
    post,
    path = "/api/resend-otp/",
    tag = "account",
    request_body(content(
        (ResendBody = "application/json"),
        (ResendBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"status\": \"sent\"}` for every address; only one \
            waiting for verification gets an email.", body = Done),
        (status = 400, description = "`invalid_request`: the body cannot be read, or `email` \
            is missing.", body = ApiErrorBody),
        (status = 403, description = "`verification_disabled`: \
            `accounts.email_verification = \"off\"`.", body = ApiErrorBody),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "`email_not_sent`: the email could not be sent; or \
            `temporarily_unavailable` (with `Retry-After`): the database cannot be reached.",
            body = ApiErrorBody),
    )
)]
pub async fn resend(
    req: HttpRequest,
    ApiBody(body): ApiBody<ResendBody>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    if body.email.trim().is_empty() {
        return Err(ApiError::invalid_request("email is required"));
    }
    accounts
        .resend_verification(&body.email, peer_ip(&req))
        .await?;
    Ok(super::done(DoneStatus::Sent))
}
