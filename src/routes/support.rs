//! Legacy helpers of handlers that return `HttpResponse` (sign-in and staff checks, form and
//! body reading, error pages), kept while the handlers move to the extractors of
//! [`super::extract`] and the errors of [`super::errors`]. New code does not use this module.

use actix_session::Session;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

pub use super::browser::{
    csrf_ok, csrf_token, current_login, current_user, log_out, safe_next, start_session,
    SESSION_REAUTH,
};
pub use super::chrome::render;
pub use super::format::{capitalized, page_number, show_time, ticked, PageNav};
pub use super::http::{
    authorization_header, no_store, oauth_error, peer_ip, read_body, read_form, see_other,
    with_retry_after, BodyError,
};
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

/// A JSON API error answer: `{"error": code, "error_description": description}` with `status`
/// and `Cache-Control: no-store` (the description cleaned into RFC 6749 §5.2's character set); `retry_after` (seconds) adds `Retry-After` (RFC 9110 §10.2.3).
#[must_use]
pub fn api_error(
    status: StatusCode,
    code: &str,
    description: &str,
    retry_after: Option<u64>,
) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    no_store(&mut builder);
    if let Some(seconds) = retry_after {
        builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    builder.json(serde_json::json!({
        "error": code,
        "error_description": crate::oauth::ErrorDescription::new(description),
    }))
}

/// Reads a JSON API request body into `T`: `application/json` (a form-encoded body is accepted
/// too, for clients that post forms), at most `limit` bytes. Errors are JSON answers: 413 for a
/// large body, 415 for another media type, 400 `invalid_request` for unparsable input — and for
/// a NUL (`\u0000`) in any string, key or value at any depth, as `Params` refuses `%00` in
/// forms: PostgreSQL cannot store a NUL in text, and no field of ours has a use for one, so
/// every JSON API refuses it here, before a service or a query sees it.
///
/// # Errors
/// The response to send as is.
pub async fn read_api_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, HttpResponse> {
    let body = read_body(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge(limit) => api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            &format!("the request body exceeds {limit} bytes"),
            None,
        ),
        BodyError::Unreadable => api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body could not be read",
            None,
        ),
    })?;
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let parsed = match media.as_str() {
        "application/json" => serde_json::from_slice::<T>(&body)
            .map_err(|e| e.to_string())
            .and_then(|value| {
                if json_holds_nul(&body) {
                    Err("a string holds a NUL character".to_owned())
                } else {
                    Ok(value)
                }
            }),
        "application/x-www-form-urlencoded" => Params::from_form(Some(&media), &body)
            .map_err(|e| e.description.into_string())
            .and_then(|params| {
                let map: serde_json::Map<String, serde_json::Value> = params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                    .collect();
                serde_json::from_value::<T>(serde_json::Value::Object(map))
                    .map_err(|e| e.to_string())
            }),
        _ => {
            return Err(api_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "send the body as application/json",
                None,
            ))
        }
    };
    parsed.map_err(|reason| {
        api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the request body is not valid: {reason}"),
            None,
        )
    })
}

/// Whether the JSON document `body` (already parsed successfully) holds a NUL character in a
/// string, key or value. JSON can only spell a NUL as the escape `\u0000` (RFC 8259 §7: a raw
/// control character in a string is invalid), so a body without the bytes `u0000` has none and
/// costs one scan; otherwise the document is parsed into a `serde_json::Value` (nesting is
/// bounded by serde_json's 128 levels) and its strings are looked at, so that an escaped
/// backslash followed by `u0000` is not mistaken for a NUL.
fn json_holds_nul(body: &[u8]) -> bool {
    fn holds(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(holds),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds(v)),
            _ => false,
        }
    }
    if !body.windows(5).any(|w| w == b"u0000") {
        return false;
    }
    // `T` parsed the same bytes, so this parses too; if it ever did not, refuse.
    serde_json::from_slice::<serde_json::Value>(body).map_or(true, |value| holds(&value))
}

/// The JSON API's answer when storage fails: 503 `temporarily_unavailable`, the cause logged —
/// unless the database refused the request's text ([`DbError::is_refused_text`]: a NUL that
/// reached PostgreSQL), which is the client's input: 400 `invalid_request`.
#[must_use]
pub fn api_unavailable(e: &DbError) -> HttpResponse {
    if e.is_refused_text() {
        tracing::warn!(error = %e, cause = ?std::error::Error::source(e), "the database refused a text of the request");
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request holds a character that cannot be stored (NUL)",
            None,
        );
    }
    tracing::error!(error = %e, cause = ?std::error::Error::source(e), "storage failure");
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the server cannot reach its database; try again in a moment",
        None,
    )
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

#[cfg(test)]
mod tests {
    use super::json_holds_nul;

    #[test]
    fn a_nul_anywhere_in_a_json_string_is_found() {
        for body in [
            r#"{"first_name":"a\u0000b"}"#,
            r#"{"a":{"b":["x","\u0000"]}}"#,
            r#"{"ke\u0000y":"v"}"#,
            r#"["\\\u0000"]"#,
            r#"{"a":"x","a":"\u0000"}"#,
        ] {
            assert!(json_holds_nul(body.as_bytes()), "{body}");
        }
        for body in [
            r#"{"first_name":"Ada"}"#,
            // An escaped backslash followed by the text `u0000` is no NUL.
            r#"{"a":"\\u0000"}"#,
            r#"{"u0000":1}"#,
            r#"{"a":"\u0001"}"#,
        ] {
            assert!(!json_holds_nul(body.as_bytes()), "{body}");
        }
    }
}
