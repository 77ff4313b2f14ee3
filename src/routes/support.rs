//! Small helpers shared by the handlers: body reading with a size cap, OAuth JSON responses,
//! HTML rendering, the session's user and CSRF token, client IPs.

use std::net::IpAddr;

use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;

use crate::accounts::sessions::NewSession;
use crate::accounts::Accounts;
use crate::db::users::UserRow;
use crate::db::DbError;
use crate::oauth::{OAuthError, Params};
use crate::secret;

/// What the web layer needs from the configuration.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Issuer URL without trailing slash.
    pub issuer: String,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// Whether `serve --demo` is running (enables `/demo/callback`).
    pub demo: bool,
    /// How long a login lasts, in seconds.
    pub session_max_age_seconds: i64,
    /// Rows per page in the console's lists.
    pub page_size: i64,
    /// Proxies whose forwarding header gives the client's address (see [`peer_ip`]).
    pub trusted_proxies: crate::domain::TrustedProxies,
}

/// Session keys.
pub const SESSION_USER: &str = "uid";
/// Unix time of the last password login.
pub const SESSION_AUTH_TIME: &str = "auth_time";
/// Session key: RFC 8176 authentication methods of the login, space-separated.
pub const SESSION_AMR: &str = "amr";
/// Session key: an authorization request asked for a new login (`prompt=login`, `max_age`).
/// Until the user logs in again (which clears the session), the old login does not count for
/// authorization requests, so opening the resume URL without logging in gains nothing.
pub const SESSION_REAUTH: &str = "reauth";
const SESSION_CSRF: &str = "csrf";
/// Session key: the random handle of this browser's server-side session (the `user_sessions`
/// row's id is its SHA-256). The cookie is encrypted, so the handle never shows.
const SESSION_HANDLE: &str = "sid";

/// Why a session could not be started or kept.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The cookie could not be written.
    #[error(transparent)]
    Cookie(#[from] actix_session::SessionInsertError),
    /// The session could not be recorded.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The login no longer holds: the password changed, or the user's sessions were ended or
    /// the account deactivated, while it was under way. Nothing was recorded; the user signs
    /// in again.
    #[error("the login was overtaken by a password change or sign-out")]
    Outdated,
}

/// What a new session rests on: when its login began and, for a password checked just now,
/// the hash verified (see [`NewSession`]).
#[derive(Clone, Debug, Default)]
pub struct LoginBasis {
    /// When the login's password check began; `None`: now.
    pub began: Option<chrono::NaiveDateTime>,
    /// The password hash the login verified.
    pub verified_hash: Option<String>,
}

impl From<&crate::accounts::PasswordLogin> for LoginBasis {
    fn from(login: &crate::accounts::PasswordLogin) -> Self {
        Self {
            began: Some(login.began),
            verified_hash: login.user.password_hash.clone(),
        }
    }
}

/// Starts a fresh session for `user_id` after a login by `amr` (RFC 8176 values): a new session
/// id (no fixation), a new CSRF token, and a `user_sessions` row with the request's IP address
/// and `User-Agent` (the browser's earlier session, if any, ends). `basis` says when the login
/// began and what it verified: one overtaken by a password change, reset or sign-out gets no
/// session ([`SessionError::Outdated`]).
///
/// # Errors
/// When the session cannot be recorded or written, or the login no longer holds; the browser
/// is then signed out.
pub async fn start_session(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    amr: &str,
    basis: LoginBasis,
) -> Result<(), SessionError> {
    let replacing = session_handle(session);
    session.renew();
    session.clear();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let handle = accounts
        .start_browser_session(
            NewSession {
                user_id: user_id.to_owned(),
                ip: peer_ip(req),
                user_agent,
                amr: amr.to_owned(),
                began: basis.began,
                verified_hash: basis.verified_hash,
            },
            replacing,
        )
        .await?
        .ok_or(SessionError::Outdated)?;
    session.insert(SESSION_USER, user_id)?;
    session.insert(SESSION_AUTH_TIME, chrono::Utc::now().timestamp())?;
    session.insert(SESSION_AMR, amr)?;
    session.insert(SESSION_HANDLE, handle)?;
    Ok(())
}

/// The handle of this browser's server-side session, if it has one.
#[must_use]
pub fn session_handle(session: &Session) -> Option<String> {
    session.get::<String>(SESSION_HANDLE).ok().flatten()
}

/// Keeps this session alive across the cut-off `cut` its own user just made (a password
/// change ends the user's *other* sessions): the session counts as started just after `cut`,
/// so any later cut-off still ends it.
///
/// # Errors
/// When the session cannot be recorded or written.
pub async fn keep_session(
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    cut: chrono::NaiveDateTime,
) -> Result<(), SessionError> {
    session.renew();
    if let Some(handle) = session_handle(session) {
        accounts.keep_browser_session(user_id, &handle, cut).await?;
    }
    Ok(())
}

/// Signs this browser out: ends its server-side session, records the `logout` event and
/// clears the cookie. `rp_initiated`: an application asked (RP-Initiated Logout).
///
/// # Errors
/// Storage failures (the cookie is then left as it was).
pub async fn log_out(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    user_id: &str,
    rp_initiated: bool,
) -> Result<(), DbError> {
    accounts
        .log_out(
            user_id,
            session_handle(session).as_deref(),
            peer_ip(req),
            rp_initiated,
        )
        .await?;
    session.purge();
    Ok(())
}

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

/// Reads and parses an `application/x-www-form-urlencoded` body.
pub async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Params, HttpResponse> {
    let body = read_body(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge(limit) => oauth_error_with_status(
            &OAuthError::invalid_request(format!("the request body exceeds {limit} bytes")),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        BodyError::Unreadable => oauth_error(&OAuthError::invalid_request(
            "the request body could not be read",
        )),
    })?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Params::from_form(content_type, &body).map_err(|e| oauth_error(&e))
}

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

/// The page for a password check refused because the policy queue is full
/// ([`crate::accounts::password::HashError::Busy`]): 503 with `Retry-After` (RFC 9110 §15.6.4).
#[must_use]
pub fn busy_page() -> HttpResponse {
    with_retry_after(
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The server is checking too many passwords right now. Please try again in a few seconds.",
        ),
        crate::accounts::password::BUSY_RETRY_AFTER_SECONDS,
    )
}

/// The JSON answer for the same: 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1's code) with
/// `Retry-After`.
#[must_use]
pub fn api_busy() -> HttpResponse {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "too many password checks are waiting; try again in a few seconds",
        Some(crate::accounts::password::BUSY_RETRY_AFTER_SECONDS),
    )
}

/// `response` with `Retry-After: seconds` (RFC 9110 §10.2.3).
#[must_use]
pub fn with_retry_after(mut response: HttpResponse, seconds: u64) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `message` with its first letter in upper case (service messages are sentence fragments).
#[must_use]
pub fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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

/// Renders a template with `status`; a rendering failure is logged and answered with 500.
pub fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be rendered.")
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Heading.
    pub title: &'a str,
    /// Explanation.
    pub message: &'a str,
}

/// Renders the error page.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    render(status, &ErrorPage { title, message })
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

/// The logged-in, active user of this session. A session older than
/// `server.session_max_age_seconds`, without a live `user_sessions` row (ended, unknown, or
/// begun before the user's `sessions_valid_after` cut-off), or naming a deleted or deactivated
/// user, is cleared. The row is the only state that decides, so ending it works on every node.
pub async fn current_user(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<Option<UserRow>, DbError> {
    let Some(id) = session.get::<String>(SESSION_USER).ok().flatten() else {
        return Ok(None);
    };
    let auth_time = session
        .get::<i64>(SESSION_AUTH_TIME)
        .ok()
        .flatten()
        .unwrap_or(0);
    if chrono::Utc::now().timestamp().saturating_sub(auth_time) > web.session_max_age_seconds {
        session.purge();
        return Ok(None);
    }
    let Some(handle) = session_handle(session) else {
        session.purge();
        return Ok(None);
    };
    match accounts.browser_session_user(&handle, &id).await? {
        Some(user) => Ok(Some(user)),
        None => {
            session.purge();
            Ok(None)
        }
    }
}

/// The session's login as OIDC sees it: the user, when they logged in and how.
///
/// # Errors
/// [`DbError`] when the user cannot be loaded.
pub async fn current_login(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<Option<crate::oidc::Authentication>, DbError> {
    let Some(user) = current_user(session, accounts, web).await? else {
        return Ok(None);
    };
    if session.get::<bool>(SESSION_REAUTH).ok().flatten() == Some(true) {
        return Ok(None);
    }
    let auth_time = session
        .get::<i64>(SESSION_AUTH_TIME)
        .ok()
        .flatten()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(crate::db::now, |t| t.naive_utc());
    let amr = session
        .get::<String>(SESSION_AMR)
        .ok()
        .flatten()
        .unwrap_or_else(|| "pwd".to_owned());
    Ok(Some(crate::oidc::Authentication {
        user,
        auth_time,
        amr,
        nonce: None,
        session_id: session_handle(session).map(|h| crate::accounts::sessions::session_id(&h)),
    }))
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(SESSION_CSRF) {
        return token;
    }
    let token = secret::new_token();
    let _ = session.insert(SESSION_CSRF, &token);
    token
}

/// Whether `presented` equals the session's CSRF token (constant-time).
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    match (
        session.get::<String>(SESSION_CSRF).ok().flatten(),
        presented,
    ) {
        (Some(expected), Some(presented)) => {
            secret::ct_eq(expected.as_bytes(), presented.as_bytes())
        }
        _ => false,
    }
}

/// The page for a failed CSRF check.
pub fn csrf_failed() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not submitted from this site, or your session has expired. Go back, reload the page and try again.",
    )
}

/// Longest `next` kept, in bytes: it is stored in the session cookie on the way through a
/// login code or a registration, and a cookie over 4 KB cannot be sent (the answer would be a
/// 500). A longer one falls back to `/`.
pub const MAX_NEXT_BYTES: usize = 2048;

/// Whether `next` is a safe local path to continue to after login (no open redirect).
#[must_use]
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.len() <= MAX_NEXT_BYTES
                && n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n
        }
        _ => "/",
    }
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

/// The signed-in staff user, or the response to send instead: the login redirect, or 403 for
/// a signed-in user who is not staff.
///
/// # Errors
/// The response to return as is.
pub async fn require_staff(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<UserRow, HttpResponse> {
    let user = require_login(req, session, accounts, web).await?;
    if user.has_staff_access() {
        Ok(user)
    } else {
        Err(error_page(
            StatusCode::FORBIDDEN,
            "Staff only",
            "The admin console is for staff members. Ask an administrator if you need access.",
        ))
    }
}

/// The user acting through this request, for the audit log.
#[must_use]
pub fn actor(req: &HttpRequest, user: &UserRow) -> crate::audit::Actor {
    crate::audit::Actor::user(user.id.clone(), peer_ip(req))
}

/// Pagination links for a list page: the page numbers and the query string of the list's
/// filters, so that "next" keeps them.
#[derive(Clone, Debug)]
pub struct PageNav {
    /// 1-based page number.
    pub number: i64,
    /// Number of pages (≥ 1).
    pub pages: i64,
    /// Items in the whole list.
    pub total: i64,
    /// The list's path.
    path: String,
    /// The filters as `key=value&…` (already encoded), without `page`.
    filters: String,
}

impl PageNav {
    /// Links for `page` of the list at `path` filtered by `filters` (name, value) pairs; empty
    /// values are left out.
    #[must_use]
    pub fn new<T>(page: &crate::domain::Page<T>, path: &str, filters: &[(&str, &str)]) -> Self {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters.iter().filter(|(_, v)| !v.is_empty()) {
            query.append_pair(k, v);
        }
        Self {
            number: page.number,
            pages: page.pages(),
            total: page.total,
            path: path.to_owned(),
            filters: query.finish(),
        }
    }

    fn href(&self, number: i64) -> String {
        if self.filters.is_empty() {
            format!("{}?page={number}", self.path)
        } else {
            format!("{}?{}&page={number}", self.path, self.filters)
        }
    }

    /// The previous page's URL, if there is one.
    #[must_use]
    pub fn prev_href(&self) -> Option<String> {
        (self.number > 1).then(|| self.href((self.number - 1).min(self.pages)))
    }

    /// The next page's URL, if there is one.
    #[must_use]
    pub fn next_href(&self) -> Option<String> {
        (self.number < self.pages).then(|| self.href(self.number + 1))
    }
}

/// The `page` query parameter (1-based); anything unparsable is page 1.
#[must_use]
pub fn page_number(params: &Params) -> Option<i64> {
    params.get("page").and_then(|p| p.trim().parse().ok())
}

/// The ticked checkboxes named `PREFIX<value>`, as the values (forms cannot repeat a name:
/// see `Params`).
#[must_use]
pub fn ticked(form: &Params, prefix: &str) -> Vec<String> {
    form.iter()
        .filter_map(|(name, _)| name.strip_prefix(prefix))
        .map(str::to_owned)
        .collect()
}

/// Formats a UTC timestamp for pages: `2026-11-22 14:05 UTC`.
#[must_use]
pub fn show_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::{json_holds_nul, safe_next};

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

    #[test]
    fn next_must_be_local() {
        assert_eq!(safe_next(Some("/o/authorize/?a=b")), "/o/authorize/?a=b");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
