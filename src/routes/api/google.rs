//! `POST /api/google/` (also `/accounts/api/google/`, seed 002's path): a first-party mobile
//! app trades a Google token for Latchkey tokens. The body is JSON —
//! `{"access_token": …}` or `{"id_token": …}`, optionally `"provider": "<id>"` (default: the
//! only Google provider), `"scope"`, and `"client_id"` / `"client_secret"` when the client
//! does not use HTTP Basic — or the same fields form-encoded.
//!
//! It is RFC 8693 token exchange at the token endpoint in another shape: the request becomes
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with the token as
//! `subject_token` and the provider as `subject_issuer`, and goes through the token endpoint's
//! client authentication (a client allowed that grant) and checks
//! ([`crate::oauth::token_exchange`]). The answer is the token endpoint's;
//! every error is an RFC 6749 §5.2 JSON body.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::oauth::error::ErrorBody;
use crate::oauth::token::TokenResponse;
use crate::oauth::token_exchange::{ACCESS_TOKEN_TYPE, GRANT_TYPE, ID_TOKEN_TYPE};
use crate::oauth::{OAuth, OAuthError, Params};
use crate::routes::errors::responses::{InvalidClient, OAuthServerError, OAuthTooManyRequests};
use crate::routes::http::{
    authorization_header, no_store, oauth_error, peer_ip, read_body, BodyError,
};
use crate::routes::WebConfig;

/// The body of `POST /api/google/`: exactly one of `access_token` and `id_token`.
#[derive(Default, Deserialize, utoipa::ToSchema)]
pub(super) struct GoogleLogin {
    /// A Google access token for one of the provider's `accepted_audiences`.
    #[schema(nullable = false)]
    access_token: Option<String>,
    /// A Google ID token, issued less than 10 minutes ago to one of `accepted_audiences`.
    #[schema(nullable = false)]
    id_token: Option<String>,
    /// The `[upstream.<id>]` id (default: the only `kind = "google"` provider).
    #[schema(nullable = false)]
    provider: Option<String>,
    /// Space-separated, as at the token endpoint.
    #[schema(nullable = false)]
    scope: Option<String>,
    /// The client, when it does not use HTTP Basic.
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// A confidential client's secret, when it does not use HTTP Basic (`client_secret_post`).
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

impl std::fmt::Debug for GoogleLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens and the client secret are secrets: only whether they were sent is shown.
        let sent = |field: &Option<String>| field.as_ref().map(|_| "..");
        f.debug_struct("GoogleLogin")
            .field("access_token", &sent(&self.access_token))
            .field("id_token", &sent(&self.id_token))
            .field("provider", &self.provider)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("client_secret", &sent(&self.client_secret))
            .finish()
    }
}

/// `POST /api/google/`: Latchkey tokens for a Google access token or ID token.
/// (`/accounts/api/google/` is the same operation; the OpenAPI document lists it too.)
#[utoipa::path(
    post,
    path = "/api/google/",
    tag = "oauth",
    security(("client_secret_basic" = []), ()),
    request_body(content(
        (GoogleLogin = "application/json"),
        (GoogleLogin = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The token endpoint's answer (RFC 6749 section 5.1, with \
            `issued_token_type`).", body = TokenResponse),
        (status = 400, description = "RFC 6749 section 5.2: `invalid_request` (a body that \
            cannot be read or is too large, another media type, not exactly one token, an \
            unknown provider), `invalid_grant` (a token that does not verify, is another app's, \
            expired, or whose user may not sign in), `unauthorized_client`, `invalid_scope`.",
            body = ErrorBody),
        (status = 401, response = InvalidClient),
        (status = 429, response = OAuthTooManyRequests),
        (status = 500, response = OAuthServerError),
        (status = 503, description = "`temporarily_unavailable`: the provider cannot be \
            reached.", body = ErrorBody),
    )
)]
pub async fn exchange_google_token(
    req: HttpRequest,
    payload: web::Payload,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let answer = match read(&req, payload, web.max_body_bytes).await {
        Ok(params) => oauth
            .token(authorization_header(&req), params, peer_ip(&req))
            .await
            .map(|tokens| no_store(&mut HttpResponse::Ok()).json(tokens)),
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| oauth_error(&e))
}

/// The body, as the token endpoint's parameters.
async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Params, OAuthError> {
    let body = read_body(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge(limit) => {
            OAuthError::invalid_request(format!("the request body exceeds {limit} bytes"))
        }
        BodyError::Unreadable => OAuthError::invalid_request("the request body could not be read"),
    })?;
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let login: GoogleLogin = match media.as_deref() {
        Some("application/json") => serde_json::from_slice(&body).map_err(|e| {
            OAuthError::invalid_request(format!("the body is not the expected JSON: {e}"))
        })?,
        Some("application/x-www-form-urlencoded") => {
            let form = Params::from_form(media.as_deref(), &body)?;
            let field = |name: &str| form.get(name).map(str::to_owned);
            GoogleLogin {
                access_token: field("access_token"),
                id_token: field("id_token"),
                provider: field("provider"),
                scope: field("scope"),
                client_id: field("client_id"),
                client_secret: field("client_secret"),
            }
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "the body must be application/json (or application/x-www-form-urlencoded)",
            ))
        }
    };
    let (token, kind) = match (login.access_token, login.id_token) {
        (Some(token), None) => (token, ACCESS_TOKEN_TYPE),
        (None, Some(token)) => (token, ID_TOKEN_TYPE),
        _ => {
            return Err(OAuthError::invalid_request(
                "send either access_token or id_token",
            ))
        }
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", GRANT_TYPE)
        .append_pair("subject_token", &token)
        .append_pair("subject_token_type", kind);
    let optional = [
        ("subject_issuer", login.provider),
        ("scope", login.scope),
        ("client_id", login.client_id),
        ("client_secret", login.client_secret),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            form.append_pair(name, &value);
        }
    }
    Params::from_query(&form.finish())
}

/// A method `/api/google/` does not answer: `405` with an RFC 6749 §5.2 body.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let e = OAuthError::invalid_request(format!("{} is not allowed here; POST", req.method()));
    let mut response = oauth_error(&e);
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_prints_no_token_or_secret() {
        let login = GoogleLogin {
            access_token: Some("ya29.the-access-token".to_owned()),
            id_token: Some("eyJ.the-id-token.sig".to_owned()),
            provider: Some("google".to_owned()),
            scope: Some("openid".to_owned()),
            client_id: Some("the-app".to_owned()),
            client_secret: Some("the-client-secret".to_owned()),
        };
        let printed = format!("{login:?} {login:#?}");
        for secret in ["the-access-token", "the-id-token", "the-client-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        for shown in ["google", "openid", "the-app", "access_token: Some(\"..\")"] {
            assert!(printed.contains(shown), "{printed}");
        }
        assert!(format!("{:?}", GoogleLogin::default()).contains("id_token: None"));
    }
}
