//! `GET /metrics` (Prometheus's text exposition format, see [`crate::metrics`]) and the
//! middleware that times every request.
//!
//! Who may read it (`[metrics]`, checked at start by `config`): on its own listener
//! (`metrics.listen`) anyone who reaches that address, unless a token is set; on the main
//! listener only with `metrics.bearer_token` or an explicit `metrics.allow_unauthenticated`.
//! With a token, a request without `Authorization: Bearer <token>` gets `401` with a bare
//! challenge, a wrong token `401 invalid_token` (RFC 6750 §3.1); the token is compared as a
//! SHA-256 digest in constant time. Where it is not served, `/metrics` is an ordinary 404.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret, SecretString};

use super::errors::ApiError;
use super::http::no_store;
use super::pages::not_found_response;
use crate::accounts::Accounts;
use crate::db::Db;
use crate::oauth::bearer::{bearer_token, BearerError};

/// The `Content-Type` of the text exposition format.
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `/metrics` needs on a listener that serves it: the recorder's handle, what it samples
/// at each scrape (the database pools, the password threads), and the token's digest.
pub struct MetricsEndpoint {
    handle: PrometheusHandle,
    db: Db,
    accounts: Accounts,
    /// SHA-256 (hex) of `metrics.bearer_token`.
    token_digest: Option<String>,
}

impl MetricsEndpoint {
    /// An endpoint rendering `handle`; `token` is `metrics.bearer_token`.
    #[must_use]
    pub fn new(
        handle: PrometheusHandle,
        db: Db,
        accounts: Accounts,
        token: Option<&SecretString>,
    ) -> Self {
        Self {
            handle,
            db,
            accounts,
            token_digest: token.map(|t| crate::secret::sha256_hex(t.expose_secret())),
        }
    }

    /// Whether `req` may read the metrics.
    fn authorize(&self, req: &HttpRequest) -> Result<(), BearerError> {
        let Some(digest) = &self.token_digest else {
            return Ok(());
        };
        let authorization = match req.headers().get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                BearerError::InvalidRequest("the Authorization header is not ASCII")
            })?),
        };
        let token = bearer_token(authorization)?;
        if crate::secret::verify_hashed(token, digest) {
            Ok(())
        } else {
            Err(BearerError::InvalidToken("this is not the metrics token"))
        }
    }
}

/// `GET /metrics`: every metric, after sampling the pools and the password threads. A 404 on
/// a listener that does not serve it.
///
/// # Errors
/// RFC 6750 §3 answers when a token is set and not presented.
pub async fn scrape(
    req: HttpRequest,
    endpoint: Option<web::Data<MetricsEndpoint>>,
) -> Result<HttpResponse, ApiError> {
    let Some(endpoint) = endpoint else {
        return Ok(not_found_response(&req));
    };
    endpoint.authorize(&req)?;
    crate::metrics::db_pools(&endpoint.db.pool_usage());
    crate::metrics::password_load(endpoint.accounts.password_load());
    let body = endpoint.handle.render();
    Ok(no_store(&mut HttpResponse::Ok())
        .content_type(EXPOSITION_CONTENT_TYPE)
        .body(body))
}

/// Middleware: records every request in [`crate::metrics::HTTP_REQUEST_DURATION`] under the
/// route pattern that matched (never the path: paths carry ids and secrets, and would make a
/// series per URL), its method and status. Outermost, so that the time covers every layer.
///
/// # Errors
/// The inner service's, unchanged.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let outcome = next.call(req).await;
    let elapsed = started.elapsed();
    match &outcome {
        Ok(res) => {
            // actix gives the pattern as a String (looked up by the matched resource's index,
            // not by matching the path again).
            let route = res.request().match_pattern();
            crate::metrics::http_request(
                route.as_deref().unwrap_or(crate::metrics::UNMATCHED_ROUTE),
                method,
                res.status().as_u16(),
                elapsed,
            );
        }
        Err(error) => crate::metrics::http_request(
            crate::metrics::UNMATCHED_ROUTE,
            method,
            error.as_response_error().status_code().as_u16(),
            elapsed,
        ),
    }
    outcome
}

/// The `method` label: the standard methods by name, anything else `other` (a client may send
/// any token as a method).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}
