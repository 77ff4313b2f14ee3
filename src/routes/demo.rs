//! `GET /demo/callback`: the demo clients' redirect URI. Shows what the authorization server
//! sent back and the `curl` command that exchanges the code. Served only under `serve --demo`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::chrome::{render, Chrome};
use super::errors::error_page;
use super::WebConfig;
use crate::demo;
use crate::oauth::Params;

#[derive(Template)]
#[template(path = "demo_callback.html")]
struct CallbackPage {
    /// A visitor's chrome: this page stands for the demo application, not for an account.
    chrome: Chrome,
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    curl: String,
}

/// `GET /demo/callback?code=…&state=…&iss=…` (or `error=…`).
pub async fn callback(req: HttpRequest, web: web::Data<WebConfig>) -> HttpResponse {
    if !web.demo {
        return error_page(
            &web.brand,
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is nothing at this address.",
        );
    }
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let get = |k: &str| params.get(k).map(str::to_owned);
    let issuer = &web.issuer;
    let curl = get("code").map_or_else(String::new, |code| {
        format!(
            "curl -s -d grant_type=authorization_code -d client_id={} -d code={code} -d redirect_uri={issuer}/demo/callback -d code_verifier={} {issuer}/o/token/",
            demo::PUBLIC_ID,
            demo::CODE_VERIFIER,
        )
    });
    render(
        StatusCode::OK,
        &CallbackPage {
            chrome: Chrome::anonymous(&web.brand),
            code: get("code"),
            state: get("state"),
            iss: get("iss"),
            error: get("error"),
            error_description: get("error_description"),
            curl,
        },
    )
}
