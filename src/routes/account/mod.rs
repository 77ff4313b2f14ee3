//! Pages every signed-in user has for their own account, one file per resource:
//!
//! * this file — `/account/`: the page, the profile form, the password form, "sign out
//!   everywhere";
//! * [`sessions`] — the browser sessions listed on the page (end one, end the others);
//! * [`sign_in_codes`] — the emailed sign-in code switch;
//! * [`authorized`] — `/o/authorized_tokens/`: the applications the user authorized.
//!
//! Passwords are read into [`SecretString`]s and never written back into a form. After a change
//! the browser is redirected (POST → 303 → GET) and the page shows a one-time notice
//! ([`flash`]); a form with errors comes back with 422 and the message next to its field.

pub(super) mod authorized;
pub(super) mod sessions;
pub(super) mod sign_in_codes;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::{Account, AccountError, Accounts, Profile};
use crate::discord::{AccountDiscord, DiscordConnector};
use crate::domain::Email;
use crate::oauth::Params;
use crate::routes::browser::keep_session;
use crate::routes::chrome::{
    flash, page, render, Chrome, ConfirmPage, ConfirmText, Notice, Section,
};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::{capitalized, wait_phrase, Moment};
use crate::routes::http::see_other;
use crate::routes::WebConfig;
use sessions::{session_lines, SessionLine};

/// The profile form's values: the stored ones, or what was submitted.
struct ProfileValues {
    email: String,
    first_name: String,
    last_name: String,
}

impl ProfileValues {
    fn of(user: &Account) -> Self {
        Self {
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "account/account.html")]
struct AccountPage<'a> {
    chrome: Chrome,
    user: &'a Account,
    profile: ProfileValues,
    errors: FieldErrors,
    created: Moment,
    last_login: Option<Moment>,
    min_password_chars: usize,
    max_password_chars: usize,
    /// The user's live browser sessions, this one first.
    sessions: Vec<SessionLine>,
    /// The sign-in code switch.
    login_code: sign_in_codes::LoginCodeSwitch,
    /// The Discord server (invite link, and whether to sign in with Discord again), when the
    /// Discord connector is on.
    discord: Option<AccountDiscord>,
}

impl AccountPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }
}

/// `GET /account/`: the user's profile, password and sessions.
pub async fn show_account(
    user: SignedIn,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
    discord: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let profile = ProfileValues::of(&user);
    account_page(
        &user,
        &accounts,
        &web,
        &discord,
        profile,
        FieldErrors::new(),
    )
    .await
}

/// `GET /account/profile/` and `GET /account/password/` (the forms' targets, opened by hand or
/// by reloading a page that showed an error): back to the account page.
pub async fn back_to_account() -> HttpResponse {
    see_other("/account/")
}

/// `POST /account/profile/`: saves the email and names. A new email address takes the current
/// password (the service asks for it).
pub async fn update_profile(
    user: SignedIn,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
    discord: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let field = |name: &str| form.get(name).unwrap_or_default().to_owned();
    let submitted = ProfileValues {
        email: field("email"),
        first_name: field("first_name"),
        last_name: field("last_name"),
    };
    // The service checks the address too; parsing it here tells an email error from a name
    // error, so each is shown at its own field.
    if let Err(message) = Email::parse(&submitted.email) {
        let errors = FieldErrors::one("email", message);
        return account_page(&user, &accounts, &web, &discord, submitted, errors).await;
    }
    let profile = Profile {
        email: submitted.email.clone(),
        first_name: submitted.first_name.clone(),
        last_name: submitted.last_name.clone(),
        current_password: Some(SecretString::from(field("current_password"))),
    };
    let errors = match accounts
        .update_profile(&user.actor(), &user.id, profile)
        .await
    {
        Ok(_) => {
            flash(user.session(), Notice::success("Your profile was saved."));
            return Ok(see_other("/account/"));
        }
        Err(AccountError::Taken) => {
            FieldErrors::one("email", "Another account already uses this email address.")
        }
        Err(AccountError::WrongPassword) => FieldErrors::one(
            "profile_password",
            "Enter your current password to change your email address.",
        ),
        Err(AccountError::Locked(retry)) => FieldErrors::one(
            "profile_password",
            format!(
                "Too many wrong passwords. Try again {}.",
                wait_phrase(retry.0)
            ),
        ),
        Err(AccountError::Invalid(message)) => FieldErrors::one("names", message),
        Err(e) => return Err(account_failure(e)),
    };
    account_page(&user, &accounts, &web, &discord, submitted, errors).await
}

/// `POST /account/password/`: changes the password after checking the current one. The user's
/// other browser sessions end; this one stays signed in. With `sign_out_applications` ticked
/// (the default) every OAuth token of the user is revoked as well.
pub async fn change_password(
    user: SignedIn,
    Form(form): Form<Params>,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
    discord: web::Data<DiscordConnector>,
) -> Result<HttpResponse, PageError> {
    let secret = |name: &str| SecretString::from(form.get(name).unwrap_or_default().to_owned());
    let (current, new, confirm) = (
        secret("current_password"),
        secret("new_password"),
        secret("confirm_password"),
    );
    let stored = ProfileValues::of(&user);
    if new.expose_secret() != confirm.expose_secret() {
        let errors = FieldErrors::one(
            "confirm_password",
            "The two new passwords are not the same.",
        );
        return account_page(&user, &accounts, &web, &discord, stored, errors).await;
    }
    // "Also sign out of applications" is on unless the form that offered it came back unticked:
    // a form without the box (a page from before it existed) signs out too.
    let sign_out_applications =
        form.contains("sign_out_applications") || !form.contains("sign_out_applications_offered");
    let errors = match accounts
        .change_password(&user.actor(), &user.id, current, new, sign_out_applications)
        .await
    {
        Ok(cut) => {
            if let Err(e) = keep_session(user.session(), &accounts, &user.id, cut).await {
                // The user is signed out here too, and can sign in with the new password.
                tracing::error!(error = %e, "could not keep the session after a password change");
            }
            let notice = if sign_out_applications {
                "Your password was changed. You were signed out in every other browser, and every application you authorized has to ask you to sign in again."
            } else {
                "Your password was changed. You were signed out in every other browser. Applications you authorized keep their access; you can revoke it on the Authorized apps page."
            };
            flash(user.session(), Notice::success(notice));
            return Ok(see_other("/account/"));
        }
        Err(AccountError::WrongPassword) => {
            FieldErrors::one("current_password", "This is not your current password.")
        }
        Err(AccountError::Invalid(message)) => {
            FieldErrors::one("new_password", capitalized(&message))
        }
        Err(AccountError::Locked(retry)) => FieldErrors::one(
            "current_password",
            format!(
                "Too many wrong passwords. Try again {}.",
                wait_phrase(retry.0)
            ),
        ),
        Err(e) => return Err(account_failure(e)),
    };
    account_page(&user, &accounts, &web, &discord, stored, errors).await
}

/// `GET /account/sessions/end/`: asks for confirmation.
pub async fn confirm_end_sessions(user: SignedIn) -> HttpResponse {
    page(&ConfirmPage {
        chrome: user.chrome(Section::Account),
        confirm: ConfirmText {
            title: "Sign out everywhere?".to_owned(),
            message: "You will be signed out in every browser, this one included, and every application you have authorized loses its tokens. Applications will have to ask you to sign in again.".to_owned(),
            action: "/account/sessions/end/".to_owned(),
            hidden: Vec::new(),
            button: "Sign out everywhere".to_owned(),
            cancel: "/account/".to_owned(),
        },
    })
}

/// `POST /account/sessions/end/`: revokes every token of the user, ends every session, and
/// signs this browser out.
pub async fn end_sessions(
    user: SignedIn,
    _form: Form,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    accounts
        .end_sessions_and_tokens(&user.actor(), &user.id)
        .await
        .map_err(account_failure)?;
    user.session().purge();
    Ok(see_other("/accounts/login/"))
}

async fn account_page(
    user: &SignedIn,
    accounts: &Accounts,
    web: &WebConfig,
    discord: &DiscordConnector,
    profile: ProfileValues,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let sessions = session_lines(user.session(), accounts, web, &user.id).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(render(
        status,
        &AccountPage {
            chrome: user.chrome(Section::Account),
            user: user.user(),
            profile,
            errors,
            created: Moment::of(&user.date_joined),
            last_login: user.last_login.as_ref().map(Moment::of),
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
            sessions,
            login_code: sign_in_codes::LoginCodeSwitch::for_user(accounts, user),
            discord: discord.account_view(&user.id).await?,
        },
    ))
}

/// The page for an account error no form field explains.
fn account_failure(e: AccountError) -> PageError {
    match e {
        AccountError::Db(e) => e.into(),
        AccountError::Hash(e) if e.is_busy() => PageError::Busy,
        // The user was deleted between the sign-in check and the change.
        AccountError::NotFound => {
            PageError::not_found("Account not found", "This account no longer exists.")
        }
        AccountError::Forbidden(refusal) => PageError::forbidden(
            "Not allowed",
            format!("{}.", capitalized(&refusal.to_string())),
        ),
        other => {
            tracing::error!(error = %other, "account change failed");
            PageError::Internal
        }
    }
}
