//! The hosted login area, one file per step:
//!
//! * this file — `/accounts/login/` (sign-in) and `/accounts/logout/` (sign-out);
//! * [`code`] — the emailed one-time code step after the password;
//! * [`register`] — registration; [`verify`] — email verification;
//! * [`reset`] — password reset;
//! * [`upstream`] — sign-in through upstream identity providers, and [`discord`] — the seeds'
//!   Discord paths.
//!
//! The pages are for visitors: their chrome is [`Chrome::visitor`] (or the signed-in chrome on
//! the pages a signed-in user may open too). A login's session rules live in
//! [`crate::routes::browser`]: a login overtaken by a password change, reset or sign-out gets
//! no session ([`SessionError::Outdated`]).
//!
//! When the sign-in page is reached from an authorization request (`next` is an
//! `/o/authorize/?…client_id=…` URL), it names the application the user is signing in to.

pub(super) mod code;
pub(super) mod discord;
pub(super) mod register;
pub(super) mod reset;
pub(super) mod upstream;
pub(super) mod verify;

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;

use crate::accounts::{Accounts, LoginError};
use crate::clients::Clients;
use crate::metrics::{self, LoginOutcome, LoginVia};
use crate::oauth::Params;
use crate::routes::browser::{
    current_user, log_out, safe_next, start_session, LoginBasis, SessionError,
};
use crate::routes::chrome::{render, Brand, Chrome};
use crate::routes::errors::PageError;
use crate::routes::extract::Form;
use crate::routes::format::wait_phrase;
use crate::routes::http::{peer_ip, see_other, with_retry_after};
use crate::routes::WebConfig;
use crate::upstream::ProviderButton;

#[derive(Template)]
#[template(path = "login/login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    next: &'a str,
    username: &'a str,
    error: Option<String>,
    /// The application whose authorization request sent the user here, if it is known.
    client_name: Option<String>,
    /// The upstream identity providers to offer ("Sign in with …").
    providers: &'a [ProviderButton],
}

/// What the sign-in page shows besides its form: where it continues, for which application,
/// and under which brand.
pub(super) struct SignInContext<'a> {
    /// Where to continue (a checked local path).
    pub next: &'a str,
    /// The name of the application asking, when `next` is an authorization request.
    pub client_name: Option<String>,
    /// The product name, logo and accent of the page's chrome.
    pub brand: Arc<Brand>,
    /// The upstream identity providers the page offers (none unless
    /// [`SignInContext::with_providers`]).
    pub providers: Arc<[ProviderButton]>,
}

impl<'a> SignInContext<'a> {
    /// The context of a sign-in continuing to `next` (already checked by [`safe_next`]): the
    /// client is looked up when `next` is an authorization request (`/o/authorize/?…`);
    /// an unknown `client_id` shows nothing.
    pub async fn of(next: &'a str, clients: &Clients, brand: &Arc<Brand>) -> Self {
        Self {
            next,
            client_name: requesting_client(next, clients).await,
            brand: Arc::clone(brand),
            providers: Arc::from(Vec::new()),
        }
    }

    /// The same context offering the enabled upstream providers as they are now (the
    /// configuration file's and the console's).
    #[must_use]
    pub fn with_providers(self, web: &WebConfig) -> Self {
        Self {
            providers: web.upstream.buttons().into(),
            ..self
        }
    }
}

/// The name of the client whose authorization request (RFC 6749 §4.1.1) `next` is, if any.
async fn requesting_client(next: &str, clients: &Clients) -> Option<String> {
    let query = next
        .strip_prefix("/o/authorize/?")
        .or_else(|| next.strip_prefix("/o/authorize?"))?;
    let params = Params::from_query(query).ok()?;
    let client_id = params.get("client_id").filter(|id| !id.is_empty())?;
    match clients.find(client_id).await {
        Ok(client) => client.map(|c| c.name().to_owned()),
        Err(e) => {
            // The page works without the name.
            tracing::warn!(error = %e, "could not look up the client of a sign-in");
            None
        }
    }
}

/// `GET /accounts/login/?next=PATH[&login_hint=NAME]` (`login_hint` pre-fills the username,
/// OIDC Core §3.1.2.1).
pub async fn show_login_form(
    req: HttpRequest,
    session: Session,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let hint: String = params
        .get("login_hint")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(254)
        .collect();
    let context = SignInContext::of(safe_next(params.get("next")), &clients, &web.brand)
        .await
        .with_providers(&web);
    login_page(StatusCode::OK, &session, &context, &hint, None)
}

/// `POST /accounts/login/`: checks the password, starts a fresh session and continues to
/// `next` (a local path only). A user who must enter an emailed code goes to the code step
/// first ([`code`]); an unverified one, when verification is mandatory, to the verify page.
pub async fn submit_login(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or_default();
    let password = SecretString::from(form.get("password").unwrap_or_default().to_owned());
    // When the check began, for a login refused as unverified: the login after verification
    // counts as begun then (`Accounts::check_login` keeps its own for the other outcomes).
    let began = crate::db::now();
    let refused = match accounts
        .check_login(username, password, peer_ip(&req))
        .await
        .inspect(|_| metrics::login(LoginVia::LoginPage, LoginOutcome::Success))
        .inspect_err(|e| metrics::login(LoginVia::LoginPage, e.outcome()))
    {
        // Email 2FA (login/code.rs): the code is emailed, the login waits for it.
        Ok(login) if accounts.needs_login_code(login.user()) => {
            return code::begin(
                &req,
                &session,
                &accounts,
                &clients,
                &web.brand,
                code::FirstStep::Password(&login),
                next,
            )
            .await
        }
        Ok(login) => {
            // A new session on login (no fixation), with a new CSRF token; none when a
            // password change or sign-out overtook the check.
            match start_session(
                &req,
                &session,
                &accounts,
                &login.user().id,
                "pwd",
                LoginBasis::from(&login),
            )
            .await
            {
                Ok(()) => return Ok(see_other(next)),
                Err(SessionError::Outdated) => Refusal::wrong_password(),
                Err(e) => {
                    tracing::error!(error = %e, "could not store the session");
                    Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Your session could not be started.",
                    )
                }
            }
        }
        Err(LoginError::InvalidCredentials) => Refusal::wrong_password(),
        Err(LoginError::Locked(retry)) => Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Too many failed attempts. Try again {}.",
                wait_phrase(retry.0)
            ),
            retry_after: Some(retry.0),
        },
        // Mandatory verification (login/verify.rs): a new code, then the verify page.
        Err(LoginError::Unverified(user)) => {
            return verify::refuse_unverified_login(&session, &accounts, &user, next, began).await
        }
        Err(LoginError::Db(e)) => return Err(e.into()),
        Err(LoginError::Hash(e)) => {
            tracing::error!(error = %e, "the password could not be checked");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Your password could not be checked. Please try again in a moment.",
            )
        }
    };
    let context = SignInContext::of(next, &clients, &web.brand)
        .await
        .with_providers(&web);
    Ok(refused.page(&session, &context, username))
}

/// A sign-in refused: the sign-in page again, with the message, answered with `status` (and
/// `Retry-After` for a limit, RFC 9110 §10.2.3).
pub(super) struct Refusal {
    /// The answer's status.
    pub status: StatusCode,
    /// What the page says.
    pub message: String,
    /// Seconds until a retry makes sense, for a limit.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The one answer for a wrong name or password — and for a login that a password change
    /// or sign-out overtook.
    fn wrong_password() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid username or password.")
    }

    /// The sign-in page with this refusal.
    pub fn page(
        self,
        session: &Session,
        context: &SignInContext<'_>,
        username: &str,
    ) -> HttpResponse {
        let page = login_page(self.status, session, context, username, Some(self.message));
        match self.retry_after {
            Some(seconds) => with_retry_after(page, seconds),
            None => page,
        }
    }
}

/// The sign-in page, answered with `status`.
fn login_page(
    status: StatusCode,
    session: &Session,
    context: &SignInContext<'_>,
    username: &str,
    error: Option<String>,
) -> HttpResponse {
    render(
        status,
        &LoginPage {
            chrome: Chrome::visitor(session, &context.brand),
            next: context.next,
            username,
            error,
            client_name: context.client_name.clone(),
            providers: &context.providers,
        },
    )
}

/// `POST /accounts/logout/[next=PATH]`: ends the session. Without `next` it continues to the
/// home page; with one (a local path: the consent page's "Use another account" sends its
/// authorization request) to the sign-in page, which then continues there, so the request
/// is kept.
pub async fn logout(
    req: HttpRequest,
    session: Session,
    Form(form): Form,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    if let Some(user) = current_user(&session, &accounts, &web).await? {
        log_out(&req, &session, &accounts, &user.id, false).await?;
    }
    session.purge();
    Ok(match form.get("next").filter(|n| !n.is_empty()) {
        Some(next) => {
            let next: String =
                form_urlencoded::byte_serialize(safe_next(Some(next)).as_bytes()).collect();
            see_other(&format!("/accounts/login/?next={next}"))
        }
        None => see_other("/"),
    })
}
