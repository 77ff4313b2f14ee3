//! The account page's sign-in code switch (email 2FA): `POST /account/login_code/` turns the
//! emailed one-time code at login on or off for the signed-in user.
//!
//! When the `accounts.login_otp` policy requires a code from the user (`"all"`, or `"staff"` for
//! a staff member), the switch is shown on and disabled, with the reason. Switching on needs a
//! verified email address (the codes go there) unless `accounts.email_verification` is `"off"`.
//! The change applies from the next sign-in; this session stays as it is.

use actix_web::{web, HttpResponse};
use secrecy::SecretString;

use crate::accounts::{Account, AccountError, Accounts};
use crate::config::{EmailVerification, LoginOtp};
use crate::routes::chrome::{flash, Notice};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::{capitalized, wait_phrase};
use crate::routes::http::see_other;

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
    pub fn for_user(accounts: &Accounts, user: &Account) -> Self {
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

/// `POST /account/login_code/` (`enabled=on` to switch on; absent to switch off). Switching
/// codes off weakens the account: it takes the current password, so a stolen session cannot
/// do it.
pub async fn set_login_code(
    user: SignedIn,
    Form(form): Form,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let on = form.get("enabled") == Some("on");
    let not_changed = |message: String| PageError::Unprocessable {
        title: "Sign-in codes not changed",
        message,
    };
    if !on && user.mfa_enabled {
        let current =
            SecretString::from(form.get("current_password").unwrap_or_default().to_owned());
        match accounts
            .confirm_password(&user.actor(), &user, current, "login_code_off")
            .await
        {
            Ok(()) => {}
            Err(AccountError::Locked(retry)) => {
                return Err(PageError::too_many(
                    retry.0,
                    format!(
                        "Too many wrong passwords. Try again {}.",
                        wait_phrase(retry.0)
                    ),
                ))
            }
            Err(AccountError::Db(e)) => return Err(e.into()),
            Err(_) => return Err(not_changed(
                "Enter your current password to switch sign-in codes off. Go back and try again."
                    .to_owned(),
            )),
        }
    }
    match accounts.set_login_code(&user.actor(), &user.id, on).await {
        Ok(_) => {
            let notice = if on {
                "From your next sign-in, we will email you a code to enter after your password."
            } else {
                "Sign-in codes are off: your password is enough to sign in."
            };
            flash(user.session(), Notice::success(notice));
            Ok(see_other("/account/"))
        }
        // Only a stale page or a hand-made request gets here: the page disables the switch in
        // these cases and says why.
        Err(AccountError::Invalid(message)) => Err(not_changed(capitalized(&message))),
        Err(AccountError::NotFound) => Err(PageError::not_found(
            "Account not found",
            "This account no longer exists.",
        )),
        Err(AccountError::Db(e)) => Err(e.into()),
        Err(AccountError::Forbidden(refusal)) => Err(PageError::forbidden(
            "Sign-in codes not changed",
            capitalized(&refusal.to_string()),
        )),
        Err(e) => {
            tracing::error!(error = %e, "switching sign-in codes failed");
            Err(PageError::Internal)
        }
    }
}
