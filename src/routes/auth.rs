//! The hosted login and logout pages.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

use super::support::{
    csrf_token, current_user, peer_ip, read_page_form, render, safe_next, see_other, start_session,
    unavailable, WebConfig,
};
use crate::accounts::{Accounts, LoginError};
use crate::oauth::Params;

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage<'a> {
    csrf_token: String,
    next: &'a str,
    username: &'a str,
    error: Option<String>,
}

/// `GET /accounts/login/?next=PATH[&login_hint=NAME]` (`login_hint` pre-fills the username,
/// OIDC Core §3.1.2.1).
pub async fn show_login_form(req: HttpRequest, session: Session) -> HttpResponse {
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let hint: String = params
        .get("login_hint")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(254)
        .collect();
    render(
        StatusCode::OK,
        &LoginPage {
            csrf_token: csrf_token(&session),
            next: safe_next(params.get("next")),
            username: &hint,
            error: None,
        },
    )
}

/// `POST /accounts/login/`: checks the CSRF token and the password, starts a fresh session and
/// continues to `next` (a local path only).
pub async fn submit_login(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    let next = safe_next(form.get("next")).to_owned();
    let username = form.get("username").unwrap_or_default();
    let password = SecretString::from(form.get("password").unwrap_or_default().to_owned());
    let failure = |status: StatusCode, message: String, session: &Session| {
        render(
            status,
            &LoginPage {
                csrf_token: csrf_token(session),
                next: &next,
                username,
                error: Some(message),
            },
        )
    };
    match accounts
        .authenticate(username, password, peer_ip(&req))
        .await
    {
        Ok(user) => {
            // A new session on login (no fixation), with a new CSRF token.
            if let Err(e) = start_session(&session, &user.id, "pwd") {
                tracing::error!(error = %e, "could not store the session");
                return failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Your session could not be started.".into(),
                    &session,
                );
            }
            see_other(&next)
        }
        Err(LoginError::InvalidCredentials) => failure(
            StatusCode::UNAUTHORIZED,
            "Invalid username or password.".into(),
            &session,
        ),
        Err(LoginError::Locked(retry)) => {
            let mut response = failure(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed attempts. Try again in {} seconds.",
                    retry.0
                ),
                &session,
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry.0.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(LoginError::Db(e)) => unavailable(&e),
    }
}

/// `POST /accounts/logout/`: ends the session.
pub async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    if let Ok(Some(user)) = current_user(&session, &accounts, &web).await {
        if let Err(e) = accounts.logged_out(&user.id, peer_ip(&req), false).await {
            return unavailable(&e);
        }
    }
    session.purge();
    see_other("/")
}
