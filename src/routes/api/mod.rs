//! The protected resource `GET /api/me` (RFC 6750).

pub(super) mod accounts;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::oauth::bearer::BearerError;
use crate::oauth::OAuth;
use crate::routes::support::{authorization_header, no_store};

/// The profile returned by `/api/me`.
#[derive(Debug, Serialize)]
struct Me {
    sub: String,
    username: String,
    first_name: String,
    last_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    scope: String,
    client_id: String,
}

/// `GET /api/me`: needs an access token with the `profile` scope issued to a user; `email`
/// and `email_verified` are included when the token also has `email`.
pub async fn me(req: HttpRequest, oauth: web::Data<OAuth>) -> HttpResponse {
    let grant = match oauth
        .validate_bearer(authorization_header(&req), Some("profile"))
        .await
    {
        Ok(g) => g,
        Err(e) => return bearer_error(&e),
    };
    let Some(user) = grant.user else {
        return bearer_error(&BearerError::UserRequired);
    };
    let with_email = grant.scope.contains("email");
    no_store(&mut HttpResponse::Ok()).json(Me {
        sub: user.id,
        username: user.username,
        first_name: user.first_name,
        last_name: user.last_name,
        email: with_email.then_some(user.email),
        email_verified: with_email.then_some(user.email_verified),
        scope: grant.scope.to_string(),
        client_id: grant.client_id,
    })
}

/// An RFC 6750 §3 error: status, `WWW-Authenticate` challenge, and a JSON body.
pub fn bearer_error(e: &BearerError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut builder = HttpResponse::build(status);
    no_store(&mut builder);
    if status != StatusCode::INTERNAL_SERVER_ERROR {
        builder.insert_header((header::WWW_AUTHENTICATE, e.challenge("latchkey")));
    }
    let code = e.code().unwrap_or("invalid_request");
    builder.json(serde_json::json!({ "error": code, "error_description": e.description() }))
}
