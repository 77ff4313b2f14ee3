//! [`ApiError`]: the JSON APIs' error answer, and [`ApiErrorCode`], the one list of their
//! codes (see [`super`] for the policy).

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::FieldErrors;
use crate::db::DbError;
use crate::oauth::bearer::BearerError;
use crate::oauth::ErrorDescription;

/// The `error` codes of the JSON APIs; [`ApiErrorCode::as_str`] is what goes on the wire (and in
/// the OpenAPI document: a unit test compares them). The README's "Errors of the JSON APIs"
/// table lists them with their statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(
    rename_all = "snake_case",
    description = "What a JSON API refused, for programs to act on; the README's \"Errors of \
        the JSON APIs\" gives each code's meaning and status."
)]
pub enum ApiErrorCode {
    /// 400: the request is malformed: unreadable body, missing or invalid fields (`fields`
    /// says which). With 413 for a body over `server.max_body_bytes`, 415 for a body that is
    /// neither JSON nor a form.
    InvalidRequest,
    /// 401 (RFC 6750 §3.1): the bearer token is unknown, expired or revoked (a request
    /// without one is `401 invalid_request`). Also 400 from `POST /api/logout/` for a refresh
    /// token that is not of the access token's grant.
    InvalidToken,
    /// 403 (RFC 6750 §3.1): the token lacks the scope this API needs.
    InsufficientScope,
    /// 401: the route answers for the browser's signed-in user (session cookie), and no one
    /// is signed in (`/auth/`). The name is OIDC Core §3.1.2.6's.
    LoginRequired,
    /// 403: the token's user may not do this (e.g. not staff).
    Forbidden,
    /// 404: no such thing (or one the caller may not see).
    NotFound,
    /// 403: `accounts.registration = "closed"`.
    RegistrationClosed,
    /// 403: `accounts.email_verification = "off"`, so there is nothing to verify or resend.
    VerificationDisabled,
    /// 400: the emailed code is wrong, expired, used up, or there is none for the address (one
    /// answer for all, so that it tells nothing about the address).
    InvalidOtp,
    /// 400: the activation or reset link is invalid or has expired.
    InvalidLink,
    /// 429 with `Retry-After`: a brute-force limit or a cooldown refused the request.
    TooManyRequests,
    /// 503: the email could not be sent; the change stands and the caller may ask again.
    EmailNotSent,
    /// 503 with `Retry-After`: the database cannot be reached (or, for a bearer token, could
    /// not be asked); nothing was changed.
    TemporarilyUnavailable,
    /// 500: a bug on our side (logged).
    ServerError,
}

impl ApiErrorCode {
    /// The code as sent.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::LoginRequired => "login_required",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RegistrationClosed => "registration_closed",
            Self::VerificationDisabled => "verification_disabled",
            Self::InvalidOtp => "invalid_otp",
            Self::InvalidLink => "invalid_link",
            Self::TooManyRequests => "too_many_requests",
            Self::EmailNotSent => "email_not_sent",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status the code is sent with (a few requests override it, see
    /// [`ApiError::with_status`]).
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::InvalidOtp | Self::InvalidLink => StatusCode::BAD_REQUEST,
            Self::InvalidToken | Self::LoginRequired => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope
            | Self::Forbidden
            | Self::RegistrationClosed
            | Self::VerificationDisabled => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::EmailNotSent | Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A JSON API error answer; see the module documentation.
#[derive(Debug)]
pub struct ApiError {
    code: ApiErrorCode,
    status: StatusCode,
    description: ErrorDescription,
    retry_after: Option<u64>,
    fields: Option<FieldErrors>,
    challenge: Option<String>,
}

/// The body of every refusal of the JSON APIs (README, "Errors of the JSON APIs"):
/// `{"error", "error_description", "fields"?}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
pub(in crate::routes) struct ApiErrorBody<'a> {
    /// What was refused, for programs to act on.
    #[schema(value_type = ApiErrorCode)]
    error: &'static str,
    /// What was refused, for the developer.
    error_description: &'a ErrorDescription,
    /// The messages of each wrong field, by field name, when named fields are wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    fields: Option<&'a FieldErrors>,
}

impl ApiError {
    /// `code` with `description` (cleaned into RFC 6749 §5.2's character set), sent with the
    /// code's status.
    #[must_use]
    pub fn new(code: ApiErrorCode, description: &str) -> Self {
        Self {
            code,
            status: code.status(),
            description: ErrorDescription::new(description),
            retry_after: None,
            fields: None,
            challenge: None,
        }
    }

    /// `invalid_request` (400) with `description`.
    #[must_use]
    pub fn invalid_request(description: &str) -> Self {
        Self::new(ApiErrorCode::InvalidRequest, description)
    }

    /// `invalid_request` (400) naming the wrong fields: `fields` carries every message, and the
    /// description lists them (`field: message; message; field: message`).
    #[must_use]
    pub fn invalid_fields(fields: FieldErrors) -> Self {
        let mut description = String::new();
        for (field, messages) in &fields.0 {
            if !description.is_empty() {
                description.push_str("; ");
            }
            description.push_str(&format!("{field}: {}", messages.join("; ")));
        }
        Self::invalid_request(&description).with_fields(fields)
    }

    /// `too_many_requests` (429), retry after `seconds`.
    #[must_use]
    pub fn too_many(seconds: u64, description: &str) -> Self {
        Self::new(ApiErrorCode::TooManyRequests, description).with_retry_after(seconds)
    }

    /// `temporarily_unavailable` (503) with `Retry-After: 5`: storage failed (logged by the
    /// caller).
    #[must_use]
    pub fn unavailable() -> Self {
        Self::new(
            ApiErrorCode::TemporarilyUnavailable,
            "the server cannot reach its database; try again in a moment",
        )
        .with_retry_after(STORAGE_RETRY_SECONDS)
    }

    /// `temporarily_unavailable` (503) with `Retry-After`: the password-policy queue is full
    /// ([`crate::accounts::password::HashError::Busy`]); nothing was done.
    #[must_use]
    pub fn busy() -> Self {
        Self::new(
            ApiErrorCode::TemporarilyUnavailable,
            "too many password checks are waiting; try again in a few seconds",
        )
        .with_retry_after(crate::accounts::password::BUSY_RETRY_AFTER_SECONDS)
    }

    /// `server_error` (500) with `description`: a bug or a failure on our side that the caller
    /// has logged.
    #[must_use]
    pub fn server_error(description: &str) -> Self {
        Self::new(ApiErrorCode::ServerError, description)
    }

    /// The same error sent with `status` instead (413, 415 for `invalid_request`).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds `Retry-After: seconds`.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds per-field messages.
    #[must_use]
    pub fn with_fields(mut self, fields: FieldErrors) -> Self {
        self.fields = Some(fields);
        self
    }

    /// Adds a `WWW-Authenticate` challenge (RFC 6750 §3), given whole (`Bearer error=…`).
    #[must_use]
    pub fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl From<DbError> for ApiError {
    /// Storage failed: logged with its cause, answered `503 temporarily_unavailable` — or
    /// `400 invalid_request` when the database refused the request's own text
    /// ([`DbError::is_refused_text`]).
    fn from(e: DbError) -> Self {
        if e.is_refused_text() {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "the database refused a text of the request");
            return Self::new(
                ApiErrorCode::InvalidRequest,
                "the request holds a character that cannot be stored (NUL)",
            );
        }
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "storage failure");
        Self::unavailable()
    }
}

/// The `Retry-After` of a storage failure's 503, in seconds.
const STORAGE_RETRY_SECONDS: u64 = 5;

impl From<BearerError> for ApiError {
    /// An RFC 6750 §3 answer: the status and code of [`BearerError`] with its
    /// `WWW-Authenticate` challenge (realm `latchkey`). A request without credentials gets
    /// `401` with a bare challenge (§3.1: no error code in it) and `invalid_request` in the
    /// body. A storage failure while checking the token is `503 temporarily_unavailable`, as
    /// elsewhere in the APIs (logged by [`BearerError`]'s conversion).
    fn from(e: BearerError) -> Self {
        let code = match e {
            BearerError::Missing | BearerError::InvalidRequest(_) => ApiErrorCode::InvalidRequest,
            BearerError::InvalidToken(_) => ApiErrorCode::InvalidToken,
            BearerError::InsufficientScope(_) | BearerError::UserRequired => {
                ApiErrorCode::InsufficientScope
            }
            BearerError::Storage => return Self::unavailable(),
        };
        let status = StatusCode::from_u16(e.status()).unwrap_or_else(|_| code.status());
        Self::new(code, e.description().as_str())
            .with_status(status)
            .with_challenge(e.challenge("latchkey"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        crate::routes::http::no_store(&mut builder);
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(challenge) = &self.challenge {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                builder.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        builder.json(ApiErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
            fields: self.fields.as_ref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_their_status_and_a_clean_description() {
        let e = ApiError::too_many(30, "wait \"a bit\" § 2");
        assert_eq!(e.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let response = e.error_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"30"[..])
        );
        assert!(!e.description.as_str().contains('"'));
        assert_eq!(
            ApiError::invalid_request("x")
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .status_code(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    /// Every code, in the README's order.
    const ALL_CODES: [ApiErrorCode; 14] = [
        ApiErrorCode::InvalidRequest,
        ApiErrorCode::InvalidToken,
        ApiErrorCode::InsufficientScope,
        ApiErrorCode::LoginRequired,
        ApiErrorCode::Forbidden,
        ApiErrorCode::NotFound,
        ApiErrorCode::RegistrationClosed,
        ApiErrorCode::VerificationDisabled,
        ApiErrorCode::InvalidOtp,
        ApiErrorCode::InvalidLink,
        ApiErrorCode::TooManyRequests,
        ApiErrorCode::EmailNotSent,
        ApiErrorCode::TemporarilyUnavailable,
        ApiErrorCode::ServerError,
    ];

    /// Fails to compile when a code is added without being put in [`ALL_CODES`].
    fn _every_code_is_listed(code: ApiErrorCode) {
        match code {
            ApiErrorCode::InvalidRequest
            | ApiErrorCode::InvalidToken
            | ApiErrorCode::InsufficientScope
            | ApiErrorCode::LoginRequired
            | ApiErrorCode::Forbidden
            | ApiErrorCode::NotFound
            | ApiErrorCode::RegistrationClosed
            | ApiErrorCode::VerificationDisabled
            | ApiErrorCode::InvalidOtp
            | ApiErrorCode::InvalidLink
            | ApiErrorCode::TooManyRequests
            | ApiErrorCode::EmailNotSent
            | ApiErrorCode::TemporarilyUnavailable
            | ApiErrorCode::ServerError => {}
        }
    }

    #[test]
    fn the_readme_table_lists_every_api_error_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### Errors of the JSON APIs")
            .nth(1)
            .expect("the README has the section");
        let rows: Vec<(String, String)> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| {
                let mut cells = l.split('|').map(str::trim);
                let code = cells.next().unwrap_or_default().trim_end_matches('`');
                (code.to_owned(), cells.next().unwrap_or_default().to_owned())
            })
            .collect();
        let listed: Vec<(String, String)> = ALL_CODES
            .iter()
            .map(|c| (c.as_str().to_owned(), c.status().as_u16().to_string()))
            .collect();
        assert_eq!(rows, listed);
    }

    #[test]
    fn the_documented_codes_are_the_codes_sent() {
        let schema =
            serde_json::to_value(<ApiErrorCode as utoipa::PartialSchema>::schema()).expect("json");
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let sent: Vec<&str> = ALL_CODES.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, sent);
    }

    #[test]
    fn field_errors_and_bearer_errors_have_one_shape() {
        let mut fields = FieldErrors::one("email", "Enter an address.");
        fields.add("password", "Too short.");
        fields.add("password", "Too common.");
        let e = ApiError::invalid_fields(fields);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.description.as_str(),
            "email: Enter an address.; password: Too short.; Too common."
        );
        let missing = ApiError::from(BearerError::Missing).error_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer realm=\"latchkey\""[..])
        );
        let storage = ApiError::from(BearerError::Storage).error_response();
        assert_eq!(storage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(storage.headers().contains_key(header::RETRY_AFTER));
        assert!(!storage.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
