//! Token, introspection and revocation endpoints, and RFC 8414 metadata.

pub(super) mod authorize;
pub(super) mod forms;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::clients::Clients;
use crate::oauth::client_auth::presented_client;
use crate::oauth::error::ErrorBody;
use crate::oauth::introspect::Introspection;
use crate::oauth::token::TokenResponse;
use crate::oauth::{OAuth, OAuthError, Params};
use crate::routes::errors::responses::{
    FormTooLarge, InvalidClient, OAuthServerError, OAuthTooManyRequests,
};
use crate::routes::extract::OAuthForm;
use crate::routes::http::{authorization_header, no_store, oauth_error, peer_ip};

/// `POST /o/token/` (RFC 6749 §3.2): tokens for a grant. Answers carry `Cache-Control:
/// no-store`; a browser's `Origin` that the client registered gets CORS headers.
#[utoipa::path(
    post,
    path = "/o/token/",
    tag = "oauth",
    security(("client_secret_basic" = []), ()),
    request_body(content((forms::TokenRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "RFC 6749 section 5.1.", body = TokenResponse),
        (status = 400, description = "RFC 6749 section 5.2: `invalid_request` (a body that is \
            not a form or cannot be read, a repeated or missing parameter, two ways of client \
            authentication), `invalid_grant` (a wrong, expired, used or revoked code, refresh \
            token, password, `mfa_token` or code, or a failed PKCE check), \
            `unauthorized_client` (the client may not use this grant), \
            `unsupported_grant_type`, `invalid_scope`, `invalid_target` (RFC 8707).",
            body = ErrorBody),
        (status = 401, response = InvalidClient),
        (status = 403, description = "`mfa_required`: the password was right and the user must \
            also enter the code emailed to them; `mfa_token` goes back with it in the mfa-otp \
            grant.", body = ErrorBody),
        (status = 413, response = FormTooLarge),
        (status = 429, response = OAuthTooManyRequests),
        (status = 500, response = OAuthServerError),
        (status = 503, description = "`temporarily_unavailable`: the upstream provider of a \
            token exchange cannot be reached.", body = ErrorBody),
    )
)]
pub async fn token(
    req: HttpRequest,
    OAuthForm(params): OAuthForm,
    oauth: web::Data<OAuth>,
    clients: web::Data<Clients>,
) -> HttpResponse {
    let origin = cors_origin(&req, &params, &clients).await;
    let response = match oauth
        .token(authorization_header(&req), params, peer_ip(&req))
        .await
    {
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(tokens),
        Err(e) => oauth_error(&e),
    };
    with_cors(response, origin)
}

/// `POST /o/introspect/` (RFC 7662 §2): whether a token is active, for the client it was
/// issued to (or a resource server it is meant for, or a client allowed to introspect all).
#[utoipa::path(
    post,
    path = "/o/introspect/",
    tag = "oauth",
    security(("client_secret_basic" = []), ()),
    request_body(content((forms::TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "RFC 7662 section 2.2: `{\"active\": false}` alone for \
            an unknown, expired or revoked token or one the client may not see.",
            body = Introspection),
        (status = 400, description = "`invalid_request`: a body that is not a form or cannot \
            be read, a repeated parameter, no `token`, two ways of client authentication.",
            body = ErrorBody),
        (status = 401, response = InvalidClient),
        (status = 413, response = FormTooLarge),
        (status = 429, response = OAuthTooManyRequests),
        (status = 500, response = OAuthServerError),
    )
)]
pub async fn introspect(
    req: HttpRequest,
    OAuthForm(params): OAuthForm,
    oauth: web::Data<OAuth>,
) -> HttpResponse {
    match oauth
        .introspect(authorization_header(&req), params, peer_ip(&req))
        .await
    {
        Ok(answer) => no_store(&mut HttpResponse::Ok()).json(answer),
        Err(e) => oauth_error(&e),
    }
}

/// `POST /o/revoke_token/` (RFC 7009 §2): 200 with an empty body on success.
#[utoipa::path(
    post,
    path = "/o/revoke_token/",
    tag = "oauth",
    security(("client_secret_basic" = []), ()),
    request_body(content((forms::TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (an unknown token, or \
            another client's: RFC 7009 section 2.2). A refresh token takes the access tokens of \
            its grant with it. No body."),
        (status = 400, description = "`invalid_request`: a body that is not a form or cannot \
            be read, a repeated parameter, no `token`, two ways of client authentication.",
            body = ErrorBody),
        (status = 401, response = InvalidClient),
        (status = 413, response = FormTooLarge),
        (status = 429, response = OAuthTooManyRequests),
        (status = 500, response = OAuthServerError),
    )
)]
pub async fn revoke(
    req: HttpRequest,
    OAuthForm(params): OAuthForm,
    oauth: web::Data<OAuth>,
    clients: web::Data<Clients>,
) -> HttpResponse {
    let origin = cors_origin(&req, &params, &clients).await;
    let response = match oauth
        .revoke(authorization_header(&req), params, peer_ip(&req))
        .await
    {
        Ok(()) => no_store(&mut HttpResponse::Ok()).finish(),
        Err(e) => oauth_error(&e),
    };
    with_cors(response, origin)
}

/// CORS preflight (`OPTIONS`) for the token and revocation endpoints: allowed when some client
/// registered the requesting origin; the request itself is then checked against the client it
/// names.
pub async fn preflight(req: HttpRequest, clients: web::Data<Clients>) -> HttpResponse {
    preflight_for(&req, &clients, "POST").await
}

/// The preflight answer for an endpoint that takes `methods`: `204` always, with the CORS
/// headers (Fetch standard) only for an origin some client registered.
pub(super) async fn preflight_for(
    req: &HttpRequest,
    clients: &Clients,
    methods: &'static str,
) -> HttpResponse {
    let origin = match request_origin(req) {
        Some(origin) if clients.origin_allowed(origin, None).await.unwrap_or(false) => {
            Some(origin.to_owned())
        }
        _ => None,
    };
    let mut builder = HttpResponse::NoContent();
    builder.insert_header((header::VARY, "Origin"));
    if let Some(origin) = origin {
        builder
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
    }
    builder.finish()
}

/// The request's `Origin` header, if any.
pub(super) fn request_origin(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// The request's `Origin` if the client it names (Basic or `client_id`) registered it.
async fn cors_origin(req: &HttpRequest, params: &Params, clients: &Clients) -> Option<String> {
    let origin = request_origin(req)?;
    let client = presented_client(authorization_header(req), params).ok()?;
    match clients.origin_allowed(origin, Some(client.id())).await {
        Ok(true) => Some(origin.to_owned()),
        _ => None,
    }
}

/// `response` with `Vary: Origin`, and `Access-Control-Allow-Origin: origin` when given.
pub(super) fn with_cors(mut response: HttpResponse, origin: Option<String>) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    if let Some(value) = origin.and_then(|o| header::HeaderValue::from_str(&o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    response
}

/// Wrong method on a JSON endpoint.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let e =
        OAuthError::invalid_request(format!("{} is not allowed on {}", req.method(), req.path()));
    let mut builder = HttpResponse::MethodNotAllowed();
    no_store(&mut builder).json(e.body())
}
