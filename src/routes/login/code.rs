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

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::login_page;
use crate::accounts::login_code::{ChallengeFor, LoginCodeOutcome, AMR_PASSWORD_AND_CODE};
use crate::accounts::{Accounts, PasswordLogin};
use crate::db::users::UserRow;
use crate::limits::LimitError;
use crate::routes::support::with_retry_after;
use crate::routes::support::{
    csrf_token, peer_ip, read_page_form, render, see_other, start_session, unavailable, LoginBasis,
    SessionError, WebConfig,
};

/// Session key of the pending login.
const SESSION_PENDING_LOGIN: &str = "pending_login";
/// Session key of the notice the code page shows once.
const SESSION_CODE_NOTICE: &str = "login_code_notice";
/// Session key of the alert the code page shows once.
const SESSION_CODE_ALERT: &str = "login_code_alert";
/// How long a correct password waits for its code, in seconds, at least (the code's lifetime
/// when that is longer): after that the password must be typed again, even to resend.
pub const PENDING_MAX_AGE_SECONDS: i64 = 30 * 60;

/// A login whose password was right and whose code is awaited.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingLogin {
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
}

#[derive(Template)]
#[template(path = "auth/login_code.html")]
struct CodePage {
    csrf_token: String,
    address: String,
    minutes: u64,
    notice: Option<String>,
    alert: Option<String>,
    error: Option<String>,
}

/// Starts the code step for `user`, whose password was just accepted: emails a code, keeps
/// the pending login in the session and redirects to the code page. When a code was sent
/// moments ago (the resend cooldown), the same browser goes on with the code it has; another
/// browser is told how long to wait (429).
pub async fn begin(
    req: &HttpRequest,
    session: &Session,
    accounts: &Accounts,
    login: &PasswordLogin,
    next: &str,
) -> HttpResponse {
    let user = &login.user;
    let ip = peer_ip(req);
    match accounts
        .start_login_challenge(login, ip, ChallengeFor::Browser)
        .await
    {
        Ok(challenge) => {
            let pending = PendingLogin {
                user_id: user.id.clone(),
                handle: challenge.handle,
                next: next.to_owned(),
                started: chrono::Utc::now().timestamp(),
                began: Some(login.began),
            };
            if let Err(e) = session.insert(SESSION_PENDING_LOGIN, &pending) {
                tracing::error!(error = %e, "could not keep the pending login");
                return login_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    session,
                    next,
                    &user.username,
                    "Your session could not be started.".into(),
                );
            }
            if !challenge.emailed {
                flash(session, SESSION_CODE_ALERT, not_sent());
            }
            see_other("/accounts/login/code/")
        }
        Err(LimitError::Limited(wait) | LimitError::Reached(wait)) => match pending(session, accounts) {
            Some(p) if p.user_id == user.id => {
                flash(
                    session,
                    SESSION_CODE_NOTICE,
                    "We emailed you a code moments ago: enter it here.".into(),
                );
                see_other("/accounts/login/code/")
            }
            _ => with_retry_after(
                login_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    session,
                    next,
                    &user.username,
                    format!(
                        "We emailed you a sign-in code moments ago. Enter it in the browser where you signed in, or try again in {} seconds.",
                        wait.0
                    ),
                ),
                wait.0,
            ),
        },
        Err(LimitError::Db(e)) => unavailable(&e),
    }
}

/// `GET /accounts/login/code/`: the code form (the login page when no login is pending).
pub async fn show_code_form(session: Session, accounts: web::Data<Accounts>) -> HttpResponse {
    let Some(pending) = pending(&session, &accounts) else {
        return see_other("/accounts/login/");
    };
    let user = match accounts.find(pending.user_id.clone()).await {
        Ok(Some(user)) if user.is_active => user,
        Ok(_) => return abandon(&session, &pending, "", "Please sign in again.".into()),
        Err(e) => return unavailable(&e),
    };
    let notice = take(&session, SESSION_CODE_NOTICE);
    let alert = take(&session, SESSION_CODE_ALERT);
    code_page(
        StatusCode::OK,
        &session,
        &accounts,
        &user,
        notice,
        alert,
        None,
    )
}

/// `POST /accounts/login/code/` (`otp`): checks the code and signs the user in.
pub async fn submit_code(
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
    let Some(pending) = pending(&session, &accounts) else {
        return see_other("/accounts/login/");
    };
    let user = match accounts.find(pending.user_id.clone()).await {
        Ok(Some(user)) if user.is_active => user,
        Ok(_) => return abandon(&session, &pending, "", "Please sign in again.".into()),
        Err(e) => return unavailable(&e),
    };
    let otp = form.get("otp").unwrap_or_default().trim();
    if otp.is_empty() {
        return code_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            &accounts,
            &user,
            None,
            None,
            Some("Enter the 6-digit code from the email.".into()),
        );
    }
    let outcome = match accounts
        .finish_login_challenge(&pending.handle, otp, None, peer_ip(&req))
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return unavailable(&e),
    };
    match outcome {
        LoginCodeOutcome::Passed { user: signed_in, .. } if signed_in.id == pending.user_id => {
            // A new session on login (no fixation), with a new CSRF token; the pending login
            // goes with the old session's contents.
            let basis = LoginBasis {
                began: pending.began.or_else(|| {
                    chrono::DateTime::from_timestamp(pending.started, 0).map(|t| t.naive_utc())
                }),
                verified_hash: None,
            };
            let started = start_session(
                &req,
                &session,
                &accounts,
                &signed_in.id,
                AMR_PASSWORD_AND_CODE,
                basis,
            )
            .await;
            if let Err(e) = started {
                if matches!(e, SessionError::Outdated) {
                    // A password change, reset or sign-out since the password was checked.
                    return login_page(
                        StatusCode::UNAUTHORIZED,
                        &session,
                        &pending.next,
                        &signed_in.username,
                        "Please sign in again.".into(),
                    );
                }
                tracing::error!(error = %e, "could not store the session");
                return login_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &session,
                    &pending.next,
                    &signed_in.username,
                    "Your session could not be started.".into(),
                );
            }
            see_other(&pending.next)
        }
        LoginCodeOutcome::Wrong { remaining } => code_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &session,
            &accounts,
            &user,
            None,
            None,
            Some(match remaining {
                1 => "That code is not right. 1 attempt left.".to_owned(),
                n => format!("That code is not right. {n} attempts left."),
            }),
        ),
        LoginCodeOutcome::Limited(retry) => with_retry_after(
            code_page(
                StatusCode::TOO_MANY_REQUESTS,
                &session,
                &accounts,
                &user,
                None,
                None,
                Some(format!(
                    "Too many codes were tried from your network. Try again in {} seconds.",
                    retry.0
                )),
            ),
            retry.0,
        ),
        LoginCodeOutcome::Expired => abandon(
            &session,
            &pending,
            &user.username,
            "Your sign-in code has expired. Sign in again to get a new one.".into(),
        ),
        LoginCodeOutcome::Exhausted => abandon(
            &session,
            &pending,
            &user.username,
            "Too many wrong codes. Sign in again to get a new one.".into(),
        ),
        LoginCodeOutcome::Passed { .. } | LoginCodeOutcome::Invalid => abandon(
            &session,
            &pending,
            &user.username,
            "This sign-in code no longer works: it was used, or a newer one was sent. Sign in again.".into(),
        ),
    }
}

/// `POST /accounts/login/code/resend/`: emails a new code once the resend cooldown has passed
/// (429 with the wait before). The earlier code stops working.
pub async fn resend_code(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    let Some(mut pending) = pending(&session, &accounts) else {
        return see_other("/accounts/login/");
    };
    let user = match accounts.find(pending.user_id.clone()).await {
        Ok(Some(user)) if user.is_active => user,
        Ok(_) => return abandon(&session, &pending, "", "Please sign in again.".into()),
        Err(e) => return unavailable(&e),
    };
    match accounts
        .start_login_challenge(
            &PasswordLogin {
                began: pending.began.unwrap_or_else(crate::db::now),
                user: user.clone(),
            },
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
                return abandon(
                    &session,
                    &pending,
                    &user.username,
                    "Please sign in again.".into(),
                );
            }
            if challenge.emailed {
                flash(
                    &session,
                    SESSION_CODE_NOTICE,
                    "We emailed you a new code. The earlier one no longer works.".into(),
                );
            } else {
                flash(&session, SESSION_CODE_ALERT, not_sent());
            }
            see_other("/accounts/login/code/")
        }
        Err(LimitError::Limited(wait) | LimitError::Reached(wait)) => with_retry_after(
            code_page(
                StatusCode::TOO_MANY_REQUESTS,
                &session,
                &accounts,
                &user,
                None,
                Some(format!(
                    "You can ask for a new code in {} seconds. The code we sent last still works.",
                    wait.0
                )),
                None,
            ),
            wait.0,
        ),
        Err(LimitError::Db(e)) => unavailable(&e),
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

/// Drops the pending login and shows the login page (400) with `message`, keeping `next`.
fn abandon(
    session: &Session,
    pending: &PendingLogin,
    username: &str,
    message: String,
) -> HttpResponse {
    session.remove(SESSION_PENDING_LOGIN);
    login_page(
        StatusCode::BAD_REQUEST,
        session,
        &pending.next,
        username,
        message,
    )
}

fn code_page(
    status: StatusCode,
    session: &Session,
    accounts: &Accounts,
    user: &UserRow,
    notice: Option<String>,
    alert: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    render(
        status,
        &CodePage {
            csrf_token: csrf_token(session),
            address: masked(&user.email),
            minutes: accounts
                .settings()
                .otp_expiration
                .as_secs()
                .div_ceil(60)
                .max(1),
            notice,
            alert,
            error,
        },
    )
}

fn not_sent() -> String {
    "We could not send the email. Try again in a minute with “send a new code”.".into()
}

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

fn flash(session: &Session, key: &str, message: String) {
    if let Err(e) = session.insert(key, message) {
        tracing::error!(error = %e, "could not keep a notice for the next page");
    }
}

fn take(session: &Session, key: &str) -> Option<String> {
    session.remove_as::<String>(key).and_then(Result::ok)
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
