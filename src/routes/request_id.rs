//! Request ids: every request gets one, every log line written while it is handled carries it
//! (the `request_id` field of the request's root span, `startup::PathOnlySpan`), and every
//! response says it in `X-Request-Id`, so that a user's report or a proxy's log leads to the
//! server's lines.
//!
//! The id is a fresh UUID v4 (tracing-actix-web's `RequestId`), unless the request comes from
//! one of `server.trusted_proxies` with exactly one `X-Request-Id` of 1–64 characters of
//! `A-Z a-z 0-9 . _ -` (what load balancers set: nginx `$request_id`, Heroku, Envoy): then that
//! one is kept, so the proxy's logs and ours share it. From anyone else the header is ignored —
//! a client could otherwise reuse another request's id to muddle the logs — and an id that is
//! not a sane token is never used, so nothing a client writes reaches a log line this way.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::WebConfig;

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a trusted proxy, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// The id chosen for a request, waiting in its extensions for [`add_request_id_header`].
struct ChosenRequestId(HeaderValue);

/// Chooses the request's id (see the module documentation) and keeps it for the response
/// header; returns it for the request's span. Call once, when the request arrives.
pub fn assign(request: &ServiceRequest) -> HeaderValue {
    let id = from_trusted_proxy(request).unwrap_or_else(|| generated(request));
    request.extensions_mut().insert(ChosenRequestId(id.clone()));
    id
}

/// The request's `X-Request-Id`, when its TCP peer is a trusted proxy and it is a sane token.
fn from_trusted_proxy(request: &ServiceRequest) -> Option<HeaderValue> {
    let mut values = request.headers().get_all(X_REQUEST_ID);
    let value = values.next()?;
    if values.next().is_some() || !is_request_id(value.as_bytes()) {
        return None;
    }
    let proxies = &request.app_data::<web::Data<WebConfig>>()?.trusted_proxies;
    let peer = request.peer_addr()?.ip();
    (!proxies.is_empty() && proxies.contains(peer)).then(|| value.clone())
}

/// Whether `id` is 1–64 bytes of `A-Z a-z 0-9 . _ -`.
#[must_use]
pub fn is_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// tracing-actix-web's id for the request (a UUID v4), or a new one outside its middleware.
fn generated(request: &ServiceRequest) -> HeaderValue {
    let uuid = request
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map_or_else(uuid::Uuid::new_v4, |id| **id);
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut buffer))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Middleware: puts the id [`assign`] chose in the `X-Request-Id` of the response — every
/// response of the application, whichever layer made it (a handler, the 404, a refusal by the
/// CSRF check, a limit or another middleware), and errors that reach it unanswered. Must be
/// inside the tracing middleware that assigns the id.
///
/// # Errors
/// The inner service's error, its response given the header.
pub async fn add_request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .extensions_mut()
        .remove::<ChosenRequestId>()
        .map(|chosen| chosen.0);
    let Some(id) = id else {
        return next.call(req).await;
    };
    match next.call(req).await {
        Ok(mut res) => {
            res.headers_mut().insert(X_REQUEST_ID, id);
            Ok(res)
        }
        // The server answers an error with its own response: given one here, it carries the id.
        Err(error) => {
            let mut response = error.error_response();
            response.headers_mut().insert(X_REQUEST_ID, id);
            Err(InternalError::from_response(error, response).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_request_id;

    #[test]
    fn only_short_plain_tokens_are_request_ids() {
        assert!(is_request_id(b"a"));
        assert!(is_request_id(b"0d3c1f6e-5a0b-4c6e-9a7d-2f1e8b9c0a11"));
        assert!(is_request_id(b"req_1.2-3"));
        assert!(is_request_id("x".repeat(64).as_bytes()));
        assert!(!is_request_id(b""));
        assert!(!is_request_id("x".repeat(65).as_bytes()));
        for bad in [
            "a b",
            "a\nb",
            "a\"b",
            "a=b",
            "a%0ab",
            "é",
            "a\u{202e}b",
            "a/b",
        ] {
            assert!(!is_request_id(bad.as_bytes()), "{bad:?}");
        }
    }
}
