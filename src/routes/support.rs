//! Legacy helpers of handlers that return `HttpResponse` (sign-in and staff checks, form and
//! body reading, error pages), kept while the handlers move to the extractors of
//! [`super::extract`] and the errors of [`super::errors`]. New code does not use this module.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

pub use super::browser::{
    csrf_ok, csrf_token, current_login, current_user, log_out, SESSION_REAUTH,
};
pub use super::chrome::render;
pub use super::format::{page_number, show_time, ticked, PageNav};
pub use super::http::{authorization_header, no_store, oauth_error, peer_ip, read_form, see_other};
pub use super::WebConfig;
use crate::accounts::Accounts;
use crate::db::users::UserRow;
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

/// Reads an HTML form and checks its CSRF token: the error is a page (400 or 403).
pub async fn read_page_form(
    req: &HttpRequest,
    payload: web::Payload,
    session: &Session,
    limit: usize,
) -> Result<Params, HttpResponse> {
    let form = read_html_form(req, payload, limit).await?;
    if !csrf_ok(session, form.get("csrf_token")) {
        return Err(csrf_failed());
    }
    Ok(form)
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

/// The signed-in user, or the response to send instead: a redirect to the login page that
/// comes back to this URL, or the storage-failure page.
///
/// # Errors
/// The response to return as is.
pub async fn require_login(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<UserRow, HttpResponse> {
    match current_user(session, accounts, web).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            let here = match req.query_string() {
                "" => req.path().to_owned(),
                q => format!("{}?{q}", req.path()),
            };
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Err(see_other(&format!("/accounts/login/?next={next}")))
        }
        Err(e) => Err(unavailable(&e)),
    }
}

/// The user acting through this request, for the audit log.
#[must_use]
pub fn actor(req: &HttpRequest, user: &UserRow) -> crate::audit::Actor {
    crate::audit::Actor::user(user.id.clone(), peer_ip(req))
}
