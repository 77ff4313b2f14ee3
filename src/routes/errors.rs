//! The web layer's two error types, each rendering itself (actix `ResponseError`), so that
//! handlers return `Result<HttpResponse, PageError>` or `Result<HttpResponse, ApiError>` and use
//! `?` for every failure:
//!
//! * [`PageError`] — hosted HTML pages: the sign-in redirect, 403/404/400 pages, the expired-form
//!   page, 429 with `Retry-After`, and 503 when storage fails (the cause is logged, the page says
//!   only "try again").
//! * [`ApiError`] — the JSON APIs (account API, admin users API, `/api/logout*`):
//!   `{"error": CODE, "error_description": TEXT}` with the status the [`ApiErrorCode`] implies,
//!   `Cache-Control: no-store`, `Retry-After` when limited, and per-field messages (`fields`)
//!   for form-like requests. The description is an [`ErrorDescription`], so it is always within
//!   RFC 6749 §5.2's character set. The OAuth endpoints keep their own RFC 6749 §5.2 /
//!   RFC 6750 §3 error type, [`crate::oauth::OAuthError`].
//!
//! Service errors become these through `From` impls next to the handlers that know which page
//! or field an error belongs to; storage failures ([`DbError`]) convert everywhere.

use std::collections::BTreeMap;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

use crate::db::DbError;
use crate::oauth::bearer::BearerError;
use crate::oauth::ErrorDescription;

/// What a hosted page answers instead of its content.
#[derive(Debug)]
pub enum PageError {
    /// Nobody is signed in: `303` to the sign-in page, which comes back to `next` (a local
    /// path with its query) afterwards.
    SignIn {
        /// Where to continue after signing in.
        next: String,
    },
    /// `403`: signed in, but not allowed (staff-only page, a privilege rule refused).
    Forbidden {
        /// The page's heading.
        title: &'static str,
        /// What is not allowed, for the user.
        message: String,
    },
    /// `404`: no such thing — or one the user may not see (existence is not confirmed).
    NotFound {
        /// The page's heading.
        title: &'static str,
        /// What was not found.
        message: String,
    },
    /// `400`: the request cannot be served as sent (unreadable form, invalid link, …).
    BadRequest {
        /// The page's heading.
        title: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `422`: the form was read but cannot be acted on as sent (a stale page, a missing
    /// confirmation) and no field of a page can show why.
    Unprocessable {
        /// The page's heading.
        title: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// `403`: the form's CSRF token is missing or not this session's (an expired form, or a
    /// request from another site).
    CsrfFailed,
    /// `429` with `Retry-After` (RFC 9110 §10.2.3): a brute-force limit refused the request.
    TooManyRequests {
        /// Seconds until a retry makes sense.
        retry_after: u64,
        /// What was limited, for the user.
        message: String,
    },
    /// `413`: the form is larger than `server.max_body_bytes`.
    TooLarge,
    /// `503`: storage failed (logged where it was converted); the page asks to try again.
    Unavailable,
    /// `500`: a bug on our side (a page that could not be rendered); logged where it happened.
    Internal,
}

impl PageError {
    /// `403` with `message`.
    #[must_use]
    pub fn forbidden(title: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            title,
            message: message.into(),
        }
    }

    /// `404` with `message`.
    #[must_use]
    pub fn not_found(title: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            title,
            message: message.into(),
        }
    }

    /// `400` with `message`.
    #[must_use]
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            title,
            message: message.into(),
        }
    }

    /// `429`, retry after `retry_after` seconds; `message` should say what was limited.
    #[must_use]
    pub fn too_many(retry_after: u64, message: impl Into<String>) -> Self {
        Self::TooManyRequests {
            retry_after,
            message: message.into(),
        }
    }

    /// The heading and explanation the error page shows.
    fn text(&self) -> (&str, String) {
        match self {
            Self::SignIn { .. } => ("Sign in", "Sign in to continue.".to_owned()),
            Self::Forbidden { title, message }
            | Self::NotFound { title, message }
            | Self::BadRequest { title, message }
            | Self::Unprocessable { title, message } => (title, message.clone()),
            Self::TooManyRequests { message, .. } => ("Too many attempts", message.clone()),
            Self::CsrfFailed => (
                "Form expired",
                "This form was not submitted from this site, or your session has expired. Go back, reload the page and try again.".to_owned(),
            ),
            Self::TooLarge => (
                "Too large",
                "The form is larger than this server accepts.".to_owned(),
            ),
            Self::Unavailable => (
                "Temporarily unavailable",
                "The server cannot reach its database. Please try again in a moment.".to_owned(),
            ),
            Self::Internal => (
                "Something went wrong",
                "The page could not be shown. Please try again; if it keeps happening, tell the administrator.".to_owned(),
            ),
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (title, message) = self.text();
        write!(f, "{title}: {message}")
    }
}

impl From<DbError> for PageError {
    /// Storage failed: logged here with its cause, answered with the 503 page — unless the
    /// database refused the request's own text ([`DbError::is_refused_text`], a NUL that
    /// reached PostgreSQL): that is the client's input, a 400 page.
    fn from(e: DbError) -> Self {
        if e.is_refused_text() {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "the database refused a text of the request");
            return Self::bad_request(
                "Bad request",
                "The request holds a character that cannot be stored (NUL). Please check what you typed.",
            );
        }
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "storage failure");
        Self::Unavailable
    }
}

/// The error page (`templates/error.html`).
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: super::chrome::Chrome,
    title: &'a str,
    message: &'a str,
}

/// Renders the error page with `status`, `title` and `message` (no signed-in chrome: the
/// page may be answering a request whose session could not be read).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    super::chrome::render(
        status,
        &ErrorPage {
            chrome: super::chrome::Chrome::anonymous(),
            title,
            message,
        },
    )
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden { .. } | Self::CsrfFailed => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn { next } = self {
            let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            return super::http::see_other(&format!("/accounts/login/?next={next}"));
        }
        let (title, message) = self.text();
        let mut response = error_page(self.status_code(), title, &message);
        if let Self::TooManyRequests { retry_after, .. } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// The `error` codes of the JSON APIs; [`ApiErrorCode::as_str`] is what goes on the wire. The
/// README's "Errors of the JSON APIs" table lists them with their statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
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

/// Messages per field of a form (`{"email": ["…"], "password": ["…", "…"]}` in JSON answers):
/// the one shape field errors take, on pages (next to each field, all at once) and in the JSON
/// APIs (`fields`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// No errors.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// One error for `field`.
    #[must_use]
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Adds `message` to `field`'s errors.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `field`'s first message (what a page shows next to the field).
    #[must_use]
    pub fn first(&self, field: &str) -> Option<&str> {
        self.0
            .get(field)
            .and_then(|m| m.first())
            .map(String::as_str)
    }

    /// Whether `field` has an error.
    #[must_use]
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Every (field, message), in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(f, ms)| ms.iter().map(move |m| (f.as_str(), m.as_str())))
    }
}

impl<K: AsRef<str>> FromIterator<(K, Vec<String>)> for FieldErrors {
    fn from_iter<I: IntoIterator<Item = (K, Vec<String>)>>(iter: I) -> Self {
        let mut errors = Self::new();
        for (field, messages) in iter {
            for m in messages {
                errors.add(field.as_ref(), m);
            }
        }
        errors
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

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
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
        super::http::no_store(&mut builder);
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
            error_description: self.description.as_str(),
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

    #[test]
    fn page_errors_have_their_statuses() {
        assert_eq!(
            PageError::SignIn {
                next: "/a?b=c".into()
            }
            .status_code(),
            StatusCode::SEE_OTHER
        );
        let response = PageError::SignIn {
            next: "/a?b=c".into(),
        }
        .error_response();
        assert_eq!(
            response
                .headers()
                .get(header::LOCATION)
                .map(|v| v.as_bytes()),
            Some(&b"/accounts/login/?next=%2Fa%3Fb%3Dc"[..])
        );
        assert_eq!(PageError::CsrfFailed.status_code(), StatusCode::FORBIDDEN);
        let limited = PageError::too_many(60, "slow down").error_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers().contains_key(header::RETRY_AFTER));
    }
}
