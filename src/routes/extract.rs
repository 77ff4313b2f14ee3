//! The web layer's extractors: what a handler needs is in its signature, and a request that
//! does not qualify never reaches the handler's body.
//!
//! * [`SignedIn`] — a signed-in, active user with a live browser session; otherwise
//!   [`PageError::SignIn`] (the sign-in page, which comes back here).
//! * [`Staff`] — [`SignedIn`] and staff (or superuser); others get a 403 page.
//! * [`Form`] — a browser's form post: `application/x-www-form-urlencoded`, at most
//!   `server.max_body_bytes`, its `csrf_token` checked against the session (constant time);
//!   parsed strictly by [`Params`] (no repeated names, no invalid UTF-8), then into `T`.
//! * [`ApiBody`] — a JSON API body (`application/json`, or a form) into `T`; errors are
//!   [`ApiError`]s.
//! * [`Bearer`] — a JSON API request's `Authorization: Bearer` credentials, checked for form
//!   only (RFC 6750 §2.1); the handler has the token validated with the scope it needs.
//! * [`StaffToken`] — a bearer token with the `admin` scope of an active staff user.
//!
//! A typical page handler is then: extract → call a service → render, with `?` for every
//! failure:
//!
//! ```text
//! pub async fn end_session(user: SignedIn, _: Form, path: web::Path<String>,
//!                          accounts: web::Data<Accounts>) -> Result<HttpResponse, PageError> {
//!     accounts.end_browser_session(&user.actor(), &user.id, &path).await?;
//!     flash(user.session(), Notice::success("The session was ended."));
//!     Ok(see_other("/account/#sessions"))
//! }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::browser::{csrf_ok, current_user};
use super::chrome::{Brand, Chrome, Section};
use super::errors::{ApiError, ApiErrorCode, PageError};
use super::http::{
    authorization_header, peer_ip, read_body, read_oauth_form, BodyError, OAuthRejection,
};
use super::WebConfig;
use crate::accounts::{Account, Accounts};
use crate::audit::Actor;
use crate::config::ADMIN_SCOPE;
use crate::oauth::bearer::BearerError;
use crate::oauth::{OAuth, Params};

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The services the extractors read from the application.
fn app_data<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, PageError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        tracing::error!(
            service = std::any::type_name::<T>(),
            "a service is missing from the application"
        );
        PageError::Internal
    })
}

/// The path and query of `req`, for coming back after signing in.
fn here(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    }
}

/// A signed-in, active user with a live browser session (see the module documentation).
/// Dereferences to the user's account.
#[derive(Clone)]
pub struct SignedIn {
    user: Account,
    session: Session,
    ip: Option<IpAddr>,
    brand: Arc<Brand>,
}

impl SignedIn {
    /// The user's account as stored when the request began.
    #[must_use]
    pub fn user(&self) -> &Account {
        &self.user
    }

    /// This browser's session (for notices, CSRF tokens, signing out).
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The user acting through this request, for the services and the audit log.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id.clone(), self.ip)
    }

    /// The page chrome for this user in `section` (takes the pending notice).
    #[must_use]
    pub fn chrome(&self, section: Section) -> Chrome {
        Chrome::for_user(&self.session, &self.user, section, &self.brand)
    }
}

impl Deref for SignedIn {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.user
    }
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = LocalBoxFuture<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let session = req.get_session();
            let accounts = app_data::<Accounts>(&req)?;
            let web = app_data::<WebConfig>(&req)?;
            match current_user(&session, &accounts, &web).await? {
                Some(user) => Ok(Self {
                    user,
                    session,
                    ip: peer_ip(&req),
                    brand: Arc::clone(&web.brand),
                }),
                None => Err(PageError::SignIn { next: here(&req) }),
            }
        })
    }
}

/// A signed-in staff member (`is_staff` or `is_superuser`); dereferences to [`SignedIn`].
/// Signed-in users who are not staff get a 403 page.
#[derive(Clone)]
pub struct Staff(pub SignedIn);

impl Deref for Staff {
    type Target = SignedIn;

    fn deref(&self) -> &SignedIn {
        &self.0
    }
}

impl FromRequest for Staff {
    type Error = PageError;
    type Future = LocalBoxFuture<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedIn::from_request(req, payload);
        Box::pin(async move {
            let user = signed_in.await?;
            if user.has_staff_access() {
                Ok(Self(user))
            } else {
                Err(PageError::forbidden(
                    "Staff only",
                    "The admin console is for staff members. Ask an administrator if you need access.",
                ))
            }
        })
    }
}

/// How a form's fields become a `T`: [`Params`] as they are (for forms whose names vary, such
/// as one checkbox per scope), or any `Deserialize` type from the fields as strings.
pub trait FromParams: Sized {
    /// `params` as a `T`.
    ///
    /// # Errors
    /// A message for the user when a field is missing or malformed.
    fn from_params(params: Params) -> Result<Self, String>;
}

impl FromParams for Params {
    fn from_params(params: Params) -> Result<Self, String> {
        Ok(params)
    }
}

/// Form fields into a `Deserialize` type: every value is a string (a missing optional field
/// is `None`; use `#[serde(default)]` for checkboxes).
pub fn params_into<T: DeserializeOwned>(params: &Params) -> Result<T, String> {
    let map: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
}

/// A browser's form post with a valid CSRF token (see the module documentation). `Form` alone
/// (`Form<Params>`) only checks the token and gives the fields.
pub struct Form<T = Params>(pub T);

impl<T: FromParams + 'static> FromRequest for Form<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload).into_inner();
        Box::pin(async move {
            let web = app_data::<WebConfig>(&req)?;
            let payload = payload.map_err(|_| PageError::Internal)?;
            let body = read_body(payload, web.max_body_bytes)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge(_) => PageError::TooLarge,
                    BodyError::Unreadable => {
                        PageError::bad_request("Bad request", "The form could not be read.")
                    }
                })?;
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let params = Params::from_form(content_type, &body).map_err(|_| {
                PageError::bad_request("Bad request", "The form could not be read.")
            })?;
            if !csrf_ok(&req.get_session(), params.get("csrf_token")) {
                return Err(PageError::CsrfFailed);
            }
            T::from_params(params)
                .map(Form)
                .map_err(|message| PageError::bad_request("Bad request", message))
        })
    }
}

/// A JSON API request body as `T`: `application/json`, or a form body (for clients that post
/// forms), at most `server.max_body_bytes`. Errors: `invalid_request` with 413 for a large body,
/// 415 for another media type, 400 for a body that does not parse — and for a NUL (`\u0000`) in
/// any string, key or value at any depth, as [`Params`] refuses `%00` in forms: PostgreSQL
/// cannot store a NUL in text, and no field of ours has a use for one, so every JSON API refuses
/// it here, before a service or a query sees it.
pub struct ApiBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload).into_inner();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<WebConfig>>()
                .map_or(64 * 1024, |w| w.max_body_bytes);
            let payload = payload.map_err(|_| ApiError::invalid_request("no request body"))?;
            let body = read_body(payload, limit).await.map_err(|e| match e {
                BodyError::TooLarge(limit) => {
                    ApiError::invalid_request(&format!("the request body exceeds {limit} bytes"))
                        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                }
                BodyError::Unreadable => {
                    ApiError::invalid_request("the request body could not be read")
                }
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
                    .and_then(|params| params_into::<T>(&params)),
                _ => {
                    return Err(
                        ApiError::invalid_request("send the body as application/json")
                            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                    )
                }
            };
            parsed.map(ApiBody).map_err(|reason| {
                ApiError::invalid_request(&format!("the request body is not valid: {reason}"))
            })
        })
    }
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

/// A JSON API request's `Authorization` header, checked to be `Bearer` with a well-formed
/// token (RFC 6750 §2.1) but not yet validated: the handler asks
/// [`OAuth::validate_bearer`](crate::oauth::OAuth::validate_bearer) (or a service that does)
/// with the scope it needs. Without the header: `401` with a bare `WWW-Authenticate: Bearer`
/// challenge; another scheme or a malformed token: `400 invalid_request` (RFC 6750 §3.1).
///
/// It never waits, so placed before an [`ApiBody`] in a handler's signature it answers first:
/// a request without credentials learns nothing about how its body would have been read.
pub struct Bearer(String);

impl Bearer {
    /// The whole `Authorization` header value, as the token checks take it.
    #[must_use]
    pub fn authorization(&self) -> Option<&str> {
        Some(&self.0)
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authorization = authorization_header(req);
        std::future::ready(
            crate::oauth::bearer::bearer_token(authorization)
                .map(|_| Self(authorization.unwrap_or_default().to_owned()))
                .map_err(ApiError::from),
        )
    }
}

/// An access token with the `admin` scope held by an active staff user (`validate_bearer`
/// refuses tokens of inactive users): the admin JSON APIs. Token problems are RFC 6750 §3
/// answers (a client-credentials token, which has no user, is `403 insufficient_scope`); a
/// token of a user who is not staff is `403 forbidden`. Dereferences to the user.
pub struct StaffToken(Account);

impl Deref for StaffToken {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.0
    }
}

impl FromRequest for StaffToken {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bearer = Bearer::from_request(req, payload).into_inner();
        let oauth = req.app_data::<web::Data<OAuth>>().cloned();
        Box::pin(async move {
            let bearer = bearer?;
            let oauth = oauth.ok_or_else(|| {
                tracing::error!("the OAuth service is missing from the application");
                ApiError::server_error("the token could not be checked")
            })?;
            let grant = oauth
                .validate_bearer(bearer.authorization(), Some(ADMIN_SCOPE))
                .await?;
            let user = grant.user.ok_or(BearerError::UserRequired)?;
            if user.has_staff_access() {
                Ok(Self(user))
            } else {
                Err(ApiError::new(
                    ApiErrorCode::Forbidden,
                    "this API is for staff members",
                ))
            }
        })
    }
}

/// A protocol endpoint's request body (token, introspection, revocation): form-encoded (RFC
/// 6749 §3.2), at most `server.max_body_bytes`, parsed strictly by [`Params`]. Refusals are the
/// endpoints' own RFC 6749 §5.2 JSON errors ([`OAuthRejection`]): 413 past the limit, 400
/// `invalid_request` otherwise.
pub struct OAuthForm(pub Params);

impl FromRequest for OAuthForm {
    type Error = OAuthRejection;
    type Future = LocalBoxFuture<Result<Self, OAuthRejection>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload).into_inner();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<WebConfig>>()
                .map_or(64 * 1024, |w| w.max_body_bytes);
            let payload = payload.map_err(|_| OAuthRejection::unreadable())?;
            read_oauth_form(&req, payload, limit).await.map(Self)
        })
    }
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
