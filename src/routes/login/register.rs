//! Self-registration (issue 5, "Registration"): `GET|POST /accounts/register/[?next=PATH]`,
//! the form, with errors inline at their fields (422). After registering, the browser is signed
//! in (unless verification is mandatory) and shown the verify page ([`super::verify`]; unless
//! verification is off: then it continues to `next`). The rules are in
//! `accounts/registration.rs`; the same step as a JSON API is `routes/api/registration.rs`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

use super::verify::remember_pending;
use crate::accounts::registration::{RegisterError, Registered, Registration};
use crate::accounts::Accounts;
use crate::config::EmailVerification;
use crate::oauth::Params;
use crate::routes::browser::{current_user, safe_next, start_session, LoginBasis};
use crate::routes::chrome::{flash, render, Chrome, Notice};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::Form;
use crate::routes::format::wait_phrase;
use crate::routes::http::{peer_ip, see_other, with_retry_after};
use crate::routes::WebConfig;

/// The registration form's values (never the passwords).
#[derive(Default)]
struct RegisterValues {
    email: String,
    username: String,
    first_name: String,
    last_name: String,
}

#[derive(Template)]
#[template(path = "login/register.html")]
struct RegisterPage<'a> {
    chrome: Chrome,
    closed: bool,
    values: RegisterValues,
    errors: FieldErrors,
    alert: Option<String>,
    next: &'a str,
    login_href: String,
    allowed_domains: String,
    min_password_chars: usize,
    max_password_chars: usize,
}

impl RegisterPage<'_> {
    /// The messages for `field` as sentences, or `None`.
    fn err(&self, field: &str) -> Option<String> {
        let messages = self.errors.messages(field);
        (!messages.is_empty()).then(|| sentences(messages))
    }
}

/// `GET /accounts/register/?next=PATH`: the form, or "registration is closed" (403). A
/// signed-in browser continues to `next`.
pub async fn show_register_form(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let next = safe_next(params.get("next"));
    if current_user(&session, &accounts, &web).await?.is_some() {
        return Ok(see_other(next));
    }
    let status = if accounts.settings().registration_open {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    Ok(register_page(
        status,
        Chrome::visitor(&session, &web.brand),
        &accounts,
        next,
        RegisterValues::default(),
        FieldErrors::new(),
        None,
    ))
}

/// `POST /accounts/register/`: creates the account, then signs the browser in (unless
/// verification is mandatory) and shows the verify page (unless verification is off).
pub async fn submit_register(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(form.get("next"));
    let field = |name: &str| form.get(name).unwrap_or_default().to_owned();
    let values = RegisterValues {
        email: field("email"),
        username: field("username"),
        first_name: field("first_name"),
        last_name: field("last_name"),
    };
    let registration = Registration {
        email: values.email.clone(),
        username: Some(values.username.clone()),
        first_name: values.first_name.clone(),
        last_name: values.last_name.clone(),
        password: SecretString::from(field("password")),
        confirm_password: SecretString::from(field("confirm_password")),
    };
    let page = |status, values, errors, alert: Option<String>| {
        register_page(
            status,
            Chrome::visitor(&session, &web.brand),
            &accounts,
            next,
            values,
            errors,
            alert,
        )
    };
    // The account's password is set (checked) from now on; see SESSION_VERIFY_BEGAN.
    let registered_at = crate::db::now();
    let registered = match accounts.register(registration, peer_ip(&req)).await {
        Ok(r) => r,
        Err(RegisterError::Invalid(errors)) => {
            return Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                errors.into_iter().collect(),
                Some("Your account was not created: please correct the fields below.".into()),
            ))
        }
        Err(RegisterError::Limited(retry)) => {
            let response = page(
                StatusCode::TOO_MANY_REQUESTS,
                values,
                FieldErrors::new(),
                Some(format!(
                    "Too many accounts were created from your network. Try again {}.",
                    wait_phrase(retry.0)
                )),
            );
            return Ok(with_retry_after(response, retry.0));
        }
        Err(RegisterError::Closed) => {
            return Ok(page(
                StatusCode::FORBIDDEN,
                values,
                FieldErrors::new(),
                None,
            ))
        }
        Err(RegisterError::Db(e)) => return Err(e.into()),
        Err(RegisterError::Hash(e)) if e.is_busy() => return Err(PageError::Busy),
        Err(RegisterError::Hash(e)) => {
            tracing::error!(error = %e, "registration failed");
            return Err(PageError::Internal);
        }
    };
    let Registered {
        user,
        verification,
        email_sent,
    } = registered;
    if verification != EmailVerification::Mandatory {
        if let Err(e) = start_session(
            &req,
            &session,
            &accounts,
            &user.id,
            "pwd",
            LoginBasis::default(),
        )
        .await
        {
            // The account exists; the person can sign in on the login page.
            tracing::error!(error = %e, "could not start a session after registration");
            return Ok(see_other("/accounts/login/"));
        }
    }
    if verification == EmailVerification::Off {
        return Ok(see_other(next));
    }
    let sent = match email_sent {
        Some(false) => format!(
            "We could not send the email to {}. Use “Send a new code” below to try again.",
            user.email
        ),
        _ => format!("We sent a 6-digit code to {}.", user.email),
    };
    let notice = if verification == EmailVerification::Mandatory {
        format!("Your account was created. {sent} Enter it below to verify your email address before you sign in.")
    } else {
        format!("Welcome! Your account was created and you are signed in. {sent} Enter it below to verify your email address, or do it later.")
    };
    remember_pending(&session, &user, next, registered_at);
    flash(&session, Notice::success(notice));
    Ok(see_other("/accounts/verify/"))
}

/// The registration page with a visitor's `chrome`.
fn register_page(
    status: StatusCode,
    chrome: Chrome,
    accounts: &Accounts,
    next: &str,
    values: RegisterValues,
    errors: FieldErrors,
    alert: Option<String>,
) -> HttpResponse {
    let settings = accounts.settings();
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    render(
        status,
        &RegisterPage {
            chrome,
            closed: !settings.registration_open,
            values,
            errors,
            alert,
            next,
            login_href: format!("/accounts/login/?next={encoded}"),
            allowed_domains: settings.allowed_email_domains.join(", "),
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
        },
    )
}

/// Service messages (sentence fragments) as sentences for a page.
fn sentences(messages: &[String]) -> String {
    messages
        .iter()
        .map(|m| {
            let mut chars = m.chars();
            let mut s: String = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            };
            if !s.ends_with(['.', '!', '?']) {
                s.push('.');
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::sentences;

    #[test]
    fn fragments_become_sentences() {
        assert_eq!(
            sentences(&[
                "the password is entirely numeric".into(),
                "too easy.".into()
            ]),
            "The password is entirely numeric. Too easy."
        );
    }
}
