//! The authorization endpoint's pages: `GET /o/authorize/` validates the request, sends the
//! user to log in or shows the consent page; the consent form posts back to the same URL.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::Accounts;
use crate::oauth::authorize::{AuthorizeOutcome, ConsentPrompt, Decision};
use crate::oauth::OAuth;
use crate::routes::browser::{csrf_ok, current_login, SESSION_FRESH_LOGIN, SESSION_REAUTH};
use crate::routes::chrome::{render, Chrome};
use crate::routes::errors::{error_page, PageError};
use crate::routes::http::{peer_ip, read_form, see_other};
use crate::routes::WebConfig;

#[derive(Template)]
#[template(path = "oauth/consent.html")]
struct ConsentPage<'a> {
    /// The signed-in user (the consent page shows no main navigation: only who is signed in
    /// and "Use another account").
    chrome: Chrome,
    prompt: Box<ConsentPrompt>,
    action: &'a str,
}

/// An error for a client whose redirect URI is not trusted yet (RFC 9700 §4.11.2): the error,
/// the destination host, and a way back that the user must choose (a link, or for
/// `response_mode=form_post` a form without the auto-submitting script).
#[derive(Template)]
#[template(path = "oauth/untrusted_error.html")]
struct UntrustedErrorPage {
    /// Who is signed in, if anyone (the page shows no navigation; a pending notice stays
    /// pending).
    chrome: Chrome,
    client_name: String,
    description: String,
    redirect_host: String,
    link: Option<String>,
    form_action: Option<String>,
    form_fields: Vec<(String, String)>,
}

/// `response_mode=form_post` (OAuth 2.0 Form Post Response Mode §2): the response parameters
/// POSTed to the client by the browser. Deliberately bare — no page chrome, no brand, not
/// `base.html`: it is the client's answer, submitted by `static/form_post.js` as soon as it
/// loads (a Continue button remains without JavaScript), not a page for reading. Its CSP
/// therefore allows no images either.
#[derive(Template)]
#[template(path = "oauth/form_post.html")]
struct FormPostPage {
    action: String,
    fields: Vec<(String, String)>,
}

/// `GET /o/authorize/?response_type=code&client_id=…` (RFC 6749 §4.1.1).
pub async fn show(
    req: HttpRequest,
    session: Session,
    oauth: web::Data<OAuth>,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    respond(
        &req,
        req.query_string(),
        &session,
        &oauth,
        &accounts,
        &web,
        None,
    )
    .await
}

/// `POST /o/authorize/?…` with `decision=allow|deny` and the CSRF token.
pub async fn decide(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    oauth: web::Data<OAuth>,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&req, payload, web.max_body_bytes)
        .await
        .map_err(|_| PageError::bad_request("Bad request", "The form could not be read."))?;
    // OIDC Core §3.1.2.1: an authorization request may also be POSTed, form-encoded. Ours is
    // the consent form, which always carries a CSRF token and keeps the request in the query.
    if form.get("csrf_token").is_none() && req.query_string().is_empty() {
        let query = form
            .iter()
            .fold(
                form_urlencoded::Serializer::new(String::new()),
                |mut q, (k, v)| {
                    q.append_pair(k, v);
                    q
                },
            )
            .finish();
        return respond(&req, &query, &session, &oauth, &accounts, &web, None).await;
    }
    if !csrf_ok(&session, form.get("csrf_token")) {
        return Err(PageError::CsrfFailed);
    }
    let decision = match form.get("decision") {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => {
            return Err(PageError::bad_request(
                "Bad request",
                "Choose Allow or Deny.",
            ))
        }
    };
    respond(
        &req,
        req.query_string(),
        &session,
        &oauth,
        &accounts,
        &web,
        Some(decision),
    )
    .await
}

async fn respond(
    req: &HttpRequest,
    query: &str,
    session: &Session,
    oauth: &OAuth,
    accounts: &Accounts,
    web: &WebConfig,
    decision: Option<Decision>,
) -> Result<HttpResponse, PageError> {
    let login = current_login(session, accounts, web).await?;
    let outcome = oauth
        .authorize(query, login.as_ref(), decision, peer_ip(req))
        .await?;
    let here = format!("{}?{query}", req.path());
    let here = here.as_str();
    Ok(match outcome {
        AuthorizeOutcome::Redirect(location) => {
            let mut builder = if decision.is_some() {
                HttpResponse::SeeOther()
            } else {
                HttpResponse::Found()
            };
            builder
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        AuthorizeOutcome::Login {
            resume_query,
            login_hint,
            fresh_within,
        } => {
            if login.is_some() {
                // A new login was asked for (prompt=login, max_age): the current one no longer
                // counts until the user logs in again (OIDC Core §3.1.2.1).
                if let Err(e) = session.insert(SESSION_REAUTH, true) {
                    tracing::error!(error = %e, "could not store the session");
                }
            }
            // Kept for an upstream sign-in, which asks its provider for the same freshness
            // (the login clears the session, and with it this).
            let kept = match fresh_within {
                Some(seconds) => session.insert(SESSION_FRESH_LOGIN, seconds),
                None => {
                    session.remove(SESSION_FRESH_LOGIN);
                    Ok(())
                }
            };
            if let Err(e) = kept {
                tracing::error!(error = %e, "could not store the session");
            }
            let resume = format!("{}?{resume_query}", req.path());
            let mut location = form_urlencoded::Serializer::new(String::new());
            location.append_pair("next", &resume);
            if let Some(hint) = login_hint {
                location.append_pair("login_hint", &hint);
            }
            see_other(&format!("/accounts/login/?{}", location.finish()))
        }
        AuthorizeOutcome::FormPost { action, fields } => {
            let mut response = render(StatusCode::OK, &FormPostPage { action, fields });
            // The page's only script submits the form (no inline script, CSP stays strict).
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            response
        }
        AuthorizeOutcome::Consent(prompt) => render(
            StatusCode::OK,
            &ConsentPage {
                chrome: Chrome::without_notice(
                    session,
                    login.as_ref().map(|l| &l.user),
                    &web.brand,
                ),
                prompt,
                action: here,
            },
        ),
        AuthorizeOutcome::Untrusted {
            client_name,
            description,
            redirect_host,
            response,
        } => {
            let (link, form_action, form_fields) = match *response {
                AuthorizeOutcome::Redirect(location) => (Some(location), None, Vec::new()),
                AuthorizeOutcome::FormPost { action, fields } => (None, Some(action), fields),
                _ => (None, None, Vec::new()),
            };
            render(
                StatusCode::BAD_REQUEST,
                &UntrustedErrorPage {
                    chrome: Chrome::without_notice(
                        session,
                        login.as_ref().map(|l| &l.user),
                        &web.brand,
                    ),
                    client_name,
                    description,
                    redirect_host,
                    link,
                    form_action,
                    form_fields,
                },
            )
        }
        AuthorizeOutcome::ErrorPage(message) => error_page(
            &web.brand,
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            &format!(
                "The application sent an invalid request: {message}. Nothing was shared with it."
            ),
        ),
    })
}
