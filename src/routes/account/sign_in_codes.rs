//! The account page's sign-in code switch (email 2FA): `POST /account/login_code/` turns the
//! emailed one-time code at login on or off for the signed-in user.
//!
//! When the `accounts.login_otp` policy requires a code from the user (`"all"`, or `"staff"` for
//! a staff member), the switch is shown on and disabled, with the reason. Switching on needs a
//! verified email address (the codes go there) unless `accounts.email_verification` is `"off"`.
//! The change applies from the next sign-in; this session stays as it is.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{set_notice, SESSION_ACCOUNT_NOTICE};
use crate::accounts::{AccountError, Accounts};
use crate::config::{EmailVerification, LoginOtp};
use crate::db::users::UserRow;
use crate::routes::support::capitalized;
use crate::routes::support::{
    actor, error_page, read_page_form, require_login, see_other, unavailable, WebConfig,
};

/// What the account page shows for the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginCodeSwitch {
    /// Whether sign-in asks for a code (the user's choice or the policy).
    pub on: bool,
    /// Why the switch cannot be used, when it cannot: the policy requires codes, or the email
    /// address is not verified yet.
    pub locked_because: Option<&'static str>,
}

impl LoginCodeSwitch {
    /// The switch as `user` sees it under the server's policy.
    #[must_use]
    pub fn for_user(accounts: &Accounts, user: &UserRow) -> Self {
        let settings = accounts.settings();
        let locked_because = if accounts.login_code_forced(user) {
            Some(match settings.login_otp {
                LoginOtp::All => "This server asks every account for a code at sign-in.",
                _ => "This server asks staff accounts for a code at sign-in.",
            })
        } else if !user.mfa_enabled
            && !user.email_verified
            && settings.email_verification != EmailVerification::Off
        {
            Some("Verify your email address first: the codes are sent there.")
        } else {
            None
        };
        Self {
            on: accounts.needs_login_code(user),
            locked_because,
        }
    }
}

/// `POST /account/login_code/` (`enabled=on` to switch on; absent to switch off).
pub async fn set_login_code(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let on = form.get("enabled") == Some("on");
    // Switching codes off weakens the account: it takes the password, so a stolen session
    // cannot do it.
    if !on && user.mfa_enabled {
        let current = secrecy::SecretString::from(
            form.get("current_password").unwrap_or_default().to_owned(),
        );
        match accounts
            .confirm_password(&actor(&req, &user), &user, current, "login_code_off")
            .await
        {
            Ok(()) => {}
            Err(AccountError::Locked(retry)) => {
                return error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Sign-in codes not changed",
                    &format!(
                        "Too many wrong passwords. Try again in {} seconds.",
                        retry.0
                    ),
                )
            }
            Err(AccountError::Db(e)) => return unavailable(&e),
            Err(_) => return error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Sign-in codes not changed",
                "Enter your current password to switch sign-in codes off. Go back and try again.",
            ),
        }
    }
    match accounts
        .set_login_code(&actor(&req, &user), &user.id, on)
        .await
    {
        Ok(_) => {
            let notice = if on {
                "From your next sign-in, we will email you a code to enter after your password."
            } else {
                "Sign-in codes are off: your password is enough to sign in."
            };
            set_notice(&session, SESSION_ACCOUNT_NOTICE, notice.to_owned());
            see_other("/account/")
        }
        // Only a stale page or a hand-made request gets here: the page disables the switch in
        // these cases and says why.
        Err(AccountError::Invalid(message)) => error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Sign-in codes not changed",
            &capitalized(&message),
        ),
        Err(AccountError::NotFound) => error_page(
            StatusCode::NOT_FOUND,
            "Account not found",
            "This account no longer exists.",
        ),
        Err(AccountError::Db(e)) => unavailable(&e),
        Err(AccountError::Forbidden(refusal)) => error_page(
            StatusCode::FORBIDDEN,
            "Sign-in codes not changed",
            &capitalized(&refusal.to_string()),
        ),
        Err(e) => {
            tracing::error!(error = %e, "switching sign-in codes failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Your account could not be changed. Please try again in a moment.",
            )
        }
    }
}
