//! Building the application: services from settings, then the actix server. Tests build the
//! very same application on port 0 (see `tests/api/helpers.rs`).

use std::net::TcpListener;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Condition, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};

use crate::config::Settings;
use crate::routes::metrics::MetricsEndpoint;
use crate::routes::{self, request_id, WebConfig};
use crate::upstream::Upstream;

pub use crate::services::Services;

/// A bound, not yet running, HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    /// Reloaded on a timer while the server runs ([`Upstream::spawn_reloader`]).
    upstream: Upstream,
    /// With `[metrics]`: the recorder (upkept while the server runs) and, with
    /// `metrics.listen`, the server of that address and its port.
    metrics: Option<(PrometheusHandle, Option<(Server, u16)>)>,
}

impl Application {
    /// Builds the services and binds `settings.listen` (port 0 picks a free port).
    ///
    /// # Errors
    /// Database or bind failures.
    pub async fn build(settings: &Settings) -> anyhow::Result<(Self, Services)> {
        let services = Services::build(settings).await?;
        let app = Self::bind(settings, services.clone())?;
        Ok((app, services))
    }

    /// Binds `settings.listen` and builds the server over services already built (so that
    /// `serve` can look at the database before it listens).
    ///
    /// # Errors
    /// Bind failures.
    pub fn bind(settings: &Settings, services: Services) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Self::from_listener(listener, settings, services)
    }

    /// Runs the server on an already bound listener.
    ///
    /// # Errors
    /// When the listener cannot be used.
    pub fn from_listener(
        listener: TcpListener,
        settings: &Settings,
        services: Services,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let metrics = match &settings.metrics {
            Some(m) => {
                let handle = crate::metrics::install()?;
                let endpoint = web::Data::new(MetricsEndpoint::new(
                    handle.clone(),
                    services.db.clone(),
                    services.accounts.clone(),
                    m.bearer_token.as_ref(),
                ));
                Some((handle, m.listen, endpoint))
            }
            None => None,
        };
        // `/metrics` on the main listener only when it is not given an address of its own.
        let metrics_here = metrics
            .as_ref()
            .filter(|(_, listen, _)| listen.is_none())
            .map(|(_, _, endpoint)| endpoint.clone());
        let record_requests = metrics.is_some();
        let key = Key::derive_from(settings.secret_key.expose_secret());
        let cookie_secure = settings.cookie_secure;
        let hsts_include_subdomains = settings.hsts_include_subdomains;
        let web_config = WebConfig {
            issuer: settings.issuer_str().to_owned(),
            max_body_bytes: settings.max_body_bytes,
            demo: settings.demo,
            session_max_age_seconds: i64::try_from(settings.session_max_age.as_secs())
                .unwrap_or(i64::MAX),
            page_size: settings.page_size,
            trusted_proxies: settings.trusted_proxies.clone(),
            brand: std::sync::Arc::new(routes::Brand::new(&settings.branding)),
            upstream: services.upstream.providers(),
        };
        // With an https issuer: HSTS, and the session cookie named with the `__Host-` prefix
        // (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain), so that no other host, and no
        // plain-http page of this one, can set or shadow it.
        let https = settings.issuer.scheme() == "https";
        let cookie_name = session_cookie_name(https);
        let db = web::Data::new(services.db);
        let accounts = web::Data::new(services.accounts);
        let clients = web::Data::new(services.clients);
        let oauth = web::Data::new(services.oauth);
        let groups = web::Data::new(services.groups);
        let reloaded = services.upstream.clone();
        let upstream = web::Data::new(services.upstream);
        let discord = web::Data::new(services.discord);
        let audit = web::Data::new(services.audit);
        let jobs = web::Data::new(services.jobs);
        let web_config = web::Data::new(web_config);
        let max_body = settings.max_body_bytes;
        let mut server = HttpServer::new(move || {
            let mut app = App::new();
            if let Some(endpoint) = &metrics_here {
                app = app.app_data(endpoint.clone());
            }
            app.wrap(actix_web::middleware::from_fn(routes::refuse_nul_in_path))
                .wrap(actix_web::middleware::from_fn(routes::brand_error_pages))
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                        .cookie_name(cookie_name.to_owned())
                        .cookie_path("/".to_owned())
                        .cookie_domain(None)
                        .cookie_secure(cookie_secure)
                        .cookie_http_only(true)
                        .cookie_same_site(SameSite::Lax)
                        .cookie_content_security(CookieContentSecurity::Private)
                        .build(),
                )
                .wrap(security_headers(https, hsts_include_subdomains))
                .wrap(from_fn(request_id::add_request_id_header))
                .wrap(TracingLogger::<PathOnlySpan>::new())
                .wrap(Condition::new(
                    record_requests,
                    from_fn(routes::metrics::record_request),
                ))
                .app_data(db.clone())
                .app_data(accounts.clone())
                .app_data(clients.clone())
                .app_data(oauth.clone())
                .app_data(groups.clone())
                .app_data(upstream.clone())
                .app_data(discord.clone())
                .app_data(audit.clone())
                .app_data(jobs.clone())
                .app_data(web_config.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(routes::configure)
                .default_service(actix_web::dev::fn_service(routes::not_found))
        })
        .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let metrics = match metrics {
            Some((handle, Some(listen), endpoint)) => {
                let (server, port) = metrics_server(listen, endpoint)?;
                Some((handle, Some((server, port))))
            }
            Some((handle, None, _)) => Some((handle, None)),
            None => None,
        };
        Ok(Self {
            port,
            server: server.run(),
            upstream: reloaded,
            metrics,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `metrics.listen`, when metrics have an address of their own.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics
            .as_ref()
            .and_then(|(_, server)| server.as_ref())
            .map(|(_, port)| *port)
    }

    /// A handle that stops the server (tests stop theirs when they end, so that no worker
    /// thread is still using the database when the test process exits).
    #[must_use]
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the process is stopped (SIGINT/SIGTERM stop gracefully). Meanwhile the
    /// upstream providers are re-read every
    /// [`PROVIDER_RELOAD_SECONDS`](crate::upstream::PROVIDER_RELOAD_SECONDS), so that a change
    /// made in the console on another node reaches this one.
    ///
    /// # Errors
    /// I/O errors from the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let reloader = self.upstream.spawn_reloader();
        let (upkeep, metrics_server) = match self.metrics {
            Some((handle, server)) => (
                Some(tokio::spawn(crate::metrics::upkeep(handle))),
                server.map(|(server, _)| (server.handle(), tokio::spawn(server))),
            ),
            None => (None, None),
        };
        let served = self.server.await;
        // The metrics listener lives as long as the main one.
        if let Some((handle, task)) = metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        reloader.abort();
        served
    }
}

/// The server of `metrics.listen`: `/metrics` and nothing else (`routes::configure_metrics_listener`),
/// on one worker, stopped by [`Application::run_until_stopped`] when the main server stops
/// (signals are the main server's). Its answers carry request ids too.
fn metrics_server(
    listen: std::net::SocketAddr,
    endpoint: web::Data<MetricsEndpoint>,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} (metrics.listen)"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(request_id::add_request_id_header))
            .wrap(TracingLogger::<PathOnlySpan>::new())
            .app_data(endpoint.clone())
            .configure(routes::configure_metrics_listener)
            .default_service(actix_web::dev::fn_service(routes::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok((server, port))
}

/// The request span: method, path and request id, but never the query string — authorization
/// codes and other secrets can arrive there (tracing-actix-web's default records it). Every
/// event inside it, on any thread the request's work moves to (the database helper and the
/// password threads carry the span), is written with these fields: the text format prefixes
/// them to the line, the JSON format lists them under `spans`.
struct PathOnlySpan;

impl RootSpanBuilder for PathOnlySpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        // Chosen here, before any layer inside can log; `X-Request-Id` answers it
        // (`routes::request_id`).
        let id = request_id::assign(request);
        let request_id = id.to_str().unwrap_or_default();
        tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            http.path = %redacted_path(request.path()),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    /// The span's status fields (tracing-actix-web's), and one event for an answer that came
    /// from an error, at [`error_event_level`]'s level. tracing-actix-web's own event
    /// (`emit_event_on_error`, off in Cargo.toml) is an ERROR for every error answer that is not
    /// a 4xx, the sign-in redirect (the web layer's `PageError::SignIn`, a 303) included.
    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        let Some(error) = error else { return };
        if status.is_redirection() {
            // A redirect is how the request was meant to end, not a failure of the server.
            span.record("otel.status_code", "OK");
        }
        let error = error.as_response_error();
        let level = error_event_level(status);
        if level == tracing::Level::ERROR {
            tracing::error!("{ERROR_EVENT}: {error:?}");
        } else if level == tracing::Level::WARN {
            tracing::warn!("{ERROR_EVENT}: {error:?}");
        } else {
            tracing::debug!("{ERROR_EVENT}: {error:?}");
        }
    }
}

/// The message of the event for an answer that came from an error (tracing-actix-web's).
const ERROR_EVENT: &str = "Error encountered while processing the incoming HTTP request";

/// The level of the event for an answer with `status` that came from an error: ERROR for a
/// failure of the server (5xx), WARN for a request refused (4xx), DEBUG for a redirect (3xx:
/// the sign-in redirect of a page opened by nobody signed in is an error value in the web
/// layer, but an ordinary answer).
fn error_event_level(status: actix_web::http::StatusCode) -> tracing::Level {
    if status.is_redirection() {
        tracing::Level::DEBUG
    } else if status.is_client_error() {
        tracing::Level::WARN
    } else {
        tracing::Level::ERROR
    }
}

/// `path` without the secret parts of account links (`…/activate/<uid>/<token>/`,
/// `…/password-reset-confirm/<uid>/<token>/`), which must not reach the logs.
fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    for marker in ["/activate/", "/password-reset-confirm/"] {
        if let Some(i) = path.find(marker) {
            return format!("{}{marker}…", &path[..i]).into();
        }
    }
    path.into()
}

/// The session cookie's name: `__Host-latchkey_session` under an https issuer (the prefix
/// makes browsers insist on Secure, Path=/ and no Domain), `latchkey_session` otherwise.
#[must_use]
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_session"
    } else {
        "latchkey_session"
    }
}

/// `Strict-Transport-Security` sent under an https issuer (RFC 6797 §6.1): one year, and
/// `includeSubDomains` (§6.1.2) only with `server.hsts_include_subdomains` — the issuer's host
/// is the server's own, but its subdomains may be other people's sites on plain HTTP.
#[must_use]
pub fn hsts(include_subdomains: bool) -> &'static str {
    if include_subdomains {
        "max-age=31536000; includeSubDomains"
    } else {
        "max-age=31536000"
    }
}

/// Security headers on every response. Scripts only from our own files (`/static/*.js`), no
/// inline script or style. Images also from any `https:` origin: the consent page shows the
/// logo an application registered (`logo_uri`, an https URL), and `Referrer-Policy:
/// no-referrer` keeps the page's address (the authorization request) from its host; the same
/// covers an absolute `branding.logo_url`, which must be https. There is no `form-action`:
/// browsers apply it to the redirect after a POST too, and the consent form's answer redirects
/// to the client's redirect URI. With `https`, also [`hsts`].
fn security_headers(https: bool, hsts_include_subdomains: bool) -> DefaultHeaders {
    let headers = if https {
        DefaultHeaders::new().add(("Strict-Transport-Security", hsts(hsts_include_subdomains)))
    } else {
        DefaultHeaders::new()
    };
    headers
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use tracing::Level;

    use super::{error_event_level, redacted_path};

    #[test]
    fn only_server_failures_are_logged_as_errors() {
        // The sign-in redirect (`PageError::SignIn`) answers 303.
        assert_eq!(error_event_level(StatusCode::SEE_OTHER), Level::DEBUG);
        assert_eq!(error_event_level(StatusCode::FOUND), Level::DEBUG);
        assert_eq!(error_event_level(StatusCode::FORBIDDEN), Level::WARN);
        assert_eq!(
            error_event_level(StatusCode::METHOD_NOT_ALLOWED),
            Level::WARN
        );
        assert_eq!(
            error_event_level(StatusCode::SERVICE_UNAVAILABLE),
            Level::ERROR
        );
        assert_eq!(
            error_event_level(StatusCode::INTERNAL_SERVER_ERROR),
            Level::ERROR
        );
    }

    #[test]
    fn account_link_tokens_stay_out_of_the_request_span() {
        assert_eq!(
            redacted_path("/accounts/password-reset-confirm/YWJj/3x-0123abcd/"),
            "/accounts/password-reset-confirm/…"
        );
        assert_eq!(
            redacted_path("/api/activate/YWJj/3x-0123/"),
            "/api/activate/…"
        );
        assert_eq!(redacted_path("/o/token/"), "/o/token/");
    }
}
