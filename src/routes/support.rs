//! Legacy helpers of handlers that return `HttpResponse` (sign-in and staff checks, form and
//! body reading, error pages), kept while the handlers move to the extractors of
//! [`super::extract`] and the errors of [`super::errors`]. New code does not use this module.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

pub use super::browser::{
    csrf_ok, csrf_token, current_login, current_user, log_out, SESSION_REAUTH,
};
pub use super::chrome::render;
pub use super::http::{authorization_header, no_store, oauth_error, peer_ip, read_form, see_other};
pub use super::WebConfig;
use crate::db::DbError;
use crate::oauth::Params;

/// Reads a form posted by a browser (no CSRF check): the error is a 400 page.
pub async fn read_html_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Params, HttpResponse> {
    read_form(req, payload, limit).await.map_err(|_| {
        error_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form could not be read.",
        )
    })
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    super::errors::error_page(status, title, message)
}

/// The page shown when storage fails (503), or, when the database refused the request's text
/// ([`DbError::is_refused_text`]: a NUL that reached PostgreSQL), a 400 page: that is the
/// client's input.
pub fn unavailable(e: &DbError) -> HttpResponse {
    if e.is_refused_text() {
        tracing::warn!(error = %e, cause = ?std::error::Error::source(e), "the database refused a text of the request");
        return error_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The request holds a character that cannot be stored (NUL). Please check what you typed.",
        );
    }
    tracing::error!(error = %e, cause = ?std::error::Error::source(e), "storage failure");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The server cannot reach its database. Please try again in a moment.",
    )
}

/// The page for a failed CSRF check.
pub fn csrf_failed() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not submitted from this site, or your session has expired. Go back, reload the page and try again.",
    )
}
