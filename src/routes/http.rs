//! HTTP plumbing shared by the handlers: request bodies with a size cap, the client's address
//! behind trusted proxies, `Authorization`, redirects, `no-store`, and the OAuth endpoints'
//! RFC 6749 §5.2 error answers.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use super::WebConfig;
use crate::oauth::{OAuthError, Params};

/// Why a body could not be read.
pub enum BodyError {
    /// Larger than `max_body_bytes` (413).
    TooLarge(usize),
    /// The connection failed or the encoding was invalid.
    Unreadable,
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<web::Bytes, BodyError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BodyError::Unreadable),
        Err(_) => Err(BodyError::TooLarge(limit)),
    }
}

/// Why a protocol endpoint's form body was refused: the RFC 6749 §5.2 error and its HTTP
/// status (413 past the size limit, otherwise the error's own, 400 for `invalid_request`).
#[derive(Debug)]
pub struct OAuthRejection {
    error: OAuthError,
    status: StatusCode,
}

impl OAuthRejection {
    /// 400 `invalid_request`: the body could not be read.
    #[must_use]
    pub fn unreadable() -> Self {
        Self {
            error: OAuthError::invalid_request("the request body could not be read"),
            status: StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for OAuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl actix_web::ResponseError for OAuthRejection {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        oauth_error_with_status(&self.error, self.status)
    }
}

/// Reads and parses an `application/x-www-form-urlencoded` body of at most `limit` bytes
/// (RFC 6749 §3.2), strictly ([`Params::from_form`]).
///
/// # Errors
/// [`OAuthRejection`]: 413 past the limit, 400 `invalid_request` for an unreadable body, or
/// the parser's error.
pub async fn read_oauth_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Params, OAuthRejection> {
    let body = read_body(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge(limit) => OAuthRejection {
            error: OAuthError::invalid_request(format!("the request body exceeds {limit} bytes")),
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        BodyError::Unreadable => OAuthRejection::unreadable(),
    })?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Params::from_form(content_type, &body).map_err(|error| OAuthRejection {
        status: StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
        error,
    })
}

/// [`read_oauth_form`], the refusal as the response to send.
pub async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Params, HttpResponse> {
    read_oauth_form(req, payload, limit)
        .await
        .map_err(|r| actix_web::ResponseError::error_response(&r))
}

/// `response` with `Retry-After: seconds` (RFC 9110 §10.2.3).
#[must_use]
pub fn with_retry_after(mut response: HttpResponse, seconds: u64) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(builder: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
}

/// An RFC 6749 §5.2 JSON error with its status and headers.
pub fn oauth_error(e: &OAuthError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    oauth_error_with_status(e, status)
}

fn oauth_error_with_status(e: &OAuthError, status: StatusCode) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    no_store(&mut builder);
    if e.code == crate::oauth::ErrorCode::InvalidClient {
        // RFC 6749 §5.2: 401 carries a challenge for the scheme the client may use.
        builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"latchkey\""));
    }
    if let Some(seconds) = e.retry_after {
        builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    builder.json(e.body())
}

/// The `Authorization` header as text; a non-ASCII header reads as an unusable value.
pub fn authorization_header(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"))
}

/// The client's IP address, for every IP-keyed limit and the audit log: the TCP peer, or,
/// when the peer is one of `server.trusted_proxies`, the rightmost hop of the configured
/// forwarding header that is not a trusted proxy ([`crate::domain::TrustedProxies::client_ip`]).
/// Headers from any other peer are ignored. IPv4-mapped IPv6 addresses read as IPv4.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(web) = req.app_data::<web::Data<WebConfig>>() else {
        return Some(peer.to_canonical());
    };
    let proxies = &web.trusted_proxies;
    if !proxies.contains(peer) {
        return Some(peer.to_canonical());
    }
    // Bytes that are not text spoil only their own item, not the proxy's on their right.
    let values: Vec<String> = req
        .headers()
        .get_all(proxies.header().name())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    Some(proxies.client_ip(peer, &values))
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
