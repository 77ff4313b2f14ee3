//! Password reset, hosted pages and JSON API (issue 5, "Password reset").
//!
//! * `GET|POST /accounts/password-reset/` — the email form; the POST always continues to
//!   `/accounts/password-reset/done/` ("if an account exists for this address, we sent a link"),
//!   whether or not an account has the address.
//! * `GET|POST /accounts/password-reset-confirm/<uidb64>/<token>/` — the new-password form when
//!   the link is valid, else a page saying it is invalid or expired; the POST sets the password
//!   and continues to `/accounts/password-reset/complete/`.
//!
//! The same two steps as a JSON API are `routes/api/password_reset.rs`.
//!
//! The token in the link's path never leaves the page: every response sends
//! `Referrer-Policy: no-referrer`, so it is not leaked to other sites through `Referer`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::reset::ResetError;
use crate::accounts::Accounts;
use crate::db::DbError;
use crate::domain::Email;
use crate::limits::{LimitError, RetryAfter};
use crate::routes::support::{busy_page, capitalized, with_retry_after};
use crate::routes::support::{
    csrf_token, current_user, error_page, peer_ip, read_page_form, render, see_other, unavailable,
    WebConfig,
};

/// The navigation of a reset page: the signed-in user's (no entry is current), or a "Sign in"
/// link.
struct Nav {
    signed_in: Option<String>,
    csrf_token: String,
    is_staff: bool,
}

impl Nav {
    async fn new(session: &Session, accounts: &Accounts, web: &WebConfig) -> Result<Self, DbError> {
        let user = current_user(session, accounts, web).await?;
        Ok(Self {
            is_staff: user.as_ref().is_some_and(|u| u.has_staff_access()),
            signed_in: user.map(|u| u.username),
            csrf_token: csrf_token(session),
        })
    }
}

#[derive(Template)]
#[template(path = "accounts/password_reset.html")]
struct RequestPage<'a> {
    nav: Nav,
    email: &'a str,
    error: Option<String>,
}

/// The page after a request, a completed reset, or an invalid link: a heading, a message and
/// where to go next.
#[derive(Template)]
#[template(path = "accounts/password_reset_message.html")]
struct MessagePage<'a> {
    nav: Nav,
    title: &'a str,
    message: &'a str,
    /// `notice` (success) or `alert` (problem).
    kind: &'a str,
    action: &'a str,
    action_label: &'a str,
}

#[derive(Template)]
#[template(path = "accounts/password_reset_confirm.html")]
struct ConfirmPage<'a> {
    nav: Nav,
    action: String,
    username: &'a str,
    field: Option<&'static str>,
    error: Option<String>,
    min_password_chars: usize,
    max_password_chars: usize,
}

impl ConfirmPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.error.as_deref().filter(|_| self.field == Some(field))
    }
}

/// `GET /accounts/password-reset/`: the form asking for the account's email address.
pub async fn show_request_form(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let nav = match Nav::new(&session, &accounts, &web).await {
        Ok(nav) => nav,
        Err(e) => return unavailable(&e),
    };
    render(
        StatusCode::OK,
        &RequestPage {
            nav,
            email: "",
            error: None,
        },
    )
}

/// `POST /accounts/password-reset/`: asks for a link and continues to the "check your email"
/// page — the same for every address.
pub async fn submit_request(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let typed = form.get("email").unwrap_or_default();
    let (status, error, retry) = match Email::parse(typed) {
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter the email address of your account, like name@example.com.".to_owned(),
            None,
        ),
        Ok(email) => match accounts.request_password_reset(&email, peer_ip(&req)).await {
            Ok(()) => return see_other("/accounts/password-reset/done/"),
            Err(LimitError::Limited(retry) | LimitError::Reached(retry)) => (
                StatusCode::TOO_MANY_REQUESTS,
                wait_message(retry),
                Some(retry),
            ),
            Err(LimitError::Db(e)) => return unavailable(&e),
        },
    };
    let nav = match Nav::new(&session, &accounts, &web).await {
        Ok(nav) => nav,
        Err(e) => return unavailable(&e),
    };
    let page = render(
        status,
        &RequestPage {
            nav,
            email: typed,
            error: Some(error),
        },
    );
    match retry {
        Some(retry) => with_retry_after(page, retry.0),
        None => page,
    }
}

/// `GET /accounts/password-reset/done/`: "check your email".
pub async fn show_request_done(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    message_page(
        &session,
        &accounts,
        &web,
        StatusCode::OK,
        "Check your email",
        "If an account exists for this address, we sent it a link to choose a new password. The link works once and expires soon. If no email arrives within a few minutes, check your spam folder or ask again.",
        "notice",
    )
    .await
}

/// `GET /accounts/password-reset/complete/`: the password was set.
pub async fn show_reset_complete(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    message_page(
        &session,
        &accounts,
        &web,
        StatusCode::OK,
        "Password changed",
        "Your new password is set. You were signed out in every browser and every application lost its access; sign in again with the new password.",
        "notice",
    )
    .await
}

/// `GET /accounts/password-reset-confirm/{uidb64}/{token}/`: the new-password form, or the
/// invalid-link page.
pub async fn show_new_password_form(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (uidb64, token) = path.into_inner();
    match accounts.check_reset_link(&uidb64, &token).await {
        Ok(Some(link)) => match Nav::new(&session, &accounts, &web).await {
            Ok(nav) => render(
                StatusCode::OK,
                &ConfirmPage {
                    nav,
                    action: req.path().to_owned(),
                    username: &link.user.username,
                    field: None,
                    error: None,
                    min_password_chars: accounts.password_policy().min_chars,
                    max_password_chars: accounts.password_policy().max_chars,
                },
            ),
            Err(e) => unavailable(&e),
        },
        Ok(None) => invalid_link_page(&session, &accounts, &web).await,
        Err(e) => unavailable(&e),
    }
}

/// `POST /accounts/password-reset-confirm/{uidb64}/{token}/`: sets the new password.
pub async fn submit_new_password(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (uidb64, token) = path.into_inner();
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let password = SecretString::from(form.get("password").unwrap_or_default().to_owned());
    let confirm = SecretString::from(form.get("confirm_password").unwrap_or_default().to_owned());
    let link = match accounts.check_reset_link(&uidb64, &token).await {
        Ok(Some(link)) => link,
        Ok(None) => return invalid_link_page(&session, &accounts, &web).await,
        Err(e) => return unavailable(&e),
    };
    let (field, message) = if password.expose_secret() == confirm.expose_secret() {
        match accounts
            .reset_password(&uidb64, &token, password, peer_ip(&req))
            .await
        {
            // The user's sessions, this browser's included if it was theirs, have ended.
            Ok(_) => return see_other("/accounts/password-reset/complete/"),
            Err(ResetError::InvalidLink) => {
                return invalid_link_page(&session, &accounts, &web).await
            }
            Err(ResetError::Invalid(message)) => ("password", capitalized(&message)),
            Err(ResetError::Db(e)) => return unavailable(&e),
            Err(ResetError::Hash(e)) if e.is_busy() => return busy_page(),
            Err(e @ ResetError::Hash(_)) => {
                tracing::error!(error = %e, "password reset failed");
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Your password could not be changed. Please try again in a moment.",
                );
            }
        }
    } else {
        (
            "confirm_password",
            "The two passwords are not the same.".to_owned(),
        )
    };
    let nav = match Nav::new(&session, &accounts, &web).await {
        Ok(nav) => nav,
        Err(e) => return unavailable(&e),
    };
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ConfirmPage {
            nav,
            action: req.path().to_owned(),
            username: &link.user.username,
            field: Some(field),
            error: Some(message),
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
        },
    )
}

async fn invalid_link_page(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> HttpResponse {
    message_page(
        session,
        accounts,
        web,
        StatusCode::BAD_REQUEST,
        "Link invalid or expired",
        "This password reset link is invalid or has expired. It may have been used already, or your password or sign-in changed since it was sent. Ask for a new one.",
        "alert",
    )
    .await
}

async fn message_page(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
    status: StatusCode,
    title: &str,
    message: &str,
    kind: &str,
) -> HttpResponse {
    let nav = match Nav::new(session, accounts, web).await {
        Ok(nav) => nav,
        Err(e) => return unavailable(&e),
    };
    let (action, action_label) = if kind == "alert" {
        ("/accounts/password-reset/", "Ask for a new link")
    } else {
        ("/accounts/login/", "Sign in")
    };
    render(
        status,
        &MessagePage {
            nav,
            title,
            message,
            kind,
            action,
            action_label,
        },
    )
}

/// "Try again in …" for a limit.
fn wait_message(retry: RetryAfter) -> String {
    let minutes = retry.0.div_ceil(60);
    if retry.0 < 60 {
        format!(
            "You asked for a link a moment ago. Try again in {} seconds.",
            retry.0
        )
    } else {
        format!(
            "Too many requests for this address or from your network. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{capitalized, wait_message};
    use crate::limits::RetryAfter;

    #[test]
    fn waits_are_told_in_seconds_then_minutes() {
        assert!(wait_message(RetryAfter(42)).contains("42 seconds"));
        assert!(wait_message(RetryAfter(60)).contains("1 minute."));
        assert!(wait_message(RetryAfter(61)).contains("2 minutes."));
        assert_eq!(capitalized("the password"), "The password");
    }
}
