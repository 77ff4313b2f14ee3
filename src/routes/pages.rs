//! The start page, the stylesheets, and fallbacks.

use actix_session::Session;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::browser::current_user;
use super::chrome::{brand_of, render, Chrome};
use super::errors::{error_page, PageError};
use super::errors::{ApiError, ApiErrorCode};
use super::WebConfig;
use crate::accounts::Accounts;

const STYLESHEET: &str = include_str!("../../static/style.css");
const FORM_POST_SCRIPT: &str = include_str!("../../static/form_post.js");
const COPY_SCRIPT: &str = include_str!("../../static/copy.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    /// Who is signed in, if anyone (no navigation entry is current on the start page).
    chrome: Chrome,
}

/// `GET /`.
pub async fn home(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let user = current_user(&session, &accounts, &web).await?;
    Ok(render(
        StatusCode::OK,
        &HomePage {
            chrome: Chrome::without_notice(&session, user.as_ref(), &web.brand),
        },
    ))
}

/// `GET /static/style.css` (compiled in).
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// `GET /static/branding.css`: the accent colour of `[branding]` (built at start-up, see
/// [`super::Brand`]). Pages link it with the colour as a version (`?v=0a7f3b`), so it may be
/// cached like the other static files.
pub async fn branding_stylesheet(web: web::Data<WebConfig>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(web.brand.stylesheet.clone())
}

/// `GET /static/form_post.js`: submits the `response_mode=form_post` page's form.
pub async fn form_post_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(FORM_POST_SCRIPT)
}

/// `GET /static/copy.js`: the copy buttons next to secrets and client ids.
pub async fn copy_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(COPY_SCRIPT)
}

/// `GET /static/favicon.svg` and `GET /favicon.ico` (browsers ask for the latter without
/// reading the page): the brand mark as SVG, which every current browser takes as an icon.
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(FAVICON)
}

/// Wrong method on an HTML page.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    error_page(
        &brand_of(&req),
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        &format!("{} is not allowed here.", req.method()),
    )
}

/// The 404 answer: JSON under the API prefixes, a page elsewhere.
pub async fn not_found(req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    let response = not_found_response(req.request());
    let (req, _) = req.into_parts();
    Ok(ServiceResponse::new(req, response))
}

/// [`not_found`]'s answer to `req`.
pub fn not_found_response(req: &HttpRequest) -> HttpResponse {
    let path = req.path();
    if path.starts_with("/o/") || path.starts_with("/api/") || path.starts_with("/.well-known/") {
        ResponseError::error_response(&ApiError::new(
            ApiErrorCode::NotFound,
            &format!("nothing is served at {path}"),
        ))
    } else {
        error_page(
            &brand_of(req),
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is nothing at this address.",
        )
    }
}

/// Middleware: a path holding an encoded NUL (`%00`) names nothing we serve, so it is answered
/// like any unknown path ([`not_found`]) before routing. Otherwise a `{id}` segment would carry
/// the NUL into a database lookup, which PostgreSQL refuses with an error (a 503); found by
/// `tests/api/hostile.rs`.
///
/// # Errors
/// Those of the wrapped service.
pub async fn refuse_nul_in_path(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.path().contains("%00") {
        return not_found(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
