//! Email verification (issue 5, "Email verification"), hosted pages:
//! * `GET|POST /accounts/verify/` — email and code, and a "Send a new code" button. A browser
//!   that proved the password (it registered, or logged in with the right password while
//!   unverified) is signed in once the code is right, and continues to `next`.
//! * `GET /accounts/activate/<uidb64>/<token>/` — the link in the email.
//!
//! The rules are in `accounts/registration.rs`; the same steps as a JSON API are
//! `routes/api/registration.rs`. With `accounts.email_verification = "off"` these pages answer
//! 404.

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::registration::{
    ActivationError, ResendError, VerifyError, AMR_PASSWORD_AND_CODE,
};
use crate::accounts::{Account, Accounts};
use crate::config::EmailVerification;
use crate::domain::Email;
use crate::routes::browser::{current_user, safe_next, start_session, LoginBasis};
use crate::routes::chrome::{flash, render, Brand, Chrome, Notice};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::Form;
use crate::routes::format::wait_phrase;
use crate::routes::http::{peer_ip, see_other, with_retry_after};
use crate::routes::WebConfig;

/// Session key: the address the verify page is pre-filled with.
const SESSION_VERIFY_EMAIL: &str = "verify_email";
/// Session key: the user who proved their password in this browser (registered, or logged in
/// while unverified); a right code signs them in.
const SESSION_VERIFY_USER: &str = "verify_uid";
/// Session key: where to continue after verifying.
const SESSION_VERIFY_NEXT: &str = "verify_next";
/// The session key of when the pending account's password was checked in this browser
/// (registration or a refused login): the login after verification counts as begun then, so a
/// password change, reset or "sign out everywhere" in between ends it (`LoginBasis`).
const SESSION_VERIFY_BEGAN: &str = "verify_began";

#[derive(Template)]
#[template(path = "login/verify.html")]
struct VerifyPage {
    chrome: Chrome,
    verified: bool,
    email: String,
    alert: Option<String>,
    /// Messages of the `email` and `otp` fields.
    errors: FieldErrors,
    minutes: u64,
    continue_href: String,
    continue_label: &'static str,
}

impl VerifyPage {
    fn new(chrome: Chrome, accounts: &Accounts, email: String) -> Self {
        Self {
            chrome,
            verified: false,
            email,
            alert: None,
            errors: FieldErrors::new(),
            minutes: accounts.settings().otp_expiration.as_secs().div_ceil(60),
            continue_href: "/".to_owned(),
            continue_label: "Continue",
        }
    }

    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }

    /// This page with `message` at `field`, answered with `status`.
    fn refused(
        mut self,
        status: StatusCode,
        field: &str,
        message: impl Into<String>,
    ) -> HttpResponse {
        self.errors.add(field, message);
        render(status, &self)
    }
}

/// The verify page's chrome: the signed-in user's, or a visitor's.
async fn verify_chrome(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
) -> Result<(Chrome, Option<Account>), PageError> {
    let user = current_user(session, accounts, web).await?;
    Ok((
        Chrome::for_browser(session, user.as_ref(), &web.brand),
        user,
    ))
}

/// `GET /accounts/verify/`: the code form, pre-filled with the pending address of this
/// browser or the signed-in user's address.
pub async fn show_verify_form(
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    verification_on(&accounts)?;
    let (chrome, user) = verify_chrome(&session, &accounts, &web).await?;
    if let Some(user) = user.as_ref().filter(|u| u.email_verified) {
        let mut page = VerifyPage::new(chrome, &accounts, user.email.clone());
        page.verified = true;
        page.continue_href = "/account/".to_owned();
        page.continue_label = "Your account";
        return Ok(render(StatusCode::OK, &page));
    }
    let email = session_string(&session, SESSION_VERIFY_EMAIL)
        .or_else(|| user.as_ref().map(|u| u.email.clone()))
        .unwrap_or_default();
    Ok(render(
        StatusCode::OK,
        &VerifyPage::new(chrome, &accounts, email),
    ))
}

/// `POST /accounts/verify/`: `action=verify` checks the code; `action=resend` sends a new one
/// (the same answer whether or not the address is waiting for one).
pub async fn submit_verify(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    verification_on(&accounts)?;
    let (chrome, signed_in) = verify_chrome(&session, &accounts, &web).await?;
    let email = form.get("email").unwrap_or_default().trim().to_owned();
    let mut page = VerifyPage::new(chrome, &accounts, email.clone());
    if email.is_empty() {
        return Ok(page.refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
            "Enter your email address.",
        ));
    }
    // It goes into the session cookie: only a real address (at most 254 characters), never
    // text that would make the cookie too large to send.
    if Email::parse(&email).is_err() {
        if email.len() > 254 {
            page.email = String::new();
        }
        return Ok(page.refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
            "Enter a valid email address.",
        ));
    }
    if let Err(e) = session.insert(SESSION_VERIFY_EMAIL, &email) {
        tracing::warn!(error = %e, "could not remember the address to verify");
    }
    if form.get("action") == Some("resend") {
        return match accounts.resend_verification(&email, peer_ip(&req)).await {
            Ok(()) => {
                // The same page for every address: nothing here says whether one is waiting.
                page.chrome.notice = Some(Notice::info(format!(
                    "If {email} is waiting for verification, we sent a new code to it. Earlier codes no longer work."
                )));
                Ok(render(StatusCode::OK, &page))
            }
            Err(ResendError::Limited(retry)) => Ok(with_retry_after(
                page.refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "email",
                    format!(
                        "A code for this address was asked for a moment ago. You can ask for a new one {}.",
                        wait_phrase(retry.0)
                    ),
                ),
                retry.0,
            )),
            Err(ResendError::Mail(_)) => {
                page.alert =
                    Some("We could not send the email. Please try again in a moment.".into());
                Ok(render(StatusCode::SERVICE_UNAVAILABLE, &page))
            }
            Err(ResendError::Disabled) => Err(verification_off()),
            Err(ResendError::Db(e)) => Err(e.into()),
        };
    }
    let code = form.get("otp").unwrap_or_default().trim();
    if code.is_empty() {
        return Ok(page.refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "otp",
            "Enter the 6-digit code from the email.",
        ));
    }
    let user = match accounts
        .verify_email_code(&email, code, peer_ip(&req))
        .await
    {
        Ok(user) => user,
        Err(VerifyError::Db(e)) => return Err(e.into()),
        Err(VerifyError::Disabled) => return Err(verification_off()),
        Err(VerifyError::Limited(retry)) => {
            return Ok(with_retry_after(
                page.refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "otp",
                    format!(
                        "Too many codes were tried from your network. Try again {}.",
                        wait_phrase(retry.0)
                    ),
                ),
                retry.0,
            ));
        }
        Err(VerifyError::Rejected) => {
            return Ok(page.refused(StatusCode::UNPROCESSABLE_ENTITY, "otp", REJECTED_CODE));
        }
    };
    verified(
        &req,
        &session,
        &web.brand,
        &accounts,
        signed_in.as_ref(),
        &user,
    )
    .await
}

/// `GET /accounts/activate/{uidb64}/{token}/`: the activation link. It verifies the address;
/// it signs in only a browser that proved the password in this flow (a link can be opened
/// anywhere).
pub async fn activate_page(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let (uidb64, token) = path.into_inner();
    let signed_in = current_user(&session, &accounts, &web).await?;
    match accounts.activate(&uidb64, &token, peer_ip(&req)).await {
        Ok(user) => {
            verified(
                &req,
                &session,
                &web.brand,
                &accounts,
                signed_in.as_ref(),
                &user,
            )
            .await
        }
        Err(ActivationError::InvalidLink) => {
            let email = session_string(&session, SESSION_VERIFY_EMAIL).unwrap_or_default();
            let chrome = Chrome::for_browser(&session, signed_in.as_ref(), &web.brand);
            let mut page = VerifyPage::new(chrome, &accounts, email);
            page.alert = Some("This activation link is invalid or has expired, or it was already used. Enter the code from the email, or send a new one.".into());
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(ActivationError::Disabled) => Err(verification_off()),
        Err(ActivationError::Db(e)) => Err(e.into()),
    }
}

/// Called by the login page when the password was right but the address must be verified
/// first (`accounts.email_verification = "mandatory"`): sends a new code (when the cooldown
/// allows) and shows the verify page, which says why.
pub(super) async fn refuse_unverified_login(
    session: &Session,
    accounts: &Accounts,
    user: &Account,
    next: &str,
    began: chrono::NaiveDateTime,
) -> Result<HttpResponse, PageError> {
    let why = "You cannot sign in until your email address is verified.";
    let notice = match accounts.send_verification(user).await {
        Ok(()) => format!("{why} We sent a new 6-digit code to {}.", user.email),
        Err(ResendError::Limited(retry)) => format!(
            "{why} We sent a code to {} a moment ago; enter it below, or ask for a new one {}.",
            user.email,
            wait_phrase(retry.0)
        ),
        Err(ResendError::Mail(_) | ResendError::Disabled) => format!(
            "{why} We could not send a new code to {}; use “Send a new code” below to try again.",
            user.email
        ),
        Err(ResendError::Db(e)) => return Err(e.into()),
    };
    remember_pending(session, user, next, began);
    flash(session, Notice::info(notice));
    Ok(see_other("/accounts/verify/"))
}

/// The "verified" page. A browser that proved this user's password in the verification flow
/// (and is not signed in as someone else) is signed in and continues to where it was going.
async fn verified(
    req: &HttpRequest,
    session: &Session,
    brand: &Arc<Brand>,
    accounts: &Accounts,
    signed_in: Option<&Account>,
    user: &Account,
) -> Result<HttpResponse, PageError> {
    let proven = session_string(session, SESSION_VERIFY_USER).as_deref() == Some(user.id.as_str());
    let next = session_string(session, SESSION_VERIFY_NEXT).unwrap_or_else(|| "/".to_owned());
    // A pending login from before this rule has no moment: it counts as begun at once.
    let began = session
        .get::<chrono::NaiveDateTime>(SESSION_VERIFY_BEGAN)
        .ok()
        .flatten();
    for key in [
        SESSION_VERIFY_EMAIL,
        SESSION_VERIFY_USER,
        SESSION_VERIFY_NEXT,
        SESSION_VERIFY_BEGAN,
    ] {
        session.remove(key);
    }
    let mut current = signed_in.cloned();
    if proven && signed_in.is_none() {
        accounts
            .login_after_verification(user, peer_ip(req))
            .await?;
        match start_session(
            req,
            session,
            accounts,
            &user.id,
            AMR_PASSWORD_AND_CODE,
            LoginBasis {
                began,
                verified_hash: None,
                idp: None,
            },
        )
        .await
        {
            Ok(()) => current = Some(user.clone()),
            Err(e) => tracing::error!(error = %e, "could not start a session after verification"),
        }
    }
    let chrome = Chrome::for_browser(session, current.as_ref(), brand);
    let mut page = VerifyPage::new(chrome, accounts, user.email.clone());
    page.verified = true;
    if current.as_ref().is_some_and(|u| u.id == user.id) {
        page.continue_href = safe_next(Some(&next)).to_owned();
        page.continue_label = "Continue";
    } else {
        let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        page.continue_href = format!("/accounts/login/?next={encoded}");
        page.continue_label = "Sign in";
    }
    Ok(render(StatusCode::OK, &page))
}

/// Remembers in this browser's session the account waiting for verification (which proved its
/// password here), where to go next, and when the password was checked (`began`).
pub(super) fn remember_pending(
    session: &Session,
    user: &Account,
    next: &str,
    began: chrono::NaiveDateTime,
) {
    let stored = session
        .insert(SESSION_VERIFY_EMAIL, &user.email)
        .and_then(|()| session.insert(SESSION_VERIFY_BEGAN, began))
        .and_then(|()| session.insert(SESSION_VERIFY_USER, &user.id))
        .and_then(|()| session.insert(SESSION_VERIFY_NEXT, safe_next(Some(next))));
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not remember the pending verification");
    }
}

fn session_string(session: &Session, key: &str) -> Option<String> {
    session.get::<String>(key).ok().flatten()
}

/// The verify page's message for a refused code: one for every reason and every address.
const REJECTED_CODE: &str = "This code is not right, or it has expired. Check the address and the code, or send a new code.";

/// The answer of the verification pages when verification is off (404).
fn verification_off() -> PageError {
    PageError::not_found(
        "Not available",
        "Email verification is switched off on this server.",
    )
}

/// Whether verification is on; the 404 of [`verification_off`] if not.
fn verification_on(accounts: &Accounts) -> Result<(), PageError> {
    if accounts.settings().email_verification == EmailVerification::Off {
        Err(verification_off())
    } else {
        Ok(())
    }
}
