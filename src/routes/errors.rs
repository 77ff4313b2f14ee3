//! The web layer's two error types, each rendering itself (actix `ResponseError`), so that
//! handlers return `Result<HttpResponse, PageError>` or `Result<HttpResponse, ApiError>` and use
//! `?` for every failure:
//!
//! * [`PageError`] — hosted HTML pages: the sign-in redirect, 403/404/400 pages, the expired-form
//!   page, 429 with `Retry-After`, and 503 when storage fails (the cause is logged, the page says
//!   only "try again").
//! * [`ApiError`] (in `errors/api.rs`) — the JSON APIs (`routes/api/`):
//!   `{"error": CODE, "error_description": TEXT}` with the status the [`ApiErrorCode`] implies,
//!   `Cache-Control: no-store`, `Retry-After` when limited, and per-field messages (`fields`)
//!   for form-like requests. The description is an [`crate::oauth::ErrorDescription`], so it is always within
//!   RFC 6749 §5.2's character set. The OAuth endpoints keep their own RFC 6749 §5.2 /
//!   RFC 6750 §3 error type, [`crate::oauth::OAuthError`].
//!
//! Service errors become these through `From` impls next to the handlers that know which page
//! or field an error belongs to; storage failures ([`DbError`]) convert everywhere.
//!
//! A page error is drawn with the application's [`Brand`] by the [`brand_error_pages`]
//! middleware: actix turns an error into a response through `ResponseError::error_response`,
//! which sees no request and so no configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

use super::chrome::{brand_of, Brand, Chrome};
use crate::db::DbError;

mod api;
pub mod responses;

pub(in crate::routes) use api::ApiErrorBody;
pub use api::{ApiError, ApiErrorCode};

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
    /// `502`: an upstream identity provider could not be reached, was too slow, or answered
    /// with an error (upstream login).
    BadGateway {
        /// The page's heading.
        title: &'static str,
        /// What failed and what to do.
        message: String,
    },
    /// `503`: storage failed (logged where it was converted); the page asks to try again.
    Unavailable,
    /// `503` with `Retry-After` (RFC 9110 §15.6.4): the password-policy queue is full
    /// ([`crate::accounts::password::HashError::Busy`]); nothing was done.
    Busy,
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
            | Self::Unprocessable { title, message }
            | Self::BadGateway { title, message } => (title, message.clone()),
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
            Self::Busy => (
                "Temporarily unavailable",
                "The server is checking too many passwords right now. Please try again in a few seconds.".to_owned(),
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
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
}

/// Renders the error page with `status`, `title` and `message` under `brand` (no signed-in
/// chrome: the page may be answering a request whose session could not be read).
pub fn error_page(
    brand: &Arc<Brand>,
    status: StatusCode,
    title: &str,
    message: &str,
) -> HttpResponse {
    super::chrome::render(
        status,
        &ErrorPage {
            chrome: Chrome::anonymous(brand),
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
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer under Latchkey's own brand: there is no request here to read the
    /// configured one from ([`brand_error_pages`] draws the page again with it).
    fn error_response(&self) -> HttpResponse {
        self.response(&Arc::new(Brand::default()))
    }
}

impl PageError {
    /// The answer: the sign-in redirect, or the error page under `brand` with its status (and
    /// `Retry-After` for a limit or a full queue).
    #[must_use]
    pub fn response(&self, brand: &Arc<Brand>) -> HttpResponse {
        if let Self::SignIn { next } = self {
            let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            return super::http::see_other(&format!("/accounts/login/?next={next}"));
        }
        let (title, message) = self.text();
        let mut response = error_page(brand, self.status_code(), title, &message);
        let retry_after = match self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::Busy => Some(crate::accounts::password::BUSY_RETRY_AFTER_SECONDS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Middleware: the page of a [`PageError`] drawn again with the application's [`Brand`].
/// actix answers a handler's or an extractor's error with `ResponseError::error_response`,
/// which has no request and so draws Latchkey's own brand; the response keeps the error, so
/// here, with the request at hand, it is answered again as [`PageError::response`] under the
/// configured one. Every other response (the sign-in redirect included) passes untouched.
///
/// # Errors
/// Those of the wrapped service.
pub async fn brand_error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    let branded = res
        .response()
        .error()
        .and_then(actix_web::Error::as_error::<PageError>)
        .filter(|e| !matches!(e, PageError::SignIn { .. }))
        .map(|e| e.response(&brand_of(res.request())));
    Ok(match branded {
        Some(response) => res.into_response(response).map_into_right_body(),
        None => res.map_into_left_body(),
    })
}

/// Messages per field of a form (`{"email": ["…"], "password": ["…", "…"]}` in JSON answers):
/// the one shape field errors take, on pages (next to each field, all at once) and in the JSON
/// APIs (`fields`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "The messages of each wrong field, by field name.")]
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

    /// All of `field`'s messages (none: empty).
    #[must_use]
    pub fn messages(&self, field: &str) -> &[String] {
        self.0.get(field).map_or(&[], Vec::as_slice)
    }

    /// Whether `field` has an error.
    #[must_use]
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Every (field, message), fields in name order, a field's messages in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(field, messages)| {
            messages.iter().map(move |m| (field.as_str(), m.as_str()))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
