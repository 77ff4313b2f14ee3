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
use crate::domain::Email;
use crate::limits::{LimitError, RetryAfter};
use crate::routes::browser::current_user;
use crate::routes::chrome::{render, Chrome};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::Form;
use crate::routes::format::{capitalized, wait_phrase};
use crate::routes::http::{peer_ip, see_other, with_retry_after};
use crate::routes::WebConfig;

#[derive(Template)]
#[template(path = "login/password_reset.html")]
struct RequestPage<'a> {
    chrome: Chrome,
    email: &'a str,
    /// The `email` field's message.
    errors: FieldErrors,
}

/// The page after a request, a completed reset, or an invalid link: a heading, a message and
/// where to go next.
#[derive(Template)]
#[template(path = "login/password_reset_message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
    /// `notice` (success) or `alert` (problem).
    kind: &'a str,
    action: &'a str,
    action_label: &'a str,
}

#[derive(Template)]
#[template(path = "login/password_reset_confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome,
    action: String,
    username: &'a str,
    errors: FieldErrors,
    min_password_chars: usize,
    max_password_chars: usize,
}

impl ConfirmPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }
}

/// The chrome of a reset page: the signed-in user's (no entry is current), or a visitor's.
async fn chrome(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<Chrome, PageError> {
    let user = current_user(session, accounts, web).await?;
    Ok(Chrome::for_browser(session, user.as_ref(), &web.brand))
}

/// `GET /accounts/password-reset/`: the form asking for the account's email address.
pub async fn show_request_form(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    Ok(render(
        StatusCode::OK,
        &RequestPage {
            chrome: chrome(&session, &accounts, &web).await?,
            email: "",
            errors: FieldErrors::new(),
        },
    ))
}

/// `POST /accounts/password-reset/`: asks for a link and continues to the "check your email"
/// page — the same for every address.
pub async fn submit_request(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let typed = form.get("email").unwrap_or_default();
    let (status, error, retry) = match Email::parse(typed) {
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter the email address of your account, like name@example.com.".to_owned(),
            None,
        ),
        Ok(email) => match accounts.request_password_reset(&email, peer_ip(&req)).await {
            Ok(()) => return Ok(see_other("/accounts/password-reset/done/")),
            Err(LimitError::Limited(retry) | LimitError::Reached(retry)) => (
                StatusCode::TOO_MANY_REQUESTS,
                wait_message(retry),
                Some(retry),
            ),
            Err(LimitError::Db(e)) => return Err(e.into()),
        },
    };
    let page = render(
        status,
        &RequestPage {
            chrome: chrome(&session, &accounts, &web).await?,
            email: typed,
            errors: FieldErrors::one("email", error),
        },
    );
    Ok(match retry {
        Some(retry) => with_retry_after(page, retry.0),
        None => page,
    })
}

/// `GET /accounts/password-reset/done/`: "check your email".
pub async fn show_request_done(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
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
) -> Result<HttpResponse, PageError> {
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
) -> Result<HttpResponse, PageError> {
    let (uidb64, token) = path.into_inner();
    let Some(link) = accounts.check_reset_link(&uidb64, &token).await? else {
        return invalid_link_page(&session, &accounts, &web).await;
    };
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: chrome(&session, &accounts, &web).await?,
            action: req.path().to_owned(),
            username: &link.user.username,
            errors: FieldErrors::new(),
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
        },
    ))
}

/// `POST /accounts/password-reset-confirm/{uidb64}/{token}/`: sets the new password.
pub async fn submit_new_password(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let (uidb64, token) = path.into_inner();
    let password = SecretString::from(form.get("password").unwrap_or_default().to_owned());
    let confirm = SecretString::from(form.get("confirm_password").unwrap_or_default().to_owned());
    let Some(link) = accounts.check_reset_link(&uidb64, &token).await? else {
        return invalid_link_page(&session, &accounts, &web).await;
    };
    let errors = if password.expose_secret() == confirm.expose_secret() {
        match accounts
            .reset_password(&uidb64, &token, password, peer_ip(&req))
            .await
        {
            // The user's sessions, this browser's included if it was theirs, have ended.
            Ok(_) => return Ok(see_other("/accounts/password-reset/complete/")),
            Err(ResetError::InvalidLink) => {
                return invalid_link_page(&session, &accounts, &web).await
            }
            Err(ResetError::Invalid(message)) => {
                FieldErrors::one("password", capitalized(&message))
            }
            Err(ResetError::Db(e)) => return Err(e.into()),
            Err(ResetError::Hash(e)) if e.is_busy() => return Err(PageError::Busy),
            Err(e @ ResetError::Hash(_)) => {
                tracing::error!(error = %e, "password reset failed");
                return Err(PageError::Internal);
            }
        }
    } else {
        FieldErrors::one("confirm_password", "The two passwords are not the same.")
    };
    Ok(render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ConfirmPage {
            chrome: chrome(&session, &accounts, &web).await?,
            action: req.path().to_owned(),
            username: &link.user.username,
            errors,
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
        },
    ))
}

async fn invalid_link_page(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<HttpResponse, PageError> {
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
) -> Result<HttpResponse, PageError> {
    let (action, action_label) = if kind == "alert" {
        ("/accounts/password-reset/", "Ask for a new link")
    } else {
        ("/accounts/login/", "Sign in")
    };
    Ok(render(
        status,
        &MessagePage {
            chrome: chrome(session, accounts, web).await?,
            title,
            message,
            kind,
            action,
            action_label,
        },
    ))
}

/// "Try again in …" for a limit: a wait under a minute is a recent request for this address;
/// a longer one is the hourly limit.
fn wait_message(retry: RetryAfter) -> String {
    if retry.0 < 60 {
        format!(
            "You asked for a link a moment ago. Try again {}.",
            wait_phrase(retry.0)
        )
    } else {
        format!(
            "Too many requests for this address or from your network. Try again {}.",
            wait_phrase(retry.0)
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
