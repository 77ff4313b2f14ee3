//! A user's page's actions beyond its forms (issue 10 item 16, as Keycloak offers them): email
//! a password-reset link (`POST /admin/users/{id}/send_password_reset/`), email the
//! verification code again (`POST /admin/users/{id}/resend_verification/`), and delete the
//! user (`GET` asks, `POST` deletes: `/admin/users/{id}/delete/`).
//!
//! Who may is the accounts service's rule (`accounts::admin`, `accounts::privileges`): staff
//! act on ordinary accounts, superusers on any, nobody deletes their own; the user's page
//! offers only what the admin may do.

use actix_web::{web, HttpResponse};

use super::users::{find_user, USERS};
use super::{count_of, not_allowed, user_not_found, user_path};
use crate::accounts::admin::UserActionError;
use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::domain::PageRequest;
use crate::routes::chrome::{flash, page, ConfirmPage, ConfirmText, Notice};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, Staff};
use crate::routes::format::{capitalized, wait_phrase};
use crate::routes::http::see_other;

/// `POST /admin/users/{id}/send_password_reset/`: emails the user a password-reset link.
pub async fn send_password_reset(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    email_user(&admin, &accounts, &path, UserEmail::PasswordReset).await
}

/// `POST /admin/users/{id}/resend_verification/`: emails the user a new verification code and
/// activation link.
pub async fn resend_verification(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    email_user(&admin, &accounts, &path, UserEmail::Verification).await
}

/// The emails an admin sends a user from their page.
#[derive(Clone, Copy)]
enum UserEmail {
    PasswordReset,
    Verification,
}

/// Sends `which` to the user `id`, then back to their page with a notice naming the address.
async fn email_user(
    admin: &Staff,
    accounts: &Accounts,
    id: &str,
    which: UserEmail,
) -> Result<HttpResponse, PageError> {
    let user = find_user(accounts, id).await?;
    let (sent, what) = match which {
        UserEmail::PasswordReset => (
            accounts
                .send_password_reset_for(&admin.actor(), &user.id)
                .await,
            "A password-reset link was emailed to",
        ),
        UserEmail::Verification => (
            accounts
                .resend_verification_for(&admin.actor(), &user.id)
                .await,
            "A new verification email was sent to",
        ),
    };
    sent.map_err(action_failure)?;
    flash(
        admin.session(),
        Notice::success(format!("{what} {}.", user.email)),
    );
    Ok(see_other(&user_path(&user.id)))
}

/// `GET /admin/users/{id}/delete/`: asks before deleting the user (and says how many
/// applications they registered go with them).
pub async fn confirm_delete_user(
    admin: Staff,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
    let owned = clients
        .list_page(Some(user.id.clone()), None, PageRequest::new(None, 1))
        .await?
        .total;
    let applications = if owned == 0 {
        String::new()
    } else {
        format!(
            " The {} they registered {} deleted too, with {} tokens.",
            count_of(owned, "application"),
            if owned == 1 { "is" } else { "are" },
            if owned == 1 { "its" } else { "their" },
        )
    };
    Ok(page(&ConfirmPage {
        chrome: admin.chrome(USERS),
        confirm: ConfirmText {
            title: format!("Delete {}?", user.username),
            message: format!(
                "The account of {} is deleted with its tokens, sessions, authorizations and group memberships.{applications} The audit log keeps its events. This cannot be undone: to stop someone signing in for now, deactivate the account instead.",
                user.username
            ),
            action: format!("{}delete/", user_path(&user.id)),
            hidden: Vec::new(),
            button: "Delete user".to_owned(),
            cancel: user_path(&user.id),
        },
    }))
}

/// `POST /admin/users/{id}/delete/`: deletes the user and everything that is theirs.
pub async fn delete_user(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let deleted = accounts
        .delete_user(&admin.actor(), &path)
        .await
        .map_err(action_failure)?;
    flash(
        admin.session(),
        Notice::success(format!("The user {} was deleted.", deleted.username)),
    );
    Ok(see_other("/admin/users/"))
}

/// The page for a refused or failed user action.
fn action_failure(e: UserActionError) -> PageError {
    match e {
        UserActionError::NotFound => user_not_found(),
        UserActionError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        UserActionError::Invalid(message) => PageError::Unprocessable {
            title: "Not done",
            message: format!("{}.", capitalized(&message)),
        },
        UserActionError::TooSoon(retry) => PageError::too_many(
            retry.0,
            format!(
                "An email was sent to this user a moment ago. Try again {}.",
                wait_phrase(retry.0)
            ),
        ),
        UserActionError::Mail(e) => {
            tracing::error!(error = %e, "an admin's email to a user could not be sent");
            PageError::Unprocessable {
                title: "Not sent",
                message: "The mail server did not take the message. Try again in a moment."
                    .to_owned(),
            }
        }
        UserActionError::Db(e) => e.into(),
    }
}
