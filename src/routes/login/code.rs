//! The hosted login's second step: the emailed one-time code (email 2FA).
//!
//! After a correct password, `submit_login` calls [`begin`] for a user who needs a code: a code
//! is emailed and the session keeps a *pending login* (`{user_id, handle, next, started}`, the
//! handle naming the challenge) — nobody is signed in yet. `/accounts/login/code/` asks for the
//! code; the right one starts the session with the RFC 8176 methods `pwd otp` and continues to
//! `next`. A wrong code shows how many attempts are left; an expired or exhausted code, or a
//! pending login older than [`PENDING_MAX_AGE_SECONDS`] (or the code's lifetime, if longer),
//! sends the user back to the login page. "Send a new code" replaces the code (and the handle)
//! once the resend cooldown has passed, and says how long to wait (429) before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::{Refusal, SignInContext};
use crate::accounts::login_code::{
    ChallengeFor, LoginCodeOutcome, AMR_CODE, AMR_PASSWORD_AND_CODE,
};
use crate::accounts::{Account, Accounts, PasswordLogin};
use crate::clients::Clients;
use crate::limits::LimitError;
use crate::routes::browser::{start_session, LoginBasis, SessionError};
use crate::routes::chrome::{flash, render, Brand, Chrome, Notice};
use crate::routes::errors::PageError;
use crate::routes::extract::Form;
use crate::routes::format::wait_phrase;
use crate::routes::http::{peer_ip, see_other, with_retry_after};
use crate::routes::WebConfig;

/// Session key of the pending login.
const SESSION_PENDING_LOGIN: &str = "pending_login";
/// How long a correct password waits for its code, in seconds, at least (the code's lifetime
/// when that is longer): after that the password must be typed again, even to resend.
pub const PENDING_MAX_AGE_SECONDS: i64 = 30 * 60;

/// A login whose password was right and whose code is awaited.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    user_id: String,
    /// The challenge handle (its hash names the code in the database).
    handle: String,
    /// Where to continue (a checked local path).
    next: String,
    /// When the password was checked, in Unix seconds.
    started: i64,
    /// When the password check began ([`PasswordLogin::began`]): the session, once the code
    /// is entered, counts as started then, so a password change, reset or sign-out since
    /// ends it. Absent in a cookie written before it existed: `started` is used then.
    #[serde(default)]
    began: Option<chrono::NaiveDateTime>,
    /// The upstream identity provider the first step went through (`[upstream.<id>]`);
    /// `None` when it was the password. Decides the session's `amr` (`otp`, or `pwd otp`) and
    /// `idp`.
    #[serde(default)]
    idp: Option<String>,
}

/// The first step a login code follows.
#[derive(Clone, Copy, Debug)]
pub enum FirstStep<'a> {
    /// A password just accepted.
    Password(&'a PasswordLogin),
    /// A sign-in through the upstream provider with this id, whose link is the user's.
    Upstream {
        /// The user.
        user: &'a Account,
        /// The provider's id.
        provider: &'a str,
    },
}

#[derive(Template)]
#[template(path = "login/login_code.html")]
struct CodePage {
    chrome: Chrome,
    address: String,
    minutes: u64,
    /// A page-level problem (a resend refused by its cooldown).
    alert: Option<String>,
    /// The code field's message.
    error: Option<String>,
}

/// Starts the code step after `first` (a password just accepted, or an upstream sign-in):
/// emails a code, keeps the pending login in the session and redirects to the code page. When a code was sent
/// moments ago (the resend cooldown), the same browser goes on with the code it has; another
/// browser is told how long to wait (429).
///
/// # Errors
/// Storage failures.
pub async fn begin(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    clients: &Clients,
    brand: &Arc<Brand>,
    first: FirstStep<'_>,
    next: &str,
) -> Result<HttpResponse, PageError> {
    let (user, began, idp) = match first {
        FirstStep::Password(login) => (login.user(), login.began, None),
        FirstStep::Upstream { user, provider } => {
            (user, crate::db::now(), Some(provider.to_owned()))
        }
    };
    let refusal = match accounts
        .start_login_challenge(user, began, peer_ip(req), ChallengeFor::Browser)
        .await
    {
        Ok(challenge) => {
            let pending = PendingLogin {
                user_id: user.id.clone(),
                handle: challenge.handle,
                next: next.to_owned(),
                started: chrono::Utc::now().timestamp(),
                began: Some(began),
                idp,
            };
            match session.insert(SESSION_PENDING_LOGIN, &pending) {
                Ok(()) => {
                    if !challenge.emailed {
                        flash(session, Notice::problem(NOT_SENT));
                    }
                    return Ok(see_other("/accounts/login/code/"));
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not keep the pending login");
                    Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Your session could not be started.",
                    )
                }
            }
        }
        Err(LimitError::Limited(wait) | LimitError::Reached(wait)) => match pending(session, accounts) {
            Some(p) if p.user_id == user.id => {
                flash(
                    session,
                    Notice::info("We emailed you a code moments ago: enter it here."),
                );
                return Ok(see_other("/accounts/login/code/"));
            }
            _ => Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!(
                    "We emailed you a sign-in code moments ago. Enter it in the browser where you signed in, or try again {}.",
                    wait_phrase(wait.0)
                ),
                retry_after: Some(wait.0),
            },
        },
        Err(LimitError::Db(e)) => return Err(e.into()),
    };
    let context = SignInContext::of(next, clients, brand).await;
    Ok(refusal.page(session, &context, &user.username))
}

/// A login awaiting its code in this browser, and its user (still active): handlers of the
/// code step take it. Without one the request goes to the sign-in page instead (`303` to
/// `/accounts/login/`, or — when the user can no longer sign in — the sign-in page saying so,
/// the pending login dropped).
pub struct AwaitingCode {
    pending: PendingLogin,
    user: Account,
}

impl FromRequest for AwaitingCode {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let accounts = req.app_data::<web::Data<Accounts>>().cloned();
        let clients = req.app_data::<web::Data<Clients>>().cloned();
        let web = req.app_data::<web::Data<WebConfig>>().cloned();
        Box::pin(async move {
            let (Some(accounts), Some(clients), Some(web)) = (accounts, clients, web) else {
                tracing::error!(
                    "the accounts or clients service or the web settings are missing from the application"
                );
                return Err(PageError::Internal.into());
            };
            let Some(pending) = pending(&session, &accounts) else {
                return Err(elsewhere(see_other("/accounts/login/")));
            };
            match accounts
                .find(pending.user_id.clone())
                .await
                .map_err(PageError::from)?
            {
                Some(user) if user.is_active => Ok(Self { pending, user }),
                _ => Err(elsewhere(
                    abandon(
                        &session,
                        &clients,
                        &web.brand,
                        &pending,
                        "",
                        "Please sign in again.",
                    )
                    .await,
                )),
            }
        })
    }
}

/// `response` in place of the handler's answer.
fn elsewhere(response: HttpResponse) -> actix_web::Error {
    InternalError::from_response("no login awaits a code", response).into()
}

/// `GET /accounts/login/code/`: the code form (the login page when no login is pending).
pub async fn show_code_form(
    AwaitingCode { user, .. }: AwaitingCode,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    code_page(
        StatusCode::OK,
        &session,
        &web.brand,
        &accounts,
        &user,
        None,
        None,
    )
}

/// `POST /accounts/login/code/` (`otp`): checks the code and signs the user in.
pub async fn submit_code(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    AwaitingCode { pending, user }: AwaitingCode,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let otp = form.get("otp").unwrap_or_default().trim();
    let wrong = |status, message: String| {
        code_page(
            status,
            &session,
            &web.brand,
            &accounts,
            &user,
            None,
            Some(message),
        )
    };
    if otp.is_empty() {
        return Ok(wrong(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter the 6-digit code from the email.".into(),
        ));
    }
    let outcome = accounts
        .finish_login_challenge(
            &pending.handle,
            otp,
            None,
            pending.idp.as_deref(),
            peer_ip(&req),
        )
        .await?;
    let gone = match outcome {
        LoginCodeOutcome::Passed { login, .. } if login.user().id == pending.user_id => {
            let signed_in = login.user();
            // A new session on login (no fixation), with a new CSRF token; the pending login
            // goes with the old session's contents.
            let basis = LoginBasis {
                began: pending.began.or_else(|| {
                    chrono::DateTime::from_timestamp(pending.started, 0).map(|t| t.naive_utc())
                }),
                verified_hash: None,
                idp: pending.idp.clone(),
            };
            let refusal = match start_session(
                &req,
                &session,
                &accounts,
                &signed_in.id,
                if pending.idp.is_some() {
                    AMR_CODE
                } else {
                    AMR_PASSWORD_AND_CODE
                },
                basis,
            )
            .await
            {
                Ok(()) => return Ok(see_other(&pending.next)),
                // A password change, reset or sign-out since the password was checked.
                Err(SessionError::Outdated) => {
                    Refusal::new(StatusCode::UNAUTHORIZED, "Please sign in again.")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not store the session");
                    Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Your session could not be started.",
                    )
                }
            };
            let context = SignInContext::of(&pending.next, &clients, &web.brand)
                .await
                .with_providers(&web);
            return Ok(refusal.page(&session, &context, &signed_in.username));
        }
        LoginCodeOutcome::Wrong { remaining } => {
            return Ok(wrong(
                StatusCode::UNPROCESSABLE_ENTITY,
                match remaining {
                    1 => "That code is not right. 1 attempt left.".to_owned(),
                    n => format!("That code is not right. {n} attempts left."),
                },
            ))
        }
        LoginCodeOutcome::Limited(retry) => {
            return Ok(with_retry_after(
                wrong(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many codes were tried from your network. Try again {}.",
                        wait_phrase(retry.0)
                    ),
                ),
                retry.0,
            ))
        }
        LoginCodeOutcome::Expired => {
            "Your sign-in code has expired. Sign in again to get a new one."
        }
        LoginCodeOutcome::Exhausted => "Too many wrong codes. Sign in again to get a new one.",
        LoginCodeOutcome::Passed { .. } | LoginCodeOutcome::Invalid => {
            "This sign-in code no longer works: it was used, or a newer one was sent. Sign in again."
        }
    };
    Ok(abandon(
        &session,
        &clients,
        &web.brand,
        &pending,
        &user.username,
        gone,
    )
    .await)
}

/// `POST /accounts/login/code/resend/`: emails a new code once the resend cooldown has passed
/// (429 with the wait before). The earlier code stops working.
pub async fn resend_code(
    req: HttpRequest,
    session: Session,
    _: Form,
    AwaitingCode { mut pending, user }: AwaitingCode,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    match accounts
        .start_login_challenge(
            &user,
            pending.began.unwrap_or_else(crate::db::now),
            peer_ip(&req),
            ChallengeFor::Browser,
        )
        .await
    {
        Ok(challenge) => {
            // A new handle: the old one named the code that is now retired.
            pending.handle = challenge.handle;
            if let Err(e) = session.insert(SESSION_PENDING_LOGIN, &pending) {
                tracing::error!(error = %e, "could not keep the pending login");
                return Ok(abandon(
                    &session,
                    &clients,
                    &web.brand,
                    &pending,
                    &user.username,
                    "Please sign in again.",
                )
                .await);
            }
            flash(
                &session,
                if challenge.emailed {
                    Notice::success("We emailed you a new code. The earlier one no longer works.")
                } else {
                    Notice::problem(NOT_SENT)
                },
            );
            Ok(see_other("/accounts/login/code/"))
        }
        Err(LimitError::Limited(wait) | LimitError::Reached(wait)) => Ok(with_retry_after(
            code_page(
                StatusCode::TOO_MANY_REQUESTS,
                &session,
                &web.brand,
                &accounts,
                &user,
                Some(format!(
                    "You can ask for a new code {}. The code we sent last still works.",
                    wait_phrase(wait.0)
                )),
                None,
            ),
            wait.0,
        )),
        Err(LimitError::Db(e)) => Err(e.into()),
    }
}

/// `GET /accounts/login/code/resend/` (the form's target opened by hand): the code page.
pub async fn back_to_code_form() -> HttpResponse {
    see_other("/accounts/login/code/")
}

/// The session's pending login, if it is young enough; an old one is dropped.
fn pending(session: &Session, accounts: &Accounts) -> Option<PendingLogin> {
    let pending = session
        .get::<PendingLogin>(SESSION_PENDING_LOGIN)
        .ok()
        .flatten()?;
    let code_lifetime =
        i64::try_from(accounts.settings().otp_expiration.as_secs()).unwrap_or(i64::MAX);
    let max_age = PENDING_MAX_AGE_SECONDS.max(code_lifetime);
    if chrono::Utc::now()
        .timestamp()
        .saturating_sub(pending.started)
        > max_age
    {
        session.remove(SESSION_PENDING_LOGIN);
        return None;
    }
    Some(pending)
}

/// Drops the pending login and shows the sign-in page (400) with `message`, keeping `next`.
async fn abandon(
    session: &Session,
    clients: &Clients,
    brand: &Arc<Brand>,
    pending: &PendingLogin,
    username: &str,
    message: &str,
) -> HttpResponse {
    session.remove(SESSION_PENDING_LOGIN);
    let context = SignInContext::of(&pending.next, clients, brand).await;
    Refusal::new(StatusCode::BAD_REQUEST, message).page(session, &context, username)
}

fn code_page(
    status: StatusCode,
    session: &Session,
    brand: &Arc<Brand>,
    accounts: &Accounts,
    user: &Account,
    alert: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    render(
        status,
        &CodePage {
            chrome: Chrome::visitor(session, brand),
            address: masked(&user.email),
            minutes: accounts
                .settings()
                .otp_expiration
                .as_secs()
                .div_ceil(60)
                .max(1),
            alert,
            error,
        },
    )
}

/// The notice when the code's email could not be sent.
const NOT_SENT: &str = "We could not send the email. Try again in a minute with “send a new code”.";

/// An address with most of its local part hidden: `kim@example.com` → `k••@example.com`, so
/// that someone who only knows the password learns little about the account.
fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            let hidden = local.chars().count().saturating_sub(1).clamp(2, 6);
            format!("{first}{}@{domain}", "•".repeat(hidden))
        }
        None => "your email address".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn addresses_are_masked_but_keep_their_domain() {
        assert_eq!(masked("kim@example.com"), "k••@example.com");
        assert_eq!(masked("a@example.com"), "a••@example.com");
        assert_eq!(masked("someone.long@example.com"), "s••••••@example.com");
        assert_eq!(masked("nonsense"), "your email address");
    }
}
