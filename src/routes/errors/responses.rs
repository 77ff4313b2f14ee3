//! The refusals every JSON API or protocol endpoint can answer, as reusable OpenAPI responses
//! (`components.responses` of `/api/openapi.json`) for the handlers' `#[utoipa::path]`
//! annotations: `(status = 429, response = TooManyRequests)`. Each carries the body its
//! endpoints really send — the JSON APIs' [`ApiError`](super::ApiError) (schema `ApiError`), or
//! the protocol endpoints' RFC 6749 §5.2 [`ErrorBody`] (schema `OAuthError`) — and the headers
//! that come with it. Refusals that differ per endpoint (400, 403, 404) are written on the
//! handler itself.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

use super::api::ApiErrorBody;
use crate::oauth::error::ErrorBody;

/// A response of `description` whose JSON body is the schema `T`, with `headers` (name,
/// description; every one a string).
fn refusal<T: ToSchema>(description: &str, headers: &[(&str, &str)]) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(T::name()))),
    );
    for (name, about) in headers {
        let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
        header.description = Some((*about).to_owned());
        response = response.header(*name, header);
    }
    response.build().into()
}

const RETRY_AFTER: (&str, &str) = (
    "Retry-After",
    "Seconds until a retry makes sense (RFC 9110 section 10.2.3).",
);

const BEARER_CHALLENGE: (&str, &str) = (
    "WWW-Authenticate",
    "The RFC 6750 section 3 challenge: a bare `Bearer realm=\"latchkey\"` without a token, \
     else with `error` and `error_description`.",
);

/// Declares a unit type whose [`ToResponse`] is `refusal::<$body>($description, $headers)`.
macro_rules! refusals {
    ($($(#[$doc:meta])* $name:ident: $body:ty, $description:expr, [$($header:expr),*];)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), refusal::<$body>($description, &[$($header),*]))
                }
            }
        )*
    };
}

refusals! {
    /// 401 from a JSON API: no bearer token, or one that is unknown, expired or revoked.
    BearerRequired: ApiErrorBody<'static>,
    "`invalid_request` when no bearer token was sent, `invalid_token` when it is unknown, \
     expired or revoked (RFC 6750 section 3.1).",
    [BEARER_CHALLENGE];
    /// 403 from a JSON API: the token lacks the scope the route needs.
    ScopeRequired: ApiErrorBody<'static>,
    "`insufficient_scope`: the token lacks the scope this API needs (named in the challenge's \
     `scope`), or has no user (a client-credentials token).",
    [BEARER_CHALLENGE];
    /// 413 from a JSON API.
    BodyTooLarge: ApiErrorBody<'static>,
    "`invalid_request`: the body is larger than `server.max_body_bytes`.",
    [];
    /// 415 from a JSON API.
    UnsupportedMediaType: ApiErrorBody<'static>,
    "`invalid_request`: the body is neither `application/json` nor \
     `application/x-www-form-urlencoded`.",
    [];
    /// 429 from a JSON API.
    TooManyRequests: ApiErrorBody<'static>,
    "`too_many_requests`: a brute-force limit or a cooldown refused the request; nothing was \
     done.",
    [RETRY_AFTER];
    /// 500 from a JSON API.
    ServerError: ApiErrorBody<'static>,
    "`server_error`: a failure on the server's side (logged); nothing was done.",
    [];
    /// 503 from a JSON API.
    Unavailable: ApiErrorBody<'static>,
    "`temporarily_unavailable`: the database cannot be reached, or too many password checks \
     are waiting; nothing was changed.",
    [RETRY_AFTER];
    /// 401 from a protocol endpoint: client authentication failed.
    InvalidClient: ErrorBody<'static>,
    "`invalid_client`: client authentication failed (RFC 6749 section 5.2).",
    [("WWW-Authenticate", "`Basic realm=\"latchkey\"`: the scheme the client may use.")];
    /// 413 from a protocol endpoint.
    FormTooLarge: ErrorBody<'static>,
    "`invalid_request`: the body is larger than `server.max_body_bytes`.",
    [];
    /// 429 from a protocol endpoint.
    OAuthTooManyRequests: ErrorBody<'static>,
    "Too many failed client authentications (`invalid_client`) or password-grant logins \
     (`invalid_grant`) from this address or for this client or account; nothing was done.",
    [RETRY_AFTER];
    /// 500 from a protocol endpoint.
    OAuthServerError: ErrorBody<'static>,
    "`server_error`: storage failed (logged); nothing was done.",
    [];
}
