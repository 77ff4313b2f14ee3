//! The hosted login and logout pages.

pub(super) mod code;
pub(super) mod register;
pub(super) mod reset;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

use crate::accounts::{Accounts, LoginError};
use crate::oauth::Params;
use crate::routes::support::{
    csrf_token, current_user, peer_ip, read_page_form, render, safe_next, see_other, start_session,
    unavailable, with_retry_after, LoginBasis, SessionError, WebConfig,
};

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
/// continues to `next` (a local path only). A user who must enter an emailed code goes to the
/// code step first (`routes/login_code.rs`).
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
    // When the check began, for a login refused as unverified: the login after verification
    // counts as begun then (`Accounts::check_login` keeps its own for the other outcomes).
    let began = crate::db::now();
    match accounts
        .check_login(username, password, peer_ip(&req))
        .await
    {
        // Email 2FA (routes/login_code.rs): the code is emailed, the login waits for it.
        Ok(login) if accounts.needs_login_code(&login.user) => {
            code::begin(&req, &session, &accounts, &login, &next).await
        }
        Ok(login) => {
            // A new session on login (no fixation), with a new CSRF token; none when a
            // password change or sign-out overtook the check.
            match start_session(
                &req,
                &session,
                &accounts,
                &login.user.id,
                "pwd",
                LoginBasis::from(&login),
            )
            .await
            {
                Ok(()) => see_other(&next),
                Err(SessionError::Outdated) => failure(
                    StatusCode::UNAUTHORIZED,
                    "Invalid username or password.".into(),
                    &session,
                ),
                Err(e) => {
                    tracing::error!(error = %e, "could not store the session");
                    failure(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Your session could not be started.".into(),
                        &session,
                    )
                }
            }
        }
        Err(LoginError::InvalidCredentials) => failure(
            StatusCode::UNAUTHORIZED,
            "Invalid username or password.".into(),
            &session,
        ),
        Err(LoginError::Locked(retry)) => {
            let response = failure(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed attempts. Try again in {} seconds.",
                    retry.0
                ),
                &session,
            );
            with_retry_after(response, retry.0)
        }
        // Mandatory verification (routes/register.rs): a new code, then the verify page.
        Err(LoginError::Unverified(user)) => {
            register::refuse_unverified_login(&session, &accounts, &user, &next, began).await
        }
        Err(LoginError::Db(e)) => unavailable(&e),
        Err(LoginError::Hash(e)) => {
            tracing::error!(error = %e, "the password could not be checked");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Your password could not be checked. Please try again in a moment.".into(),
                &session,
            )
        }
    }
}

/// The login page with `error`, answered with `status` (for the steps after the password).
pub(super) fn login_page(
    status: StatusCode,
    session: &Session,
    next: &str,
    username: &str,
    error: String,
) -> HttpResponse {
    render(
        status,
        &LoginPage {
            csrf_token: csrf_token(session),
            next,
            username,
            error: Some(error),
        },
    )
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
        if let Err(e) =
            crate::routes::support::log_out(&req, &session, &accounts, &user.id, false).await
        {
            return unavailable(&e);
        }
    }
    session.purge();
    see_other("/")
}
