//! Sign-in through an upstream identity provider (issue 11): `GET
//! /accounts/upstream/{provider}/login/?next=PATH` sends the browser to the provider with
//! `state`, PKCE and (OpenID Connect) a nonce, kept in this browser's encrypted session; `GET
//! /accounts/upstream/{provider}/callback/` checks and removes them (single use), exchanges the
//! code, and signs the user in, links the account, or says what to do instead.
//!
//! Who may call: anyone. The callback acts only for the browser that started the sign-in (the
//! `state` in its session), at most once, within
//! [`crate::upstream::client::PENDING_LIFETIME_SECONDS`]. A signed-in user
//! reaching the callback links the identity to their own account, never to another's.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::accounts::Accounts;
use crate::oauth::Params;
use crate::routes::browser::{current_user, safe_next, start_session, LoginBasis};
use crate::routes::chrome::{flash, Notice};
use crate::routes::errors::PageError;
use crate::routes::http::{peer_ip, see_other};
use crate::routes::WebConfig;
use crate::upstream::{PendingLogin, SignInOutcome, Upstream, UpstreamError};

/// The session key of the upstream sign-in in progress.
const SESSION_UPSTREAM: &str = "upstream_pending";

/// The page of a failed upstream sign-in.
fn failure(e: UpstreamError) -> PageError {
    match e {
        UpstreamError::UnknownProvider(_) => {
            PageError::not_found("Unknown sign-in provider", e.to_string())
        }
        UpstreamError::State => PageError::bad_request("Sign-in not finished", e.to_string()),
        UpstreamError::Denied(_) => PageError::forbidden("Sign-in cancelled", e.to_string()),
        UpstreamError::Unreachable(_) => PageError::BadGateway {
            title: "Sign-in failed",
            message: format!("{e}. Please try again in a moment, or sign in with your password."),
        },
        UpstreamError::Invalid(_) => PageError::forbidden("Sign-in refused", e.to_string()),
    }
}

/// `GET /accounts/upstream/{provider}/login/?next=PATH`: starts a sign-in at the provider.
pub async fn start(
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let provider = upstream.provider(&path).map_err(failure)?;
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let next = safe_next(params.get("next"));
    let (url, pending) = upstream.begin(provider, next).await.map_err(failure)?;
    session.insert(SESSION_UPSTREAM, &pending).map_err(|e| {
        tracing::error!(error = %e, "could not keep the upstream sign-in in the session");
        PageError::Internal
    })?;
    Ok(see_other(url.as_str()))
}

/// `GET /accounts/upstream/{provider}/callback/?code=…&state=…` (or `?error=…`, RFC 6749
/// §4.1.2.1): finishes the sign-in.
pub async fn callback(
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    // Single use: whatever happens next, this browser's pending sign-in is gone.
    let pending = session
        .remove_as::<PendingLogin>(SESSION_UPSTREAM)
        .and_then(Result::ok);
    let provider = upstream.provider(&path).map_err(failure)?;
    let params = Params::from_query(req.query_string())
        .map_err(|e| PageError::bad_request("Sign-in not finished", e.description.into_string()))?;
    if let Some(error) = params.get("error") {
        let message = if error == "access_denied" {
            format!("You did not allow the sign-in at {}.", provider.label)
        } else {
            format!(
                "{} could not sign you in ({}).",
                provider.label,
                error
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(64)
                    .collect::<String>()
            )
        };
        return Err(failure(UpstreamError::Denied(message)));
    }
    let (Some(pending), Some(state), Some(code)) =
        (pending, params.get("state"), params.get("code"))
    else {
        return Err(failure(UpstreamError::State));
    };
    let identity = upstream
        .finish(provider, &pending, state, code)
        .await
        .map_err(failure)?;
    let signed_in = current_user(&session, &accounts, &web).await?.map(|u| u.id);
    let linking = signed_in.is_some();
    let outcome = upstream
        .sign_in(provider, identity, signed_in, peer_ip(&req))
        .await?;
    match outcome {
        SignInOutcome::SignIn { user_id, .. } => {
            // An account that asks for an emailed code after its password is not signed in by
            // an upstream login alone (the code step for upstream logins is not built yet).
            let user = accounts.find(user_id.clone()).await?;
            if user.as_ref().is_some_and(|u| accounts.needs_login_code(u)) {
                return Err(PageError::forbidden(
                    "Sign in with your password",
                    format!(
                        "Your account asks for an emailed sign-in code, so sign in with your password; {} sign-in does not ask for the code yet.",
                        provider.label
                    ),
                ));
            }
            start_session(&req, &session, &accounts, &user_id, "", LoginBasis::default())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "could not start the session of an upstream sign-in");
                    PageError::Internal
                })?;
            Ok(see_other(&pending.next))
        }
        SignInOutcome::Linked { .. } => {
            flash(
                &session,
                Notice::success(format!("Your {} account is linked.", provider.label)),
            );
            Ok(see_other(if linking && pending.next == "/" { "/account/" } else { &pending.next }))
        }
        SignInOutcome::PasswordFirst => Err(PageError::forbidden(
            "Sign in with your password first",
            format!(
                "No account here is linked to this {label} account. Sign in with your password, then link {label} from your account page.",
                label = provider.label
            ),
        )),
        SignInOutcome::Inactive => Err(PageError::forbidden(
            "Account disabled",
            "This account is disabled. Ask an administrator.",
        )),
        SignInOutcome::Refused(message) => Err(PageError::forbidden("Sign-in refused", message)),
    }
}
