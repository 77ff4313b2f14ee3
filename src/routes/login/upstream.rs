//! Sign-in through an upstream identity provider (issue 11): `GET
//! /accounts/upstream/{provider}/login/?next=PATH` sends the browser to the provider with
//! `state`, PKCE and (OpenID Connect) a nonce, kept in this browser's encrypted session; `GET
//! /accounts/upstream/{provider}/callback/` checks and removes them (single use), exchanges the
//! code, and signs the user in, links the account, or says what to do instead.
//!
//! Who may call: anyone. The callback acts only for the browser that started the sign-in (the
//! `state` in its session), at most once, within
//! [`crate::upstream::client::PENDING_LIFETIME_SECONDS`]. Linking is a separate, deliberate
//! start: `POST /accounts/upstream/{provider}/link/` (signed in, CSRF-checked) marks the pending
//! sign-in as a link for that user, and the callback links only when the same user is still
//! signed in; a plain sign-in never links to whoever is signed in. `GET /account/linked/` lists
//! the links; `POST /account/linked/{provider}/unlink/` removes one (never the last way in).

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::config::UpstreamProvider;
use crate::oauth::Params;
use crate::routes::browser::{
    current_user, safe_next, start_session, LoginBasis, SessionError, SESSION_AUTH_TIME,
    SESSION_FRESH_LOGIN,
};
use crate::routes::chrome::{flash, page, Chrome, Notice, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::Moment;
use crate::routes::http::{peer_ip, see_other};
use crate::routes::login::code;
use crate::routes::WebConfig;
use crate::upstream::{PendingLogin, SignInOutcome, Upstream, UpstreamError};

/// The session key of the upstream sign-in in progress.
const SESSION_UPSTREAM: &str = "upstream_pending";

/// The page of a failed upstream sign-in.
pub(super) fn failure(e: UpstreamError) -> PageError {
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
    let (url, pending) = upstream
        .begin(
            &provider,
            next,
            None,
            // What the authorization request behind this sign-in asked (kept by the
            // authorization endpoint: the resumed request in `next` no longer says it).
            session.get::<u64>(SESSION_FRESH_LOGIN).ok().flatten(),
        )
        .await
        .map_err(failure)?;
    redirect_to_provider(&session, &url, &pending)
}

/// Keeps `pending` in the session and sends the browser to the provider.
pub(super) fn redirect_to_provider(
    session: &Session,
    url: &url::Url,
    pending: &PendingLogin,
) -> Result<HttpResponse, PageError> {
    session.insert(SESSION_UPSTREAM, pending).map_err(|e| {
        tracing::error!(error = %e, "could not keep the upstream sign-in in the session");
        PageError::Internal
    })?;
    Ok(see_other(url.as_str()))
}

/// How recent a sign-in must be to link an account, in seconds: a link is a new way in that
/// outlives a password change, so a stolen session cookie alone must not make one.
pub const LINK_LOGIN_MAX_AGE_SECONDS: i64 = 600;

/// Whether a session signed in at `auth_time` (Unix seconds) may link an account at `now`.
fn recent_enough_to_link(auth_time: Option<i64>, now: i64) -> bool {
    auth_time.is_some_and(|t| (0..=LINK_LOGIN_MAX_AGE_SECONDS).contains(&(now - t)))
}

/// `POST /accounts/upstream/{provider}/link/` (signed in, CSRF token): starts a sign-in at the
/// provider whose identity is then linked to this user — when the user signed in within
/// [`LINK_LOGIN_MAX_AGE_SECONDS`]; otherwise to the sign-in page first, back to the
/// linked-accounts page.
pub async fn start_link(
    user: SignedIn,
    _form: Form,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let provider = upstream.provider(&path).map_err(failure)?;
    let auth_time = user.session().get::<i64>(SESSION_AUTH_TIME).ok().flatten();
    if !recent_enough_to_link(auth_time, chrono::Utc::now().timestamp()) {
        flash(
            user.session(),
            Notice::info("For your safety, sign in again to link an account."),
        );
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("next", "/account/linked/")
            .append_pair("login_hint", &user.username);
        return Ok(see_other(&format!("/accounts/login/?{}", query.finish())));
    }
    let (url, pending) = upstream
        .begin(&provider, "/account/linked/", Some(user.id.clone()), None)
        .await
        .map_err(failure)?;
    redirect_to_provider(user.session(), &url, &pending)
}

/// One provider on the linked-accounts page.
struct LinkLine {
    id: String,
    label: String,
    /// The linked account's name at the provider, when linked.
    linked_as: Option<String>,
    /// The linked account's picture (an https URL), when the provider gave one.
    picture: Option<String>,
    since: Option<Moment>,
    last_used: Option<Moment>,
}

#[derive(Template)]
#[template(path = "account/linked.html")]
struct LinkedPage {
    chrome: Chrome,
    lines: Vec<LinkLine>,
}

/// `GET /account/linked/`: the user's linked accounts, a "Link" button per provider.
pub async fn linked_accounts(
    user: SignedIn,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let links = upstream.links_of(&user.id).await?;
    let lines = upstream
        .buttons()
        .into_iter()
        .map(|b| {
            let link = links.iter().find(|l| l.provider_id == b.id);
            LinkLine {
                linked_as: link.map(|l| {
                    if l.display_name.is_empty() || l.display_name == l.username {
                        l.username.clone()
                    } else {
                        format!("{} ({})", l.display_name, l.username)
                    }
                }),
                picture: link.and_then(|l| l.picture.clone()),
                since: link.map(|l| Moment::of(&l.created_at)),
                last_used: link.and_then(|l| l.last_login_at.as_ref().map(Moment::of)),
                id: b.id,
                label: b.label,
            }
        })
        .collect();
    Ok(page(&LinkedPage {
        chrome: user.chrome(Section::Account),
        lines,
    }))
}

/// `POST /account/linked/{provider}/unlink/` (CSRF token): removes the link, unless it is the
/// user's last way to sign in.
pub async fn unlink(
    req: HttpRequest,
    user: SignedIn,
    _form: Form,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    match upstream.unlink(&user.id, &path, peer_ip(&req)).await? {
        Ok(true) => flash(user.session(), Notice::success("The account was unlinked.")),
        Ok(false) => {}
        Err(message) => return Err(PageError::forbidden("Not unlinked", message)),
    }
    Ok(see_other("/account/linked/"))
}

/// `GET /accounts/upstream/{provider}/callback/?code=…&state=…` (or `?error=…`, RFC 6749
/// §4.1.2.1): finishes the sign-in.
pub async fn callback(
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let pending = take_pending(&session, &req);
    let provider = upstream.provider(&path).map_err(failure)?;
    finish(
        &req,
        &session,
        &provider,
        pending,
        (&upstream, &accounts, &clients),
        &web,
    )
    .await
}

/// This browser's pending upstream sign-in, removed from its session when `req` carries its
/// `state` (compared in constant time): single use, whatever happens next. A request with
/// another state — a callback someone else forged, a link from another site — leaves it
/// alone, so it cannot cancel the sign-in under way, and gets `None`.
pub(super) fn take_pending(session: &Session, req: &HttpRequest) -> Option<PendingLogin> {
    let pending = session
        .get::<PendingLogin>(SESSION_UPSTREAM)
        .ok()
        .flatten()?;
    let params = Params::from_query(req.query_string()).ok()?;
    let state = params.get("state")?;
    if !crate::secret::ct_eq(pending.state.as_bytes(), state.as_bytes()) {
        return None;
    }
    session.remove(SESSION_UPSTREAM);
    Some(pending)
}

/// Finishes the sign-in `pending` (already taken from the session, see [`take_pending`]) at
/// `provider`'s callback: `req` must carry its `state` and come to the callback path its
/// `redirect_uri` named.
pub(super) async fn finish(
    req: &HttpRequest,
    session: &Session,
    provider: &UpstreamProvider,
    pending: Option<PendingLogin>,
    (upstream, accounts, clients): (&Upstream, &Accounts, &Clients),
    web: &WebConfig,
) -> Result<HttpResponse, PageError> {
    let params = Params::from_query(req.query_string())
        .map_err(|e| PageError::bad_request("Sign-in not finished", e.description.into_string()))?;
    // An error answer counts only when it carries this browser's state (RFC 6749 §4.1.2.1
    // returns `state` with errors too): anything else is a callback nobody here started.
    let state_matches = |pending: &PendingLogin| {
        pending.came_back_to(req.path())
            && params
                .get("state")
                .is_some_and(|state| pending.answers(provider.id.as_str(), state))
    };
    // RFC 9207: the answer names the provider it comes from, when it says (and must say, for a
    // provider that announced it); an error answer too.
    upstream
        .check_issuer(provider, params.get("iss"))
        .await
        .map_err(failure)?;
    if let Some(error) = params.get("error") {
        if !pending.as_ref().is_some_and(state_matches) {
            return Err(failure(UpstreamError::State));
        }
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
    if !pending.came_back_to(req.path()) {
        return Err(failure(UpstreamError::State));
    }
    let identity = upstream
        .finish(provider, &pending, state, code)
        .await
        .map_err(failure)?;
    // A link only for the user who asked for it from this browser, and is still signed in.
    let signed_in = match &pending.link_for {
        Some(asked) => {
            let current = current_user(session, accounts, web).await?.map(|u| u.id);
            if current.as_deref() != Some(asked.as_str()) {
                return Err(failure(UpstreamError::State));
            }
            current
        }
        None => None,
    };
    let outcome = upstream
        .sign_in(provider, identity, signed_in, peer_ip(req))
        .await?;
    match outcome {
        SignInOutcome::SignIn { user_id, .. } => {
            // No RFC 8176 `amr` value describes a federated sign-in; `idp` names it.
            let basis = LoginBasis {
                idp: Some(provider.id.to_string()),
                ..LoginBasis::default()
            };
            match start_session(req, session, accounts, &user_id, "", basis).await {
                Ok(()) => Ok(see_other(&pending.next)),
                // Deactivated, or signed out everywhere, in the moment since the sign-in.
                Err(SessionError::Outdated) => Err(PageError::forbidden(
                    "Sign-in not finished",
                    "Your account changed while you were signing in (it may have been disabled). Please sign in again.",
                )),
                Err(e) => {
                    tracing::error!(error = %e, "could not start the session of an upstream sign-in");
                    Err(PageError::Internal)
                }
            }
        }
        SignInOutcome::CodeRequired { user_id } => {
            let Some(user) = accounts.find(user_id).await? else {
                return Err(failure(UpstreamError::State));
            };
            code::begin(
                req,
                session,
                accounts,
                clients,
                &web.brand,
                code::FirstStep::Upstream {
                    user: &user,
                    provider: provider.id.as_str(),
                },
                &pending.next,
            )
            .await
        }
        SignInOutcome::Linked { .. } => {
            flash(
                session,
                Notice::success(format!("Your {} account is linked.", provider.label)),
            );
            Ok(see_other(&pending.next))
        }
        SignInOutcome::PasswordFirst => Err(PageError::forbidden(
            "Sign in with your password first",
            format!(
                "No account here is linked to this {label} account. Sign in with your password, then link {label} under Account → Linked accounts.",
                label = provider.label
            ),
        )),
        SignInOutcome::Inactive => Err(PageError::forbidden(
            "Account disabled",
            "This account is disabled. Ask an administrator.",
        )),
        SignInOutcome::Refused(message) => Err(PageError::forbidden("Sign-in refused", message)),
        SignInOutcome::Limited {
            retry_after_seconds,
        } => Err(PageError::too_many(
            retry_after_seconds,
            format!(
                "Too many accounts were made from your network. Try again {}.",
                crate::routes::format::wait_phrase(retry_after_seconds)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recent_sign_in_links_an_account() {
        let now = 1_800_000_000;
        assert!(recent_enough_to_link(Some(now), now));
        assert!(recent_enough_to_link(
            Some(now - LINK_LOGIN_MAX_AGE_SECONDS),
            now
        ));
        assert!(!recent_enough_to_link(
            Some(now - LINK_LOGIN_MAX_AGE_SECONDS - 1),
            now
        ));
        assert!(!recent_enough_to_link(None, now));
        assert!(
            !recent_enough_to_link(Some(now + 5), now),
            "a time from the future"
        );
    }
}
