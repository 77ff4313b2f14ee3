//! Pages every signed-in user has: the applications they have authorized
//! (django-oauth-toolkit's `/o/authorized_tokens/`), and their account (`/account/`): profile,
//! password, and "sign out everywhere".
//!
//! Only the user's own authorizations are shown or revocable: any other `client_id` answers 404,
//! as if it did not exist. Passwords are read into [`SecretString`]s and never written back into
//! a form. After a change, the browser is redirected (POST → 303 → GET) and the page shows a
//! one-time notice kept in the session.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};

use super::account_sessions::{session_lines, SessionLine};
use super::support::{
    actor, csrf_token, error_page, keep_session, page_number, read_page_form, render,
    require_login, see_other, show_time, unavailable, PageNav, WebConfig,
};
use super::support::{busy_page, capitalized};
use crate::accounts::{AccountError, Accounts, Profile};
use crate::clients::{split_list, Clients};
use crate::db::users::UserRow;
use crate::domain::{Email, Page, PageRequest};
use crate::oauth::grants::AuthorizedApp;
use crate::oauth::{OAuth, Params};

/// Session key of the notice the authorized-apps page shows once.
const SESSION_AUTHORIZED_NOTICE: &str = "authorized_notice";
/// Session key of the notice the account page shows once.
pub(super) const SESSION_ACCOUNT_NOTICE: &str = "account_notice";

/// A scope with the words the consent page used for it.
struct ScopeLine {
    name: String,
    /// `None` for a scope no longer in the configuration.
    description: Option<String>,
}

/// One row of the authorized-apps list.
struct AuthorizedRow {
    client_id: String,
    client_name: String,
    scopes: Vec<ScopeLine>,
    /// The RFC 8707 resources (APIs) consented to.
    resources: Vec<String>,
    /// When the user first consented; `None` when the application only holds tokens.
    authorized: Option<String>,
    updated: Option<String>,
    active_tokens: i64,
}

impl AuthorizedRow {
    fn new(app: AuthorizedApp, known: &BTreeMap<String, String>) -> Self {
        Self {
            scopes: scope_lines(&app.scope, known),
            resources: split_list(&app.resources),
            authorized: app.authorized_at.as_ref().map(show_time),
            updated: app.updated_at.as_ref().map(show_time),
            active_tokens: app.active_tokens,
            client_id: app.client_id,
            client_name: app.client_name,
        }
    }
}

#[derive(Template)]
#[template(path = "account/authorized.html")]
struct AuthorizedPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    apps: Vec<AuthorizedRow>,
    notice: Option<String>,
    page: PageNav,
}

#[derive(Template)]
#[template(path = "account/confirm.html")]
struct ConfirmPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    title: &'a str,
    message: String,
    action: String,
    button: &'a str,
    cancel: &'a str,
}

/// The profile form's values: the stored ones, or what was submitted.
struct ProfileValues {
    email: String,
    first_name: String,
    last_name: String,
}

/// A message for one field of one of the page's forms.
struct FieldError {
    field: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "account/account.html")]
struct AccountPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    user: &'a UserRow,
    profile: ProfileValues,
    error: Option<FieldError>,
    notice: Option<String>,
    created: String,
    last_login: Option<String>,
    min_password_chars: usize,
    max_password_chars: usize,
    /// The user's live browser sessions, this one first.
    sessions: Vec<SessionLine>,
    /// The sign-in code switch (`routes/account_mfa.rs`).
    login_code: super::account_mfa::LoginCodeSwitch,
}

impl AccountPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

/// `GET /o/authorized_tokens/`: the applications the user has authorized, with their scopes
/// and active tokens.
pub async fn list_authorized_apps(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let apps = match oauth.authorized_apps(&user.id).await {
        Ok(apps) => apps,
        Err(e) => return unavailable(&e),
    };
    let known = clients.known_scopes();
    // One row per application the user authorized: few enough to page through in memory.
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let request = PageRequest::new(page_number(&params), web.page_size);
    let total = i64::try_from(apps.len()).unwrap_or(i64::MAX);
    let on_page = apps
        .into_iter()
        .skip(usize::try_from(request.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(request.size).unwrap_or(usize::MAX))
        .map(|app| AuthorizedRow::new(app, known))
        .collect();
    let page = Page::new(on_page, request, total);
    render(
        StatusCode::OK,
        &AuthorizedPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: user.has_staff_access(),
            section: "authorized",
            page: PageNav::new(&page, "/o/authorized_tokens/", &[]),
            apps: page.items,
            notice: take_notice(&session, SESSION_AUTHORIZED_NOTICE),
        },
    )
}

/// `GET /o/authorized_tokens/{client_id}/revoke/`: asks for confirmation.
pub async fn confirm_revoke_authorization(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, app) = match authorized_app(&req, &path, &session, &accounts, &oauth, &web).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let tokens = match app.active_tokens {
        0 => "It holds no active tokens.".to_owned(),
        1 => "Its 1 active token is revoked at once.".to_owned(),
        n => format!("Its {n} active tokens are revoked at once."),
    };
    render(
        StatusCode::OK,
        &ConfirmPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: user.has_staff_access(),
            section: "authorized",
            title: "Revoke access?",
            message: format!(
                "“{}” will no longer be able to access your account. {tokens} If you use it again, it will have to ask for your permission again.",
                app.client_name
            ),
            action: revoke_path(&app.client_id),
            button: "Revoke access",
            cancel: "/o/authorized_tokens/",
        },
    )
}

/// `POST /o/authorized_tokens/{client_id}/revoke/`: forgets the consent and revokes the
/// application's tokens for this user.
pub async fn revoke_authorization(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, app) = match authorized_app(&req, &path, &session, &accounts, &oauth, &web).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match oauth
        .revoke_authorization(&actor(&req, &user), &user.id, &app.client_id)
        .await
    {
        Ok(_) => {
            // `false` means a concurrent request revoked it first: the outcome is the same.
            set_notice(
                &session,
                SESSION_AUTHORIZED_NOTICE,
                format!(
                    "“{}” no longer has access to your account.",
                    app.client_name
                ),
            );
            see_other("/o/authorized_tokens/")
        }
        Err(e) => unavailable(&e),
    }
}

/// `GET /account/`: the user's profile, password and sessions.
pub async fn show_account(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let profile = ProfileValues {
        email: user.email.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
    };
    let notice = take_notice(&session, SESSION_ACCOUNT_NOTICE);
    account_page(&session, &accounts, &web, &user, profile, None, notice).await
}

/// `GET /account/profile/` and `GET /account/password/` (the forms' targets, opened by hand or
/// by reloading a page that showed an error): back to the account page.
pub async fn back_to_account() -> HttpResponse {
    see_other("/account/")
}

/// `POST /account/profile/`: saves the email and names.
pub async fn update_profile(
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
    let submitted = ProfileValues {
        email: form.get("email").unwrap_or_default().to_owned(),
        first_name: form.get("first_name").unwrap_or_default().to_owned(),
        last_name: form.get("last_name").unwrap_or_default().to_owned(),
    };
    // The service checks the address too; parsing it here tells an email error from a name
    // error, so each is shown at its own field.
    if let Err(message) = Email::parse(&submitted.email) {
        let error = field_error("email", message);
        return account_page(
            &session,
            &accounts,
            &web,
            &user,
            submitted,
            Some(error),
            None,
        )
        .await;
    }
    // A new email address receives reset links and login codes: the service takes the current
    // password for it, so a stolen session cannot turn into a stolen account.
    let profile = Profile {
        email: submitted.email.clone(),
        first_name: submitted.first_name.clone(),
        last_name: submitted.last_name.clone(),
        current_password: Some(SecretString::from(
            form.get("current_password").unwrap_or_default().to_owned(),
        )),
    };
    match accounts
        .update_profile(&actor(&req, &user), &user.id, profile)
        .await
    {
        Ok(_) => {
            set_notice(
                &session,
                SESSION_ACCOUNT_NOTICE,
                "Your profile was saved.".to_owned(),
            );
            see_other("/account/")
        }
        Err(AccountError::Taken) => {
            let error = field_error(
                "email",
                "Another account already uses this email address.".to_owned(),
            );
            account_page(
                &session,
                &accounts,
                &web,
                &user,
                submitted,
                Some(error),
                None,
            )
            .await
        }
        Err(AccountError::WrongPassword) => {
            let error = field_error(
                "profile_password",
                "Enter your current password to change your email address.".to_owned(),
            );
            account_page(
                &session,
                &accounts,
                &web,
                &user,
                submitted,
                Some(error),
                None,
            )
            .await
        }
        Err(AccountError::Locked(retry)) => {
            let error = field_error(
                "profile_password",
                format!(
                    "Too many wrong passwords. Try again in {} seconds.",
                    retry.0
                ),
            );
            account_page(
                &session,
                &accounts,
                &web,
                &user,
                submitted,
                Some(error),
                None,
            )
            .await
        }
        Err(AccountError::Invalid(message)) => {
            let error = field_error("names", message);
            account_page(
                &session,
                &accounts,
                &web,
                &user,
                submitted,
                Some(error),
                None,
            )
            .await
        }
        Err(e) => account_failure(&e),
    }
}

/// `POST /account/password/`: changes the password after checking the current one. The user's
/// other browser sessions end; this one stays signed in. With `sign_out_applications` ticked
/// (the default) every OAuth token of the user is revoked as well.
pub async fn change_password(
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
    let secret = |name: &str| SecretString::from(form.get(name).unwrap_or_default().to_owned());
    let (current, new, confirm) = (
        secret("current_password"),
        secret("new_password"),
        secret("confirm_password"),
    );
    let stored = ProfileValues {
        email: user.email.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
    };
    if new.expose_secret() != confirm.expose_secret() {
        let error = field_error(
            "confirm_password",
            "The two new passwords are not the same.".to_owned(),
        );
        return account_page(&session, &accounts, &web, &user, stored, Some(error), None).await;
    }
    // "Also sign out of applications" is on unless the form that offered it came back unticked:
    // a form without the box (a page from before it existed) signs out too.
    let sign_out_applications =
        form.contains("sign_out_applications") || !form.contains("sign_out_applications_offered");
    let error = match accounts
        .change_password(
            &actor(&req, &user),
            &user.id,
            current,
            new,
            sign_out_applications,
        )
        .await
    {
        Ok(cut) => {
            if let Err(e) = keep_session(&session, &accounts, &user.id, cut).await {
                // The user is signed out here too, and can sign in with the new password.
                tracing::error!(error = %e, "could not keep the session after a password change");
            }
            let notice = if sign_out_applications {
                "Your password was changed. You were signed out in every other browser, and every application you authorized has to ask you to sign in again."
            } else {
                "Your password was changed. You were signed out in every other browser. Applications you authorized keep their access; you can revoke it on the Authorized apps page."
            };
            set_notice(&session, SESSION_ACCOUNT_NOTICE, notice.to_owned());
            return see_other("/account/");
        }
        Err(AccountError::WrongPassword) => field_error(
            "current_password",
            "This is not your current password.".to_owned(),
        ),
        Err(AccountError::Invalid(message)) => field_error("new_password", capitalized(&message)),
        Err(AccountError::Locked(retry)) => field_error(
            "current_password",
            format!(
                "Too many wrong passwords. Try again in {} seconds.",
                retry.0
            ),
        ),
        Err(e) => return account_failure(&e),
    };
    account_page(&session, &accounts, &web, &user, stored, Some(error), None).await
}

/// `GET /account/sessions/end/`: asks for confirmation.
pub async fn confirm_end_sessions(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    render(
        StatusCode::OK,
        &ConfirmPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: user.has_staff_access(),
            section: "account",
            title: "Sign out everywhere?",
            message: "You will be signed out in every browser, this one included, and every application you have authorized loses its tokens. Applications will have to ask you to sign in again.".to_owned(),
            action: "/account/sessions/end/".to_owned(),
            button: "Sign out everywhere",
            cancel: "/account/",
        },
    )
}

/// `POST /account/sessions/end/`: revokes every token of the user, ends every session, and
/// signs this browser out.
pub async fn end_sessions(
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
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match accounts
        .end_sessions_and_tokens(&actor(&req, &user), &user.id)
        .await
    {
        Ok(_) => {
            session.purge();
            see_other("/accounts/login/")
        }
        Err(e) => account_failure(&e),
    }
}

fn revoke_path(client_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    format!("/o/authorized_tokens/{encoded}/revoke/")
}

/// The signed-in user and their authorization of `client_id`; 404 when they have none.
async fn authorized_app(
    req: &HttpRequest,
    client_id: &str,
    session: &Session,
    accounts: &Accounts,
    oauth: &OAuth,
    web: &WebConfig,
) -> Result<(UserRow, AuthorizedApp), HttpResponse> {
    let user = require_login(req, session, accounts, web).await?;
    match oauth.authorized_apps(&user.id).await {
        Ok(apps) => match apps.into_iter().find(|a| a.client_id == client_id) {
            Some(app) => Ok((user, app)),
            None => Err(error_page(
                StatusCode::NOT_FOUND,
                "Application not found",
                "You have not authorized an application at this address.",
            )),
        },
        Err(e) => Err(unavailable(&e)),
    }
}

/// The scopes of a stored, space-separated scope string, with their descriptions.
fn scope_lines(scope: &str, known: &BTreeMap<String, String>) -> Vec<ScopeLine> {
    scope
        .split_whitespace()
        .map(|name| ScopeLine {
            name: name.to_owned(),
            description: known.get(name).cloned(),
        })
        .collect()
}

fn field_error(field: &'static str, message: String) -> FieldError {
    FieldError { field, message }
}

pub(super) fn set_notice(session: &Session, key: &str, message: String) {
    if let Err(e) = session.insert(key, message) {
        tracing::error!(error = %e, "could not keep a notice for the next page");
    }
}

/// The notice stored under `key`, removed from the session: it is shown once.
fn take_notice(session: &Session, key: &str) -> Option<String> {
    session.remove_as::<String>(key).and_then(Result::ok)
}

async fn account_page(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
    user: &UserRow,
    profile: ProfileValues,
    error: Option<FieldError>,
    notice: Option<String>,
) -> HttpResponse {
    let sessions = match session_lines(session, accounts, web, &user.id).await {
        Ok(lines) => lines,
        Err(e) => return unavailable(&e),
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &AccountPage {
            who: &user.username,
            csrf_token: csrf_token(session),
            is_staff: user.has_staff_access(),
            section: "account",
            user,
            profile,
            error,
            notice,
            created: show_time(&user.date_joined),
            last_login: user.last_login.as_ref().map(show_time),
            min_password_chars: accounts.password_policy().min_chars,
            max_password_chars: accounts.password_policy().max_chars,
            sessions,
            login_code: super::account_mfa::LoginCodeSwitch::for_user(accounts, user),
        },
    )
}

/// The page for an account error no form field explains.
fn account_failure(e: &AccountError) -> HttpResponse {
    match e {
        AccountError::Db(e) => unavailable(e),
        AccountError::Hash(e) if e.is_busy() => busy_page(),
        // The user was deleted between the login check and the change.
        AccountError::NotFound => error_page(
            StatusCode::NOT_FOUND,
            "Account not found",
            "This account no longer exists.",
        ),
        AccountError::Forbidden(refusal) => error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("{}.", capitalized(&refusal.to_string())),
        ),
        other => {
            tracing::error!(error = %other, "account change failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Your account could not be changed. Please try again in a moment.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{capitalized, scope_lines};

    #[test]
    fn scopes_get_their_descriptions_and_unknown_ones_none() {
        let known = [("profile".to_owned(), "See your name".to_owned())].into();
        let lines = scope_lines("profile  gone", &known);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].description.as_deref(), Some("See your name"));
        assert_eq!(lines[1].name, "gone");
        assert!(lines[1].description.is_none());
    }

    #[test]
    fn messages_start_with_a_capital() {
        assert_eq!(capitalized("the password must"), "The password must");
        assert_eq!(capitalized(""), "");
    }
}
